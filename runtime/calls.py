"""Calling the app's other endpoints from a handler: `await endpoint("inference").post("/predict", json=x)`.

Only endpoints listed in the caller's `calls` are known (their URLs arrive as FLASH_ENDPOINTS, the
call key as FLASH_CALL_KEY). Each call carries the key, the current X-Request-ID and traceparent.
It rides out cold starts with the relay's retry rules (runtime/backoff.py, runtime/relay.py): a
connection refused before the request was written, RunPod's "no workers available" and the local
balancer's own marked "no worker" answer are retried with backoff and jitter within a total
deadline (300 s by default, under RunPod's 5.5-minute processing limit). Nothing is retried once
the callee may have handled the request: a dropped connection, a read timeout, any status the app
answered (its own 502/503/504 too). One pooled aiohttp session per worker process; `def` handlers
use `endpoint(name).sync`, which runs the same call on that session from their thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from flash_runtime.backoff import Backoff, RetryPolicy

__all__ = ["Backoff", "CallError", "Endpoint", "RetryPolicy", "close", "current_headers", "endpoint", "with_retries"]

# Set by the worker for the request being handled: the headers a call forwards (X-Request-ID,
# traceparent), made only when a call is made (most requests make none: no id is minted for them).
current_headers: contextvars.ContextVar[Callable[[], Mapping[str, str]] | Mapping[str, str] | None] = (
    contextvars.ContextVar("flash_request", default=None)
)


class CallError(Exception):
    """A call that did not end in a 2xx answer (or could not be made within the deadline)."""

    def __init__(self, endpoint: str, path: str, status: int | None, body: Any, message: str = "") -> None:
        self.endpoint, self.path, self.status, self.body = endpoint, path, status, body
        super().__init__(message or f"{endpoint} {path}: HTTP {status}: {body!r}"[:500])


# One attempt: (status, or None when nothing was written; decoded body; answer headers).
Send = Callable[[], Awaitable[tuple[int | None, Any, Mapping[str, str] | None]]]


async def with_retries(
    send: Send,
    *,
    policy: Backoff,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    rng: random.Random,
    describe: Callable[[int | None, Any], CallError],
) -> Any:
    """Attempts until a 2xx (its body returned), a final answer (CallError), or the deadline."""
    start, attempt = clock(), 0
    while True:
        status, body, headers = await send()
        if status is not None and 200 <= status < 300:
            return body
        if not policy.retryable(status, body, headers):
            raise describe(status, body)
        wait = policy.delay(attempt, rng)
        if clock() - start + wait > policy.deadline:
            raise describe(status, body)
        await sleep(wait)
        attempt += 1


class Endpoint:
    """One callee. Methods return the decoded JSON of a 2xx answer, else raise CallError."""

    def __init__(self, name: str, url: str, key: str | None, policy: Backoff) -> None:
        self.name, self.url, self.key, self.policy = name, url.rstrip("/"), key, policy

    def _headers(self, headers: Mapping[str, str] | None, worker: str | None) -> dict[str, str]:
        """What every call sends: the current request's id and trace, the call key, the worker pin,
        then the caller's own headers (which win)."""
        forwarded = current_headers.get()
        sent = dict((forwarded() if callable(forwarded) else forwarded) or {})
        if self.key:
            sent["Authorization"] = f"Bearer {self.key}"
        if worker:
            sent["X-Runpod-Worker-Id"] = worker
        sent.update(headers or {})
        return sent

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        worker: str | None = None,
    ) -> Any:
        """`worker` sends X-Runpod-Worker-Id (`<id>`, `strict <id>`, `strict-resume <id>`): keep a
        session on one callee worker, as `websocket(..., worker=)` does."""
        import aiohttp

        sent = self._headers(headers, worker)
        session = await _session()
        limit = aiohttp.ClientTimeout(total=timeout or self.policy.deadline, sock_connect=10)

        async def send() -> tuple[int | None, Any, Mapping[str, str] | None]:
            try:
                async with session.request(
                    method, self.url + path, json=json, params=params, headers=sent, timeout=limit
                ) as answer:
                    raw = await answer.read()
                    return answer.status, _decode(raw), answer.headers
            except aiohttp.ClientConnectorError:
                return None, None, None  # never reached the callee: safe to try again
            except (TimeoutError, aiohttp.ClientError) as exc:  # sent, maybe handled: never sent twice
                raise CallError(
                    self.name, path, None, None, f"{self.name} {method} {path}: {type(exc).__name__}"
                ) from exc

        def describe(status: int | None, body: Any) -> CallError:
            why = f"HTTP {status}" if status is not None else "could not connect"
            return CallError(self.name, path, status, body, f"{self.name} {method} {path}: {why}")

        return await with_retries(
            send, policy=self.policy, clock=time.monotonic, sleep=asyncio.sleep, rng=random.Random(), describe=describe
        )

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Any:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Any:
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Any:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.request("DELETE", path, **kw)

    def websocket(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        worker: str | None = None,
    ) -> Any:
        """Open a WebSocket on the callee: `async with endpoint("rt").websocket("/echo") as ws:`
        (or `ws = await ...`). It carries the key and the current request's id, rides out cold
        starts like the other calls, and sends `X-Runpod-Worker-Id: worker` when given (an id,
        `strict <id>` or `strict-resume <id>`); `ws.worker_id` is the worker that answered."""
        from flash_runtime.wsclient import Opening, connect

        sent = self._headers(headers, worker)
        url = "ws" + self.url.removeprefix("http") + path if self.url.startswith("http") else self.url + path

        def describe(status: int | None, body: Any) -> CallError:
            why = f"HTTP {status}" if status is not None else (f"{body}" if body else "could not connect")
            return CallError(self.name, path, status, None, f"{self.name} WS {path}: {why}")

        async def open_socket() -> Any:
            return await connect(await _session(), url, sent, params=params, policy=self.policy, describe=describe)

        return Opening(open_socket)

    @property
    def sync(self) -> SyncEndpoint:
        """The same calls for `def` handlers (they run in threads): blocking, on the pooled session."""
        return SyncEndpoint(self)


