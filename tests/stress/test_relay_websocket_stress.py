"""WebSockets through the relay under load: the local balancer in front of real workers of
tests/apps/ws, and the mothership in front of that balancer. Many sockets at once with every
message accounted for, slow readers and slow handlers with flat memory in the relaying process
(this one: the balancer and the mothership run on a loop of their own here) and in the worker.

Run with `tox -e stress`. Bounds are generous "it held" limits, never speed claims.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.runtime.test_relay import wait_until
from tests.runtime.test_relay_websocket import Front, ws_build  # noqa: F401  (a fixture)

pytestmark = pytest.mark.stress


@pytest.fixture(scope="module")
def front(ws_build: Path) -> Iterator[Front]:  # noqa: F811
    made = Front(ws_build, 1, 4, 3600, ship=True)  # one socket is one request: 500 scale it to 4 workers
    try:
        wait_until(lambda: made.endpoint.pool.ready(), "a worker of rt is ready")
        yield made
    finally:
        made.close()


@pytest.fixture(params=["balancer", "mothership"])
def base(request: pytest.FixtureRequest, front: Front) -> str:
    return front.balancer if request.param == "balancer" else front.ship


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_500_concurrent_sockets_every_message_accounted_for(base: str, front: Front) -> None:
    sockets, messages = 500, 20

    async def one(index: int) -> tuple[list[str], str]:
        async with connect(base + "/echo", open_timeout=120) as ws:
            got = []
            for n in range(messages):
                await ws.send(f"{index}:{n}")
                got.append(await ws.recv())
            await ws.send("bye")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return got, ws.response.headers["X-Runpod-Worker-Id"]

    async def everyone() -> list[tuple[list[str], str]]:
        return await asyncio.gather(*(one(i) for i in range(sockets)))

    answers = asyncio.run(everyone())
    assert [got for got, _ in answers] == [[f"{i}:{n}" for n in range(messages)] for i in range(sockets)]
    assert {worker for _, worker in answers} <= {f"rt-{n}" for n in range(1, 100)}
    wait_until(lambda: all(w.inflight == 0 for w in front.workers()), "every relayed socket released its worker")


def test_a_slow_consumer_holds_the_worker_back_with_flat_memory(base: str, front: Front) -> None:
    """An endless stream of 256 KB frames read at a trickle through the relay: neither the relaying
    process nor the worker buffers it."""
    size = 256 * 1024

    async def read_slowly() -> tuple[int, list[tuple[float, float]]]:
        samples = []
        received = 0
        async with connect(base + f"/push/slow?count=-1&size={size}", max_size=2 * size, max_queue=4) as ws:
            worker = ws.response.headers["X-Runpod-Worker-Id"]
            pid = next(w.proc.pid for w in front.workers() if w.worker_id == worker)
            for index in range(400):  # 100 MB in all
                frame = await ws.recv()
                assert len(frame) == size and int.from_bytes(frame[:4], "big") == index  # none lost, in order
                received += len(frame)
                if index % 40 == 0:
                    samples.append((rss_mb(os.getpid()), rss_mb(pid)))
                    await asyncio.sleep(0.2)  # the consumer's own pace: the producer must wait for it
        return received, samples

    received, samples = asyncio.run(read_slowly())
    assert received == 400 * size
    for side in (0, 1):  # the relaying process, the worker
        grown = max(s[side] for s in samples) - samples[0][side]
        assert grown < 40, samples  # a buffered stream would have grown by ~100 MB


def test_a_fast_sender_to_a_slow_handler_is_held_back_with_flat_memory(base: str) -> None:
    size, count = 256 * 1024, 400

    async def flood() -> tuple[Any, list[float]]:
        samples = []
        async with connect(base + "/sink?pause=0.01", max_size=2 * size) as ws:
            for index in range(count):
                await ws.send(b"y" * size)  # waits while the relay (and the worker) hold back
                if index % 40 == 0:
                    samples.append(rss_mb(os.getpid()))
            await ws.send("done")
            return await ws.recv(), samples

    answer, samples = asyncio.run(flood())
    assert json.loads(answer) == {"count": count, "size": count * size}
    assert max(samples) - samples[0] < 40, samples


def test_stopping_the_balancer_closes_relayed_sockets_with_1001(ws_build: Path) -> None:  # noqa: F811
    made = Front(ws_build, 1, 1, 3600)
    stopped: list[Any] = []

    async def streams(count: int) -> list[Any]:
        opened: list[int] = []

        async def one() -> Any:
            async with connect(made.balancer + "/push/s?count=-1&size=4096", open_timeout=60) as ws:
                await ws.recv()
                opened.append(1)
                if len(opened) == count:
                    stopped.append(asyncio.run_coroutine_threadsafe(made.endpoint.stop(), made.loop.loop))
                try:
                    while True:
                        await ws.recv()
                except ConnectionClosed as closed:
                    return closed.rcvd.code if closed.rcvd else None

        return await asyncio.gather(*(one() for _ in range(count)))

    try:
        assert asyncio.run(streams(20)) == [1001] * 20
        stopped[0].result(60)
    finally:
        made.loop.close()
