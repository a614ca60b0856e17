"""The in-worker server copied into every image: serves an endpoint's routes and /ping, and lets
handlers call the app's other endpoints (`from flash_runtime import endpoint, CallError`).

The names below load on first use (PEP 562): the CLI imports flash_runtime.backoff, the one
backoff, without loading Sanic and aiohttp (about 200 ms) through this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flash_runtime.lazy import exports

if TYPE_CHECKING:  # the same names as _WHERE (tests/pipeline/test_lazy_exports.py checks)
    from flash_runtime.calls import CallError as CallError
    from flash_runtime.calls import endpoint as endpoint
    from flash_runtime.parts import Binary as Binary
    from flash_runtime.parts import Upload as Upload
    from flash_runtime.websocket import WebSocket as WebSocket
    from flash_runtime.websocket import WebSocketClosed as WebSocketClosed

_WHERE = {
    "Binary": "parts",
    "CallError": "calls",
    "Upload": "parts",
    "WebSocket": "websocket",
    "WebSocketClosed": "websocket",
    "endpoint": "calls",
}
__all__ = sorted(_WHERE)


__getattr__ = exports(__name__, _WHERE, globals())
