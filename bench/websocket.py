"""WebSocket routes: messages per second and round-trip latency, per path a socket can take.

tests/apps/ws deployed on the local target with a mothership (`rt` held at one worker),
LOG_LEVEL=WARNING. Three paths to the same worker, measured in alternating rounds in one run:
- direct: client -> worker;
- balancer: client -> rt's local balancer -> worker (the relay's `upgrade` + `bridge`);
- mothership: client -> the mothership's balancer -> the mothership (/rt/...) -> rt's balancer ->
  worker (three relays: the mothership is an endpoint of its own).
Rows:
- echo round trip: one socket, one 32-byte text message out and its echo back, in sequence;
- echo, 64 sockets: each sending and awaiting its echoes at once: messages/s both ways;
- push: one socket receiving a stream of small JSON messages (the /push route): messages/s.
The client is aiohttp's (one event loop). usage: python bench/websocket.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
from common import REPO, table, wait_http

MESSAGE = "x" * 32


@contextmanager
def paths() -> Iterator[dict[str, str]]:
    """{path name: ws base URL}: direct to rt's worker, through its balancer, through the mothership."""
    import json
    import os
    import subprocess
    import sys

    def ws(url: str) -> str:
        return "ws" + url.removeprefix("http")

    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(REPO / "tests" / "apps" / "ws", folder, dirs_exist_ok=True)
        config = Path(folder) / "flash.toml"
        text = config.read_text().replace("workers = [0, 1]", "workers = [1, 1]", 1)  # rt: one worker, always
        config.write_text(text + "\n[mothership]\nworkers = [1, 1]\n")
        env = {**os.environ, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO)}
        flash = [sys.executable, "-m", "flash_pipeline"]
        subprocess.run([*flash, "deploy", "--target", "local", "--detach"], check=True, env=env, cwd=folder,
                       capture_output=True)  # fmt: skip
        try:
            out = subprocess.run([*flash, "status", "--target", "local", "--format", "json"], check=True, env=env,
                                 cwd=folder, capture_output=True, text=True).stdout  # fmt: skip
            endpoints = json.loads(out)["apps"][0]["endpoints"]
            worker = f"http://127.0.0.1:{endpoints['rt']['workers'][0]['port']}"
            wait_http(worker + "/ping", want=200)  # past its init hook
            yield {"direct": ws(worker), "balancer": ws(endpoints["rt"]["url"]),
                   "mothership": ws(endpoints["mothership"]["url"]) + "/rt"}  # fmt: skip
        finally:
            subprocess.run([*flash, "destroy", "--target", "local", "--yes"], env=env, cwd=folder, capture_output=True)


async def round_trips(session: aiohttp.ClientSession, base: str, count: int) -> list[float]:
    samples = []
    async with session.ws_connect(base + "/echo") as ws:
        for _ in range(count):
            started = time.perf_counter()
            await ws.send_str(MESSAGE)
            await ws.receive()
            samples.append((time.perf_counter() - started) * 1000)
    return samples


async def echo_many(session: aiohttp.ClientSession, base: str, sockets: int, each: int) -> float:
    async def one() -> None:
        async with session.ws_connect(base + "/echo") as ws:
            for _ in range(each):
                await ws.send_str(MESSAGE)
                await ws.receive()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(sockets)))
    return sockets * each * 2 / (time.perf_counter() - started)


async def push(session: aiohttp.ClientSession, base: str, count: int) -> float:
    started = time.perf_counter()
    received = 0
    async with session.ws_connect(f"{base}/push/bench?count={count}") as ws:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            received += 1
    assert received == count, received
    return count / (time.perf_counter() - started)


async def measure(bases: dict[str, str], rounds: int) -> list[tuple[object, ...]]:
    found: dict[str, dict[str, list[float]]] = {name: {"rtt": [], "many": [], "push": []} for name in bases}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for base in bases.values():  # warm up
            await round_trips(session, base, 200)
        for _ in range(rounds):
            for name, base in bases.items():
                found[name]["rtt"] += await round_trips(session, base, 1000)
                found[name]["many"].append(await echo_many(session, base, 64, 200))
                found[name]["push"].append(await push(session, base, 20000))
    rows: list[tuple[object, ...]] = []
    for name, got in found.items():
        ordered = sorted(got["rtt"])
        rows.append(
            (
                name,
                f"{statistics.median(ordered):.3f}",
                f"{ordered[int(len(ordered) * 0.99)]:.3f}",
                f"{statistics.median(got['many']):.0f}",
                f"{statistics.median(got['push']):.0f}",
            )
        )
    return rows


def main(rounds: int = 5) -> None:
    with paths() as bases:
        rows = asyncio.run(measure(bases, rounds))
    print(f"## WebSocket routes, one worker ({rounds} alternating rounds)\n")
    headers = ["path", "echo round trip median ms", "p99 ms", "echo msgs/s, 64 sockets", "push msgs/s, 1 socket"]
    print(table(headers, rows))
    direct = rows[0]
    ratios = [
        (row[0], *(f"{float(row[i]) / float(direct[i]):.2f}x" for i in range(1, 5))) for row in rows[1:]
    ]  # latency: times direct's; throughput: the share of direct's
    print("\nagainst direct (latency: x direct's; msgs/s: x direct's)\n")
    print(table(headers, ratios))


if __name__ == "__main__":
    import sys

    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
