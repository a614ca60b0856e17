"""`flash logs`: the workers' output, newest last, each line prefixed `endpoint-worker |`.

Local target: the detached supervisor's log (rotated files read oldest first; each line carries
its UTC time). RunPod: each worker's log stream, which the RunPod backend lists and opens (Server-Sent Events,
read by flash_pipeline.targets.runpod.sse), backfilled with `tail` or from `since`, merged by time.
`--follow` keeps reading until Ctrl-C: each stream resumed with `Last-Event-ID` when RunPod
closes it, and the workers that start later followed too.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from flash_pipeline.config.model import Project
from flash_pipeline.errors import ApiError, UsageError

if TYPE_CHECKING:
    from flash_pipeline.targets.runpod import sse
    from flash_pipeline.targets.runpod.provider import RunpodProvider

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
    try:
        rotated = [
            p.read_text(encoding="utf-8", errors="replace")
            for p in (log.with_name(f"{log.name}.{n}") for n in (2, 1))
            if p.exists()
        ]
        handle = log.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(
            f"cannot read {exc.filename or log}: {exc.strerror or exc}",
            "move it away: the next `flash deploy --target local --detach` writes the log again",
        ) from None
    for text in rotated:
        for line in text.splitlines():
            _local_line(line, key, since, echo)
    with handle:  # read on from where the backfill ends
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
        sleep(0.25)  # a poll, not a retry (`tail -f`): a regular file gives no event for new lines
        try:
            rotated = path.stat().st_ino != inode
        except FileNotFoundError:
            continue
        if rotated:  # the handler moved it to .1 and began a new file: read that from its start
            handle.close()
            handle = path.open(encoding="utf-8", errors="replace")
            inode = os.fstat(handle.fileno()).st_ino


# -- RunPod ----------------------------------------------------------------------------------
FOLLOW_POLL = 15.0  # seconds between listings of the workers while following
FOLLOW_IDLE = 60.0  # a followed stream quiet this long is reconnected (a silent proxy may have dropped it)


def runpod_logs(
    project: Project,
    key: str | None,
    since: datetime | None,
    follow: bool,
    provider: RunpodProvider,
    echo: Callable[[str], None],
    *,
    stop: threading.Event | None = None,
    poll: float = FOLLOW_POLL,
    note: Callable[[str], None] | None = None,
) -> None:
    """Each worker's log stream (flash_pipeline.targets.runpod.sse reads them).

    Without `follow`: the backfill of every worker, merged by time. With it: every stream resumed
    with `Last-Event-ID` whenever RunPod closes it, and the workers listed again every `poll`
    seconds so that workers which start later are followed too; until Ctrl-C (or `stop`).
    """
    keys = [e.key for e in project.endpoints] if key is None else [key]
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ") if since else None
    if not follow:
        _, streams = _workers(project, keys, provider)
        if not streams:
            raise _no_workers(keys)
        query = f"since={stamp}" if stamp else f"tail={TAIL}"
        lines = [item for stream in streams for item in _backfill(provider, stream, query)]
        for when, text in sorted(lines, key=lambda item: item[0]):
            echo(f"{when} {text}")
        return
    stop = stop or threading.Event()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lock = threading.Lock()
    followed: set[tuple[str, str, str]] = set()
    live, streams = _workers(project, keys, provider)
    if not live:
        raise _no_workers(keys)
    if not streams and note is not None:
        note(f"flash: no workers of {', '.join(keys)} yet; following the ones that start (Ctrl-C to stop)")
    # From --since, else the lines since following began (not `tail=0`: a stream RunPod closes
    # before its first event is opened again from there, and a worker that starts later shows all
    # of its lines); once an event came, the stream resumes from it (Last-Event-ID).
    query = f"since={stamp or started}"
    while True:
        for stream in streams:
            if stream in followed:
                continue
            followed.add(stream)
            thread = threading.Thread(target=_pump, args=(provider, stream, query, stop, lock, echo), daemon=True)
            thread.start()
        # A poll, not a retry: new workers appear with no event. Ctrl-C raises KeyboardInterrupt here.
        if stop.wait(poll):
            return
        try:
            _, streams = _workers(project, keys, provider)
        except ApiError:
            continue  # listing failed after the client's retries: the streams go on; list again later


def _no_workers(keys: list[str]) -> ApiError:
    return ApiError(
        "logs", f"no workers of {', '.join(keys)} on RunPod to read logs from", hint="flash status shows them"
    )


def _workers(
    project: Project, keys: list[str], provider: RunpodProvider
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The live endpoints among `keys`, and ("endpoint-worker", endpoint id, worker id) of each of
    their workers (the backend lists them and opens their log streams)."""
    from flash_pipeline.targets.runpod.deploy import families
    from flash_pipeline.targets.runpod.ownership import claim
    from flash_pipeline.targets.runpod.survivors import prefer

    backend = provider.backend
    claims = claim(project.name, project.environment, [e.key for e in project.endpoints], backend.list())
    live = prefer(claims, families(project)).live()  # of several endpoints of a name, the one deploy keeps
    found = []
    for name in keys:
        if name not in live:
            continue
        endpoint_id = str(live[name]["id"])
        for worker in backend.log_workers(endpoint_id, name):
            found.append((f"{name}-{worker}", endpoint_id, worker))
    return [name for name in keys if name in live], found


def _print(provider: RunpodProvider, prefix: str, event: sse.Event) -> tuple[str, str]:
    from flash_pipeline.targets.runpod import sse

    when, line = sse.log_line(event)
    return when, f"{prefix} | {provider.client.redact(line)}"


def _backfill(provider: RunpodProvider, stream: tuple[str, str, str], query: str) -> list[tuple[str, str]]:
    """One worker's backfill: the stream read until it is quiet for 2 s (RunPod holds it open)."""
    from flash_pipeline.targets.runpod import sse

    prefix, endpoint_id, worker = stream
    try:
        return [_print(provider, prefix, e) for e in provider.backend.logs(endpoint_id, worker, query, idle=2.0)]
    except sse.StreamRefused:
        return []  # a worker that went away between the listing and its logs


def _pump(
    provider: RunpodProvider,
    stream: tuple[str, str, str],
    query: str,
    stop: threading.Event,
    lock: threading.Lock,
    echo: Callable[[str], None],
) -> None:
    """Follow one worker's stream until `stop`, resuming it after every close."""
    from flash_pipeline.targets.runpod import sse

    prefix, endpoint_id, worker = stream

    def open_stream(cursor: str) -> Iterator[sse.Event]:
        return provider.backend.logs(endpoint_id, worker, query, last_event_id=cursor, idle=FOLLOW_IDLE)

    for event in sse.resume(open_stream, stop):
        when, text = _print(provider, prefix, event)
        with lock:
            echo(f"{when} {text}")
