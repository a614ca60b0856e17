"""`flash call ENDPOINT WS /path`: a WebSocket session with a deployed endpoint.

It opens the socket (the API key sent on RunPod, a cold start ridden out with the runtime client's
policy), sends each line of stdin, or of -d, as a text message, and prints each message that
arrives (a binary one as its size) until the endpoint closes the socket or Ctrl-C. The end of
stdin does not close it: the endpoint decides when the session is over. Exit 0 when it closes
with 1000, 4 with any other code (printed), 130 on Ctrl-C (the socket closed with 1001).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import click

from flash_pipeline.config.model import Project
from flash_pipeline.errors import ApiError, UsageError


def lines_of(data: str | None) -> list[str] | None:
    """The messages of -d: its lines (-d @FILE: the file's); None: read stdin."""
    if data is None:
        return None
    if data.startswith("@"):
        try:
            data = Path(data[1:]).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"cannot read {data[1:]}: {why}", "give -d @FILE an existing text file") from None
    return data.splitlines()


def websocket_url(url: str) -> str:
    return "ws" + url.removeprefix("http") if url.startswith("http") else url


def session(
    url: str,
    headers: Mapping[str, str],
    lines: Iterable[str] | None,
    *,
    deadline: float,
    echo: Callable[[str], None],
    out: Callable[[str], None],
) -> tuple[int | None, str]:
    """Talk until the socket closes: (its close code, its reason). ApiError if it never opened."""
    return asyncio.run(_talk(url, headers, lines, deadline, echo, out))


async def _talk(
    url: str,
    headers: Mapping[str, str],
    lines: Iterable[str] | None,
    deadline: float,
    echo: Callable[[str], None],
    out: Callable[[str], None],
) -> tuple[int | None, str]:
    import aiohttp

    from flash_runtime.calls import Backoff, CallError
    from flash_runtime.wsclient import connect

    def describe(status: int | None, body: Any) -> CallError:
        why = f"HTTP {status}" if status is not None else (str(body) if body else "could not connect")
        return CallError("", url, status, None, f"could not open {url} within {deadline:.0f}s ({why})")

    def notice(status: int | None) -> None:
        echo(f"flash: {url} is starting (HTTP {status})" if status else f"flash: {url} is not reachable yet")

    async with aiohttp.ClientSession() as client:
        try:
            ws = await connect(
                client,
                url,
                headers,
                params=None,
                policy=Backoff(deadline=deadline),
                describe=describe,
                notice=notice,
            )
        except CallError as exc:
            raise ApiError("call", str(exc)) from None
        sender = asyncio.create_task(_send_all(ws, _from(lines) if lines is not None else _stdin()))
        try:
            async for message in ws:
                out(message if isinstance(message, str) else f"<binary message: {len(message)} bytes>")
        finally:
            sender.cancel()
            if not ws.closed:  # Ctrl-C: tell the endpoint we are going away
                await ws.close(1001, "the client is going away")
        return ws.close_code, ws.close_reason


async def _send_all(ws: Any, lines: AsyncIterator[str]) -> None:
    from flash_runtime.websocket import WebSocketClosed

    try:
        async for line in lines:
            await ws.send(line)
    except WebSocketClosed:
        pass  # the endpoint closed first: what it said is printed by the reader


async def _from(lines: Iterable[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def _stdin() -> AsyncIterator[str]:
    """stdin's lines as they are typed; a daemon thread reads, so Ctrl-C never waits on it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="flash-stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


def call_websocket(project: Project, key: str, path: str, options: Mapping[str, Any]) -> int:
    from flash_pipeline.cli.call import endpoint_url, headers_of

    lines, headers = lines_of(options["data"]), headers_of(options["header"])
    url, auth = endpoint_url(project, key, options["target"])

    def echo(line: str) -> None:  # progress and the close go to stderr
        click.echo(line, err=True)

    code, reason = session(
        websocket_url(url) + path, {**headers, **auth}, lines, deadline=options["timeout"], echo=echo, out=click.echo
    )
    if code == 1000:
        return 0
    echo(f"flash: the socket closed with {code}" + (f": {reason}" if reason else ""))
    return 4
