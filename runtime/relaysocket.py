"""The WebSocket half of the one relay (relay.py hands it every `Upgrade` request).

`SocketRelay.upgrade` is the one place that sees `Upgrade` requests; other upgrades get 501:

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
  socket as a request in flight. `SocketRelay.close` closes every open socket with 1001 (a stop).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from flash_runtime.backoff import NO_WORKER, Backoff
from flash_runtime.calls import CallError
from flash_runtime.upstream import (
    CONNECT,
    HOP_BY_HOP,
    NOT_ANSWERED,
    SMALL_ANSWER,
    WORKER_ID,
    Pick,
    Upstream,
    error,
    failed,
    named_by_connection,
)
from flash_runtime.websocket import MAX_MESSAGE_BYTES, PING_INTERVAL, bridge
from flash_runtime.wsclient import ClientWebSocket, connect

# The handshake's own headers: each hop negotiates its socket (aiohttp writes its own upstream).
_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-accept"}
)
_NOT_ON_101 = HOP_BY_HOP | _HANDSHAKE | {"content-length", "date", "server", "sec-websocket-protocol"}
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


class SocketRelay:
    """Relays WebSockets under the contract above: its own client session (sockets are not pooled,
    nor bounded by the HTTP relay's LIMIT), and the sockets open now, for a stop."""

    def __init__(self, via: str, policy: Backoff, skip: frozenset[str], added: Iterable[tuple[str, str]]) -> None:
        self.via, self.policy, self.skip, self.added = via, policy, skip, list(added)
        self.session: aiohttp.ClientSession | None = None
        self.open: set[web.WebSocketResponse] = set()

    def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT),  # a socket lives as long as it is used
            response_class=_KeepsRefusals,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self, code: int = 1001, reason: str = "going away") -> None:
        """Close every relayed socket (a stop): the client's side with `code`, then, by the bridge,
        the upstream's with the same."""
        await asyncio.gather(*(ws.close(code=code, message=reason.encode()) for ws in list(self.open)))

    async def end(self) -> None:
        await self.close()
        if self.session is not None:
            await self.session.close()

    async def upgrade(self, request: web.BaseRequest, pick: Pick, path: str, rid: str) -> web.StreamResponse:
        """Relay a WebSocket (the contract above): the upstream socket first, then the client's."""
        headers = request.headers
        if headers.get("Upgrade", "").lower() != "websocket" or request.method != "GET":
            what = f"{request.method} with Upgrade: {headers.get('Upgrade')}"
            return error(501, f"only WebSocket upgrades (GET with Upgrade: websocket) are relayed, not {what}", rid)
        assert self.session is not None
        skip = self.skip | _HANDSHAKE | named_by_connection(headers)
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
                self.session,
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
            return failed(request, 502, f"the upstream socket could not be opened ({why})", rid, not exc.why)
        out = [(k, v) for k, v in (answered or {}).items() if k.lower() not in NOT_ANSWERED and k != NO_WORKER]
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
        self.open.add(client)
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
            self.open.discard(client)
            if not client.closed:  # the client closed first: its close is answered with its own code
                code = relayed.close_code or 1005
                await asyncio.shield(client.close(code=_ANSWERED.get(code, code)))
        return client
