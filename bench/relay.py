"""The relay before and after, in one run: the bench app (with a [mothership]) deployed twice on the
local target, once by flash at BEFORE (a git revision, run from a worktree of it) and once by this
checkout. For each: POST /echo to the `async` endpoint's worker directly, through its balancer, and
through the mothership (/async/echo: the mothership's balancer, the mothership, the endpoint's
balancer, the worker). All six paths are loaded in alternating rounds, so machine noise hits all
alike; ratios are within one deployment.

usage: python bench/relay.py [BEFORE]   (default: the commit before the relay, 39f8806)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, Load, median_load, table, wrk
from worker import BODY, build_app

BEFORE = "39f8806"


def _deploy(folder: Path, env: dict[str, str]) -> dict[str, str]:
    build_app(folder)
    config = folder / "flash.toml"
    config.write_text(config.read_text() + "\n[mothership]\nworkers = [1, 1]\n")
    flash = [sys.executable, "-m", "flash_pipeline"]  # PYTHONPATH picks which flash
    subprocess.run([*flash, "deploy", "-c", str(config), "--target", "local", "--detach"], check=True, env=env,
                   capture_output=True, cwd=folder)  # fmt: skip
    out = subprocess.run([*flash, "status", "-c", str(config), "--target", "local", "--format", "json"],
                         check=True, capture_output=True, text=True, env=env, cwd=folder).stdout  # fmt: skip
    endpoints = json.loads(out)["apps"][0]["endpoints"]
    endpoint = endpoints["async"]
    return {
        "direct": f"http://127.0.0.1:{endpoint['workers'][0]['port']}/echo",
        "balancer": endpoint["url"] + "/echo",
        "mothership": endpoints["mothership"]["url"] + "/async/echo",
    }


def _destroy(folder: Path, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "flash_pipeline", "destroy", "-c", str(folder / "flash.toml"), "--target",
                    "local", "--yes"], env=env, capture_output=True, cwd=folder)  # fmt: skip


def main(before: str = BEFORE, rounds: int = 3, seconds: int = 4) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), before], check=True)
        variants = {
            "before": {**os.environ, "PYTHONPATH": str(old)},  # flash at BEFORE builds and runs its own runtime
            "after": {**os.environ, "PYTHONPATH": str(REPO)},
        }
        folders = {name: Path(tmp) / f"app-{name}" for name in variants}
        try:
            urls = {name: _deploy(folders[name], env) for name, env in variants.items()}
            for connections in (32, 1):
                runs: dict[tuple[str, str], list[Load]] = {(v, p): [] for v in urls for p in urls[v]}
                for _ in range(rounds):
                    for (variant, path), loads in runs.items():
                        url = urls[variant][path]
                        wrk(url, seconds=1, body=BODY, connections=connections)
                        loads.append(wrk(url, seconds=seconds, body=BODY, connections=connections))
                _report(runs, connections, rounds, seconds)
        finally:
            for name, env in variants.items():
                _destroy(folders[name], env)
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], capture_output=True)


def _report(runs: dict[tuple[str, str], list[Load]], connections: int, rounds: int, seconds: int) -> None:
    medians = {key: median_load(loads) for key, loads in runs.items()}
    rows = []
    for (variant, path), m in medians.items():
        direct = medians[(variant, "direct")]
        hop = m.p50_ms - medians[(variant, "balancer")].p50_ms if path == "mothership" else None
        rows.append((variant, path, m.rps, m.p50_ms, m.p99_ms, f"{m.rps / direct.rps:.2f}x",
                     "" if hop is None else f"{hop:+.2f}"))  # fmt: skip
    print(f"\n## POST /echo, wrk -t1 -c{connections} ({rounds} alternating rounds of {seconds}s, medians)\n")
    headers = ["flash", "path", "req/s", "p50 ms", "p99 ms", "vs direct", "mothership hop p50 ms"]
    print(table(headers, [(r[0], r[1], r[2], f"{r[3]:.2f}", f"{r[4]:.2f}", r[5], r[6]) for r in rows]))


if __name__ == "__main__":
    main(*sys.argv[1:2])
