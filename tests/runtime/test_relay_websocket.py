"""WebSockets through the one relay (flash_runtime/relay.py `Relay.upgrade`): the local balancer in
front of real workers of tests/apps/ws, and the mothership in front of that balancer
(`/<endpoint>/<path>`), checked by the same tests with a real client library (websockets). Also
worker affinity (`X-Runpod-Worker-Id`) and socket-aware scaling on the balancer. Every wait is
bounded and waits on an event (a worker state, a log line, a port), never on time."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from flash_pipeline.targets.local.balancer import Endpoint, EndpointSpec, parse_affinity
from flash_runtime.backoff import Backoff
from flash_runtime.mothership import Mothership
from tests.runtime.test_relay import BOUND, Loop, wait_until

REPO = Path(__file__).resolve().parents[2]
MB = 1_000_000


@pytest.fixture(scope="module")
def ws_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    root = tmp_path_factory.mktemp("ws-relay-app")
    shutil.copytree(REPO / "tests" / "apps" / "ws", root, dirs_exist_ok=True)
    return build(validate_file(root / "flash.toml")).out_dir


class Front:
    """The balancer of `rt` (one Endpoint on a loop of its own), optionally a mothership before it."""

    def __init__(self, build: Path, minimum: int, maximum: int, idle: int, *, ship: bool = False) -> None:
        self.lines: list[str] = []
        spec = EndpointSpec(
            "rt", "rt", str(build / "rt"), "d" * 64, {"LOG_LEVEL": "INFO"}, minimum, maximum, 1, idle, 0
        )
        spec.timeout = 60.0
        self.loop = Loop()
        self.endpoint = Endpoint(spec, self.lines.append)
        self.loop.run(self.endpoint.start())
        self.balancer = f"ws://127.0.0.1:{spec.port}"
        self.runner: web.AppRunner | None = None
        self.ship = ""
        if ship:
            app = {"app": "ws-test", "environment": None, "endpoints": {"rt": []}}
            policy = Backoff(deadline=BOUND, initial=0.05, cap=0.5)
            mothership = Mothership(app, {"rt": f"http://127.0.0.1:{spec.port}"}, "k-ship", policy=policy)

            async def start() -> tuple[web.AppRunner, int]:
                runner = web.AppRunner(mothership.web_app(), handler_cancellation=True, access_log=None)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                return runner, runner.addresses[0][1]

            self.runner, port = self.loop.run(start())
            self.ship = f"ws://127.0.0.1:{port}/rt"

    def workers(self) -> list[Any]:
        return list(self.endpoint.pool.workers)

    def log(self) -> str:
        return "\n".join(self.lines)

    def close(self) -> None:
        if self.runner is not None:
            self.loop.run(self.runner.cleanup())
        self.loop.run(self.endpoint.stop())
        self.loop.close()


@pytest.fixture(scope="module")
def front(ws_build: Path) -> Iterator[Front]:
    made = Front(ws_build, 1, 1, 3600, ship=True)
    try:
        wait_until(lambda: made.endpoint.pool.ready(), "a worker of rt is ready")
        yield made
    finally:
        made.close()


@pytest.fixture(params=["balancer", "mothership"])
def base(request: pytest.FixtureRequest, front: Front) -> str:
    return front.balancer if request.param == "balancer" else front.ship


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_echo_text_and_1mb_binary_frames_and_the_101_names_the_worker(base: str) -> None:
    async def talk() -> list[Any]:
        async with connect(base + "/echo", max_size=4 * MB, additional_headers={"X-Request-ID": "relay-ws-1"}) as ws:
            headers = ws.response.headers
            await ws.send("hello")
            text = await ws.recv()
            frame = (bytes(range(256)) * (MB // 256 + 1))[:MB]
            await ws.send(frame)
            echoed = await ws.recv()
            await asyncio.wait_for(await ws.ping(), BOUND)
            await ws.send("bye")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return [
                text,
                echoed == frame,
                closed.value.rcvd.code,
                headers["X-Runpod-Worker-Id"],
                headers["X-Request-ID"],
            ]

    assert run(talk()) == ["hello", True, 1000, "rt-1", "relay-ws-1"]


def test_server_push_streams_pass_in_order(base: str) -> None:
    async def listen(path: str) -> tuple[list[Any], int | None]:
        async with connect(base + path, max_size=4 * MB) as ws:
            return [message async for message in ws], ws.close_code

    texts, code = run(listen("/push/news?count=50"))
    assert (code, texts) == (
        1000,
        [json.dumps({"topic": "news", "index": i}, separators=(",", ":")) for i in range(50)],
    )
    frames, code = run(listen(f"/push/blobs?count=3&size={MB}"))
    assert (code, [len(f) for f in frames], [f[:4] for f in frames]) == (
        1000,
        [MB] * 3,
        [i.to_bytes(4, "big") for i in range(3)],
    )


def test_close_codes_travel_both_ways(base: str, front: Front) -> None:
    async def worker_closes() -> tuple[int, str]:
        async with connect(base + "/echo") as ws:
            await ws.send("close:4001")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code, closed.value.rcvd.reason

    assert run(worker_closes()) == (4001, "asked to")
    rid = f"close-4002-{base[-3:]}"

    async def client_closes() -> None:
        async with connect(base + "/echo", additional_headers={"X-Request-ID": rid}) as ws:
            await ws.send("ping")
            assert await ws.recv() == "ping"
            await ws.close(4002, "client says")

    run(client_closes())
    wait_until(
        lambda: any('"close": 4002' in line and rid in line for line in front.lines),
        "the worker's log line of the close with 4002\n" + front.log()[-2000:],
    )


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(max_size=200), st.binary(max_size=70_000)), max_size=10))
def test_any_sequence_of_text_and_binary_messages_passes_unchanged(base: str, messages: list[Any]) -> None:
    sent = [m for m in messages if m != "bye" and not (isinstance(m, str) and m.startswith("close:"))]

    async def talk() -> list[Any]:
        async with connect(base + "/echo") as ws:
            echoed = []
            for message in sent:  # (without the echo route's own commands)
                await ws.send(message)
                echoed.append(await ws.recv())
            return echoed

    assert run(talk()) == sent


def test_a_handshake_the_worker_refuses_is_answered_as_it_came(base: str) -> None:
    async def refused(path: str) -> tuple[int, dict[str, Any]]:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(base + path):
                pass
        answer = caught.value.response
        return answer.status_code, json.loads(answer.body)

    status, body = run(refused("/push/news?count=many"))
    assert status == 422 and "count" in json.dumps(body)


def test_strict_affinity_to_a_worker_that_is_gone_is_404_and_passes_through(base: str) -> None:
    async def pinned() -> tuple[int, dict[str, Any]]:
        headers = {"X-Runpod-Worker-Id": "strict rt-99", "X-Request-ID": "pin-gone"}
        with pytest.raises(InvalidStatus) as caught:
            async with connect(base + "/echo", additional_headers=headers):
                pass
        return caught.value.response.status_code, json.loads(caught.value.response.body)

    assert run(pinned()) == (404, {"error": "affinity_worker_gone", "request_id": "pin-gone"})


def test_endpoint_calls_pin_a_worker_through_either_proxy(base: str) -> None:
    from flash_runtime import CallError, endpoint

    url = base.replace("ws://", "http://")
    callee = endpoint("rt", environ={"FLASH_ENDPOINTS": json.dumps({"rt": url})}, policy=Backoff(deadline=BOUND))

    async def calls() -> tuple[Any, Any]:
        from flash_runtime.calls import close

        try:
            hello = await callee.get("/hello", worker="strict rt-1")
            with pytest.raises(CallError) as gone:
                await callee.get("/hello", worker="strict rt-99", headers={"X-Request-ID": "call-pin"})
        finally:
            await close()
        return hello, (gone.value.status, gone.value.body)

    assert run(calls()) == ({"hello": "world"}, (404, {"error": "affinity_worker_gone", "request_id": "call-pin"}))


def test_a_socket_to_an_http_route_is_answered_as_it_came_and_is_a_call_error(base: str) -> None:
    from flash_runtime import CallError, endpoint

    async def refused() -> tuple[int, Any]:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(base + "/hello"):
                pass
        return caught.value.response.status_code, json.loads(caught.value.response.body)

    assert run(refused()) == (200, {"hello": "world"})  # an HTTP route's answer, never a 101
    url = base.replace("ws://", "http://")
    callee = endpoint("rt", environ={"FLASH_ENDPOINTS": json.dumps({"rt": url})}, policy=Backoff(deadline=BOUND))

    async def opened() -> tuple[Any, str]:
        from flash_runtime.calls import close

        try:
            with pytest.raises(CallError) as failed:
                await callee.websocket("/hello")
        finally:
            await close()
        return failed.value.status, str(failed.value)

    assert run(opened()) == (200, "rt WS /hello: HTTP 200")


def test_a_malformed_affinity_header_is_a_clear_400(front: Front) -> None:
    import requests

    url = front.balancer.replace("ws://", "http://") + "/hello"
    answer = requests.get(url, headers={"X-Runpod-Worker-Id": "sticky rt-1", "X-Request-ID": "bad-pin"}, timeout=BOUND)
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "error": "X-Runpod-Worker-Id must be `<worker id>`, `strict <worker id>` or `strict-resume <worker id>`",
            "request_id": "bad-pin",
        },
    )
    plain = requests.get(url, timeout=BOUND)
    assert (plain.status_code, plain.headers["X-Runpod-Worker-Id"]) == (200, "rt-1")


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("rt-1", ("prefer", "rt-1")),
        ("strict rt-2", ("strict", "rt-2")),
        ("  Strict-Resume   rt-3 ", ("strict-resume", "rt-3")),
        ("", None),
        ("strict", ("prefer", "strict")),
        ("strict a b", None),
        ("loose rt-1", None),
    ],
)
def test_affinity_header_grammar(value: str, parsed: Any) -> None:
    assert parse_affinity(value) == parsed


def test_sockets_scale_hold_their_worker_and_affinity_pins_and_wakes(ws_build: Path) -> None:
    """min 0, max 2, one request per worker, idle_timeout 1 s: an open socket is work in flight."""
    import requests

    front = Front(ws_build, 0, 2, 1)
    http = front.balancer.replace("ws://", "http://")
    try:

        async def scenario() -> dict[str, Any]:
            seen: dict[str, Any] = {}
            async with connect(front.balancer + "/echo", open_timeout=BOUND) as first:  # a cold start: rt-1
                seen["first"] = first.response.headers["X-Runpod-Worker-Id"]
                async with connect(front.balancer + "/echo") as second:  # two sockets: demand 2
                    seen["second"] = second.response.headers["X-Runpod-Worker-Id"]
                    await asyncio.to_thread(
                        wait_until, lambda: len(front.endpoint.pool.ready()) == 2, "a second worker for the sockets"
                    )
                    # rt-1 holds both sockets; unpinned requests go to the idler rt-2, a soft pin to rt-1
                    loose = await asyncio.to_thread(requests.get, http + "/hello", timeout=BOUND)
                    soft = await asyncio.to_thread(
                        requests.get, http + "/hello", headers={"X-Runpod-Worker-Id": "rt-1"}, timeout=BOUND
                    )
                    seen["loose"] = loose.headers["X-Runpod-Worker-Id"]
                    seen["soft"] = soft.headers["X-Runpod-Worker-Id"]
                # the second socket closed: rt-2 is idle past 1 s and stops; rt-1 holds `first` and stays
                await asyncio.to_thread(
                    wait_until, lambda: [w.worker_id for w in front.workers()] == ["rt-1"], "rt-2 scaled down"
                )
                await first.send("still here")
                seen["held"] = await first.recv()
            await asyncio.to_thread(wait_until, lambda: not front.workers(), "rt-1 scaled down once its socket closed")
            return seen

        assert run(scenario()) == {
            "first": "rt-1",
            "second": "rt-1",
            "loose": "rt-2",
            "soft": "rt-1",
            "held": "still here",
        }
        assert "rt-2 | stopping (idle for 1s)" in front.log()
        gone = requests.get(http + "/hello", headers={"X-Runpod-Worker-Id": "strict rt-1", "X-Request-ID": "g"})
        assert (gone.status_code, gone.json()) == (404, {"error": "affinity_worker_gone", "request_id": "g"})
        assert not front.workers()  # a strict pin starts nothing
        front.endpoint.affinity_wait = 0.0  # RunPod waits ~5 min for the pinned worker; here: not at all
        late = requests.get(http + "/hello", headers={"X-Runpod-Worker-Id": "strict-resume rt-1", "X-Request-ID": "l"})
        assert (late.status_code, late.json()) == (404, {"error": "affinity_worker_gone", "request_id": "l"})
        front.endpoint.affinity_wait = BOUND
        waited = requests.get(http + "/hello", headers={"X-Runpod-Worker-Id": "strict rt-1"})  # rt-1 is starting
        assert (waited.status_code, waited.headers["X-Runpod-Worker-Id"]) == (200, "rt-1")

        async def wake() -> tuple[str, str]:
            headers = {"X-Runpod-Worker-Id": "strict-resume rt-2"}
            async with connect(front.balancer + "/echo", additional_headers=headers, open_timeout=BOUND) as ws:
                await ws.send("awake")
                return ws.response.headers["X-Runpod-Worker-Id"], await ws.recv()

        assert run(wake()) == ("rt-2", "awake")
        assert "rt-2 | resumed (X-Runpod-Worker-Id: strict-resume)" in front.log()
    finally:
        front.close()


def test_an_abrupt_end_goes_on_as_1011_and_a_worker_stop_as_1001(ws_build: Path) -> None:
    """A connection that just ends (no close frame: 1006, which no close frame may carry) closes
    the other side with 1011, never with a normal 1000."""
    front = Front(ws_build, 1, 1, 3600)
    try:
        wait_until(lambda: front.endpoint.pool.ready(), "a worker of rt is ready")

        async def vanish() -> None:
            headers = {"X-Request-ID": "vanish-1"}
            ws = await connect(front.balancer + "/push/v?count=-1&size=1024", additional_headers=headers)
            await ws.recv()
            ws.transport.abort()  # the client's connection ends mid-stream, no close frame

        run(vanish())
        wait_until(
            lambda: any('"close": 1011' in line and "vanish-1" in line for line in front.lines),
            "the worker's socket closed with 1011\n" + front.log()[-2000:],
        )

        async def killed() -> int | None:
            async with connect(front.balancer + "/push/k?count=-1&size=1024") as ws:
                await ws.recv()
                for worker in front.workers():
                    worker.proc.kill()  # the worker dies mid-stream
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await ws.recv()
                return closed.value.rcvd.code if closed.value.rcvd else None

        assert run(killed()) == 1011
        wait_until(lambda: front.endpoint.pool.ready(), "the killed worker is replaced")

        async def stopped() -> tuple[int, str]:
            async with connect(front.balancer + "/push/t?count=-1&size=1024") as ws:
                await ws.recv()
                for worker in front.endpoint.pool.ready():
                    worker.proc.terminate()  # SIGTERM: the worker closes its sockets with 1001
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await ws.recv()
                assert closed.value.rcvd is not None
                return closed.value.rcvd.code, closed.value.rcvd.reason

        assert run(stopped()) == (1001, "the worker is stopping")
    finally:
        front.close()


def test_an_aiohttp_socket_that_just_ends_reports_1006() -> None:
    """A connection that ended without a close frame is 1006 on the relay's (and
    endpoint().websocket's) socket, so `bridge` passes it on as 1011, never as a normal close."""
    import aiohttp

    from flash_runtime.wsclient import ClientWebSocket

    async def scenario() -> tuple[Any, ...]:
        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.send_str("one")
            assert request.transport is not None
            request.transport.close()  # the end of the connection (FIN), no close frame
            return ws

        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            async with aiohttp.ClientSession() as session:
                ws = ClientWebSocket(await session.ws_connect(f"http://127.0.0.1:{runner.addresses[0][1]}/"))
                return await ws.receive(), await ws.receive(), ws.close_code
        finally:
            await runner.cleanup()

    assert run(scenario()) == ("one", None, 1006)


