"""Run the worker: listen on $PORT, answer /ping on $PORT_HEALTH too when it differs."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from runtime.app import App, Lifecycle, RouteSpec, create_app

log = logging.getLogger("flash.worker")
_REASONS = {200: "OK", 204: "No Content", 503: "Service Unavailable", 404: "Not Found"}


def serve(name: str, routes: Sequence[RouteSpec], init: str | None = None, timeout: float = 330.0) -> None:
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
        app = create_app(_app_name(name), routes, init, timeout=timeout)
    except (ImportError, AttributeError, TypeError) as exc:
        log.error("cannot load the handlers: %s: %s", type(exc).__name__, exc)
        raise SystemExit(3) from None
    if health_port != port:
        _serve_ping_on(app, host, health_port)
    log.info("serving %d route(s) on %s:%d (/ping on port %d)", len(routes), host, port, health_port)
    app.run(host=host, port=port, single_process=True, access_log=False, motd=False)


def _app_name(name: str) -> str:
    # Sanic app names allow letters, digits, underscores and hyphens only.
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name) or "flash_worker"


def _serve_ping_on(app: App, host: str, port: int) -> None:
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
        app.ctx.health_server = await asyncio.start_server(answer, host, port)

    @app.before_server_stop
    async def stop_health_server(app: App) -> None:
        app.ctx.health_server.close()
