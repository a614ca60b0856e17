"""The one HTTP relay of flash: the local balancer and the mothership forward requests with it, and
`flash_runtime.endpoint()` calls share its retry rules (`Backoff`). aiohttp on both sides.

The contract (docs/worker.md, "Relaying", says the same):

- **Never run a request twice.** Only what provably never reached a handler is sent again: a
  connection refused or reset before any byte of the request was written (aiohttp's
  `ClientConnectorError`), and the platform's own "no worker available" answers: RunPod's
  (`{"error": "no workers available"}`) and the local balancer's own, which carry the header
  `X-Flash-No-Worker: 1` so they are told apart from an app's. Every other answer, every 5xx an
  app returns included, goes to the client as it is, at once.
- A request whose body is held in memory (no body, or a Content-Length up to `REPLAYABLE`) is
  tried again, with `Backoff`'s backoff, until its deadline; a streamed body (larger, or
  chunked) is sent once only.
- **Never hang a client.** A client that disconnects cancels the upstream request (its handler
  sees the connection go); an upstream that fails after the answer started ends the client's
  connection at once: the body stops short (a chunked stream without its last chunk), never a
  second response written into the first.
- Timeouts come from the endpoint's `timeout`; the pool of upstream connections is bounded
  (`LIMIT`) and idle connections expire (`IDLE`, shorter than the worker's keep-alive).
- Headers pass as a multi-map: repeated ones are kept in order, hop-by-hop ones (and those a
  `Connection` header names) are removed, `Via` is added both ways, and `X-Request-ID` (the
  client's or a new one) goes upstream and comes back to the client.
- The relay's own answers are JSON `{"error": ..., "request_id": ...}`, `Allow` on a 405, and
  one log line each; a client that leaves is one line at debug level, never a traceback.

WebSockets (`Relay.upgrade`, the one place that sees `Upgrade` requests; other upgrades get 501):

- The upstream socket is opened first, with `wsclient.connect` and the relay's retry policy: a
  connection refused and a handshake answered 502/503/504 instead of upgraded never reached a
  handler, so they are tried again (a new pick each time) until the deadline. A handshake the
  upstream refuses otherwise (404, 422, 426...) is answered to the client as it came: status,
  headers and (small) body. Only then is the client's upgrade accepted, its 101 carrying the
  upstream's `X-Runpod-Worker-Id` (or the picked worker's id), `X-Request-ID` and `Via`.
- Messages are relayed both ways by `websocket.bridge`: one message at a time, so a slow reader
  on either side holds the other back (nothing queued beyond aiohttp's own 64 KiB read buffer);
  the first close on either side closes the other with the same code and reason (1005 goes on as
  1000, an abnormal end, 1006, as 1011). MAX_MESSAGE_BYTES either way (1009 above it).
- The upstream (`pick`'s) is held for the socket's life: the local balancer counts an open
  socket as a request in flight. `Relay.close_sockets` closes every open socket with 1001 (a stop).
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import itertools
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from flash_runtime.backoff import NO_WORKER, RUNPOD_NO_WORKER, Backoff
from flash_runtime.calls import CallError
from flash_runtime.websocket import MAX_MESSAGE_BYTES, PING_INTERVAL, bridge
from flash_runtime.wsclient import ClientWebSocket, connect

__all__ = ["NO_WORKER", "Fixed", "Relay", "Upstream", "error", "not_allowed", "request_id"]

log = logging.getLogger("flash.relay")

MAX_BODY = 30 * 1024 * 1024  # RunPod's LB limit for a request body
REPLAYABLE = 1024 * 1024  # bodies up to this are held in memory, so a failed attempt can be sent again
SMALL_ANSWER = 64 * 1024  # answers up to this size (with a Content-Length) are relayed in one write
LIMIT = 256  # upstream connections at most; more requests queue for one
IDLE = 15.0  # an idle pooled connection is closed after this (Sanic keeps them 120 s, RunPod longer)
CONNECT = 5.0  # seconds to open a connection
GRACE = 5.0  # on top of the endpoint's timeout, for the worker's own timeout answer to arrive
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
     "trailer", "trailers", "upgrade", "transfer-encoding"}
)  # fmt: skip
_NOT_SENT = HOP_BY_HOP | {"host", "content-length", "expect"}  # aiohttp writes its own
_NOT_ANSWERED = HOP_BY_HOP | {"content-length"}
_NO_BODY = frozenset({204, 304})
_OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE})
# The handshake's own headers: each hop negotiates its socket (aiohttp writes its own upstream).
_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-accept"}
)
_NOT_ON_101 = HOP_BY_HOP | _HANDSHAKE | {"content-length", "date", "server", "sec-websocket-protocol"}
WORKER_ID = "X-Runpod-Worker-Id"
_ANSWERED = {1005: 1000, 1006: 1000, 1015: 1000}  # codes a close frame may not carry
# The refusals of handshakes made in this context (status, body): aiohttp drops the body of an
# answer that is not a 101, so the relay's upstream session keeps small ones here.
_refusals: contextvars.ContextVar[list[tuple[int, bytes]] | None] = contextvars.ContextVar("refusals", default=None)


class _KeepsRefusals(aiohttp.ClientResponse):
    async def start(self, connection: Any) -> aiohttp.ClientResponse:
        started = await super().start(connection)
        kept = _refusals.get()
        if kept is not None and self.status != 101 and (self.content_length or 0) <= SMALL_ANSWER:
            try:
                kept.append((self.status, await self.read()))
            except (aiohttp.ClientError, TimeoutError):
                kept.append((self.status, b""))
        return started


class _Refused(CallError):
    """The upstream socket could not be opened: the last status (None: not reached), and why."""

    def __init__(self, status: int | None, why: Any) -> None:
        super().__init__("", "", status, why, f"HTTP {status}: {why}")
        self.why = why


class _Final(Exception):
    """A pick's own answer (no worker, affinity_worker_gone) ends an upgrade's attempts."""

    def __init__(self, answer: web.StreamResponse) -> None:
        self.answer = answer


_BROKEN = (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, TimeoutError)


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


def _named_by_connection(headers: Any) -> frozenset[str]:
    named = headers.get("Connection")
    return frozenset(t.strip().lower() for t in named.split(",")) if named else frozenset()


class Relay:
    """Forwards requests to upstreams under the contract above; one pooled client session."""

    def __init__(
        self,
        via: str,
        *,
        policy: Backoff | None = None,
        timeout: float = 330.0,
        limit: int = LIMIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        answer_expect: bool = False,
        add: Iterable[tuple[str, str]] = (),
        drop: frozenset[str] = frozenset(),
    ) -> None:
        """`add`: headers sent with every request, replacing the client's of those names; `drop`:
        client headers never sent on (lower case)."""
        self.via = f"1.1 {via}"
        self.policy = policy or Backoff()
        self.timeout = aiohttp.ClientTimeout(total=timeout + GRACE, sock_connect=CONNECT)
        self.limit, self.clock, self.sleep, self.rng = limit, clock, sleep, random.Random()
        self.answer_expect = answer_expect  # a low-level aiohttp server does not answer Expect itself
        self.session: aiohttp.ClientSession | None = None
        self.sockets: aiohttp.ClientSession | None = None  # upstream WebSockets: not pooled, not bounded by LIMIT
        self.open_sockets: set[web.WebSocketResponse] = set()
        added = list(add)
        self.skip = _NOT_SENT | drop | {k.lower() for k, _ in added}  # decided once, not per request
        self.added = [*added, ("Via", self.via)]  # after the client's own Via, as RFC 9110 asks

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.limit, keepalive_timeout=IDLE),
            timeout=self.timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        self.sockets = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT),  # a socket lives as long as it is used
            response_class=_KeepsRefusals,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        await self.close_sockets()
        for session in (self.session, self.sockets):
            if session is not None:
                await session.close()

    async def close_sockets(self, code: int = 1001, reason: str = "going away") -> None:
        """Close every relayed socket (a stop): the client's side with `code`, then, by the bridge,
        the upstream's with the same."""
        await asyncio.gather(*(ws.close(code=code, message=reason.encode()) for ws in list(self.open_sockets)))

    # -- one request ---------------------------------------------------------------------------
    async def forward(
        self,
        request: web.BaseRequest,
        pick: Pick,
        path: str,
    ) -> web.StreamResponse:
        """Relay `request` to `path` (raw, with its query) on the upstreams `pick` gives, retrying
        only what never reached a handler."""
        rid = request_id(request)
        headers = request.headers
        connection = _named_by_connection(headers)
        if "upgrade" in connection and "Upgrade" in headers:
            return await self.upgrade(request, pick, path, rid)
        length = request.content_length
        if length is not None and length > MAX_BODY:
            too_big = error(413, "request body is larger than 30 MB", rid)
            too_big.force_close()
            return too_big
        skip = self.skip | connection if connection else self.skip
        sent = [(k, v) for k, v in headers.items() if k.lower() not in skip]
        sent += self.added
        if "X-Request-ID" not in headers:
            sent.append(("X-Request-ID", rid))
        if self.answer_expect and headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits a second for it
        data: Any = None
        if length is not None:
            if length <= REPLAYABLE:
                data = await request.read()
            else:
                data = request.content
                sent.append(("Content-Length", str(length)))
        elif "Transfer-Encoding" in headers:
            data = request.content  # chunked: streamed on as chunked
        replayable = data is None or isinstance(data, bytes)
        start, attempt = self.clock(), 0
        while True:
            upstream = await pick(rid)
            if isinstance(upstream, web.StreamResponse):
                upstream.headers.setdefault("X-Request-ID", rid)
                return upstream
            answer = await self._attempt(request, upstream, path, sent, data, rid, replayable, start, attempt)
            if not isinstance(answer, float):
                return answer
            await self.sleep(answer)
            attempt += 1

    async def upgrade(self, request: web.BaseRequest, pick: Pick, path: str, rid: str) -> web.StreamResponse:
        """Relay a WebSocket (the contract above): the upstream socket first, then the client's."""
        headers = request.headers
        if headers.get("Upgrade", "").lower() != "websocket" or request.method != "GET":
            what = f"{request.method} with Upgrade: {headers.get('Upgrade')}"
            return error(501, f"only WebSocket upgrades (GET with Upgrade: websocket) are relayed, not {what}", rid)
        assert self.sockets is not None
        skip = self.skip | _HANDSHAKE | _named_by_connection(headers)
        sent = [(k, v) for k, v in headers.items() if k.lower() not in skip] + self.added
        if "X-Request-ID" not in headers:
            sent.append(("X-Request-ID", rid))
        held: list[Upstream] = []  # the upstream of the attempt under way (at most one)
        refused: list[Any] = [None]  # the headers of the last refusal

        async def target() -> str:
            upstream = await pick(rid)
            if isinstance(upstream, web.StreamResponse):
                raise _Final(upstream)
            held.append(upstream)
            return "ws" + upstream.url.removeprefix("http") + path

        def failed(status: int | None, answered: Any) -> None:
            held.pop().release(status is not None)  # refused at connect: that upstream is not reached
            refused[0] = answered

        def describe(status: int | None, why: Any) -> CallError:
            return _Refused(status, why)

        kept: list[tuple[int, bytes]] = []
        token = _refusals.set(kept)
        try:
            upstream_ws = await connect(
                self.sockets,
                target,
                CIMultiDict(sent),
                params=None,
                policy=self.policy,
                describe=describe,
                failed=failed,
            )
        except _Final as final:
            final.answer.headers.setdefault("X-Request-ID", rid)
            return final.answer
        except _Refused as exc:
            for upstream in held:
                upstream.release(True)
            return self._refusal(request, exc, refused[0], kept, rid)
        except BaseException:
            for upstream in held:
                upstream.release(True)
            raise
        finally:
            _refusals.reset(token)
        upstream = held.pop()
        try:
            return await self._relay_socket(request, upstream, upstream_ws, rid)
        finally:
            upstream.release(True)

    def _refusal(
        self, request: web.BaseRequest, exc: _Refused, answered: Any, kept: list[tuple[int, bytes]], rid: str
    ) -> web.StreamResponse:
        """The upstream's answer instead of an upgrade, as it came; the relay's own 502 without one."""
        if exc.status is None:  # not reached (marked: callers may retry), or a handshake cut short (not marked)
            why = exc.why or "not reachable"
            return self._failed(request, 502, f"the upstream socket could not be opened ({why})", rid, not exc.why)
        out = [(k, v) for k, v in (answered or {}).items() if k.lower() not in _NOT_ANSWERED and k != NO_WORKER]
        out.append(("Via", self.via))
        if not any(k.lower() == "x-request-id" for k, _ in out):
            out.append(("X-Request-ID", rid))
        body = kept[-1][1] if kept and kept[-1][0] == exc.status else b""
        return web.Response(status=exc.status, body=body, headers=out)

    async def _relay_socket(
        self, request: web.BaseRequest, upstream: Upstream, upstream_ws: ClientWebSocket, rid: str
    ) -> web.StreamResponse:
        raw = upstream_ws._raw  # aiohttp's ClientWebSocketResponse
        got = raw._response.headers
        out = [(k, v) for k, v in got.items() if k.lower() not in _NOT_ON_101]
        if WORKER_ID not in got and getattr(upstream, "worker_id", None):
            out.append((WORKER_ID, upstream.worker_id))  # type: ignore[attr-defined]
        if "X-Request-ID" not in got:
            out.append(("X-Request-ID", rid))
        out.append(("Via", self.via))
        chosen = got.get("Sec-WebSocket-Protocol")
        client = web.WebSocketResponse(
            protocols=(chosen,) if chosen else (),
            compress=False,  # messages are relayed decoded; each hop's own compression is none
            max_msg_size=MAX_MESSAGE_BYTES,
            heartbeat=PING_INTERVAL,
            autoclose=False,  # a client's close goes upstream first, then is answered with its own code
        )
        client.headers.extend(out)
        try:
            await client.prepare(request)
        except BaseException:
            await upstream_ws.close(1011, "the client's upgrade failed")
            raise
        self.open_sockets.add(client)
        relayed = ClientWebSocket(client)
        try:
            await bridge(relayed, upstream_ws)
        except BaseException:  # cancelled (the client's connection went, a stop): end the upstream too
            if not upstream_ws.closed:
                code = relayed.close_code
                code, why = (code, "") if code not in (None, 1005, 1006) else (1011, "the relay's client went away")
                await asyncio.shield(upstream_ws.close(code, why))
            raise
        finally:
            self.open_sockets.discard(client)
            if not client.closed:  # the client closed first: its close is answered with its own code
                code = relayed.close_code or 1005
                await asyncio.shield(client.close(code=_ANSWERED.get(code, code)))
        return client

    def _again(self, replayable: bool, start: float, attempt: int) -> float | None:
        """The wait before the next attempt, or None when the body is gone or the deadline near."""
        wait = self.policy.delay(attempt, self.rng)
        return wait if replayable and self.policy.time_left(self.clock() - start, wait) else None

    async def _attempt(
        self,
        request: web.BaseRequest,
        upstream: Upstream,
        path: str,
        sent: list[tuple[str, str]],
        data: Any,
        rid: str,
        replayable: bool,
        start: float,
        attempt: int,
    ) -> web.StreamResponse | float:
        """One attempt: the answer for the client, or the wait before trying again."""
        assert self.session is not None
        method = request.method
        reached = True
        try:
            try:
                answer = await self.session.request(
                    method, URL(upstream.url + path, encoded=True), headers=sent, data=data, allow_redirects=False
                )
            except aiohttp.ClientConnectorError as exc:  # nothing was written: safe to send again
                if exc.os_error.errno in _OUT_OF_FDS:  # this process's fault, not the upstream's
                    return self._failed(request, 503, "out of file descriptors; retry shortly", rid, True)
                reached = False
                if (wait := self._again(replayable, start, attempt)) is not None:
                    return wait
                return self._failed(request, 502, f"{upstream.url} could not be reached ({exc.strerror})", rid, True)
            except TimeoutError:
                return self._failed(request, 504, "no answer within the endpoint's timeout", rid)
            except aiohttp.ClientError as exc:  # sent, maybe handled: never sent twice
                return self._failed(request, 502, f"the upstream closed the connection ({type(exc).__name__})", rid)
            try:
                return await self._answer(request, answer, rid, replayable, start, attempt, upstream)
            except BaseException:
                answer.close()  # the client left (or the relay failed): the upstream request ends now
                raise
        except asyncio.CancelledError:
            log.debug("%s %s: the client left; upstream request cancelled [%s]", method, request.path, rid)
            raise
        finally:
            upstream.release(reached)

    async def _answer(
        self,
        request: web.BaseRequest,
        upstream: aiohttp.ClientResponse,
        rid: str,
        replayable: bool,
        start: float,
        attempt: int,
        picked: Upstream,
    ) -> web.StreamResponse | float:
        status, got = upstream.status, upstream.headers
        size = upstream.content_length
        body: bytes | None = None
        if (size is not None and size <= SMALL_ANSWER and request.method != "HEAD") or status in _NO_BODY:
            try:
                body = await upstream.read()
            except _BROKEN:
                return self._failed(request, 502, "the upstream closed the connection mid-answer", rid)
            busy = status >= 400 and replayable and self._platform_busy(status, got, body)
            if busy and (wait := self._again(replayable, start, attempt)) is not None:
                return wait
        out = [(k, v) for k, v in got.items() if k.lower() not in _NOT_ANSWERED]
        out.append(("Via", self.via))
        if "X-Request-ID" not in got:
            out.append(("X-Request-ID", rid))
        worker_id = getattr(picked, "worker_id", None)  # the local balancer's workers: RunPod's affinity header
        if worker_id and WORKER_ID not in got:
            out.append((WORKER_ID, worker_id))
        if status in _NO_BODY or request.method == "HEAD":
            answer = web.StreamResponse(status=status, reason=upstream.reason, headers=out)
            if size is not None and status not in _NO_BODY:
                answer.content_length = size
            return answer  # aiohttp writes it (and shrugs off a client that already left)
        if body is not None:
            return web.Response(body=body, status=status, reason=upstream.reason, headers=out)
        streamed = web.StreamResponse(status=status, reason=upstream.reason, headers=out)
        if size is not None:
            streamed.content_length = size
        content = upstream.content
        try:
            await streamed.prepare(request)
            while chunk := await content.readany():  # streams stay streams (SSE)
                await streamed.write(chunk)
        except (ConnectionError, *_BROKEN) as exc:
            upstream.close()
            if request.transport is None or request.transport.is_closing():  # the client left: not an error
                log.debug("%s %s: the client left mid-answer [%s]", request.method, request.path, rid)
                return streamed
            # The answer started: no second response. The client sees its connection end now.
            log.warning("%s %s: the upstream failed mid-answer (%s); ending the client's answer [%s]",
                        request.method, request.path, type(exc).__name__, rid)  # fmt: skip
            request.protocol.force_close()
            if request.transport is not None:
                request.transport.close()
            return streamed
        await streamed.write_eof()
        return streamed

    @staticmethod
    def _platform_busy(status: int, headers: Any, body: bytes) -> bool:
        if headers.get(NO_WORKER) == "1":
            return True
        if RUNPOD_NO_WORKER.encode() not in body.lower():
            return False
        try:
            return Backoff.retryable(status, json.loads(body))
        except ValueError:
            return False

    def _failed(
        self, request: web.BaseRequest, status: int, message: str, rid: str, no_worker: bool = False
    ) -> web.Response:
        log.warning("%s %s: %d %s [%s]", request.method, request.path, status, message, rid)
        return error(status, message, rid, no_worker=no_worker)
