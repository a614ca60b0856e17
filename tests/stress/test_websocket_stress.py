"""WebSocket routes of one worker under load: many sockets at once, a slow consumer, a stop mid-stream.

Run with `tox -e stress`. Bounds are generous "it held" limits, never speed claims.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.stress
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory, worker_type: type) -> Iterator[Any]:
    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    root = tmp_path_factory.mktemp("ws-stress")
    shutil.copytree(REPO / "tests" / "apps" / "ws", root, dirs_exist_ok=True)
    worker = worker_type(build(validate_file(root / "flash.toml")).out_dir / "rt", {"LOG_LEVEL": "WARNING"})
    try:
        worker.wait_listening()
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def url(worker: Any, path: str) -> str:
    return "ws" + worker.url.removeprefix("http") + path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_500_concurrent_sockets_every_message_accounted_for(rt: Any) -> None:
    sockets, messages = 500, 20

    async def one(index: int) -> list[str]:
        async with connect(url(rt, "/echo"), open_timeout=60) as ws:
            got = []
            for n in range(messages):
                await ws.send(f"{index}:{n}")
                got.append(await ws.recv())
            await ws.send("bye")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return got

    async def everyone() -> list[list[str]]:
        return await asyncio.gather(*(one(i) for i in range(sockets)))

    answers = asyncio.run(everyone())
    assert answers == [[f"{i}:{n}" for n in range(messages)] for i in range(sockets)]


def test_a_slow_consumer_holds_the_sender_back_with_flat_memory(rt: Any) -> None:
    """An endless stream of 256 KB frames to a reader that reads slowly: the worker's memory stays flat."""
    size = 256 * 1024

    async def read_slowly() -> tuple[int, list[float]]:
        samples = []
        received = 0
        async with connect(url(rt, f"/push/slow?count=-1&size={size}"), max_size=2 * size, max_queue=4) as ws:
            for index in range(400):  # 100 MB in all, read at a trickle
                frame = await ws.recv()
                assert len(frame) == size and int.from_bytes(frame[:4], "big") == index  # none lost, in order
                received += len(frame)
                if index % 40 == 0:
                    samples.append(rss_mb(rt.proc.pid))
                    await asyncio.sleep(0.2)  # the consumer's own pace: the producer must wait for it
        return received, samples

    received, samples = asyncio.run(read_slowly())
    assert received == 400 * size
    assert max(samples) - samples[0] < 40, samples  # a buffered stream would have grown by ~100 MB


def test_a_fast_sender_to_a_slow_handler_is_held_back_with_flat_memory(rt: Any) -> None:
    """100 MB sent to a handler that reads one 256 KB message every 10 ms: the worker pauses the
    socket instead of buffering, so its memory stays flat and every byte arrives."""
    size, count = 256 * 1024, 400

    async def flood() -> tuple[Any, list[float]]:
        samples = []
        async with connect(url(rt, "/sink?pause=0.01"), max_size=2 * size) as ws:
            for index in range(count):
                await ws.send(b"y" * size)  # waits while the worker's socket is paused
                if index % 40 == 0:
                    samples.append(rss_mb(rt.proc.pid))
            await ws.send("done")
            return await ws.recv(), samples

    answer, samples = asyncio.run(flood())
    assert json.loads(answer) == {"count": count, "size": count * size}
    assert max(samples) - samples[0] < 40, samples  # a buffered flood would have grown by ~100 MB


def test_a_stop_mid_stream_closes_every_socket_with_1001(tmp_path: Path, worker_type: type) -> None:
    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    shutil.copytree(REPO / "tests" / "apps" / "ws", tmp_path, dirs_exist_ok=True)
    worker = worker_type(build(validate_file(tmp_path / "flash.toml")).out_dir / "rt", {"LOG_LEVEL": "WARNING"})
    worker.wait_listening()
    worker.wait_ready()

    async def streams(count: int) -> list[Any]:
        async def one() -> Any:
            async with connect(url(worker, "/push/s?count=-1&size=4096")) as ws:
                await ws.recv()
                opened.append(1)
                if len(opened) == count:
                    worker.proc.send_signal(signal.SIGTERM)
                try:
                    while True:
                        await ws.recv()
                except ConnectionClosed as closed:
                    return closed.rcvd.code if closed.rcvd else None

        opened: list[int] = []
        return await asyncio.gather(*(one() for _ in range(count)))

    assert asyncio.run(streams(50)) == [1001] * 50
    assert worker.proc.wait(timeout=30) == 0, worker.output()  # an endless stream never holds the stop
