"""The worker's Sanic app: the route table, the /ping lifecycle, results and errors as JSON."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.handlers import ErrorHandler
from sanic.response import HTTPResponse, empty
from sanic.response import json as json_response

from flash_runtime.answers import in_pool, respond
from flash_runtime.batching import Batcher, BatchFailed, BatchOptions
from flash_runtime.binding import MISSING, BindError, Binding, bind, plan, plan_batch
from flash_runtime.calls import close as close_calls_session
from flash_runtime.calls import current_headers
from flash_runtime.openapi import Route, document
from flash_runtime.parts import Upload

MAX_BODY_BYTES = 30 * 1024 * 1024  # RunPod's LB limit for a request body
# Sync handlers run here, off the event loop, so /ping answers while they block.
SYNC_POOL = ThreadPoolExecutor(max_workers=int(os.environ.get("FLASH_SYNC_THREADS", "8")), thread_name_prefix="handler")
log = logging.getLogger("flash.worker")

try:  # Sanic installs ujson on CPython/Linux; it parses bodies about twice as fast
    from ujson import loads as fast_loads
except ImportError:  # pragma: no cover - other platforms
    from json import loads as fast_loads

App = Sanic[Any, Any]  # the config and ctx types are Sanic's defaults
# (METHOD, "/path/{param}", "module:function"), then the batch options of a batched route
RouteSpec = tuple[str, str, str] | tuple[str, str, str, Mapping[str, int] | None]
batch_size: contextvars.ContextVar[int] = contextvars.ContextVar("flash_batch_size", default=0)


class Lifecycle:
    """What /ping reports: initializing (204) until the init hook returns, then ready (200) or failed (503)."""

    def __init__(self) -> None:
        self.state = "initializing"

    def ping_status(self) -> int:
        return {"initializing": 204, "ready": 200}.get(self.state, 503)


class JsonErrors(ErrorHandler):
    """Every error answers JSON with an `error` field; tracebacks stay in the log."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, SanicException):
            return _error(exception.status_code, _describe(exception, request), request)
        request_id = _request_id(request)
        log.error("unhandled error in %s %s [%s]", request.method, request.path, request_id, exc_info=exception)
        return json_response({"error": "internal error", "request_id": request_id}, status=500)


def load_callable(ref: str) -> Callable[..., Any]:
    """Import "module:function"."""
    module_name, _, attr = ref.partition(":")
    func = getattr(importlib.import_module(module_name), attr)
    if not callable(func):
        raise TypeError(f"{ref} is not callable")
    return func  # type: ignore[no-any-return]


def create_app(
    name: str,
    routes: Sequence[RouteSpec],
    init: str | None = None,
    *,
    timeout: float = 330.0,
    manifest: Mapping[str, Any] | None = None,
) -> App:
    """A Sanic app serving routes and /ping; init runs in the background once serving starts.

    `timeout` bounds receiving a request and producing its response (Sanic's defaults, 60 s,
    would answer 503 to every longer request whatever the endpoint's timeout says).
    """
    app: App = Sanic(name, error_handler=JsonErrors(), configure_logging=False)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.config.REQUEST_TIMEOUT = timeout
    app.config.RESPONSE_TIMEOUT = timeout
    app.config.FALLBACK_ERROR_FORMAT = "json"
    lifecycle = Lifecycle()
    app.ctx.lifecycle = lifecycle

    async def ping(request: Request) -> HTTPResponse:
        status = lifecycle.ping_status()
        return empty(status=204) if status == 204 else json_response({"status": lifecycle.state}, status=status)

    app.add_route(ping, "/ping", methods=["GET", "HEAD"], name="flash_ping")
    described = _manifest(manifest or {}, routes)

    async def manifest_route(request: Request) -> HTTPResponse:
        return json_response(described)

    app.add_route(manifest_route, "/manifest", methods=["GET", "HEAD"], name="flash_manifest")
    served: list[Route] = []
    for index, (method, path, ref, *options) in enumerate(routes):
        methods = [method, "HEAD"] if method == "GET" else [method]  # HEAD: GET's answer, no body (Sanic drops it)
        handler, func, binding = _route_handler(method, path, ref, lifecycle, options[0] if options else None)
        served.append((method, path, func, binding))
        app.add_route(handler, _sanic_path(path), methods=methods, name=f"route_{index}")
    title = " ".join(str(v) for v in (described["app"], described["endpoint"]) if v) or name
    app.ctx.openapi = functools.partial(document, title, described["build"] or "0", served)  # made when asked

    async def openapi_route(request: Request) -> HTTPResponse:
        if not hasattr(app.ctx, "openapi_document"):
            app.ctx.openapi_document = app.ctx.openapi()
        return json_response(app.ctx.openapi_document)

    app.add_route(openapi_route, "/openapi.json", methods=["GET", "HEAD"], name="flash_openapi")

    @app.after_server_start
    async def start_init(app: App) -> None:
        app.add_task(_run_init(init, lifecycle))

    @app.after_server_stop
    async def close_calls(app: App) -> None:
        await close_calls_session()

    return app


