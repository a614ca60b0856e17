"""The local load balancer against the same worker called directly (one worker, same load)."""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import BIN, table, wrk
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
            endpoint = status["endpoints"]["async"]
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
    direct = statistics.median(r.rps for r in runs["worker called directly"])
    rows = []
    for name, loads in runs.items():
        rps = statistics.median(r.rps for r in loads)
        rows.append(
            (
                name,
                rps,
                statistics.median(r.p50_ms for r in loads),
                statistics.median(r.p99_ms for r in loads),
                f"{rps / direct:.2f}x",
            )
        )
    print(f"## local load balancer: POST /echo ({rounds} alternating rounds of {seconds}s, wrk -t1 -c32, medians)\n")
    print(table(["path", "req/s", "p50 ms", "p99 ms", "vs direct"], rows))


if __name__ == "__main__":
    main()
