"""Run the worker: listen on $PORT, answer /ping on $PORT_HEALTH too when it differs.

SIGTERM (or SIGINT) drains: the worker stops accepting connections, /ping answers 503
`{"status": "draining"}` so no new traffic comes, and requests and streams in flight get up to
the endpoint's `timeout` to finish (Sanic's GRACEFUL_SHUTDOWN_TIMEOUT, 15 s by default, is set
from it). Further signals during the drain are ignored: only SIGKILL cuts it short.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from sanic.server.protocols.http_protocol import HttpProtocol

from flash_runtime.app import App, Facts, Lifecycle, RouteSpec, create_app

log = logging.getLogger("flash.worker")
_REASONS = {200: "OK", 204: "No Content", 503: "Service Unavailable", 404: "Not Found"}


def serve(
    name: str,
    routes: Sequence[RouteSpec],
    init: str | None = None,
    timeout: float = 330.0,
    manifest: Facts | None = None,
) -> None:
    """Entry point of a generated worker: configure logging, build the app, serve until SIGTERM."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    port = int(os.environ.get("PORT", "80"))
    health_port = int(os.environ.get("PORT_HEALTH", str(port)))
    host = os.environ.get("HOST", "0.0.0.0")
    try:
        app = create_app(_app_name(name), routes, init, timeout=timeout, manifest=manifest)
    except (ImportError, AttributeError, TypeError, SyntaxError) as exc:
        from flash_runtime.tracebacks import position, user_traceback

        log.error("cannot load the handlers: %s\n%s", position(exc), user_traceback(exc))
        raise SystemExit(3) from None
    if sys.argv[1:] == ["--openapi"]:  # `flash openapi`: the document, offline, from the build output
        print(json.dumps(app.ctx.openapi(), indent=2))
        return
    _drain_on_stop(app, timeout)
    # Bind here, not inside Sanic: a port that cannot be had is one clear line and exit 3, never a traceback.
    sock = _listen(host, port)
    if health_port != port:
        _serve_ping_on(app, _listen(host, health_port))
    log.info("serving %d route(s) on %s:%d (/ping on port %d)", len(routes), host, port, health_port)
    # Sanic's HTTP protocol (or the WebSocket routes' flow-controlled one), telling the app which set
    # holds its connections, for the drain.
    base = getattr(app.ctx, "protocol", None) or HttpProtocol
    protocol = type("FlashProtocol", (_TracksConnections, base), {"__slots__": ()})
    app.run(sock=sock, single_process=True, access_log=False, motd=False, protocol=protocol)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; exit 3 with the cause and the fix when it cannot be had."""
    try:
        sock = socket.create_server((host, port), reuse_port=False, backlog=1024)
    except OSError as exc:
        if exc.errno == errno.EACCES:
            why = (
                "permission denied: ports below 1024 need root (RunPod runs images as root) or "
                "CAP_NET_BIND_SERVICE; run as root, or set PORT to 1024 or above"
            )
        elif exc.errno == errno.EADDRINUSE:
            why = "the port is already in use: stop what holds it, or set PORT to a free port"
        else:
            why = exc.strerror or str(exc)
        log.error("cannot listen on %s:%d: %s", host, port, why)
        raise SystemExit(3) from None
    sock.set_inheritable(True)
    return sock


class _TracksConnections:
    """Mixed into the server's protocol: tells the app which set holds its connections (for the drain)."""

    __slots__ = ()  # sanic's protocols have slots

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        me: Any = self
        me.app.ctx.connections = me.connections


def _drain_on_stop(app: App, timeout: float) -> None:
    """Stopping lets requests in flight finish within `timeout`, with /ping answering 503 meanwhile."""
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = timeout
    lifecycle: Lifecycle = app.ctx.lifecycle

    @app.before_server_stop
    async def drain(app: App) -> None:
        # Sanic removed its signal handlers (a second SIGTERM would now kill the process at once, or
        # stop the loop the drain runs on): the supervisor, a terminal's Ctrl-C and a process group
        # signal may all send one. Ignore them; the drain is bounded by `timeout` anyway.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if lifecycle.state != "failed":
            lifecycle.state = "draining"
        log.info("draining: no new connections; requests in flight have up to %.0fs", timeout)
        app.ctx.closer = asyncio.get_running_loop().create_task(_close_when_idle(app))


async def _close_when_idle(app: App) -> None:
    """Sanic closes idle keep-alive connections once, when the drain starts; one that finishes its
    request later would stay open (and keep the worker) until its keep-alive runs out."""
    while True:
        for connection in list(getattr(app.ctx, "connections", ())):
            connection.close_if_idle()
        await asyncio.sleep(0.05)  # a poll, not a retry: a connection says nothing when it turns idle


def _app_name(name: str) -> str:
    # Sanic app names allow letters, digits, underscores and hyphens only.
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name) or "flash_worker"


def _serve_ping_on(app: App, sock: socket.socket) -> None:
    """A tiny HTTP/1.1 responder for /ping on the health port, sharing the app's lifecycle."""
    lifecycle: Lifecycle = app.ctx.lifecycle

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=10)
            while (await asyncio.wait_for(reader.readline(), timeout=10)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.split()
            status = lifecycle.ping_status() if len(parts) >= 2 and parts[1].split(b"?")[0] == b"/ping" else 404
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    @app.before_server_start
    async def start_health_server(app: App) -> None:
        app.ctx.health_server = await asyncio.start_server(answer, sock=sock)

    @app.after_server_stop  # not before: during the drain /ping answers 503 here
    async def stop_health_server(app: App) -> None:
        app.ctx.health_server.close()
