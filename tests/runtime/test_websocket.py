"""WebSocket routes in a real worker subprocess, with a real client library (websockets), and
endpoint(...).websocket from one worker to another."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

REPO = Path(__file__).resolve().parents[2]
MB = 1_000_000


@pytest.fixture(scope="module")
def ws_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    root = tmp_path_factory.mktemp("ws-app")
    shutil.copytree(REPO / "tests" / "apps" / "ws", root, dirs_exist_ok=True)
    return build(validate_file(root / "flash.toml")).out_dir


@pytest.fixture(scope="module")
def rt(ws_build: Path, worker_type: type) -> Iterator[Any]:
    """One `rt` worker shared by the module's read-only tests, with a worker id as RunPod gives one."""
    worker = worker_type(ws_build / "rt", {"RUNPOD_POD_ID": "rt-worker-1"})
    try:
        worker.wait_listening()
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def ws_url(worker: Any, path: str) -> str:
    return "ws" + worker.url.removeprefix("http") + path


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_echo_round_trips_text_and_1mb_binary_and_answers_pings(rt: Any) -> None:
    async def talk() -> list[Any]:
        async with connect(ws_url(rt, "/echo"), max_size=4 * MB) as ws:
            await ws.send("hello")
            text = await ws.recv()
            frame = (bytes(range(256)) * (MB // 256 + 1))[:MB]
            await ws.send(frame)
            echoed = await ws.recv()
            await asyncio.wait_for(await ws.ping(), 5)  # the worker answers pings
            await ws.send("bye")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return [text, echoed == frame, len(echoed), closed.value.rcvd.code]

    assert run(talk()) == ["hello", True, MB, 1000]


def test_server_push_stream_binds_path_and_query_parameters(rt: Any) -> None:
    async def listen(path: str) -> tuple[list[Any], int | None]:
        async with connect(ws_url(rt, path), max_size=4 * MB) as ws:
            received = [message async for message in ws]
            return received, ws.close_code

    assert run(listen("/push/news?count=3")) == (
        [json.dumps({"topic": "news", "index": i}, separators=(",", ":")) for i in range(3)],
        1000,
    )
    frames, code = run(listen(f"/push/blobs?count=2&size={MB}"))
    assert (code, [len(f) for f in frames], [f[:4] for f in frames]) == (1000, [MB, MB], [b"\0\0\0\0", b"\0\0\0\1"])


def test_close_codes_travel_both_ways(rt: Any) -> None:
    async def server_closes() -> tuple[int, str]:
        async with connect(ws_url(rt, "/echo")) as ws:
            await ws.send("close:4001")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code, closed.value.rcvd.reason

    assert run(server_closes()) == (4001, "asked to")

    async def client_closes() -> None:
        async with connect(ws_url(rt, "/echo"), additional_headers={"X-Request-ID": "client-4002"}) as ws:
            await ws.close(4002, "client says")

    run(client_closes())
    line = '"path": "/echo", "status": 101, "close": 4002'
    wait_for(lambda: line in rt.output() and "client-4002" in rt.output(), "the worker's log line of the close")


def test_a_handler_exception_closes_1011_and_logs_once_with_the_request_id(rt: Any) -> None:
    async def talk() -> tuple[int, str]:
        async with connect(ws_url(rt, "/boom"), additional_headers={"X-Request-ID": "ws-boom-1"}) as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code, closed.value.rcvd.reason

    assert run(talk()) == (1011, "internal error")  # the detail stays in the log
    wait_for(lambda: '"close": 1011' in rt.output(), "the socket's log line")
    output = rt.output()
    assert output.count("unhandled error in WS /boom [ws-boom-1]") == 1
    assert output.count("ValueError: secret internal detail") == 1


def test_a_message_over_the_limit_closes_1009(rt: Any) -> None:
    from flash_runtime.websocket import MAX_MESSAGE_BYTES

    async def talk() -> int | None:
        async with connect(ws_url(rt, "/echo"), max_size=None) as ws:
            try:
                await ws.send(b"x" * (MAX_MESSAGE_BYTES + 1))
                await ws.recv()
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
        return None

    assert run(talk()) == 1009


def test_answers_before_the_upgrade_are_json_and_carry_the_worker_id(rt: Any) -> None:
    plain = requests.get(rt.url + "/echo", headers={"X-Request-ID": "r-426"})
    assert (plain.status_code, plain.json()) == (
        426,
        {"error": "/echo is a WebSocket route: connect with Upgrade: websocket", "request_id": "r-426"},
    )
    assert plain.headers["X-Runpod-Worker-Id"] == "rt-worker-1"
    assert requests.get(rt.url + "/hello").headers["X-Runpod-Worker-Id"] == "rt-worker-1"

    async def bad_parameter() -> tuple[int, Any]:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(rt, "/push/x?count=many")):
                pass
        answer = refused.value.response
        return answer.status_code, json.loads(answer.body)["error"]

    assert run(bad_parameter()) == (422, "argument 'count': expected int, got 'many'")


def test_an_open_socket_counts_as_in_flight_work_on_ping(rt: Any) -> None:
    def open_sockets() -> int:
        return int(requests.get(rt.url + "/ping").json()["websockets"])

    async def hold() -> list[int]:
        seen = [open_sockets()]
        async with connect(ws_url(rt, "/echo")) as one, connect(ws_url(rt, "/echo")) as two:
            for ws in (one, two):
                await ws.send("up")
                assert await ws.recv() == "up"
            seen.append(await asyncio.to_thread(open_sockets))
        return seen

    assert run(hold()) == [0, 2]
    wait_for(lambda: open_sockets() == 0, "the count to drop once both closed")


def test_openapi_lists_websocket_routes_in_an_extension_and_manifest_lists_them(rt: Any) -> None:
    from openapi_spec_validator import validate

    document = requests.get(rt.url + "/openapi.json").json()
    validate(document)
    assert set(document["paths"]) == {"/hello"}
    sockets = document["x-flash-websocket"]
    assert set(sockets) == {"/echo", "/push/{topic}", "/boom", "/headers", "/sink"}
    assert sockets["/push/{topic}"]["parameters"] == [
        {"name": "topic", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "count", "in": "query", "required": False, "schema": {"type": "integer", "default": 3}},
        {"name": "size", "in": "query", "required": False, "schema": {"type": "integer", "default": 0}},
    ]
    assert sockets["/echo"]["summary"].startswith("Every message back as it came")
    assert sockets["/echo"]["maxMessageBytes"] == 16 * 1024 * 1024
    assert requests.get(rt.url + "/manifest").json()["routes"] == [
        "WS /echo",
        "WS /push/{topic}",
        "WS /boom",
        "WS /headers",
        "WS /sink",
        "GET /hello",
    ]


def test_sigterm_closes_open_sockets_with_1001(ws_build: Path, start_worker) -> None:
    worker = start_worker(ws_build / "rt")

    async def talk() -> list[Any]:
        async with connect(ws_url(worker, "/echo")) as one, connect(ws_url(worker, "/push/x?count=-1")) as two:
            await one.send("up")
            assert await one.recv() == "up"
            await two.recv()  # the endless stream is flowing
            worker.proc.send_signal(signal.SIGTERM)
            codes = []
            for ws in (one, two):
                try:
                    while True:
                        await ws.recv()
                except ConnectionClosed as closed:
                    codes.append((closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else None)
            return codes

    assert run(talk()) == [(1001, "the worker is stopping")] * 2
    assert worker.proc.wait(timeout=20) == 0
    assert "closing 2 open WebSocket(s) with 1001" in worker.output()


def test_a_websocket_handler_must_be_async(tmp_path: Path, worker_type: type, flash) -> None:
    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    shutil.copytree(REPO / "tests" / "apps" / "ws", tmp_path, dirs_exist_ok=True)
    config = tmp_path / "flash.toml"
    original = config.read_text()
    config.write_text(original.replace('"svc.sockets:echo"', '"svc.sockets:hello"'))
    refused = flash("validate", cwd=tmp_path)
    assert (refused.code, refused.out.splitlines()[:2]) == (
        2,
        [
            'flash.toml:11:14: error: endpoints.rt.routes."WS /echo": WebSocket handler svc.sockets:hello is a plain `def`',
            "  hint: make it `async def hello(ws, ...)`",
        ],
    )
    # A worker whose shipped handler is not async (edited after the build) refuses to start.
    config.write_text(original)
    out = build(validate_file(config)).out_dir / "rt"
    handlers = out / "src" / "svc" / "sockets.py"
    handlers.write_text(handlers.read_text() + "\n\ndef echo(ws):  # replaces the async one\n    return None\n")
    worker = worker_type(out)
    assert worker.proc.wait(timeout=30) == 3
    assert "WebSocket handler svc.sockets:echo must be `async def echo(ws, ...)`" in worker.output()


def test_endpoint_websocket_from_another_worker_rides_out_a_cold_start(
    ws_build: Path, start_worker, tmp_path: Path
) -> None:
    gate = tmp_path / "warm"
    callee = start_worker(ws_build / "rt", {"WS_INIT_GATE": str(gate), "RUNPOD_POD_ID": "rt-7"}, ready=False)
    env = {"FLASH_ENDPOINTS": json.dumps({"rt": callee.url}), "FLASH_CALL_KEY": "k-ws"}
    caller = start_worker(ws_build / "caller", env)
    # The callee is initializing (/ping 204): the caller's socket to it waits through 503s.
    assert requests.get(callee.url + "/ping").status_code == 204

    async def talk() -> list[Any]:
        async with connect(ws_url(caller, "/relay"), max_size=4 * MB) as ws:  # caller -> rt: a cold start
            await asyncio.to_thread(wait_for, lambda: '"path": "/echo", "status": 503' in callee.output(), "a 503")
            gate.touch()  # the caller met the cold start: init may now finish
            first = json.loads(await ws.recv())
            await ws.send("one")
            await ws.send(b"\x01" * MB)
            answers = [await ws.recv(), len(await ws.recv())]
            return [first, *answers]

    # Direct to a worker the 101 carries no worker id (RunPod's balancer and the local one add it).
    assert run(talk()) == [{"worker": None}, "one", MB]
    collected = requests.post(caller.url + "/collect", json={"topic": "t", "count": 2}).json()
    assert collected == {
        "received": ['{"topic":"t","index":0}', '{"topic":"t","index":1}'],
        "close": 1000,
    }
    pinned = requests.post(caller.url + "/pinned", json={"worker": "strict rt-7"}, headers={"X-Request-ID": "r-pin"})
    assert pinned.json() == {
        "seen": {"authorization": "Bearer k-ws", "x-request-id": "r-pin", "x-runpod-worker-id": "strict rt-7"}
    }

    async def callee_closes() -> tuple[int, str]:  # rt closes 4005: the bridge closes us with it
        async with connect(ws_url(caller, "/relay")) as ws:
            await ws.recv()
            await ws.send("close:4005")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code, closed.value.rcvd.reason

    async def client_closes() -> None:  # we close 4006: the bridge closes rt's socket with it
        async with connect(ws_url(caller, "/relay")) as ws:
            await ws.recv()
            await ws.close(4006, "client done")

    assert run(callee_closes()) == (4005, "asked to")
    run(client_closes())
    wait_for(
        lambda: '"path": "/echo", "status": 101, "close": 4006' in callee.output(),
        "rt's log line of 4006\n" + callee.output() + caller.output(),
    )


def test_flash_call_ws_round_trip_against_a_worker(ws_build: Path, start_worker, tmp_path: Path) -> None:
    """`flash call ENDPOINT WS /path`'s session: lines out, messages printed until the endpoint closes."""
    from flash_pipeline.cli.callws import lines_of, session, websocket_url

    gate = tmp_path / "warm"
    worker = start_worker(ws_build / "rt", {"WS_INIT_GATE": str(gate)}, ready=False)
    url = websocket_url(worker.url) + "/echo"
    progress: list[str] = []
    printed: list[str] = []

    def echo(line: str) -> None:
        progress.append(line)
        gate.touch()  # the session met the cold start: let the worker finish its init

    (tmp_path / "lines.txt").write_text("one\ntwo\nbye\n")
    closed = session(url, {}, lines_of("@" + str(tmp_path / "lines.txt")), deadline=30, echo=echo, out=printed.append)
    assert (closed, printed) == ((1000, ""), ["one", "two"])
    assert progress == [f"flash: {url} is starting (HTTP 503)"]
    printed.clear()
    closed = session(url, {}, lines_of("hi\nclose:4003"), deadline=30, echo=echo, out=printed.append)
    assert (closed, printed) == ((4003, "asked to"), ["hi"])
    printed.clear()
    push = websocket_url(worker.url) + "/push/b?count=1&size=10"
    assert session(push, {}, [], deadline=30, echo=echo, out=printed.append) == (1000, "")
    assert printed == ["<binary message: 10 bytes>"]


def test_flash_call_ws_exit_codes(tmp_path: Path, flash) -> None:
    shutil.copytree(REPO / "tests" / "apps" / "ws", tmp_path, dirs_exist_ok=True)
    missing = flash("call", "rt", "WS", "/echo", "-d", "@nope.txt", "--target", "local", cwd=tmp_path)
    assert (missing.code, missing.err.splitlines()[0]) == (
        2,
        "flash: error: cannot read nope.txt: No such file or directory",
    )
    absent = flash("call", "rt", "WS", "/echo", "-d", "hi", "--target", "local", cwd=tmp_path)
    assert (absent.code, absent.err.splitlines()[0]) == (2, "flash: error: rt is not running locally")


def test_a_socket_the_callee_refuses_or_that_never_opens_is_a_call_error(rt: Any) -> None:
    from flash_runtime import CallError, endpoint
    from flash_runtime.calls import Backoff, close

    async def open_socket(url: str, path: str) -> str:
        callee = endpoint("rt", environ={"FLASH_ENDPOINTS": json.dumps({"rt": url})}, policy=Backoff(deadline=1))
        try:
            async with callee.websocket(path):
                return "opened"
        except CallError as exc:
            return f"{exc.status}: {exc}"
        finally:
            await close()

    assert run(open_socket(rt.url, "/nowhere")) == "404: rt WS /nowhere: HTTP 404"  # final: never retried
    assert run(open_socket("http://127.0.0.1:1", "/echo")) == "None: rt WS /echo: could not connect"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(max_size=200), st.binary(max_size=70_000)), max_size=12))
