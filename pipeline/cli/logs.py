"""`flash logs`: the workers' output, newest last, each line prefixed `endpoint-worker |`.

Local target: the detached supervisor's log (rotated files read oldest first; each line carries
its UTC time). RunPod: each worker's log stream from the API (Server-Sent Events), backfilled
with `tail` or from `since`, merged by time. `--follow` keeps reading until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from flash_pipeline.config.model import Project
from flash_pipeline.errors import ApiError, UsageError

_SINCE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (.*)")
TAIL = 100  # lines per worker when neither --since nor --follow narrows it


def parse_since(text: str | None) -> datetime | None:
    """`10m`, `2h`, `30s`, `1d` before now, as a UTC time."""
    if text is None:
        return None
    match = _SINCE.fullmatch(text.strip())
    if not match:
        raise UsageError(f"--since {text!r} is not a duration", "write a number and a unit: 30s, 10m, 2h or 1d")
    return datetime.now(UTC) - timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _ours(text: str, key: str | None) -> bool:
    return key is None or re.match(rf"{re.escape(key)}-\d+ \| ", text) is not None


# -- the local target ------------------------------------------------------------------------
def local_logs(
    project: Project,
    key: str | None,
    since: datetime | None,
    follow: bool,
    echo: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    from flash_pipeline.targets.local import control

    log = control.paths(project).log
    if not log.exists():
        raise UsageError(
            f"no local log for {project.name}",
            "deploy with --target local --detach (an attached deploy prints its output in its own terminal)",
        )
    for path in [log.with_name(f"{log.name}.{n}") for n in (2, 1)]:
        if path.exists():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                _local_line(line, key, since, echo)
    with log.open(encoding="utf-8", errors="replace") as handle:  # read on from where the backfill ends
        for line in handle:
            _local_line(line.rstrip("\n"), key, since, echo)
        if follow:
            _tail(log, handle, lambda line: _local_line(line, key, None, echo), sleep)


def _local_line(line: str, key: str | None, since: datetime | None, echo: Callable[[str], None]) -> None:
    match = _STAMP.match(line)
    if match is None:
        if since is None and _ours(line, key):  # a line written before logs carried their time
            echo(line)
        return
    if _ours(match.group(2), key) and (since is None or _when(match.group(1)) >= since):
        echo(line)


def _tail(path: Path, handle: TextIO, emit: Callable[[str], None], sleep: Callable[[float], None]) -> None:
    """New lines of a rotated log as they come, until interrupted (Ctrl-C)."""
    inode = os.fstat(handle.fileno()).st_ino
    while True:
        line = handle.readline()
        if line:
            emit(line.rstrip("\n"))
            continue
        sleep(0.25)
        try:
            rotated = path.stat().st_ino != inode
        except FileNotFoundError:
            continue
        if rotated:  # the handler moved it to .1 and began a new file: read that from its start
            handle.close()
            handle = path.open(encoding="utf-8", errors="replace")
            inode = os.fstat(handle.fileno()).st_ino


# -- RunPod ----------------------------------------------------------------------------------
def runpod_logs(
    project: Project, key: str | None, since: datetime | None, follow: bool, provider: Any, echo: Callable[[str], None]
) -> None:
    from flash_pipeline.targets.runpod.ownership import claim

    keys = [e.key for e in project.endpoints] if key is None else [key]
    live = claim(project.name, project.environment, [e.key for e in project.endpoints], provider.backend.list()).live()
    streams = []
    for name in keys:
        found = live.get(name)
        if found is None:
            continue
        endpoint_id = str(found["id"])
        answer = provider.client.request(f"workers of {name}", "GET", f"/v2/serverless/{endpoint_id}/workers")
        for worker in (answer or {}).get("workers") or []:
            # --since picks the start; else the last TAIL lines (none when following: new ones only)
            query = f"since={since.strftime('%Y-%m-%dT%H:%M:%SZ')}" if since else f"tail={0 if follow else TAIL}"
            path = f"/v2/serverless/{endpoint_id}/workers/{worker['id']}/logs?{query}"
            streams.append((f"{name}-{worker['id']}", path))
    if not streams:
        raise ApiError(
            "logs", f"no workers of {', '.join(keys)} on RunPod to read logs from", hint="flash status shows them"
        )
    if not follow:
        lines = [item for prefix, path in streams for item in _events(provider, prefix, path, idle=2.0)]
        for stamp, text in sorted(lines, key=lambda item: item[0]):
            echo(f"{stamp} {text}")
        return
    lock = threading.Lock()

    def pump(prefix: str, path: str) -> None:
        for stamp, text in _events(provider, prefix, path, idle=None):
            with lock:
                echo(f"{stamp} {text}")

    threads = [threading.Thread(target=pump, args=stream, daemon=True) for stream in streams]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):  # until every stream ends, or Ctrl-C
        time.sleep(0.25)


def _events(provider: Any, prefix: str, path: str, idle: float | None) -> Iterator[tuple[str, str]]:
    """(ts, "prefix | line") of one worker's log stream; stops after `idle` quiet seconds (None: never)."""
    import requests

    client = provider.client
    try:
        with client.session.get(client.base_url + path, stream=True, timeout=(10, idle)) as answer:
            if answer.status_code >= 400:
                return
            for raw in answer.iter_lines(decode_unicode=True):
                if not raw or not raw.startswith("data:"):
                    continue
                try:
                    event = json.loads(raw[5:])
                except ValueError:
                    continue
                yield str(event.get("ts", "")), f"{prefix} | {client.redact(str(event.get('line', '')))}"
    except (requests.ConnectionError, requests.Timeout):  # a quiet stream has given its backfill
        return
