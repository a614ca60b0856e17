"""The worker's side of WebSocket routes (see websocket.py for what a handler sees): the Sanic
handler of a route, open-socket accounting and the stop, and flow-controlled reads."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from flash_runtime.websocket import (
    CLOSE_GRACE,
    CLOSE_TIMEOUT,
    MAX_MESSAGE_BYTES,
    PING_INTERVAL,
    PING_TIMEOUT,
    WebSocket,
    WebSocketClosed,
)

log = logging.getLogger("flash.worker")


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


def add_websocket_route(
    app: Any,
    name: str,
    path: str,
    ref: str,
    sanic_path: str,
    func: Callable[..., Any],
    lifecycle: Any,
    sockets: Sockets,
    error: Callable[..., Any],
    request_id: Callable[[Any], str],
    forwarded: Callable[[Any], dict[str, str]],
) -> tuple[str, str, Callable[..., Any], Any]:
    """Serve "WS path" on app (app.py's helpers passed in); returns what the OpenAPI document lists."""
    from sanic import Request

    from flash_runtime.binding import MISSING, bind, plan

    check_handler(ref, func)
    rest = without_socket(func)
    binding = plan(rest, "GET", [seg[1:-1] for seg in path.split("/") if seg.startswith("{")], Request)
    if not app.websocket_enabled:
        app.enable_websocket()
        app.ctx.protocol = flow_controlled()  # server.serve runs the app with it
        app.config.WEBSOCKET_MAX_SIZE = MAX_MESSAGE_BYTES
        app.config.WEBSOCKET_PING_INTERVAL = PING_INTERVAL
        app.config.WEBSOCKET_PING_TIMEOUT = PING_TIMEOUT

    def bind_args(binding: Any, path_args: dict[str, str], query: Any, request: Any) -> dict[str, Any]:
        return bind(binding, path_args, query, MISSING, request, None)

    handler = route(
        path,
        func,
        binding,
        sockets,
        lambda: str(lifecycle.state),
        error,
        bind_args,
        request_id,
        lambda request: functools.partial(forwarded, request),
    )
    app.add_route(handler, sanic_path, methods=["GET"], name=name)
    return ("WS", path, rest, binding)


def install_websockets(app: Any, sockets: Sockets) -> None:
    """The stop closes open sockets with 1001 (registered after sanic's own stop listener, so it
    runs before it); with a worker id (RUNPOD_POD_ID: RunPod sets it, the local target too) every
    HTTP answer carries X-Runpod-Worker-Id."""
    if app.websocket_enabled:

        async def close_sockets(app: Any) -> None:
            await sockets.stop()

        app.register_listener(close_sockets, "before_server_stop")
    worker_id = os.environ.get("RUNPOD_POD_ID")
    if worker_id:

        async def tell_worker_id(request: Any, response: Any) -> None:
            response.headers["X-Runpod-Worker-Id"] = worker_id

        app.register_middleware(tell_worker_id, "response")
