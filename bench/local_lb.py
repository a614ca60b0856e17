"""The local load balancer against the same worker called directly (one worker, same load)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from common import BIN, median_load, table, wrk
from worker import BODY, build_app


def main(rounds: int = 3, seconds: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_app(folder)
        flash = str(BIN / "flash")
        config = str(folder / "flash.toml")
        subprocess.run(
            [flash, "deploy", "-c", config, "--target", "local", "--detach"], check=True, capture_output=True
        )
        try:
            status = json.loads(
                subprocess.run(
                    [flash, "status", "-c", config, "--target", "local", "--format", "json"],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            endpoint = status["apps"][0]["endpoints"]["async"]
            targets = {
                "worker called directly": f"http://127.0.0.1:{endpoint['workers'][0]['port']}/echo",
                "through the local load balancer": endpoint["url"] + "/echo",
            }
            runs: dict[str, list] = {name: [] for name in targets}
            for _ in range(rounds):
                for name, url in targets.items():
                    wrk(url, seconds=1, body=BODY)
                    runs[name].append(wrk(url, seconds=seconds, body=BODY))
        finally:
            subprocess.run(
                [flash, "destroy", "-c", config, "--target", "local", "--yes"], check=True, capture_output=True
            )
    medians = {name: median_load(loads) for name, loads in runs.items()}
    direct = medians["worker called directly"].rps
    rows = [(name, m.rps, m.p50_ms, m.p99_ms, f"{m.rps / direct:.2f}x") for name, m in medians.items()]
    print(f"## local load balancer: POST /echo ({rounds} alternating rounds of {seconds}s, wrk -t1 -c32, medians)\n")
    print(table(["path", "req/s", "p50 ms", "p99 ms", "vs direct"], rows))


if __name__ == "__main__":
    main()
