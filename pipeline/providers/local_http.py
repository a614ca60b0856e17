"""Just enough HTTP/1.1 for the local load balancer: read a message head, relay bodies as they come.

Bodies are relayed in the framing they arrive in (Content-Length, chunked, or until close), so
streaming responses reach the client chunk by chunk and nothing is buffered whole.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
COPY_BLOCK = 64 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.1 we can relay."""


@dataclass
class Head:
    start: str  # request line or status line
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def encode(self) -> bytes:
        lines = [self.start, *(f"{k}: {v}" for k, v in self.headers), "", ""]
        return "\r\n".join(lines).encode("latin-1")

    @property
    def keep_alive(self) -> bool:
        connection = (self.get("connection") or "").lower()
        if self.start.endswith("HTTP/1.0") or self.start.startswith("HTTP/1.0"):
            return "keep-alive" in connection
        return "close" not in connection


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next message head, or None if the peer closed cleanly before sending one."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ProtocolError("connection closed mid-head") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError("message head too large") from None
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"malformed header line {line!r}")
        headers.append((name.strip(), value.strip()))
    return Head(lines[0], headers)


def body_framing(head: Head, *, is_response: bool, request_method: str = "GET") -> tuple[str, int]:
    """How the body after head is delimited: ("none"|"length"|"chunked"|"close", length)."""
    if is_response:
        status = int(head.start.split(" ", 2)[1])
        if request_method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return "none", 0
    if "chunked" in (head.get("transfer-encoding") or "").lower():
        return "chunked", 0
    length = head.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ProtocolError(f"bad Content-Length {length!r}")
        return ("length", int(length)) if int(length) else ("none", 0)
    return ("close", 0) if is_response else ("none", 0)


async def relay_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, framing: tuple[str, int]) -> None:
    """Copy one body from reader to writer, flushing as data arrives (streams stay streams)."""
    kind, length = framing
    if kind == "length":
        remaining = length
        while remaining:
            block = await reader.read(min(COPY_BLOCK, remaining))
            if not block:
                raise ProtocolError("body ended early")
            remaining -= len(block)
            writer.write(block)
            await writer.drain()
    elif kind == "chunked":
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            writer.write(size_line)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    writer.write(trailer)
                writer.write(b"\r\n")
                await writer.drain()
                return
            writer.write(await reader.readexactly(size + 2))
            await writer.drain()
    elif kind == "close":
        while block := await reader.read(COPY_BLOCK):
            writer.write(block)
            await writer.drain()


def simple_response(
    status: int, body: bytes = b"", content_type: str = "application/json", *, close: bool = False
) -> bytes:
    reasons = {
        200: "OK",
        204: "No Content",
        400: "Bad Request",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    lines = [f"HTTP/1.1 {status} {reasons.get(status, 'Status')}", f"Content-Length: {len(body)}"]
    if body:
        lines.append(f"Content-Type: {content_type}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
