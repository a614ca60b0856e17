"""Deploying 1, 10 and 50 endpoints to the RunPod emulator (100 ms API latency, 3 s warm-up).

Endpoints deploy in parallel, so 50 should take well under twice the time of one; a no-change
redeploy is one list call plus a /ping per endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BIN, REPO, table

sys.path.insert(0, str(REPO / "tests" / "emulator"))
from runpod_emulator import Emulator


def config(count: int) -> str:
    parts = ['[app]\nname = "bench"\n']
    for i in range(count):
        parts.append(
            f'[endpoints.ep-{i}]\ncpu = "cpu3c-2-4"\nimage = "ghcr.io/acme/bench:1"\n\n[endpoints.ep-{i}.routes]\n"GET /x" = "app.h:x"\n'
        )
    return "\n".join(parts)


def timed_deploy(folder: Path, emulator: Emulator) -> float:
    env = {**os.environ, "RUNPOD_API_BASE_URL": emulator.url, "RUNPOD_API_KEY": emulator.api_key}
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "flash"), "deploy", "--no-build", "-c", str(folder / "flash.toml")],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return elapsed


def main() -> None:
    rows = []
    baseline = None
    for count in (1, 10, 50):
        with tempfile.TemporaryDirectory() as tmp, Emulator(warmup=3.0, latency=0.1) as emulator:
            folder = Path(tmp)
            (folder / "flash.toml").write_text(config(count))
            first = timed_deploy(folder, emulator)
            baseline = baseline or first
            emulator.calls.clear()
            again = timed_deploy(folder, emulator)
            rows.append((f"{count} endpoint(s)", first, f"{first / baseline:.2f}x", again, len(emulator.calls)))
    print("## deploy to the RunPod emulator (100 ms API latency, 3 s worker warm-up; whole CLI process)\n")
    print(
        table(["endpoints", "first deploy s", "vs 1 endpoint", "no-change redeploy s", "API calls on redeploy"], rows)
    )
    print()
    plan_many()


def plan_many() -> None:
    """`flash plan` over 1 and 20 configs (a monorepo) with 100 ms API latency: the configs plan in parallel."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Emulator(latency=0.1) as emulator:
        root = Path(tmp)
        for i in range(20):
            (root / f"svc{i:02}").mkdir()
            (root / f"svc{i:02}" / "flash.toml").write_text(config(2).replace('name = "bench"', f'name = "svc-{i}"'))
        env = {**os.environ, "RUNPOD_API_BASE_URL": emulator.url, "RUNPOD_API_KEY": emulator.api_key}
        for label, pattern in (("1 config", "svc00/flash.toml"), ("20 configs", "svc*/flash.toml")):
            start = time.perf_counter()
            done = subprocess.run(
                [str(BIN / "flash"), "plan", "-c", pattern], cwd=root, env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
            rows.append((label, time.perf_counter() - start))
    print("## plan a monorepo against the emulator (100 ms API latency; whole CLI process)\n")
    print(table(["configs", "plan s"], rows))


if __name__ == "__main__":
    main()