def test_flash_call_ws_and_a_socket_through_the_mothership_of_a_local_deployment(tmp_path: Path, flash) -> None:
    """`--target local`: flash call WS through rt's balancer; and a client -> the mothership's
    balancer -> the mothership -> caller's balancer -> caller's worker -> endpoint("rt").websocket
    -> rt's balancer -> rt's worker."""
    from flash_pipeline.config.validate import validate_file
    from flash_pipeline.targets.local.deploy import local_destroy

    shutil.copytree(REPO / "tests" / "apps" / "ws", tmp_path, dirs_exist_ok=True)
    config = tmp_path / "flash.toml"
    config.write_text(config.read_text() + "\n[mothership]\nworkers = [1, 1]\n")
    try:
        deployed = flash("deploy", "--target", "local", "--detach", cwd=tmp_path)
        assert deployed.code == 0, deployed.err
        said = flash("call", "rt", "WS", "/echo", "-d", "one\ntwo\nbye", "--target", "local", cwd=tmp_path)
        assert (said.code, said.out.splitlines()) == (0, ["one", "two"]), said.err
        closed = flash("call", "rt", "WS", "/echo", "-d", "hi\nclose:4003", "--target", "local", cwd=tmp_path)
        assert (closed.code, closed.out.splitlines(), closed.err.splitlines()[-1]) == (
            4,
            ["hi"],
            "flash: the socket closed with 4003: asked to",
        )
        status = flash("status", "--target", "local", "--format", "json", cwd=tmp_path)
        ship = "ws" + json.loads(status.out)["apps"][0]["endpoints"]["mothership"]["url"].removeprefix("http")

        async def chain() -> list[Any]:
            async with connect(ship + "/caller/relay", open_timeout=BOUND) as ws:
                first = json.loads(await ws.recv())  # the 101 of rt's balancer named rt's worker
                await ws.send("through six hops")
                echoed = await ws.recv()
                await ws.send("close:4004")  # rt closes: the close comes back the whole way
                with pytest.raises(ConnectionClosed) as ended:
                    await ws.recv()
                return [first, echoed, ended.value.rcvd.code, ended.value.rcvd.reason]

        assert run(chain()) == [{"worker": "rt-1"}, "through six hops", 4004, "asked to"]
    finally:
        local_destroy(validate_file(config))
