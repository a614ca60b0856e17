"""The relay's contract (runtime/relay.py), checked by the same tests through both proxies that use
it: the local balancer (in front of worker processes it starts) and the mothership (in front of an
endpoint URL). The upstream is a real process (relay_upstream.py) that can die on cue and records
what its handlers did, so "ran exactly once" and "saw the cancellation" are facts, not guesses.
Every wait is bounded and waits on an event (a line in the events file, a port), never on time."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flash_pipeline.targets.local.balancer import Endpoint, EndpointSpec
from flash_runtime.backoff import Backoff
from flash_runtime.mothership import Mothership

UPSTREAM = Path(__file__).with_name("relay_upstream.py")
BOUND = 20.0  # seconds any awaited event may take on a loaded machine before the test fails
MB = 1024 * 1024


def wait_until(check: Callable[[], Any], what: str, bound: float = BOUND) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `bound` seconds."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"not within {bound:.0f}s: {what}")


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


class Loop:
    """An event loop on a thread of its own: the proxy under test lives there, clients here."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any, bound: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(bound)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Proxied:
    """One proxy in front of the stand-in upstream: `base` is the URL clients use for its paths."""

    kind: str
    base: str
    host: str
    port: int
    prefix: str  # the path prefix the proxy adds ("" for the balancer, "/ep" for the mothership)

    def __init__(self, tmp: Path) -> None:
        self.events_file = tmp / "events.log"
        self.events_file.touch()

    def events(self) -> list[str]:
        return self.events_file.read_text().splitlines()

    def count(self, line: str) -> int:
        return self.events().count(line)

    def direct(self) -> str: ...  # the URL of a live upstream process
    def kill_upstream(self) -> None: ...
    def close(self) -> None: ...

    def connection(self, bound: float = BOUND) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=bound)

    def wait_ready(self) -> None:
        def answers() -> bool:
            try:
                return request(self, "GET", "/echo")[0] == 200
            except OSError:
                return False

        wait_until(answers, f"{self.kind} answers again")


class Balancer(Proxied):
    kind = "balancer"
    prefix = ""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        build = tmp / "build"
        (build / "src").mkdir(parents=True)
        shutil.copy(UPSTREAM, build / "flash_worker.py")
        spec = EndpointSpec("ep", "relay-ep", str(build), "d" * 64, {"EVENTS": str(self.events_file)}, 1, 1, 4, 3600, 0)
        spec.timeout = 60.0
        self.loop = Loop()
        self.endpoint = Endpoint(spec, lambda _line: None)
        self.loop.run(self.endpoint.start())
        self.host, self.port = "127.0.0.1", spec.port
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: self.endpoint.pool.ready(), "a worker is ready")

    def direct(self) -> str:
        return wait_until(lambda: self.endpoint.pool.ready(), "a worker is ready")[0].url  # type: ignore[no-any-return]

    def kill_upstream(self) -> None:
        for worker in list(self.endpoint.pool.workers):
            worker.proc.kill()
            wait_until(lambda port=worker.port: _refused(port), "the killed worker's port is closed")

    def close(self) -> None:
        self.loop.run(self.endpoint.stop())
        self.loop.close()


