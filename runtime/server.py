"""Run the worker: listen on $PORT, answer /ping on $PORT_HEALTH too when it differs."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from flash_runtime.app import App, Lifecycle, RouteSpec, create_app

log = logging.getLogger("flash.worker")
_REASONS = {200: "OK", 204: "No Content", 503: "Service Unavailable", 404: "Not Found"}


def serve(
    name: str,
    routes: Sequence[RouteSpec],
    init: str | None = None,
    timeout: float = 330.0,
    manifest: Mapping[str, Any] | None = None,
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
        log.error("cannot load the handlers: %s: %s", type(exc).__name__, exc)
        raise SystemExit(3) from None
    if sys.argv[1:] == ["--openapi"]:  # `flash openapi`: the document, offline, from the build output
        print(json.dumps(app.ctx.openapi(), indent=2))
        return
    # Bind here, not inside Sanic: a port that cannot be had is one clear line and exit 3, never a traceback.
    sock = _listen(host, port)
    if health_port != port:
        _serve_ping_on(app, _listen(host, health_port))
    log.info("serving %d route(s) on %s:%d (/ping on port %d)", len(routes), host, port, health_port)
    app.run(sock=sock, single_process=True, access_log=False, motd=False)


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

    @app.before_server_stop
    async def stop_health_server(app: App) -> None:
        app.ctx.health_server.close()
