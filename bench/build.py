"""`flash build` of the example, the example with a 300 MB file in its source, and a generated
500-endpoint config (whole CLI process; peak RSS shows whether memory grows with the source)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from common import BIN, REPO, median_ms, run_once, table
from validate_scale import big_config


def main(rounds: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copytree(REPO / "examples", folder / "examples")
        shutil.copy(REPO / "flash.toml.example", folder / "flash.toml")
        big = folder / "big"
        shutil.copytree(REPO / "examples" / "demo", big)
        (big / "flash.toml").write_text(
            big_config(500).replace('registry = "ghcr.io/acme"', 'registry = "ghcr.io/acme"\nsource = "."')
        )
        heavy = folder / "heavy"
        shutil.copytree(folder / "examples", heavy / "examples")
        shutil.copy(folder / "flash.toml", heavy / "flash.toml")
        with open(heavy / "examples" / "demo" / "weights.bin", "wb") as handle:
            for _ in range(300):
                handle.write(os.urandom(1 << 20))
        flash = str(BIN / "flash")
        rows = []
        cases = (
            ("example (2 endpoints)", folder / "flash.toml"),
            ("example + 300 MB file", heavy / "flash.toml"),
            ("500 endpoints", big / "flash.toml"),
        )
        for name, config in cases:
            out = config.parent / ".flash"
            fresh, again = [], []
            for _ in range(rounds):
                shutil.rmtree(out, ignore_errors=True)
                fresh.append(run_once([flash, "build", "-c", str(config)]))
                again.append(run_once([flash, "build", "-c", str(config)]))
            assert all(r[2] == 0 for r in fresh + again), f"build of {name} failed"
            rows.append(
                (
                    name,
                    median_ms([r[0] for r in fresh]),
                    median_ms([r[0] for r in again]),
                    max(r[1] for r in fresh + again),
                )
            )
    print(f"## flash build ({rounds} runs each; whole process, start-up included)\n")
    print(table(["config", "fresh build ms", "no-change rebuild ms", "peak RSS MB"], rows))


if __name__ == "__main__":
    main()
