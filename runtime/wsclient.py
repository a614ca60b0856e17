"""The client side of WebSockets: `endpoint(name).websocket(path)` and `flash call ... WS`, on
aiohttp, riding out cold starts with the calls' retry policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from flash_runtime.websocket import MAX_MESSAGE_BYTES, OPEN_TIMEOUT, PING_INTERVAL, Connection, WebSocketClosed

if TYPE_CHECKING:
    from flash_runtime.calls import CallError


class ClientWebSocket(Connection):
    """An aiohttp socket as a `Connection`: one opened to another endpoint
    (`endpoint(name).websocket(path)`), or the client's side of a socket the relay accepted (aiohttp's
    `WebSocketResponse` has the same calls)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw  # aiohttp's ClientWebSocketResponse
        headers = raw._response.headers if getattr(raw, "_response", None) is not None else {}
        self.worker_id: str | None = headers.get("X-Runpod-Worker-Id")  # pin later calls with it
        self.close_reason = ""

    async def receive(self) -> str | bytes | None:
        import aiohttp

        message = await self._raw.receive()
        if message.type is aiohttp.WSMsgType.TEXT:
            return str(message.data)
        if message.type is aiohttp.WSMsgType.BINARY:
            return bytes(message.data)
        if message.type is aiohttp.WSMsgType.CLOSE:
            self.close_reason = str(message.extra or "")
        return None  # CLOSE, CLOSING, CLOSED or ERROR: the socket is over

    async def send(self, message: str | bytes) -> None:
        if self._raw.closed:
            raise WebSocketClosed(f"the socket is closed ({self.close_code})")
        try:
            if isinstance(message, str):
                await self._raw.send_str(message)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                await self._raw.send_bytes(bytes(message))
            else:
                raise TypeError(f"ws.send takes str or bytes, not {type(message).__name__} (send_json sends objects)")
        except ConnectionError as exc:
            raise WebSocketClosed(f"the socket is closed ({self.close_code})") from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._raw.close(code=code, message=reason.encode())

    @property
    def closed(self) -> bool:
        return bool(self._raw.closed)

    @property
    def close_code(self) -> int | None:
        code = self._raw.close_code
        return int(code) if code is not None else None

    async def __aenter__(self) -> ClientWebSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self._raw.closed:
            await self.close(1000)


class Opening:
    """`endpoint(...).websocket(path)`: awaited, the open socket; or `async with` it, closed after."""

    def __init__(self, open_socket: Callable[[], Any]) -> None:
        self._open, self._socket = open_socket, None

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> ClientWebSocket:
        self._socket = await self._open()
        return self._socket  # type: ignore[return-value]

    async def __aexit__(self, *exc: object) -> None:
        if self._socket is not None:
            await self._socket.__aexit__(*exc)


async def connect(
    session: Any,
    url: str | Callable[[], Awaitable[str]],
    headers: Mapping[str, str],
    *,
    params: Mapping[str, Any] | None,
    policy: Any,
    describe: Callable[[int | None, Any], CallError],
    open_timeout: float = OPEN_TIMEOUT,
    notice: Callable[[int | None], None] | None = None,
    failed: Callable[[int | None, Any], None] | None = None,
) -> ClientWebSocket:
    """Open a socket, riding out a cold start with the calls' retry policy (connection refused,
    502/503/504 before the upgrade); a socket that may have reached a handler is never opened twice.
    `url` may be a coroutine function giving each attempt's URL (the relay picks a worker per
    attempt); `failed(status, headers)` hears of every attempt that did not open (status None: not
    reached)."""
    import random

    import aiohttp
    from multidict import CIMultiDict

    from flash_runtime.backoff import NO_WORKER
    from flash_runtime.calls import with_retries

    failures = 0

    async def attempt() -> tuple[int | None, Any, Any]:
        nonlocal failures
        answered: Any = None
        target = url if isinstance(url, str) else await url()
        try:
            raw = await asyncio.wait_for(
                session.ws_connect(
                    target,
                    headers=CIMultiDict(headers),
                    params=params,
                    max_msg_size=MAX_MESSAGE_BYTES,
                    heartbeat=PING_INTERVAL,
                ),
                open_timeout,
            )
        except aiohttp.WSServerHandshakeError as exc:
            status: int | None = exc.status  # answered instead of upgrading: no handler ran
            # A handshake answered instead of upgraded never reached a WebSocket handler: a worker
            # still starting (its 503) is as safe to try again as the platform's marked answers.
            answered = {**(exc.headers or {}), NO_WORKER: "1"} if status in (502, 503, 504) else exc.headers
        except aiohttp.ClientConnectorError:
            status = None  # never reached the callee
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise describe(None, f"{type(exc).__name__}") from exc
        else:
            return 200, ClientWebSocket(raw), None  # upgraded (101): with_retries takes any 2xx as done
        if failed is not None:
            failed(status, answered)
        if status is not None and 200 <= status < 300:  # answered (not a WebSocket route), never upgraded
            raise describe(status, "answered instead of upgrading")
        if notice is not None and not failures:
            notice(status)
        failures += 1
        return status, None, answered

    result = await with_retries(
        attempt,
        policy=policy,
        clock=time.monotonic,
        sleep=asyncio.sleep,
        rng=random.Random(),
        describe=describe,
    )
    return result  # type: ignore[no-any-return]
