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

WebSockets are relayed by `relaysocket.SocketRelay` (its contract is there): `Relay.forward` hands
it every `Upgrade` request; `Relay.sockets.close()` closes every open socket with 1001 (a stop).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from flash_runtime.backoff import NO_WORKER, RUNPOD_NO_WORKER, Backoff
from flash_runtime.relaysocket import SocketRelay
from flash_runtime.upstream import (
    CONNECT,
    NOT_ANSWERED,
    NOT_SENT,
    SMALL_ANSWER,
    WORKER_ID,
    Fixed,
    Pick,
    Upstream,
    error,
    failed,
    named_by_connection,
    not_allowed,
    request_id,
)

__all__ = ["NO_WORKER", "Fixed", "Pick", "Relay", "Upstream", "error", "not_allowed", "request_id"]

log = logging.getLogger("flash.relay")

MAX_BODY = 30 * 1024 * 1024  # RunPod's LB limit for a request body
REPLAYABLE = 1024 * 1024  # bodies up to this are held in memory, so a failed attempt can be sent again
LIMIT = 256  # upstream connections at most; more requests queue for one
IDLE = 15.0  # an idle pooled connection is closed after this (Sanic keeps them 120 s, RunPod longer)
GRACE = 5.0  # on top of the endpoint's timeout, for the worker's own timeout answer to arrive
_NO_BODY = frozenset({204, 304})
_OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE})
_BROKEN = (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, TimeoutError)


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
        added = list(add)
        self.skip = NOT_SENT | drop | {k.lower() for k, _ in added}  # decided once, not per request
        self.added = [*added, ("Via", self.via)]  # after the client's own Via, as RFC 9110 asks
        self.sockets = SocketRelay(self.via, self.policy, self.skip, self.added)

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.limit, keepalive_timeout=IDLE),
            timeout=self.timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        self.sockets.start()

    async def close(self) -> None:
        await self.sockets.end()
        if self.session is not None:
            await self.session.close()

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
        connection = named_by_connection(headers)
        if "upgrade" in connection and "Upgrade" in headers:
            return await self.sockets.upgrade(request, pick, path, rid)
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
                    return failed(request, 503, "out of file descriptors; retry shortly", rid, True)
                reached = False
                if (wait := self._again(replayable, start, attempt)) is not None:
                    return wait
                return failed(request, 502, f"{upstream.url} could not be reached ({exc.strerror})", rid, True)
            except TimeoutError:
                return failed(request, 504, "no answer within the endpoint's timeout", rid)
            except aiohttp.ClientError as exc:  # sent, maybe handled: never sent twice
                return failed(request, 502, f"the upstream closed the connection ({type(exc).__name__})", rid)
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
                return failed(request, 502, "the upstream closed the connection mid-answer", rid)
            busy = status >= 400 and replayable and self._platform_busy(status, got, body)
            if busy and (wait := self._again(replayable, start, attempt)) is not None:
                return wait
        out = [(k, v) for k, v in got.items() if k.lower() not in NOT_ANSWERED]
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