def _manifest(facts: Mapping[str, Any], routes: Sequence[RouteSpec]) -> dict[str, Any]:
    """GET /manifest: who this worker is, which build it runs, what it serves, whom it calls (by URL)."""
    known = json.loads(os.environ.get("FLASH_ENDPOINTS") or "{}")
    return {
        "app": facts.get("app"),
        "environment": facts.get("environment"),
        "endpoint": facts.get("endpoint"),
        "build": os.environ.get("FLASH_BUILD"),  # the hash in the image tag, set by the deploy
        "routes": [f"{route[0]} {route[1]}" for route in routes],
        "calls": {key: known.get(key) for key in facts.get("calls", ())},
    }


async def _run_init(init: str | None, lifecycle: Lifecycle) -> None:
    if init is None:
        lifecycle.state = "ready"
        return
    started = time.perf_counter()
    try:
        hook = load_callable(init)
        if inspect.iscoroutinefunction(hook):
            await hook()
        else:  # in a thread, so /ping keeps answering 204 meanwhile
            await asyncio.to_thread(hook)
    except Exception:
        lifecycle.state = "failed"
        log.exception("init hook %s failed; /ping answers 503", init)
        return
    lifecycle.state = "ready"
    log.info("init hook %s finished in %.2fs; ready", init, time.perf_counter() - started)


def _sanic_path(path: str) -> str:
    return path.replace("{", "<").replace("}", ">")


def _route_handler(
    method: str, path: str, ref: str, lifecycle: Lifecycle, batch: Mapping[str, int] | None = None
) -> tuple[Callable[..., Any], Callable[..., Any], Binding]:
    func = load_callable(ref)
    path_params = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
    if batch:
        binding = plan_batch(func)
        call = _batched(f"{method} {path}", func, binding, BatchOptions(**batch))
    else:
        binding, call = plan(func, method, path_params, Request), func
    is_async = batch is not None or inspect.iscoroutinefunction(func)

    async def handle(request: Request, **path_args: str) -> HTTPResponse | None:
        if not batch and not log.isEnabledFor(logging.INFO):  # the log line costs ~10% of a tiny request
            return await _dispatch(request, call, binding, is_async, lifecycle, path_args)
        started = time.perf_counter()
        batch_size.set(0)  # a keep-alive connection's requests may share one task's context
        response = await _dispatch(request, call, binding, is_async, lifecycle, path_args)
        size = batch_size.get()
        if response is not None and size:
            response.headers["X-Flash-Batch-Size"] = str(size)
        if log.isEnabledFor(logging.INFO):
            status = response.status if response is not None else 200
            ms = round((time.perf_counter() - started) * 1000, 2)
            line = {"method": method, "path": request.path, "status": status, "ms": ms}
            line |= {"batch": size} if size else {}
            log.info(json.dumps(line | {"request_id": _request_id(request)}))
        return response

    return handle, func, binding


