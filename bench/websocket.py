"""WebSocket routes: messages per second and round-trip latency, per path a socket can take.

One worker of tests/apps/ws (`rt`), LOG_LEVEL=WARNING. Rows, measured in alternating rounds:
- echo round trip: one socket, one 32-byte text message out and its echo back, in sequence;
- echo, 64 sockets: each sending and awaiting its echoes at once: messages/s both ways;
- push: one socket receiving a stream of small JSON messages (the /push route): messages/s.
Only "direct" (client -> worker) until the local balancer and the mothership relay sockets: each
path is one entry of `paths()`, so the relayed ones join this same table, measured in the same run.
The client is aiohttp's (one event loop, on the other core).
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
from worker import server

MESSAGE = "x" * 32


@contextmanager
def paths() -> Iterator[dict[str, str]]:
    """{path name: ws base URL}: direct to a worker (add the balancer and mothership URLs here)."""
    import sys

    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(REPO / "tests" / "apps" / "ws", folder, dirs_exist_ok=True)
        out = build(validate_file(Path(folder) / "flash.toml")).out_dir / "rt"
        with server([sys.executable, "../flash_worker.py"], out / "src") as (url, _):
            wait_http(url + "/ping", want=200)  # past its init hook
            yield {"direct": "ws" + url.removeprefix("http")}


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


if __name__ == "__main__":
    main()
