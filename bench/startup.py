"""Start-up: `flash --help` and `flash validate` against RunPod's runpod-flash `flash --help`.

runpod-flash is installed into its own virtualenv (.bench/runpod-flash) so the two never share
an environment; both CLIs are timed alternately in one run so machine noise hits both alike.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from common import BIN, REPO, median_ms, run_once, table

PEER_VENV = REPO / ".bench" / "runpod-flash"


def peer_flash() -> Path | None:
    """The runpod-flash `flash` script, installing it on first use (None if that fails)."""
    script = PEER_VENV / "bin" / "flash"
    if not script.exists():
        print("installing runpod-flash into .bench/runpod-flash (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        done = subprocess.run(
            [str(PEER_VENV / "bin" / "pip"), "install", "-q", "runpod-flash"], check=False, stderr=subprocess.DEVNULL
        )
        if done.returncode != 0:
            return None
    return script


def main(rounds: int = 21) -> None:
    ours = str(BIN / "flash")
    example = str(REPO / "flash.toml.example")
    commands = {"flash --help": [ours, "--help"], "flash validate flash.toml.example": [ours, "validate", example]}
    peer = peer_flash()
    if peer is not None:
        commands["runpod-flash: flash --help"] = [str(peer), "--help"]
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for cmd in commands.values():  # warm the page cache once, untimed
        run_once(cmd)
    for _ in range(rounds):
        for name, cmd in commands.items():
            elapsed, rss, _ = run_once(cmd)
            samples[name].append((elapsed, rss))
    rows = []
    peer_median = median_ms([s[0] for s in samples.get("runpod-flash: flash --help", [])]) if peer else None
    for name, values in samples.items():
        med = median_ms([v[0] for v in values])
        ratio = f"{peer_median / med:.1f}x faster" if peer_median and not name.startswith("runpod") else ""
        rows.append((name, med, max(v[1] for v in values), ratio))
    print(f"## start-up ({rounds} alternating runs each)\n")
    print(table(["command", "median ms", "peak RSS MB", "vs runpod-flash --help"], rows))


if __name__ == "__main__":
    main()
