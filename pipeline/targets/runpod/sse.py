"""The one Server-Sent Events reader: RunPod's worker log streams, for `flash logs` and for the
last lines of a failing worker in a deploy report. Every caller reads SSE through this module.

Contract
--------
- `parse(lines)` turns the lines of a `text/event-stream` body into `Event`s by the WHATWG rules:
  `data` fields are joined with "\\n"; `event` names the type (default "message"); `id` sets the
  last event ID, which later events carry until another `id` comes (an id containing NUL is
  ignored); comment lines (`:`), `retry` and unknown fields are ignored; a blank line dispatches
  an event that has data (one without data is dropped); an event the body leaves unfinished is
  dropped. A line may end in LF, CR LF or CR; the bytes are UTF-8 (undecodable bytes are replaced),
  whatever charset the response claims.
- `connect(session, url, last_event_id=..., idle=...)` opens one connection and yields its events.
  It ends quietly when the server closes the stream, when nothing arrives for `idle` seconds, or
  when the connection cannot be made or breaks; it raises `StreamRefused` when the server answers
  an HTTP error status. `Last-Event-ID` is sent when given (RunPod then ignores `since` and `tail`).
- `resume(open_stream, stop, ...)` reads one stream until `stop` is set: after every close it
  reconnects with the last event ID seen, at once when the connection delivered an event, else
  after the next delay of the one `Backoff` (reset once a connection delivers an event). RunPod resumes "from this point", so the first event of a
  resumed connection is dropped when its id is the cursor itself. It ends early only when the
  server refuses with a status that will not heal (401, 403, 404, 410: the worker is gone).
- `log_line(event)` is RunPod's `{"ts", "source", "line"}` payload as (ts, line); a payload that
  is not that JSON object is the line itself, with no time.
Nothing here redacts: callers pass what they print through the client's `redact`.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import requests

from flash_runtime.backoff import Backoff

RECONNECT = Backoff(initial=0.5, factor=2.0, cap=10.0, jitter=0.1)  # between connections that gave no event
FINAL = frozenset({401, 403, 404, 410})  # a stream refused with one of these is not retried


@dataclass(frozen=True)
class Event:
    data: str
    id: str = ""  # the last event ID when this event was dispatched ("" before any)
    event: str = "message"


class StreamRefused(Exception):
    """The server answered the stream's request with an HTTP error status."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"the event stream was refused with HTTP {status}")


def parse(lines: Iterable[str]) -> Iterator[Event]:
    data: list[str] = []
    kind = ""
    last_id = ""
    for line in lines:
        if not line:
            if data:
                yield Event("\n".join(data), last_id, kind or "message")
            data, kind = [], ""
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            last_id = value


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Decoded lines of a byte stream, split on LF, CR LF or CR, whatever the chunk boundaries."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        while True:
            cut = min((i for i in (pending.find(b"\n"), pending.find(b"\r")) if i >= 0), default=-1)
            if cut < 0 or (pending[cut : cut + 1] == b"\r" and cut == len(pending) - 1):
                break  # no line end yet, or a CR that may be the first half of CR LF
            end = cut + 2 if pending[cut : cut + 2] == b"\r\n" else cut + 1
            yield pending[:cut].decode("utf-8", errors="replace")
            pending = pending[end:]
    if pending.endswith(b"\r"):
        yield pending[:-1].decode("utf-8", errors="replace")


def connect(
    session: requests.Session, url: str, *, last_event_id: str = "", idle: float | None, connect_timeout: float = 10.0
) -> Iterator[Event]:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    try:
        with session.get(url, headers=headers, stream=True, timeout=(connect_timeout, idle)) as answer:
            if answer.status_code >= 400:
                raise StreamRefused(answer.status_code)
            yield from parse(_lines(answer.iter_content(chunk_size=None)))
    except requests.RequestException:  # closed, quiet for `idle` seconds, or never reached
        return


def resume(
    open_stream: Callable[[str], Iterator[Event]],
    stop: threading.Event,
    backoff: Backoff = RECONNECT,
    rng: random.Random | None = None,
) -> Iterator[Event]:
    """`open_stream(last_event_id)` again and again until `stop`; see the module's contract."""
    rng = rng or random.Random()
    delays = backoff.delays(rng)
    cursor = ""
    while not stop.is_set():
        first, delivered = True, False
        try:
            for event in open_stream(cursor):
                if stop.is_set():
                    return
                repeat = first and cursor != "" and event.id == cursor
                first = False
                if repeat:
                    continue
                delivered = True
                cursor = event.id or cursor
                yield event
        except StreamRefused as exc:
            if exc.status in FINAL:
                return
        if delivered:  # a stream that gave events and closed is resumed at once
            delays = backoff.delays(rng)
        elif stop.wait(next(delays)):
            return


def log_line(event: Event) -> tuple[str, str]:
    try:
        payload = json.loads(event.data)
    except ValueError:
        return "", event.data
    if not isinstance(payload, dict):
        return "", event.data
    return str(payload.get("ts") or ""), str(payload.get("line", ""))
