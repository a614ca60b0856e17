"""A handler's result as a response: JSON (models and dataclasses dumped), a (value, status) pair,
bytes or Binary, or server-sent events from an async or sync generator."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, raw
from sanic.response import json as json_response

from flash_runtime.parts import Binary
from flash_runtime.shapes import to_json

log = logging.getLogger("flash.worker")
_PLAIN = frozenset({dict, str, int, float, bool, type(None)})  # a list may hold models


async def respond(request: Request, result: Any, request_id: Callable[[Request], str]) -> HTTPResponse | None:
    """Turn a handler's result into a response (CONTRACT section 5)."""
    if type(result) in _PLAIN:  # the common case first: nothing below can apply to it
        return json_response(result)
    if isinstance(result, HTTPResponse):
        return result
    if inspect.isasyncgen(result):
        stream = await request.respond(content_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            async for item in result:
                await stream.send(_sse_event(item))
        except Exception:  # headers are gone: the client learns of the failure from an error event
            rid = request_id(request)
            log.exception("handler failed mid-stream in %s %s [%s]", request.method, request.path, rid)
            await stream.send(_sse_event({"error": "internal error", "request_id": rid}, event="error"))
        await stream.eof()
        return None
    status = 200
    if _is_status_pair(result):
        result, status = result
    if isinstance(result, Binary):
        return raw(result.body, status=result.status, content_type=result.content_type)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return raw(bytes(result), status=status, content_type="application/octet-stream")
    dump_json = getattr(result, "model_dump_json", None)
    if callable(dump_json) and not isinstance(result, type):  # a pydantic model: serialised in Rust
        return raw(dump_json().encode(), status=status, content_type="application/json")
    try:
        return json_response(to_json(result), status=status)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"handler result is not JSON-serialisable: {exc}") from exc


async def in_pool(generator: Iterator[Any], pool: Executor) -> AsyncIterator[Any]:
    """A sync generator's items, each produced in the handler pool, as an async stream."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # the request's headers reach the generator's calls too
    done = object()
    step = functools.partial(context.run, next, generator, done)
    while (item := await loop.run_in_executor(pool, step)) is not done:
        yield item


def _is_status_pair(result: Any) -> bool:
    """(value, status): a 2-tuple whose second item is an HTTP status; `(3, 4)` or `(x, True)` is data."""
    if not (isinstance(result, tuple) and len(result) == 2):
        return False
    status = result[1]
    return isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599


def _sse_event(item: Any, event: str | None = None) -> str:
    text = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return head + "".join(f"data: {line}\n" for line in text.split("\n")) + "\n"
