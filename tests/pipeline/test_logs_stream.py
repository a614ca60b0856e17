"""The one SSE reader (flash_pipeline.targets.runpod.sse) and `flash logs -f` on RunPod: streams that
RunPod closes are resumed with Last-Event-ID, workers that start later are followed."""

from __future__ import annotations

import itertools
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from flash_pipeline.cli.logs import runpod_logs
from flash_pipeline.config.validate import validate_file
from flash_pipeline.targets.runpod import sse
from flash_runtime.backoff import Backoff

REPO = Path(__file__).resolve().parents[2]
BODY = (
    b": a comment\r\n"
    b"id: 1\r\ndata: one\r\n\r\n"
    b"event: note\ndata: two\ndata:  lines\n\n"
    b"retry: 10\rdata: three\r\r"
    b"id: bad\x00id\ndata: four\n\n"
    b"id\ndata\n\n"
    b"data: left unfinished"
)
EVENTS = [
    sse.Event("one", "1"),
    sse.Event("two\n lines", "1", "note"),  # the last event ID stays until another comes
    sse.Event("three", "1"),
    sse.Event("four", "1"),  # an id with NUL is ignored
    sse.Event("", ""),  # a bare `id` resets it; a bare `data` is an empty line of data
]


def test_parse_follows_the_event_stream_rules() -> None:
    assert list(sse.parse(sse._lines([BODY]))) == EVENTS
    assert list(sse.parse(["id", "data", ""])) == [sse.Event("", "")]


@given(st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=12))
def test_parse_does_not_depend_on_how_the_body_is_cut(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(BODY)]
    chunks = [BODY[a:b] for a, b in itertools.pairwise(bounds)]
    assert list(sse.parse(sse._lines(chunks))) == EVENTS


def test_log_line_reads_runpods_payload_and_keeps_anything_else() -> None:
    assert sse.log_line(sse.Event('{"ts": "2026-11-23T00:00:00Z", "source": "container", "line": "hi"}')) == (
        "2026-11-23T00:00:00Z",
        "hi",
    )
    assert sse.log_line(sse.Event("plain text")) == ("", "plain text")
    assert sse.log_line(sse.Event("[1, 2]")) == ("", "[1, 2]")


def test_resume_reconnects_with_the_cursor_drops_its_repeat_and_ends_on_a_gone_worker() -> None:
    cursors: list[str] = []
    connections = [
        [sse.Event("a", "1"), sse.Event("b", "2")],  # closed by the server
        [sse.Event("b", "2"), sse.Event("c", "3")],  # resumed "from this point": b again
        [],  # closed at once: back off, then again
        "refused 503",
        [sse.Event("c", "3"), sse.Event("d", "3")],  # only the first repeat is dropped
        "refused 404",  # the worker is gone
    ]

    def open_stream(cursor: str) -> Iterator[sse.Event]:
        cursors.append(cursor)
        answer = connections[len(cursors) - 1]
        if isinstance(answer, str):
            raise sse.StreamRefused(int(answer.split()[1]))
        yield from answer

    stop = threading.Event()
    got = [e.data for e in sse.resume(open_stream, stop, Backoff(initial=0, cap=0))]
    assert got == ["a", "b", "c", "d"]
    assert cursors == ["", "2", "3", "3", "3", "3"]


def test_resume_stops_when_asked() -> None:
    stop = threading.Event()

    def open_stream(cursor: str) -> Iterator[sse.Event]:
        yield sse.Event("x", "1")
        stop.set()
        yield sse.Event("y", "2")

    assert [e.data for e in sse.resume(open_stream, stop)] == ["x"]


def test_logs_follow_resumes_a_closed_stream_and_follows_a_worker_that_starts_later(
    tmp_path: Path, flash, emulator
) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "flash.toml.example", tmp_path / "flash.toml")
    assert flash("deploy", cwd=tmp_path).code == 0
    endpoint_id = next(i for i, e in emulator.endpoints.items() if e.body["name"] == "demo-data-api")
    worker = f"w-{endpoint_id}"
    logs = emulator.logs
    logs.close_after, logs.hold = 2, 5.0  # every connection ends after two events: RunPod closed it

    from flash_pipeline.targets.runpod.provider import RunpodProvider

    project = validate_file(tmp_path / "flash.toml", "flash.toml", None)
    printed: list[str] = []
    seen = threading.Condition()
    stop = threading.Event()

    def echo(line: str) -> None:
        with seen:
            printed.append(line)
            seen.notify_all()

    def follow() -> None:
        runpod_logs(project, "data-api", None, True, RunpodProvider.from_environment(), echo, stop=stop, poll=0.05)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        with logs.changed:  # following shows the lines since it began: write once it has
            assert logs.changed.wait_for(lambda: any(w == worker for w, _ in logs.connections), timeout=30)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for n in range(1, 6):
            logs.write(worker, f"line {n}", ts=now)
        with seen:
            assert seen.wait_for(lambda: len(printed) == 5, timeout=30), printed
        logs.start_worker(endpoint_id, "w-late")
        logs.write("w-late", "a late worker is ready", ts=now)
        with seen:
            assert seen.wait_for(lambda: len(printed) == 6, timeout=30), printed
    finally:
        stop.set()
        follower.join(timeout=30)
    assert not follower.is_alive()
    assert printed == [f"{now} data-api-{worker} | line {n}" for n in range(1, 6)] + [
        f"{now} data-api-w-late | a late worker is ready"
    ]
    ids = [event_id for event_id, _, _ in logs.lines[worker]]
    resumed = [cursor for w, cursor in logs.connections if w == worker]
    # the first connection (no cursor), then each resumed from the last event flash printed
    assert resumed[0] == "" and set(resumed[1:]) <= set(ids) and ids[-2] in resumed
    assert resumed == sorted(resumed) and len(resumed) >= 5
    assert emulator.api_key not in "\n".join(printed)


def test_logs_follow_on_runpod_runs_until_ctrl_c(tmp_path: Path, flash, emulator) -> None:
    import os
    import signal
    import subprocess
    import sys

    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "flash.toml.example", tmp_path / "flash.toml")
    assert flash("deploy", cwd=tmp_path).code == 0
    endpoint_id = next(i for i, e in emulator.endpoints.items() if e.body["name"] == "demo-data-api")
    logs = emulator.logs
    logs.hold = 0.2  # RunPod closes the stream after every quiet moment: flash keeps resuming it
    follower = subprocess.Popen(
        [sys.executable, "-m", "flash_pipeline", "logs", "data-api", "--follow"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with logs.changed:
            assert logs.changed.wait_for(lambda: len(logs.connections) >= 2, timeout=60)  # resumed at least once
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        logs.write(f"w-{endpoint_id}", "still here", ts=now)  # between two connections, or during one
        assert follower.stdout is not None
        assert follower.stdout.readline() == f"{now} data-api-w-{endpoint_id} | still here\n"
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
        assert follower.returncode == 130
        assert err.endswith("flash: interrupted\n")
    finally:
        if follower.poll() is None:
            os.kill(follower.pid, signal.SIGKILL)
