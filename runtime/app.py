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
from typing import Any, TypedDict

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
from flash_runtime.jsoncodec import BadJson, loads
from flash_runtime.openapi import Route, document
from flash_runtime.parts import FormError, read_form
from flash_runtime.wsserver import Sockets, add_websocket_route, install_websockets

MAX_BODY_BYTES = 30 * 1024 * 1024  # RunPod's LB limit for a request body
# Sync handlers run here, off the event loop, so /ping answers while they block.
SYNC_POOL = ThreadPoolExecutor(max_workers=int(os.environ.get("FLASH_SYNC_THREADS", "8")), thread_name_prefix="handler")
log = logging.getLogger("flash.worker")

App = Sanic[Any, Any]  # the config and ctx types are Sanic's defaults


class RouteFlags(TypedDict, total=False):
    """A route's options in the generated worker's ROUTES."""

    body_keys: bool  # parameters bind from the JSON body's keys


class Facts(TypedDict, total=False):
    """Who the worker is, as the generated worker's MANIFEST says (templates/flash_worker.py.j2)."""

    app: str
    environment: str | None
    endpoint: str  # its key in flash.toml
    calls: list[str]  # the keys of the endpoints it calls


# (METHOD, "/path/{param}", "module:function"), then the batch options of a batched route (or None),
# then the route's options
RouteSpec = (
    tuple[str, str, str]
    | tuple[str, str, str, Mapping[str, int] | None]
    | tuple[str, str, str, Mapping[str, int] | None, RouteFlags]
)
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
        from flash_runtime.tracebacks import user_traceback  # the user's frames, at the user's paths

        log.error(
            "unhandled error in %s %s [%s]\n%s", request.method, request.path, request_id, user_traceback(exception)
        )
        return json_response({"error": "internal error", "request_id": request_id}, status=500)


def load_callable(ref: str) -> Callable[..., Any]:
    """Import "module:function"."""
    module_name, _, attr = ref.partition(":")
    module = importlib.import_module(module_name)
    try:
        func = getattr(module, attr)
    except AttributeError:
        # The worker loads its libraries (sanic, ujson, ...) before the source folder (its working
        # directory) goes on sys.path: an app module of the same name is never the one imported.
        mine = os.path.join(os.getcwd(), *module_name.split("."))
        found = getattr(module, "__file__", None) or "built in"
        if (os.path.isfile(mine + ".py") or os.path.isdir(mine)) and not found.startswith(os.getcwd() + os.sep):
            raise AttributeError(
                f"module {module_name!r} is {found}, a library the worker loads, not the app's "
                f"{module_name.replace('.', '/')}: rename the app's module"
            ) from None
        raise
    if not callable(func):
        raise TypeError(f"{ref} is not callable")
    return func  # type: ignore[no-any-return]


def create_app(
    name: str,
    routes: Sequence[RouteSpec],
    init: str | None = None,
    *,
    timeout: float = 330.0,
    manifest: Facts | None = None,
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

    sockets = app.ctx.websockets = Sockets()  # open WebSockets: in-flight work /ping reports

    async def ping(request: Request) -> HTTPResponse:
        status = lifecycle.ping_status()
        if status == 204:
            return empty(status=204)
        if status == 200:  # what a proxy in front counts (and never stops a worker holding any)
            return json_response({"status": lifecycle.state, "websockets": sockets.count})
        return json_response({"status": lifecycle.state}, status=status)

    app.add_route(ping, "/ping", methods=["GET", "HEAD"], name="flash_ping")
    described = _manifest(manifest or {}, routes)

    async def manifest_route(request: Request) -> HTTPResponse:
        return json_response(described)

    app.add_route(manifest_route, "/manifest", methods=["GET", "HEAD"], name="flash_manifest")
    served: list[Route] = []
    for index, route in enumerate(routes):
        method, path, ref = route[0], route[1], route[2]
        if method == "WS":  # flash_runtime.wsserver
            ws_parts = (_sanic_path(path), load_callable(ref), lifecycle, sockets, _error, _request_id, _forwarded)
            served.append(add_websocket_route(app, f"route_{index}", path, ref, *ws_parts))
            continue
        methods = [method, "HEAD"] if method == "GET" else [method]  # HEAD: GET's answer, no body (Sanic drops it)
        batch = route[3] if len(route) > 3 else None
        flags = route[4] if len(route) > 4 else None
        handler, func, binding = _route_handler(method, path, ref, lifecycle, batch, flags)
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

    install_websockets(app, sockets)  # the stop closes open sockets; X-Runpod-Worker-Id on answers
    return app


def _manifest(facts: Facts, routes: Sequence[RouteSpec]) -> dict[str, Any]:
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
        else:  # in a daemon thread, so /ping keeps answering 204 meanwhile and SIGTERM is not held up
            from flash_runtime.threads import in_daemon_thread

            await in_daemon_thread(hook)
    except Exception as exc:
        from flash_runtime.tracebacks import user_traceback  # the user's frames, at the user's paths

        lifecycle.state = "failed"
        log.error("init hook %s failed; /ping answers 503\n%s", init, user_traceback(exc))
        return
    lifecycle.state = "ready"
    log.info("init hook %s finished in %.2fs; ready", init, time.perf_counter() - started)


def _sanic_path(path: str) -> str:
    return path.replace("{", "<").replace("}", ">")


def _route_handler(
    method: str,
    path: str,
    ref: str,
    lifecycle: Lifecycle,
    batch: Mapping[str, int] | None = None,
    flags: RouteFlags | None = None,
) -> tuple[Callable[..., Any], Callable[..., Any], Binding]:
    func = load_callable(ref)
    path_params = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
    if batch:
        binding = plan_batch(func)
        call = _batched(f"{method} {path}", func, binding, BatchOptions(**batch))
    else:
        body_keys = bool(flags and flags.get("body_keys"))
        binding, call = plan(func, method, path_params, Request, body_keys=body_keys), func
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
    form = None
    if binding.multipart and request.content_type.startswith("multipart/form-data"):
        try:
            form = read_form(request.content_type, request.body)
        except FormError as exc:
            return _error(400, str(exc), request)
    elif binding.wants_body and request.body:
        try:
            body = loads(request.body)
        except BadJson as exc:
            return _error(400, str(exc), request)
    try:  # blank query values (`?q=`) are empty strings, not missing arguments
        kwargs = bind(binding, path_args, request.get_args(keep_blank_values=True), body, request, form)
    except BindError as exc:
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


def _describe(exception: SanicException, request: Request) -> str:
    status = exception.status_code
    if status == 404:
        return f"no route for {request.method} {request.path}"
    if status == 405:
        return f"method {request.method} not allowed for {request.path}"
    if status == 413:
        return "request body is larger than 30 MB"
    return str(exception) or "request failed"