def test_any_sequence_of_text_and_binary_messages_echoes_back_unchanged(rt: Any, messages: list[Any]) -> None:
    async def talk() -> list[Any]:
        async with connect(ws_url(rt, "/echo")) as ws:
            echoed = []
            for message in messages:
                if message in ("bye",) or (isinstance(message, str) and message.startswith("close:")):
                    continue  # the echo route's own commands
                await ws.send(message)
                echoed.append(await ws.recv())
            return echoed

    sent = [m for m in messages if m != "bye" and not (isinstance(m, str) and m.startswith("close:"))]
    assert run(talk()) == sent


def test_a_client_vanishing_mid_stream_ends_the_handler_quietly(ws_build: Path, start_worker) -> None:
    worker = start_worker(ws_build / "rt")

    async def vanish() -> None:
        async with connect(
            ws_url(worker, "/push/gone?count=-1&size=65536"), additional_headers={"X-Request-ID": "gone-1"}
        ) as ws:
            await ws.recv()
            ws.transport.abort()  # no close frame: the TCP connection just ends

    run(vanish())
    wait_for(lambda: '"close": 1006' in worker.output(), "the socket's log line")
    assert requests.get(worker.url + "/ping").json() == {"status": "ready", "websockets": 0}
    assert "unhandled error" not in worker.output() and "Traceback" not in worker.output()


def test_messages_sent_just_before_a_close_all_reach_the_handler(rt: Any) -> None:
    async def send_and_close() -> None:
        async with connect(ws_url(rt, "/sink")) as ws:
            for n in range(3):
                await ws.send(f"m{n}")
            await ws.close(4010, "that was all")

    run(send_and_close())
    wait_for(lambda: "sink: 3 message(s), closed with 4010" in rt.output(), "the handler's count\n" + rt.output())