class Ship(Proxied):
    kind = "mothership"
    prefix = "/ep"

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.upstream_port = sock.getsockname()[1]
        self.stopping = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.keeper = threading.Thread(target=self._keep_upstream, daemon=True)
        self.keeper.start()  # like RunPod's LB, a dead worker is replaced
        wait_until(lambda: not _refused(self.upstream_port), "the upstream listens")
        self.loop = Loop()
        app = {"app": "relay", "environment": None, "endpoints": {"ep": []}}
        policy = Backoff(deadline=BOUND, initial=0.05, cap=0.5)
        self.ship = Mothership(app, {"ep": self.direct()}, None, policy=policy)

        async def start() -> tuple[web.AppRunner, int]:
            runner = web.AppRunner(self.ship.web_app(), handler_cancellation=True, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return runner, runner.addresses[0][1]

        self.runner, self.port = self.loop.run(start())
        self.host = "127.0.0.1"
        self.base = f"http://127.0.0.1:{self.port}/ep"

    def _keep_upstream(self) -> None:
        env = {**os.environ, "PORT": str(self.upstream_port), "EVENTS": str(self.events_file)}
        while not self.stopping:
            self.proc = subprocess.Popen([sys.executable, str(UPSTREAM)], env=env, stdout=subprocess.DEVNULL)
            self.proc.wait()

    def direct(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}"

    def kill_upstream(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        wait_until(lambda: _refused(self.upstream_port), "the killed upstream's port is closed")

    def close(self) -> None:
        self.loop.run(self.runner.cleanup())
        self.loop.close()
        self.stopping = True
        if self.proc is not None:
            self.proc.kill()
        self.keeper.join(10)


@pytest.fixture(scope="module", params=["balancer", "mothership"])
def proxy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    made: Proxied = (Balancer if request.param == "balancer" else Ship)(tmp_path_factory.mktemp(request.param))
    try:
        yield made
    finally:
        made.close()


def request(
    where: Proxied | str,
    method: str,
    path: str,
    body: Any = None,
    headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
    *,
    chunked: bool = False,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request with repeated headers kept: (status, headers in order, body)."""
    if isinstance(where, str):
        host, _, port = where.removeprefix("http://").partition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=BOUND)
        prefix = ""
    else:
        conn, prefix = where.connection(), where.prefix
    try:
        conn.putrequest(method, prefix + path)
        for name, value in headers:
            conn.putheader(name, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif isinstance(body, bytes):
            conn.putheader("Content-Length", str(len(body)))  # an iterable body comes with its own
        conn.endheaders()
        if chunked:
            for piece in body:
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        elif isinstance(body, bytes):
            conn.send(body)
        elif body is not None:
            for piece in body:
                conn.send(piece)
        answer = conn.getresponse()
        return answer.status, answer.getheaders(), answer.read()
    finally:
        conn.close()


def _id() -> str:
    return uuid.uuid4().hex[:12]


# -- never run twice, never hang ------------------------------------------------------------------
def test_an_upstream_dead_before_the_request_is_written_gets_it_once_it_is_back(proxy: Proxied) -> None:
    proxy.kill_upstream()
    status, _, body = request(proxy, "POST", f"/echo?id={_id()}", b'{"n": 1}')
    assert status == 200  # connection refused: it never reached a handler, so it was sent again
    assert json.loads(body)["sha256"] == hashlib.sha256(b'{"n": 1}').hexdigest()


def test_an_upstream_dying_mid_request_runs_a_post_exactly_once(proxy: Proxied) -> None:
    path = f"/die?id={_id()}"
    status, headers, body = request(proxy, "POST", path, b"{}", [("X-Request-ID", "die-1")])
    assert status == 502
    assert json.loads(body) == {
        "error": "the upstream closed the connection (ServerDisconnectedError)",
        "request_id": "die-1",
    }
    assert "X-Flash-No-Worker" not in dict(headers)  # delivered, maybe handled: callers must not retry
    proxy.wait_ready()  # a retry, had there been one, would have reached the replacement by now
    assert proxy.count(f"ran {path}") == 1


def test_an_upstream_dying_mid_stream_ends_the_clients_answer(proxy: Proxied) -> None:
    path = f"/stream-die?id={_id()}"
    conn = proxy.connection(bound=2.0)  # a client that hung would fail with a timeout here
    conn.request("GET", proxy.prefix + path)
    answer = conn.getresponse()
    assert answer.status == 200
    assert answer.readline() == b"data: first\n"
    with pytest.raises(http.client.IncompleteRead):  # the end, not a second response in the body
        answer.read()
    conn.close()
    proxy.wait_ready()
    assert proxy.count(f"ran {path}") == 1
    # curl ends too ("transfer closed with outstanding read data": exit 18), never at its own timeout (28).
    curl = shutil.which("curl")
    if curl:
        ran = subprocess.run([curl, "-sN", "--max-time", "30", proxy.base + path], capture_output=True, timeout=60)
        assert (ran.returncode, ran.stdout) == (18, b"data: first\n\n")
        proxy.wait_ready()


def test_an_aiohttp_client_sees_a_broken_stream_end(proxy: Proxied) -> None:
    async def read() -> tuple[bytes, BaseException | None]:
        limit = aiohttp.ClientTimeout(total=BOUND)
        async with aiohttp.ClientSession(timeout=limit) as client, client.get(proxy.base + "/stream-die") as answer:
            first = await answer.content.readline()
            try:
                await answer.content.read()
            except aiohttp.ClientPayloadError as exc:
                return first, exc
            return first, None

    first, failure = asyncio.run(read())
    assert first == b"data: first\n" and isinstance(failure, aiohttp.ClientPayloadError)
    proxy.wait_ready()


def test_the_apps_own_503_is_answered_as_it_is_and_never_retried(proxy: Proxied) -> None:
    path = f"/app-503?id={_id()}"
    status, _, body = request(proxy, "POST", path, b"{}")
    assert (status, json.loads(body)) == (503, {"error": "the app is busy"})
    assert proxy.count(f"ran {path}") == 1


@pytest.mark.parametrize("path", ["/slow", "/stream-forever"])
def test_a_client_that_leaves_cancels_the_upstream_request(proxy: Proxied, path: str) -> None:
    # Also: a hung upstream is released once its client is gone (its handler sees the cancellation).
    path = f"{path}?id={_id()}"
    with socket.create_connection((proxy.host, proxy.port), timeout=BOUND) as client:
        client.sendall(f"GET {proxy.prefix}{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wait_until(lambda: proxy.count(f"started {path}"), "the handler started")
        if path.startswith("/stream"):  # the head and the first event may arrive in separate reads
            seen = b""
            while b"data: first" not in seen:
                chunk = client.recv(4096)
                assert chunk, f"the stream ended before its first event: {seen!r}"
                seen += chunk
    wait_until(lambda: proxy.count(f"cancelled {path}"), "the handler saw the client leave")


# -- what passes through --------------------------------------------------------------------------
def test_repeated_headers_pass_both_ways_and_hop_by_hop_ones_do_not(proxy: Proxied) -> None:
    sent = [
        ("X-Rep", "1"),
        ("X-Rep", "2"),
        ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "private to this hop"),
        ("Keep-Alive", "timeout=5"),
        ("X-Request-ID", "rep-1"),
        ("Via", "1.1 client-proxy"),
    ]
    status, headers, body = request(proxy, "POST", "/echo", b"x", sent)
    assert status == 200
    seen = json.loads(body)["headers"]
    assert [v for k, v in seen if k == "X-Rep"] == ["1", "2"]
    assert not {k.lower() for k, _ in seen} & {"x-hop", "keep-alive"}
    assert ["X-Request-ID", "rep-1"] in seen
    assert [v for k, v in seen if k == "Via"] == ["1.1 client-proxy", f"1.1 flash-{proxy.kind}"]
    assert [v for k, v in headers if k == "X-Out"] == ["a", "b"]
    assert [v for k, v in headers if k == "Set-Cookie"] == ["one=1", "two=2"]
    assert ("X-Request-ID", "rep-1") in headers and any(k == "Via" for k, _ in headers)
    minted = dict(request(proxy, "GET", "/echo")[1])["X-Request-ID"]
    assert len(minted) == 32  # none given: one is made, sent upstream and answered back


METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PURGE"]
STATUSES = [200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 409, 418, 422, 429, 500, 502, 503, 504]


def test_every_method_and_status_is_answered_as_the_upstream_answers(proxy: Proxied) -> None:
    direct = proxy.direct()
    for method in METHODS:
        for status in STATUSES:
            path = f"/status/{status}"
            through, expected = request(proxy, method, path), request(direct, method, path)
            assert (through[0], through[2]) == (expected[0], expected[2]), (method, status)
            if status in (204, 304) or method == "HEAD":
                assert through[2] == b""
                assert dict(through[1]).get("Transfer-Encoding") is None
                assert dict(through[1]).get("Content-Length") == dict(expected[1]).get("Content-Length")


def _blocks(size: int) -> Iterator[bytes]:
    block = bytes(range(256)) * 256  # 64 KiB
    while size > 0:
        yield block[: min(size, len(block))]
        size -= len(block)


def test_25_mb_bodies_and_streams_pass_both_ways_without_being_held(proxy: Proxied) -> None:
    size = 25 * MB
    expected = hashlib.sha256(b"".join(_blocks(size))).hexdigest()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; the proxy runs in this process
    for chunked in (False, True):
        body = _blocks(size)
        headers = [] if chunked else [("Content-Length", str(size))]
        status, _, answer = request(proxy, "POST", "/upload", body, headers, chunked=chunked)
        assert (status, json.loads(answer)) == (200, {"length": size, "sha256": expected}), chunked
    conn = proxy.connection()
    conn.request("GET", proxy.prefix + f"/download?n={size}")
    answer = conn.getresponse()
    digest, got = hashlib.sha256(), 0
    while piece := answer.read(MB):
        digest.update(piece)
        got += len(piece)
    conn.close()
    assert (answer.status, got) == (200, size)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    assert grown < 12 * MB, f"peak memory grew by {grown / MB:.0f} MB while relaying 25 MB bodies"


def test_a_body_over_30_mb_is_refused_before_it_is_read(proxy: Proxied) -> None:
    conn = proxy.connection()
    conn.putrequest("POST", proxy.prefix + "/upload")
    conn.putheader("Content-Length", str(31 * MB))
    conn.putheader("X-Request-ID", "big-1")
    conn.endheaders()
    answer = conn.getresponse()
    assert (answer.status, json.loads(answer.read())) == (
        413,
        {"error": "request body is larger than 30 MB", "request_id": "big-1"},
    )
    conn.close()


def test_an_upgrade_other_than_websocket_is_refused_plainly(proxy: Proxied) -> None:
    upgrade = [("Connection", "Upgrade"), ("Upgrade", "h2c"), ("X-Request-ID", "h2c-1")]
    status, _, body = request(proxy, "GET", "/echo", None, upgrade)
    assert (status, json.loads(body)) == (
        501,
        {
            "error": "only WebSocket upgrades (GET with Upgrade: websocket) are relayed, not GET with Upgrade: h2c",
            "request_id": "h2c-1",
        },
    )


def test_a_websocket_upgrade_answered_without_upgrading_is_relayed_as_it_came(proxy: Proxied) -> None:
    # (WebSockets themselves: tests/runtime/test_relay_websocket.py, against real workers.)
    upgrade = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
        ("X-Request-ID", "ws-1"),
    ]
    status, headers, body = request(proxy, "GET", "/echo?status=404", None, upgrade)
    assert status == 404 and ("X-Request-ID", "ws-1") in headers
    seen = json.loads(body)
    assert seen["path"] == "/echo?status=404" and ["X-Request-ID", "ws-1"] in seen["headers"]
    status, _, body = request(proxy, "GET", "/echo", None, upgrade)
    assert (status, json.loads(body)["method"]) == (200, "GET")  # an HTTP route's answer, never a 101


# -- the property: a proxy is transparent ---------------------------------------------------------
_NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).map(lambda s: "X-" + s)
_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)
_QUERY = st.lists(
    st.tuples(st.text("abcxyz_", min_size=1, max_size=4), st.text("ab c/%&=+é", max_size=6)), max_size=4
).map(lambda pairs: "&".join(f"{k}={quote(v, safe='/%+=')}" for k, v in pairs))
_UNCOMPARED = {
    "date",
    "server",
    "via",
    "x-request-id",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
    headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=6),
    query=_QUERY,
    body=st.one_of(st.none(), st.binary(max_size=2048)),
    status=st.sampled_from([200, 201, 204, 400, 404, 500, 503]),
)
def test_a_request_gets_the_same_answer_through_the_proxy_as_direct(
    proxy: Proxied, method: str, headers: list[tuple[str, str]], query: str, body: bytes | None, status: int
) -> None:
    path = f"/echo?status={status}" + (f"&{query}" if query else "")

    def seen(answer: tuple[int, list[tuple[str, str]], bytes]) -> tuple[Any, ...]:
        code, got, raw = answer
        described = json.loads(raw) if raw else None
        if described:
            described["headers"] = [[k, v] for k, v in described["headers"] if k.lower() not in _UNCOMPARED | {"host"}]
        return code, [(k, v) for k, v in got if k.lower() not in _UNCOMPARED], described

    assert seen(request(proxy, method, path, body, headers)) == seen(
        request(proxy.direct(), method, path, body, headers)
    )
