"""A request through the mothership against the same request sent to the endpoint directly: the
bench app on the local target with a [mothership], POST /echo to the `async` endpoint's balancer or
to the mothership's balancer as /async/echo (one more hop, as on RunPod), alternating rounds."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from common import BIN, median_load, table, wrk
from worker import BODY, build_app


def main(rounds: int = 3, seconds: int = 5, connections: int = 32) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_app(folder)
        config = folder / "flash.toml"
        config.write_text(config.read_text() + "\n[mothership]\nworkers = [1, 1]\n")
        flash = str(BIN / "flash")
        subprocess.run(
            [flash, "deploy", "-c", str(config), "--target", "local", "--detach"], check=True, capture_output=True
        )
        try:
            status = json.loads(
                subprocess.run(
                    [flash, "status", "-c", str(config), "--target", "local", "--format", "json"],
                    check=True, capture_output=True, text=True,
                ).stdout
            )  # fmt: skip
            targets = {
                "endpoint called directly": status["apps"][0]["endpoints"]["async"]["url"] + "/echo",
                "through the mothership": status["apps"][0]["endpoints"]["mothership"]["url"] + "/async/echo",
            }
            runs: dict[str, list] = {name: [] for name in targets}
            for _ in range(rounds):
                for name, url in targets.items():
                    wrk(url, seconds=1, body=BODY, connections=connections)
                    runs[name].append(wrk(url, seconds=seconds, body=BODY, connections=connections))
        finally:
            subprocess.run([flash, "destroy", "-c", str(config), "--target", "local", "--yes"], capture_output=True)
    medians = {name: median_load(loads) for name, loads in runs.items()}
    direct = medians["endpoint called directly"].rps
    rows = [(name, m.rps, m.p50_ms, m.p99_ms, f"{m.rps / direct:.2f}x") for name, m in medians.items()]
    print(
        f"## the mothership hop: POST /echo ({rounds} alternating rounds of {seconds}s, wrk -t1 -c{connections}, medians)\n"
    )
    print(table(["path", "req/s", "p50 ms", "p99 ms", "vs direct"], rows))


if __name__ == "__main__":
    main()  # saturated: throughput
    print()
    main(connections=1)  # one client: the latency the hop adds
