"""Worker log streams as RunPod serves them: GET /v2/serverless/{id}/workers/{workerId}/logs.

Server-Sent Events, `data: {"ts", "source", "line"}`, each event's `id` its `ts` plus a sequence
number (`2026-06-01T12:05:04Z/000000000042`, as in openapi-v2.json); `tail` (default 100, 0..5000),
`since` and the `Last-Event-ID` header pick where a stream starts (the header first, then `since`,
then `tail`). RunPod resumes "from this point": the cursor's own event is sent again. The body is
chunked, as a live stream is.

What RunPod's documents allow and flash must survive: a stream closes early (`close_after` events
on one connection), or stays open for new lines only a while (`hold` seconds of quiet); workers
start after a reader listed them (`start_worker`).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

DEFAULT = ("Starting flash worker", "Traceback (most recent call last):", "RuntimeError: model weights missing")
DEFAULT_TS = "2026-11-23T00:00:00Z"


class WorkerLogs:
    def __init__(self) -> None:
        self.lines: dict[str, list[tuple[str, str, str]]] = {}  # worker -> [(event id, ts, line)]
        self.later: dict[str, list[str]] = {}  # endpoint id -> workers started after the first listing
        self.close_after: int | None = None  # events one connection sends before the server closes it
        self.hold = 0.0  # seconds a stream waits for a new line before it closes (0: closes after the backfill)
        self.connections: list[tuple[str, str]] = []  # (worker, Last-Event-ID sent or "") per connection
        self.changed = threading.Condition()
        self._seq = 0

    def write(self, worker: str, line: str, ts: str = DEFAULT_TS) -> None:
        """A worker prints a line (a stream that is open sends it)."""
        with self.changed:
            self._log(worker).append(self._event(ts, line))
            self.changed.notify_all()

    def start_worker(self, endpoint_id: str, worker: str) -> None:
        """A worker that GET …/workers lists from now on, besides the endpoint's first one."""
        with self.changed:
            self.later.setdefault(endpoint_id, []).append(worker)
            self.lines.setdefault(worker, [])

    def workers(self, endpoint_id: str) -> list[str]:
        with self.changed:
            return list(self.later.get(endpoint_id, []))

    def _event(self, ts: str, line: str) -> tuple[str, str, str]:
        self._seq += 1
        return f"{ts}/{self._seq:012d}", ts, line

    def _log(self, worker: str) -> list[tuple[str, str, str]]:
        if worker not in self.lines:  # a worker nobody wrote for prints the default crash
            self.lines[worker] = [self._event(DEFAULT_TS, line) for line in DEFAULT]
        return self.lines[worker]

    def serve(self, handler: BaseHTTPRequestHandler, worker: str, query: str) -> None:
        """Answer one log-stream request on `handler` (called outside the emulator's lock)."""
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        cursor = handler.headers.get("Last-Event-ID") or ""
        with self.changed:
            self.connections.append((worker, cursor))
            log = self._log(worker)
            if cursor:
                position = next((i for i, e in enumerate(log) if e[0] >= cursor), len(log))
            elif "since" in params:
                position = next((i for i, e in enumerate(log) if e[1] >= params["since"]), len(log))
            else:
                tail = int(params.get("tail", 100))
                if not 0 <= tail <= 5000:
                    return _refuse(handler, f"tail {tail} is out of range (0..5000)")
                position = max(0, len(log) - tail)
            self.changed.notify_all()
        handler.send_response(200)
        for key, value in (
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
            ("Transfer-Encoding", "chunked"),
        ):
            handler.send_header(key, value)
        handler.end_headers()
        sent = 0
        try:
            while self.close_after is None or sent < self.close_after:
                with self.changed:
                    log = self.lines[worker]
                    if position == len(log) and self.hold > 0:
                        self.changed.wait_for(lambda at=position, log=log: at < len(log), timeout=self.hold)
                    if position == len(log):
                        break
                    event_id, ts, line = log[position]
                position += 1
                sent += 1
                payload = json.dumps({"ts": ts, "source": "container", "line": line})
                _chunk(handler, f"id: {event_id}\ndata: {payload}\n\n".encode())
            _chunk(handler, b"")
        except OSError:
            pass  # the reader left
        handler.close_connection = True


def _chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


def _refuse(handler: BaseHTTPRequestHandler, detail: str) -> None:
    body: Any = json.dumps({"title": "Bad Request", "status": 400, "detail": detail}).encode()
    handler.send_response(400)
    handler.send_header("Content-Type", "application/problem+json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
