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
The client side (`endpoint(name).websocket(path)`) is `ClientWebSocket`, the same five calls.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flash_runtime.calls import CallError

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # one message, either way; larger ones close with 1009
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
CLOSE_GRACE = 5.0  # seconds a handler has to return once its socket closed for a stop
CLOSE_TIMEOUT = 5.0  # seconds the closing handshake may take before the connection is dropped
OPEN_TIMEOUT = 60.0  # one attempt at opening a socket (RunPod: ~60 s against a scaled-to-zero endpoint)
log = logging.getLogger("flash.worker")


class WebSocketClosed(ConnectionError):
    """Sending on a socket the other side closed (or that closed for a stop)."""


class _Connection:
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


class WebSocket(_Connection):
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


def flow_controlled() -> type:
    """Sanic's WebSocket protocol, with reads held while messages wait for the handler.

    Sanic pauses the transport only once a received message sits in its one-message chamber, and
    resumes it whenever the handler fetches one; every read in between spawns a task that waits
    its turn, so a client sending faster than the handler reads filled the worker's memory (100 MB
    sent to a slow handler: +90 MB RSS). Here the protocol counts the complete messages parsed
    and not yet handed to the handler, and holds the transport while any wait beyond the one the
    handler is about to take (sanic's own pausing is off); `WebSocket.receive` (the handler asking
    for more) releases it once at most that one waits, and `close` always does. Partial messages
    never hold it, so a message split across reads always completes."""
    from sanic.server.protocols.websocket_protocol import WebSocketProtocol
    from websockets.frames import Opcode

    data = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)

    class FlowControlled(WebSocketProtocol):
        __slots__ = ("held", "waiting")  # sanic's protocols have slots

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.held, self.waiting = False, 0

        def data_received(self, raw: bytes) -> None:
            ws: Any = self.websocket
            if ws is None:
                super().data_received(raw)  # type: ignore[no-untyped-call]
                return
            parser: Any = ws.ws_proto
            if not hasattr(parser, "flash_counted"):  # count the complete data messages it parses
                parse = parser.events_received

                def counted() -> list[Any]:
                    events: list[Any] = parse()
                    self.waiting += sum(1 for e in events if getattr(e, "fin", False) and e.opcode in data)
                    return events

                parser.events_received, parser.flash_counted = counted, True
                ws.can_pause = False  # sanic's own pause and resume would undo this one's
            super().data_received(raw)  # type: ignore[no-untyped-call]
            if self.waiting > (1 if ws.assembler.get_in_progress else 0) and self.transport is not None:
                self.transport.pause_reading()
                self.held = True

        def consumed(self) -> None:
            self.waiting = max(0, self.waiting - 1)

        def release(self, force: bool = False) -> None:
            """Read on once at most the message the handler is taking now waits (or to close)."""
            if (force or self.waiting <= 1) and self.held and self.transport is not None:
                self.held = False
                if not self.transport.is_closing():
                    self.transport.resume_reading()

    return FlowControlled


class Sockets:
    """This worker's open sockets: what /ping counts, and what a stop closes with 1001.

    A proxy in front (the local balancer, the mothership) sees the same number on /ping as
    `websockets`, and may keep a worker holding any from being stopped."""

    def __init__(self) -> None:
        self.open: dict[WebSocket, asyncio.Task[Any]] = {}
        self.stopping = False

    @property
    def count(self) -> int:
        return len(self.open)

    async def stop(self, grace: float = CLOSE_GRACE) -> None:
        """No new sockets; every open one closed with 1001; handlers cancelled after `grace` s."""
        self.stopping = True
        if not self.open:
            return
        log.info("closing %d open WebSocket(s) with 1001 (the worker is stopping)", len(self.open))
        tasks = list(self.open.values())  # taken first: a socket leaves `open` as it closes
        await asyncio.gather(*(ws.close(1001, "the worker is stopping") for ws in list(self.open)))
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)


