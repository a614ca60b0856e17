"""WebSocket routes: `"WS /path" = "module:function"` serves `async def f(ws, ...)` on a Sanic socket.

The handler gets a `WebSocket`: `await ws.receive()` (a `str` or `bytes` message, None once closed),
`async for message in ws`, `await ws.send(str | bytes)`, `await ws.send_json(obj)`,
`await ws.close(code=1000)`; `ws.close_code` says how the other side closed. Path and query
parameters bind as in HTTP routes (after `ws`). Before the upgrade a worker that is not ready
answers 503, a request without `Upgrade: websocket` 426 and parameters that do not fit 422, all
JSON like every other error. Once open:

- messages above MAX_MESSAGE_BYTES close the socket with 1009; pings are answered (and the worker
  pings every PING_INTERVAL seconds, closing a peer silent past PING_TIMEOUT);
- the handler returning closes with 1000; the handler raising closes with 1011, logged once with
  the request id; a `send` after the peer left raises `WebSocketClosed`, which ends the handler quietly;
- every open socket is counted (`Sockets.count`: /ping reports it as `websockets`); when the worker
  stops (SIGTERM) no new socket is accepted, then every open one is closed with 1001 and its
  handler gets CLOSE_GRACE seconds to return before it is cancelled.

Sending waits while the peer reads slowly (the transport's backpressure), and a peer that sends
faster than the handler receives is paused at the transport: memory stays flat both ways.
The worker's side lives in wsserver.py; the client side (`endpoint(name).websocket(path)`) is
`wsclient.ClientWebSocket`, with the same five calls; `bridge` relays one socket to another.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # one message, either way; larger ones close with 1009
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
CLOSE_GRACE = 5.0  # seconds a handler has to return once its socket closed for a stop
CLOSE_TIMEOUT = 5.0  # seconds the closing handshake may take before the connection is dropped
OPEN_TIMEOUT = 60.0  # one attempt at opening a socket (RunPod: ~60 s against a scaled-to-zero endpoint)


class WebSocketClosed(ConnectionError):
    """Sending on a socket the other side closed (or that closed for a stop)."""


class Connection:
    """What both sides share: iteration and send_json on top of receive and send."""

    async def receive(self) -> str | bytes | None:
        raise NotImplementedError

    async def send(self, message: str | bytes) -> None:
        raise NotImplementedError

    async def send_json(self, obj: Any) -> None:
        await self.send(json.dumps(obj, separators=(",", ":")))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    @property
    def close_code(self) -> int | None:
        raise NotImplementedError

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        while (message := await self.receive()) is not None:
            yield message


class WebSocket(Connection):
    """The worker's side of one socket, as a handler sees it."""

    def __init__(self, raw: Any, request_id: str, path: str) -> None:
        self._raw = raw  # sanic's WebsocketImplProtocol
        self.request_id, self.path = request_id, path

    def _release(self, force: bool = False) -> None:
        release = getattr(self._raw.io_proto, "release", None)  # FlowControlled's (below)
        if release is not None:
            release(force)

    async def receive(self) -> str | bytes | None:
        from sanic.exceptions import WebsocketClosed
        from websockets.exceptions import ConnectionClosed

        self._release()  # the handler wants more: read on
        raw = self._raw
        try:
            if getattr(raw.io_proto, "waiting", 0):  # parsed already (maybe before the end): take it
                message = await asyncio.wait_for(raw.assembler.get(), CLOSE_TIMEOUT)
            else:
                message = await self._next(raw)
        except (TimeoutError, ConnectionClosed, WebsocketClosed):
            return None
        except asyncio.CancelledError:
            # sanic cancels a waiting receive when a close arrives: that is the end of the
            # messages, unless this task itself is being cancelled
            task = asyncio.current_task()
            if not self.closed or (task is not None and getattr(task, "cancelling", lambda: 0)()):
                raise
            return None
        consumed = getattr(self._raw.io_proto, "consumed", None)
        if message is not None and consumed is not None:
            consumed()
        return message  # type: ignore[no-any-return]

    @staticmethod
    async def _next(raw: Any) -> Any:
        """The next message, or None once the connection is gone: sanic's receive alone would wait
        forever when the close (or the end of the connection) came while nobody was receiving."""
        lost = raw.connection_lost_waiter

        def pending() -> int:  # messages parsed, not yet taken (FlowControlled counts them)
            return int(getattr(raw.io_proto, "waiting", 0))

        if lost is None or lost.done() or raw.ws_proto.state.name in ("CLOSING", "CLOSED"):
            return None
        receiving = asyncio.ensure_future(raw.recv())
        try:
            await asyncio.wait([receiving, lost], return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done() and pending():  # the end came after a message on its way
                await asyncio.wait([receiving], timeout=CLOSE_TIMEOUT)
        finally:
            if not receiving.done():
                receiving.cancel()
                await asyncio.gather(receiving, return_exceptions=True)
        if receiving.cancelled():
            return None
        return receiving.result()

    async def send(self, message: str | bytes) -> None:
        from sanic.exceptions import RequestCancelled, WebsocketClosed
        from websockets.exceptions import ConnectionClosed

        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"ws.send takes str or bytes, not {type(message).__name__} (send_json sends objects)")
        try:
            await self._raw.send(message)
        except (ConnectionClosed, WebsocketClosed, RequestCancelled, ConnectionError) as exc:
            raise WebSocketClosed(f"the socket is closed ({self.close_code})") from exc
        # sanic's send only suspends while the transport is paused: without this, a handler
        # pushing to a fast reader would hold the loop (no pings, no /ping, no SIGTERM).
        await asyncio.sleep(0)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with code (idempotent; a connection already gone is closed already)."""
        from sanic.exceptions import RequestCancelled, WebsocketClosed

        self._release(force=True)  # the peer's answer to the close must be read
        try:
            await self._raw.close(code, reason)
        except (RequestCancelled, WebsocketClosed, ConnectionError):
            pass

    @property
    def closed(self) -> bool:
        from websockets.protocol import State

        return self._raw.ws_proto.state in (State.CLOSING, State.CLOSED)

    def _close_frame(self) -> Any:
        """The close that ended the socket: the peer's if it closed first, else ours."""
        proto = self._raw.ws_proto
        if proto.close_rcvd is not None and (proto.close_sent is None or proto.close_rcvd_then_sent):
            return proto.close_rcvd
        return proto.close_sent

    @property
    def close_code(self) -> int | None:
        """The code the socket closed with (whichever side closed first); 1006 if it just ended;
        None while open."""
        frame = self._close_frame()
        if frame is not None:
            return int(frame.code)
        return 1006 if self.closed else None

    @property
    def close_reason(self) -> str:
        frame = self._close_frame()
        return str(frame.reason) if frame is not None else ""


