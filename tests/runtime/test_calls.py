"""Calling other endpoints: the retry policy with an injected clock (no sleeping), and real calls
over loopback to a stand-in callee."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flash_runtime.calls import Backoff, CallError, close, current_headers, endpoint, with_retries


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


DEFAULT = Backoff()


MARKED = {"X-Flash-No-Worker": "1"}  # the local balancer's own "no worker available"


def _run(answers: list[tuple[Any, ...]], policy: Backoff = DEFAULT) -> tuple[Any, FakeClock, int]:
    """answers: (status, body) or (status, body, headers), one per attempt (the last repeats)."""
    clock, sent = FakeClock(), [0]

    async def send() -> tuple[int | None, Any, Any]:
        sent[0] += 1
        answer = answers[min(sent[0] - 1, len(answers) - 1)]
        return (answer[0], answer[1], answer[2] if len(answer) > 2 else None)

    def describe(status: int | None, body: Any) -> CallError:
        return CallError("inference", "/predict", status, body)

    async def go() -> Any:
        return await with_retries(
            send, policy=policy, clock=clock, sleep=clock.sleep, rng=random.Random(1), describe=describe
        )

    try:
        result: Any = asyncio.run(go())
    except CallError as exc:
        result = exc
    return result, clock, sent[0]


def test_cold_start_answers_are_retried_with_growing_waits() -> None:
    no_workers = {"error": "no workers available"}  # RunPod's LB
    result, clock, attempts = _run([(None, None), (503, {}, MARKED), (502, no_workers), (200, {"ok": True})])
    assert result == {"ok": True}
    assert attempts == 4
    assert len(clock.slept) == 3 and clock.slept[0] < clock.slept[1] < clock.slept[2]
    assert all(0.4 <= s / (0.5 * 2**i) <= 1.2 for i, s in enumerate(clock.slept))  # backoff with +-20% jitter


def test_runpods_no_workers_answer_is_retried_whatever_its_status() -> None:
    result, _, attempts = _run([(400, {"error": "no workers available"}), (200, [1])])
    assert (result, attempts) == ([1], 2)


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500, 502, 503, 504])
def test_an_answer_that_may_have_been_processed_is_never_retried(status: int) -> None:
    # The app's own 5xx too: only the platform's marked "no worker" answers are sent again.
    result, clock, attempts = _run([(status, {"error": "x"}), (200, {})])
    assert isinstance(result, CallError) and result.status == status and result.body == {"error": "x"}
    assert (attempts, clock.slept) == (1, [])


def test_the_deadline_bounds_every_wait() -> None:
    policy = Backoff(deadline=30.0)
    result, clock, attempts = _run([(503, {"error": "busy"}, MARKED)], policy)
    assert isinstance(result, CallError) and result.status == 503
    assert attempts == len(clock.slept) + 1
    assert sum(clock.slept) <= 30.0
    assert clock.slept[-1] <= 10.0 * 1.2  # the cap holds


def test_only_listed_callees_are_known() -> None:
    with pytest.raises(LookupError) as caught:
        endpoint("billing", environ={"FLASH_ENDPOINTS": json.dumps({"inference": "http://x"})})
    assert str(caught.value) == (
        "endpoint 'billing' is not in this endpoint's `calls` (it may call: inference); "
        "add it to calls = [...] in flash.toml and deploy again"
    )


class Callee:
    """A loopback stand-in for a callee: answers from a script, records what it was sent."""

    def __init__(self, script: list[tuple[int, Any]]) -> None:
        self.script, self.seen = script, []
        callee = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                callee.seen.append((self.path, dict(self.headers), json.loads(body or b"null")))
                status, answer = callee.script[min(len(callee.seen) - 1, len(callee.script) - 1)]
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def callee() -> Iterator[Callee]:
    stand_in = Callee([(503, {"error": "no workers available"}), (200, {"predictions": [2.5]})])
    yield stand_in
    stand_in.server.shutdown()


def test_a_real_call_retries_then_returns_json_with_key_and_request_id(callee: Callee) -> None:
    env = {"FLASH_ENDPOINTS": json.dumps({"inference": callee.url}), "FLASH_CALL_KEY": "k-123"}
    fast = Backoff(initial=0.01, cap=0.02)

    async def handler() -> Any:
        current_headers.set({"X-Request-ID": "req-7", "traceparent": "00-abc-def-01"})
        try:
            return await endpoint("inference", environ=env, policy=fast).post("/predict", json={"values": [1]})
        finally:
            await close()

    assert asyncio.run(handler()) == {"predictions": [2.5]}
    assert len(callee.seen) == 2
    path, headers, body = callee.seen[-1]
    assert (path, body) == ("/predict", {"values": [1]})
    assert (headers["Authorization"], headers["X-Request-ID"], headers["traceparent"]) == (
        "Bearer k-123",
        "req-7",
        "00-abc-def-01",
    )


def test_the_sync_twin_makes_the_same_call_from_a_thread(callee: Callee) -> None:
    env = {"FLASH_ENDPOINTS": json.dumps({"inference": callee.url})}
    callee.script = [(422, {"error": "bad values"})]
    target = endpoint("inference", environ=env, policy=Backoff(initial=0.01))
    with pytest.raises(CallError) as caught:
        target.sync.post("/predict", json={"values": "x"})
    assert (caught.value.endpoint, caught.value.path, caught.value.status) == ("inference", "/predict", 422)
    assert caught.value.body == {"error": "bad values"}
    assert "Authorization" not in callee.seen[-1][1]  # no key configured, none sent


def test_a_callee_that_never_listens_fails_within_the_deadline() -> None:
    env = {"FLASH_ENDPOINTS": json.dumps({"inference": "http://127.0.0.1:1"})}
    target = endpoint("inference", environ=env, policy=Backoff(deadline=0.3, initial=0.05, cap=0.1))

    async def call() -> Any:
        try:
            return await target.get("/health")
        finally:
            await close()

    with pytest.raises(CallError) as caught:
        asyncio.run(call())
    assert caught.value.status is None
    assert str(caught.value) == "inference GET /health: could not connect"