def route(
    path: str,
    func: Callable[..., Any],
    binding: Any,
    sockets: Sockets,
    ready: Callable[[], str],
    error: Callable[..., Any],
    bind_args: Callable[..., dict[str, Any]],
    request_id: Callable[[Any], str],
    forwarded: Callable[[Any], Any],
) -> Callable[..., Any]:
    """The Sanic handler of one WebSocket route (app.py passes its helpers in, so this module
    imports nothing of it): checks before the upgrade, then the handler on the open socket."""
    from flash_runtime.binding import BindError
    from flash_runtime.calls import current_headers

    def refuse(request: Any, status: int, message: str, problems: Any = None) -> Any:
        """An answer instead of the upgrade (a JSON error; no handler ran), logged like a request."""
        if log.isEnabledFor(logging.INFO):
            line = {"method": "WS", "path": request.path, "status": status, "request_id": request_id(request)}
            log.info(json.dumps(line))
        return error(status, message, request, problems)

    async def handle(request: Any, **path_args: str) -> Any:
        state = ready()
        if state != "ready":
            return refuse(request, 503, f"worker is {state}")
        if sockets.stopping:
            return refuse(request, 503, "worker is stopping")
        if request.headers.get("upgrade", "").lower() != "websocket":
            return refuse(request, 426, f"{path} is a WebSocket route: connect with Upgrade: websocket")
        try:
            kwargs = bind_args(binding, path_args, request.args, request)
        except BindError as exc:
            return refuse(request, exc.status, str(exc), exc.problems)
        rid = request_id(request)
        raw = await request.transport.get_protocol().websocket_handshake(request, None)
        ws = WebSocket(raw, rid, request.path)
        current_headers.set(forwarded(request))  # calls the handler makes carry this socket's id
        started = time.perf_counter()
        task = asyncio.ensure_future(func(ws, **kwargs))
        sockets.open[ws] = task
        try:
            await _run(ws, task, request)
        except asyncio.CancelledError:
            if not ws.closed:
                task.cancel()
                raise
            # Sanic cancels the request when the connection is lost: the peer left, which is no
            # error of ours. The handler (shielded) sees the close and gets CLOSE_GRACE s to end,
            # e.g. to pass the close code on to a socket it bridges to.
            _, late = await asyncio.wait([task], timeout=CLOSE_GRACE)
            for straggler in late:
                straggler.cancel()
        finally:
            sockets.open.pop(ws, None)
            if log.isEnabledFor(logging.INFO):
                ms = round((time.perf_counter() - started) * 1000, 2)
                line = {"method": "WS", "path": request.path, "status": 101, "close": ws.close_code, "ms": ms}
                log.info(json.dumps(line | {"request_id": rid}))
        return None

    handle.is_websocket = True  # type: ignore[attr-defined]  # sanic: this handler answers by upgrading
    return handle


async def _run(ws: WebSocket, task: asyncio.Task[Any], request: Any) -> None:
    code, reason = 1000, ""
    try:
        await asyncio.shield(task)  # a lost connection cancels the request, not the handler (above)
    except WebSocketClosed:
        pass  # the peer left while the handler was sending: nothing went wrong here
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # our own request task was cancelled: let it end
        code, reason = 1001, "the worker is stopping"
    except Exception:
        log.exception("unhandled error in WS %s [%s]", request.path, ws.request_id)
        code, reason = 1011, "internal error"
    if not ws.closed:
        await ws.close(code, reason)
    # Sanic drops the connection as soon as this request ends: wait for the peer's answer to the
    # close first, or it would see 1006 (abnormal closure) instead of our code.
    await ws._raw.wait_for_connection_lost(timeout=CLOSE_TIMEOUT)


def check_handler(ref: str, func: Callable[..., Any]) -> None:
    """A WebSocket handler is `async def f(ws, ...)`: refused at load (exit 3) otherwise."""
    if not inspect.iscoroutinefunction(func):
        raise TypeError(f"WebSocket handler {ref} must be `async def {ref.partition(':')[2]}(ws, ...)`")
    if not inspect.signature(func).parameters:
        raise TypeError(f"WebSocket handler {ref} takes no parameter: its first one receives the socket")


