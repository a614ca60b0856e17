"""`flash dev`: from saving a handler's module to the next request answering the new code.

Against the loop it replaces: edit, then `flash deploy --target local --detach` (which also
restarts in place), timed the same way. The app is tests' dev app: two endpoints, one route each;
each save changes a module only one of them imports.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from common import BIN, REPO, table

sys.path.insert(0, str(REPO / "tests" / "pipeline"))
from devapp import Dev, save, write_app


def _served(url: str, version: int, limit: float = 60.0) -> float:
    """Poll until url answers the new version; the moment it did (monotonic)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).json() == {"version": version}:
                return time.monotonic()
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} never answered version {version}")


def _dev(folder: Path, saves: int) -> list[float]:
    root = write_app(folder / "dev")
    dev = Dev(root)
    times = []
    try:
        dev.wait_for(r"^flash: watching for changes")
        url = dev.wait_for(r"^flash: api serves at ").split(" at ")[1].split(" ")[0] + "/hello"
        for version in range(2, saves + 2):
            started = time.monotonic()
            save(root / "app" / "helper.py", f"VERSION = {version}\n")
            times.append(_served(url, version) - started)
            dev.wait_for(r"^flash: api serves the new build", count=version - 1)  # the old workers are gone too
    except Exception:
        print(dev.output, file=sys.stderr)
        raise
    finally:
        dev.interrupt()
    return times


def _redeploy(folder: Path, saves: int) -> list[float]:
    root = write_app(folder / "deploy")
    flash = [str(BIN / "flash")]
    subprocess.run([*flash, "deploy", "--target", "local", "--detach"], cwd=root, check=True, capture_output=True)
    times = []
    try:
        status = subprocess.run(
            [*flash, "status", "--target", "local", "--format", "json"], cwd=root, check=True, capture_output=True
        )
        url = __import__("json").loads(status.stdout)["apps"][0]["endpoints"]["api"]["url"] + "/hello"
        for version in range(2, saves + 2):
            started = time.monotonic()
            save(root / "app" / "helper.py", f"VERSION = {version}\n")
            subprocess.run(
                [*flash, "deploy", "--target", "local", "--detach"], cwd=root, check=True, capture_output=True
            )
            times.append(_served(url, version) - started)
    finally:
        subprocess.run([*flash, "destroy", "--target", "local", "--yes"], cwd=root, capture_output=True)
    return times


def _ctrl_c(folder: Path, command: tuple[str, ...]) -> float:
    """Seconds from SIGINT (while a 20 s init hook runs) to the command's exit; RuntimeError if not 130."""
    root = write_app(folder / "app")
    markers = folder / "markers"
    markers.mkdir()
    config = (root / "flash.toml").read_text()
    config = config.replace("[endpoints.api.routes]", 'init = "app.lifecycle:slow"\n\n[endpoints.api.routes]')
    (root / "flash.toml").write_text(
        config.replace("[endpoints.api]", f'[endpoints.api]\nenv = {{ MARKERS = "{markers}" }}')
    )
    run = Dev(root, *command)
    try:
        while not (markers / "init-started").exists():
            time.sleep(0.01)
        started = time.monotonic()
        run.proc.send_signal(2)
        code = run.proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        run.kill()
    if code != 130:
        raise RuntimeError(f"{command} exited {code}")
    return took


def main(saves: int = 9) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "flash dev: save": _dev(Path(tmp), saves),
            "save, then deploy --target local --detach": _redeploy(Path(tmp), saves),
        }
    base = statistics.median(runs["flash dev: save"])
    rows = [
        (
            name,
            statistics.median(times) * 1000,
            min(times) * 1000,
            max(times) * 1000,
            f"{statistics.median(times) / base:.2f}x",
        )
        for name, times in runs.items()
    ]
    print(f"## save -> served, 2-endpoint app ({saves} saves each, medians)\n")
    print(table(["loop", "median ms", "min ms", "max ms", "vs flash dev"], rows))
    commands = {"dev": ("dev",), "deploy --target local": ("deploy", "--target", "local")}
    commands["deploy --target local --detach"] = (*commands["deploy --target local"], "--detach")
    stops = {name: [] for name in commands}  # type: dict[str, list[float]]
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(3):
            for name, command in commands.items():
                stops[name].append(_ctrl_c(Path(tmp) / f"{round_}-{len(stops[name])}-{command[-1]}", command))
    print("\n## Ctrl-C during a 20 s init hook -> exit 130 (3 runs each)\n")
    rows = [(name, statistics.median(t) * 1000, max(t) * 1000) for name, t in stops.items()]
    print(table(["command", "median ms", "max ms"], rows))


if __name__ == "__main__":
    main()