_UNSENDABLE = {1005: 1000, 1006: 1011, 1015: 1011}  # codes no close frame may carry, and what to send


async def bridge(one: Connection, other: Connection) -> int | None:
    """Relay messages both ways until either side closes, then close the other side with the same
    code and reason (1005, "no code", as 1000; an abnormal end, 1006, as 1011). Each message is
    sent before the next is read, so a slow side holds the other back (nothing is buffered).
    Returns the code the first side closed with. Works on a handler's socket and on
    `endpoint(...).websocket(...)`'s alike: `await bridge(ws, upstream)`."""

    async def pump(source: Connection, target: Connection) -> Connection:
        try:
            async for message in source:
                await target.send(message)
        except WebSocketClosed:
            return target  # the target closed while we were sending to it
        return source

    forward = asyncio.ensure_future(pump(one, other))
    backward = asyncio.ensure_future(pump(other, one))
    try:
        done, _ = await asyncio.wait([forward, backward], return_when=asyncio.FIRST_COMPLETED)
        closer = done.pop().result()
    finally:
        forward.cancel()
        backward.cancel()
        # let the cancelled receive end first: aiohttp's close waits on a receive in progress
        await asyncio.gather(forward, backward, return_exceptions=True)
    peer = other if closer is one else one
    code = closer.close_code
    if not peer.closed:
        sent = _UNSENDABLE.get(code or 1006, code or 1006)
        await peer.close(sent, _reason(closer) if sent == code else "the other side closed abnormally")
    return code


def _reason(connection: Connection) -> str:
    return str(getattr(connection, "close_reason", "") or "")