def without_socket(func: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in with func's signature minus its first parameter (the socket), for binding the rest."""
    signature = inspect.signature(func)
    rest = list(signature.parameters.values())[1:]

    def stand_in() -> None:  # never called: binding reads the signature and func's globals only
        raise NotImplementedError

    stand_in.__signature__ = signature.replace(parameters=rest)  # type: ignore[attr-defined]
    stand_in.__wrapped__ = func  # type: ignore[attr-defined]
    stand_in.__name__ = func.__name__
    stand_in.__doc__ = func.__doc__
    return stand_in


class ClientWebSocket(_Connection):
    """A socket opened to another endpoint (`endpoint(name).websocket(path)`), on aiohttp."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw  # aiohttp's ClientWebSocketResponse
        headers = raw._response.headers if getattr(raw, "_response", None) is not None else {}
        self.worker_id: str | None = headers.get("X-Runpod-Worker-Id")  # pin later calls with it
        self.close_reason = ""

    async def receive(self) -> str | bytes | None:
        import aiohttp

        message = await self._raw.receive()
        if message.type is aiohttp.WSMsgType.TEXT:
            return str(message.data)
        if message.type is aiohttp.WSMsgType.BINARY:
            return bytes(message.data)
        if message.type is aiohttp.WSMsgType.CLOSE:
            self.close_reason = str(message.extra or "")
        return None  # CLOSE, CLOSING, CLOSED or ERROR: the socket is over

    async def send(self, message: str | bytes) -> None:
        if self._raw.closed:
            raise WebSocketClosed(f"the socket is closed ({self.close_code})")
        try:
            if isinstance(message, str):
                await self._raw.send_str(message)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                await self._raw.send_bytes(bytes(message))
            else:
                raise TypeError(f"ws.send takes str or bytes, not {type(message).__name__} (send_json sends objects)")
        except ConnectionError as exc:
            raise WebSocketClosed(f"the socket is closed ({self.close_code})") from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._raw.close(code=code, message=reason.encode())

    @property
    def closed(self) -> bool:
        return bool(self._raw.closed)

    @property
    def close_code(self) -> int | None:
        code = self._raw.close_code
        return int(code) if code is not None else None

    async def __aenter__(self) -> ClientWebSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self._raw.closed:
            await self.close(1000)


_UNSENDABLE = {1005: 1000, 1006: 1011, 1015: 1011}  # codes no close frame may carry, and what to send


async def bridge(one: _Connection, other: _Connection) -> int | None:
    """Relay messages both ways until either side closes, then close the other side with the same
    code and reason (1005, "no code", as 1000; an abnormal end, 1006, as 1011). Each message is
    sent before the next is read, so a slow side holds the other back (nothing is buffered).
    Returns the code the first side closed with. Works on a handler's socket and on
    `endpoint(...).websocket(...)`'s alike: `await bridge(ws, upstream)`."""

    async def pump(source: _Connection, target: _Connection) -> _Connection:
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


def _reason(connection: _Connection) -> str:
    return str(getattr(connection, "close_reason", "") or "")


class Opening:
    """`endpoint(...).websocket(path)`: awaited, the open socket; or `async with` it, closed after."""

    def __init__(self, open_socket: Callable[[], Any]) -> None:
        self._open, self._socket = open_socket, None

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> ClientWebSocket:
        self._socket = await self._open()
        return self._socket  # type: ignore[return-value]

    async def __aexit__(self, *exc: object) -> None:
        if self._socket is not None:
            await self._socket.__aexit__(*exc)


async def connect(
    session: Any,
    url: str,
    headers: Mapping[str, str],
    *,
    params: Mapping[str, Any] | None,
    policy: Any,
    describe: Callable[[int | None, Any], CallError],
    open_timeout: float = OPEN_TIMEOUT,
    notice: Callable[[int | None], None] | None = None,
) -> ClientWebSocket:
    """Open a socket, riding out a cold start with the calls' retry policy (connection refused,
    502/503/504 before the upgrade); a socket that may have reached a handler is never opened twice."""
    import random

    import aiohttp

    from flash_runtime.calls import with_retries

    failures = 0

    async def attempt() -> tuple[int | None, Any]:
        nonlocal failures
        try:
            raw = await asyncio.wait_for(
                session.ws_connect(
                    url, headers=dict(headers), params=params, max_msg_size=MAX_MESSAGE_BYTES, heartbeat=PING_INTERVAL
                ),
                open_timeout,
            )
        except aiohttp.WSServerHandshakeError as exc:
            status: int | None = exc.status  # answered instead of upgrading: no handler ran
        except aiohttp.ClientConnectorError:
            status = None  # never reached the callee
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise describe(None, f"{type(exc).__name__}") from exc
        else:
            return 200, ClientWebSocket(raw)  # upgraded (101): with_retries takes any 2xx as done
        if notice is not None and not failures:
            notice(status)
        failures += 1
        return status, None

    result = await with_retries(
        attempt,
        policy=policy,
        clock=time.monotonic,
        sleep=asyncio.sleep,
        rng=random.Random(),
        describe=describe,
    )
    return result  # type: ignore[no-any-return]
