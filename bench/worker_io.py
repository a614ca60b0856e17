"""Typed bodies in the worker against FastAPI doing the same: a pydantic model body and a keyword
body (FastAPI: several Body() parameters), POST, same JSON, alternating rounds of wrk."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from common import REPO, Load, median_load, table, wrk
from worker import build_app, server

TYPED_BODY = '{"name": "flash", "values": [1, 2, 3]}'


def main(rounds: int = 5, seconds: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        build = build_app(Path(tmp))
        peers = REPO / "bench" / "peers"
        servers = {
            "flash worker": ([sys.executable, "../flash_worker.py"], build / "async" / "src", "/ping"),
            "FastAPI + uvicorn": ([sys.executable, str(peers / "fastapi_app.py")], peers, "/docs"),
        }
        runs: dict[tuple[str, str], list[Load]] = {}
        for _ in range(rounds):
            for name, (cmd, cwd, ready) in servers.items():
                with server(cmd, cwd, ready) as (url, _):
                    time.sleep(0.5)
                    for route in ("/model", "/keyword"):
                        wrk(url + route, seconds=1, body=TYPED_BODY)  # warm-up
                        runs.setdefault((route, name), []).append(wrk(url + route, seconds=seconds, body=TYPED_BODY))
    medians = {key: median_load(loads) for key, loads in runs.items()}
    rows = []
    for route, label in (("/model", "pydantic model body"), ("/keyword", "keyword body")):
        fastapi = medians[(route, "FastAPI + uvicorn")].rps
        for name in servers:
            m = medians[(route, name)]
            rows.append((f"{label}: {name}", m.rps, m.p50_ms, m.p99_ms, f"{m.rps / fastapi:.2f}x"))
    print(f"## worker: typed bodies ({rounds} alternating rounds of {seconds}s, wrk -t1 -c32, medians)\n")
    print(table(["handler", "req/s", "p50 ms", "p99 ms", "vs FastAPI"], rows))


if __name__ == "__main__":
    main()
