"""WebSocket handlers of the tests: an echo, a server-push stream, a failure, and a caller of both."""

from __future__ import annotations

import json
import sys

from sanic import Request

from flash_runtime import WebSocket, endpoint
from flash_runtime.websocket import bridge


async def echo(ws: WebSocket) -> None:
    """Every message back as it came; "bye" ends with 1000, "close:<code>" with that code."""
    async for message in ws:
        if message == "bye":
            await ws.close()
            return
        if isinstance(message, str) and message.startswith("close:"):
            await ws.close(code=int(message[6:]), reason="asked to")
            return
        await ws.send(message)


async def push(ws, topic: str, count: int = 3, size: int = 0) -> None:
    """`count` messages about `topic` (binary ones of `size` bytes if size is set; count < 0: forever)."""
    index = 0
    while count < 0 or index < count:
        if size:
            await ws.send(index.to_bytes(4, "big") + b"x" * (size - 4))
        else:
            await ws.send_json({"topic": topic, "index": index})
        index += 1


async def sink(ws, pause: float = 0.0) -> None:
    """A slow reader: `pause` seconds between messages; answers the count and total size at "done"."""
    import asyncio

    count = size = 0
    async for message in ws:
        if message == "done":
            await ws.send_json({"count": count, "size": size})
            continue
        count, size = count + 1, size + len(message)
        await asyncio.sleep(pause)  # the app's own pace: the client must wait for it
    print(f"sink: {count} message(s), closed with {ws.close_code}", file=sys.stderr, flush=True)


async def boom(ws) -> None:
    await ws.receive()
    raise ValueError("secret internal detail")


async def headers(ws, request: Request) -> None:
    """What reached the worker: the headers a caller passes through."""
    names = ("authorization", "x-request-id", "x-runpod-worker-id")
    await ws.send_json({name: request.headers.get(name) for name in names})


def hello() -> dict:
    return {"hello": "world"}


async def relay(ws) -> None:
    """This socket bridged to rt's /echo (held for the session): messages and close codes both ways."""
    async with endpoint("rt").websocket("/echo") as upstream:
        await ws.send_json({"worker": upstream.worker_id})
        await bridge(ws, upstream)


async def pinned(body: dict) -> dict:
    """Open rt's /headers pinned to a worker (as a caller keeping a session on one callee worker)."""
    async with endpoint("rt").websocket("/headers", worker=body["worker"]) as socket:
        return {"seen": json.loads(await socket.receive())}


async def collect(body: dict) -> dict:
    """Open rt's push stream from an HTTP handler and return what arrived."""
    socket = await endpoint("rt").websocket(f"/push/{body['topic']}", params={"count": body["count"]})
    received = [message async for message in socket]
    return {"received": received, "close": socket.close_code}


def warm_up() -> None:
    """Init: with WS_INIT_GATE set, stay initializing (/ping 204, sockets 503) until that file exists."""
    import os
    import time

    gate = os.environ.get("WS_INIT_GATE")
    deadline = time.monotonic() + 30
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
