"""What the HTTP relay (relay.py) and the WebSocket relay (relaysocket.py) share: the upstream an
attempt goes to, the headers never passed on, request ids, and the relay's own answers."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from flash_runtime.backoff import NO_WORKER

__all__ = ["HOP_BY_HOP", "NOT_ANSWERED", "WORKER_ID", "Fixed", "Pick", "Upstream", "error", "failed", "not_allowed",
           "request_id"]  # fmt: skip

log = logging.getLogger("flash.relay")

SMALL_ANSWER = 64 * 1024  # answers up to this size (with a Content-Length) are relayed in one write
CONNECT = 5.0  # seconds to open a connection
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
     "trailer", "trailers", "upgrade", "transfer-encoding"}
)  # fmt: skip
NOT_SENT = HOP_BY_HOP | {"host", "content-length", "expect"}  # aiohttp writes its own
NOT_ANSWERED = HOP_BY_HOP | {"content-length"}
WORKER_ID = "X-Runpod-Worker-Id"


class Upstream(Protocol):
    """Where one attempt goes: a base URL, told afterwards whether the attempt reached it."""

    @property
    def url(self) -> str: ...

    def release(self, reached: bool) -> None: ...


@dataclass
class Fixed:
    """An upstream that is always the same URL (the mothership's endpoints)."""

    url: str

    def release(self, reached: bool) -> None:
        pass


Pick = Callable[[str], Awaitable["Upstream | web.StreamResponse"]]  # (request id) -> an upstream, or a final answer


def error(code: int, message: str, request_id: str, *, no_worker: bool = False, **extra: Any) -> web.Response:
    """An answer of the relay itself: JSON with the request id (and the mark a caller may retry)."""
    headers = {"X-Request-ID": request_id}
    if no_worker:
        headers[NO_WORKER] = "1"
    return web.json_response({"error": message, "request_id": request_id, **extra}, status=code, headers=headers)


def not_allowed(request: web.BaseRequest, allow: str = "GET, HEAD") -> web.Response:
    answer = error(405, f"{request.method} is not allowed on {request.path}", request_id(request))
    answer.headers["Allow"] = allow
    return answer


_ID_PREFIX = os.urandom(8).hex()  # per process: ids are unique across processes without a syscall each
_ids = itertools.count()


def request_id(request: web.BaseRequest) -> str:
    """The client's X-Request-ID, else a new one (32 hex digits)."""
    return request.headers.get("X-Request-ID") or f"{_ID_PREFIX}{next(_ids):016x}"


def named_by_connection(headers: Any) -> frozenset[str]:
    named = headers.get("Connection")
    return frozenset(t.strip().lower() for t in named.split(",")) if named else frozenset()


def failed(request: web.BaseRequest, status: int, message: str, rid: str, no_worker: bool = False) -> web.Response:
    """The relay's own failure: one log line, and the JSON answer."""
    log.warning("%s %s: %d %s [%s]", request.method, request.path, status, message, rid)
    return error(status, message, rid, no_worker=no_worker)