def _batched(name: str, func: Callable[..., Any], binding: Binding, options: BatchOptions) -> Callable[..., Any]:
    """The route's call: this request's item joins a batch; its own result comes back."""
    batcher = Batcher(name, func, options, is_async=inspect.iscoroutinefunction(func), pool=SYNC_POOL)
    item = binding.params[0].name

    async def call(**kwargs: Any) -> Any:
        result, size = await batcher.submit(kwargs[item])
        batch_size.set(size)  # the request's own task: handle() reads it for the header and log
        return result

    return call


async def _dispatch(
    request: Request,
    func: Callable[..., Any],
    binding: Binding,
    is_async: bool,
    lifecycle: Lifecycle,
    path_args: dict[str, str],
) -> HTTPResponse | None:
    if lifecycle.state != "ready":
        return _error(503, f"worker is {lifecycle.state}", request)
    body: Any = MISSING
    form = _form(request) if binding.multipart else None
    if binding.wants_body and form is None and request.body:
        try:
            body = fast_loads(request.body)
        except ValueError:
            try:  # ujson refuses a few valid documents (e.g. integers past 64 bits): ask the standard parser
                body = json.loads(request.body)
            except ValueError:
                return _error(400, _json_problem(request.body), request)
    try:
        kwargs = bind(binding, path_args, request.args, body, request, form)
    except BindError as exc:
        if exc.status == 400:  # a model's body that is not JSON: the same answer as any bad JSON
            return _error(400, _json_problem(request.body), request)
        return _error(exc.status, str(exc), request, exc.problems)
    # Calls this handler makes to other endpoints carry the request's id and trace context.
    current_headers.set(functools.partial(_forwarded, request))
    if is_async:
        try:
            result = await func(**kwargs)
        except BatchFailed as exc:  # logged once for the whole batch, with its size
            return _error(500, f"internal error: {exc}", request)
    elif inspect.isasyncgenfunction(func):
        result = func(**kwargs)
    elif inspect.isgeneratorfunction(func):  # each step in the pool: a slow item never blocks the loop
        result = in_pool(func(**kwargs), SYNC_POOL)
    else:  # the thread runs in a copy of this context, so the headers reach sync handlers too
        call = functools.partial(contextvars.copy_context().run, func, **kwargs)
        result = await asyncio.get_running_loop().run_in_executor(SYNC_POOL, call)
    return await respond(request, result, _request_id)


def _json_problem(raw: bytes) -> str:
    """Why raw is not JSON, with the position the standard parser reports."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"request body is not valid JSON (line {exc.lineno}, column {exc.colno})"
    except ValueError:
        pass
    return "request body is not valid JSON (not UTF-8)"


def _forwarded(request: Request) -> dict[str, str]:
    """What a call made while handling this request forwards: its id and trace context."""
    trace = request.headers.get("traceparent")
    return {"X-Request-ID": _request_id(request), **({"traceparent": trace} if trace else {})}


def _request_id(request: Request) -> str:
    if not hasattr(request.ctx, "request_id"):
        request.ctx.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    return str(request.ctx.request_id)


def _error(status: int, message: str, request: Request, problems: list[dict[str, str]] | None = None) -> HTTPResponse:
    extra = {"problems": problems} if problems else {}
    return json_response({"error": message, **extra, "request_id": _request_id(request)}, status=status)


def _form(request: Request) -> tuple[dict[str, list[str]], dict[str, list[Upload]]] | None:
    """A multipart/form-data request's fields and file parts (Sanic parses it); None for any other body."""
    if not request.content_type.startswith("multipart/form-data"):
        return None
    fields = {name: list(values) for name, values in (request.form or {}).items()}
    files = {
        name: [Upload(name, part.name or None, part.type or "application/octet-stream", part.body) for part in parts]
        for name, parts in (request.files or {}).items()
    }
    return fields, files


def _describe(exception: SanicException, request: Request) -> str:
    status = exception.status_code
    if status == 404:
        return f"no route for {request.method} {request.path}"
    if status == 405:
        return f"method {request.method} not allowed for {request.path}"
    if status == 413:
        return "request body is larger than 30 MB"
    return str(exception) or "request failed"