class SyncEndpoint:
    def __init__(self, target: Endpoint) -> None:
        self.target = target

    def request(self, method: str, path: str, **kw: Any) -> Any:
        context = contextvars.copy_context()  # the current request's headers travel along
        future = asyncio.run_coroutine_threadsafe(_in(context, self.target.request(method, path, **kw)), _loop())
        return future.result()

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


def endpoint(name: str, *, environ: Mapping[str, str] | None = None, policy: Backoff | None = None) -> Endpoint:
    """A callee by endpoint key; LookupError naming `calls` if this endpoint does not call it."""
    env = os.environ if environ is None else environ
    known = json.loads(env.get("FLASH_ENDPOINTS") or "{}")
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise LookupError(
            f"endpoint {name!r} is not in this endpoint's `calls` (it may call: {listed}); "
            f"add it to calls = [...] in flash.toml and deploy again"
        )
    return Endpoint(name, known[name], env.get("FLASH_CALL_KEY") or None, policy or Backoff())


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")


async def _in(context: contextvars.Context, call: Coroutine[Any, Any, Any]) -> Any:
    """Run a call in the caller's context (its request headers) on this loop."""
    return await asyncio.get_running_loop().create_task(call, context=context)


_sessions: dict[int, tuple[Any, Any]] = {}  # event loop id -> (that loop, its aiohttp session): one pool per loop
_background: list[asyncio.AbstractEventLoop] = []
_lock = threading.Lock()


async def _session() -> Any:
    import aiohttp

    loop = asyncio.get_running_loop()
    owner, session = _sessions.get(id(loop), (None, None))
    if owner is not loop or session is None or session.closed:  # a loop id can be reused after one closes
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30))
        _sessions[id(loop)] = (loop, session)
    return session


async def close() -> None:
    """Close this event loop's pooled session (the worker does so when it stops)."""
    _, session = _sessions.pop(id(asyncio.get_running_loop()), (None, None))
    if session is not None:
        await session.close()


def _loop() -> asyncio.AbstractEventLoop:
    """A background event loop for sync callers (created once per process)."""
    with _lock:
        if not _background:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="flash-calls", daemon=True).start()
            _background.append(loop)
        return _background[0]
