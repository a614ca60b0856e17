"""The generated worker against a hand-written Sanic app and FastAPI/uvicorn: same route, same load.

Each server runs as one process; wrk (one thread) loads them in turn, alternating rounds so that
machine noise hits all alike. Also: /ping p99 while sync handlers block, and idle memory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common import BIN, REPO, Load, free_port, median_load, rss_mb, table, wait_http, wrk

BODY = '{"name": "flash", "values": [1, 2, 3], "nested": {"ok": true}}'


@contextmanager
def server(cmd: list[str], cwd: Path, ready_url_path: str = "/ping") -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + ready_url_path)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def build_app(folder: Path) -> Path:
    shutil.copytree(REPO / "bench" / "app", folder, dirs_exist_ok=True)
    subprocess.run(
        [str(BIN / "flash"), "build", "-c", str(folder / "flash.toml")], check=True, stdout=subprocess.DEVNULL
    )
    return folder / ".flash" / "build"


def main(rounds: int = 5, seconds: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        build = build_app(Path(tmp))
        peers = REPO / "bench" / "peers"
        servers = {
            "flash worker (sync def handler)": (
                [sys.executable, "../flash_worker.py"],
                build / "sync" / "src",
                "/ping",
            ),
            "flash worker (async def handler)": (
                [sys.executable, "../flash_worker.py"],
                build / "async" / "src",
                "/ping",
            ),
            "bare Sanic": ([sys.executable, str(peers / "bare_sanic.py")], peers, "/nothing"),
            "FastAPI + uvicorn": ([sys.executable, str(peers / "fastapi_app.py")], peers, "/docs"),
        }
        runs: dict[str, list[Load]] = {name: [] for name in servers}
        idle: dict[str, float] = {}
        for _ in range(rounds):
            for name, (cmd, cwd, ready) in servers.items():
                with server(cmd, cwd, ready) as (url, pid):
                    time.sleep(0.5)
                    idle.setdefault(name, rss_mb(pid))
                    wrk(url + "/echo", seconds=1, body=BODY)  # warm-up
                    runs[name].append(wrk(url + "/echo", seconds=seconds, body=BODY))
        medians = {name: median_load(loads) for name, loads in runs.items()}
        sanic_rps, fastapi_rps = medians["bare Sanic"].rps, medians["FastAPI + uvicorn"].rps
        rows = [
            (name, m.rps, m.p50_ms, m.p99_ms, f"{m.rps / sanic_rps:.2f}x", f"{m.rps / fastapi_rps:.2f}x", idle[name])
            for name, m in medians.items()
        ]
        print(f"## worker: POST /echo JSON ({rounds} alternating rounds of {seconds}s, wrk -t1 -c32, medians)\n")
        print(table(["server", "req/s", "p50 ms", "p99 ms", "vs bare Sanic", "vs FastAPI", "idle RSS MB"], rows))
        print()
        ping_under_load(build / "sync" / "src", seconds)


def ping_under_load(src: Path, seconds: int) -> None:
    """/ping latency while 8 clients keep sync handlers blocked in the thread pool."""
    with server([sys.executable, "../flash_worker.py"], src) as (url, _):
        stop = threading.Event()

        def block() -> None:
            while not stop.is_set():
                urllib.request.urlopen(url + "/slow?seconds=0.5").read()

        clients = [threading.Thread(target=block) for _ in range(8)]
        for client in clients:
            client.start()
        time.sleep(0.5)
        load = wrk(url + "/ping", seconds=seconds, connections=4)
        stop.set()
        for client in clients:
            client.join()
    print("## /ping while 8 sync handlers block (wrk -t1 -c4)\n")
    print(
        table(
            ["case", "req/s", "p50 ms", "p99 ms"], [("/ping under blocking load", load.rps, load.p50_ms, load.p99_ms)]
        )
    )


if __name__ == "__main__":
    main()
