"""Dynamic batching over real HTTP against the generated worker (tests/apps/batch)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, worker_type: type):
    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    root = tmp_path_factory.mktemp("batch-app")
    shutil.copytree(REPO / "tests" / "apps" / "batch", root, dirs_exist_ok=True)
    started = worker_type(build(validate_file(root / "flash.toml")).out_dir / "batch")
    started.wait_listening()
    started.wait_ready()
    yield started
    started.stop()


@pytest.fixture
def url(worker) -> str:
    requests.delete(worker.url + "/calls")
    return worker.url


def _together(count: int, send) -> list:
    """count requests released at once from their own threads (their own connections)."""
    gate = threading.Barrier(count)

    def one(i: int):
        gate.wait()
        return send(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def _calls(url: str) -> list[dict]:
    return requests.get(url + "/calls").json()


@pytest.mark.parametrize(("path", "body", "answer"), [
    ("/embed", lambda i: {"text": "x" * i, "n": i}, lambda i, size: {"n": i, "length": i, "batch": size}),
    ("/embed-sync", lambda i: i, lambda i, size: {"square": i * i}),
])  # fmt: skip
def test_requests_arriving_together_share_calls_in_order(worker, url: str, path: str, body, answer) -> None:
    answers = _together(10, lambda i: requests.post(url + path, json=body(i), timeout=30))
    sizes = [int(a.headers["X-Flash-Batch-Size"]) for a in answers]
    assert [a.json() for a in answers] == [answer(i, size) for i, size in enumerate(sizes)]  # each its own item
    calls = _calls(url)
    assert len(calls) == 3  # ceil(10 / 4)
    assert sorted(len(c["items"]) for c in calls) == [2, 4, 4]
    assert sorted(n for c in calls for n in c["items"]) == list(range(10))
    for call in calls:  # each request's answer says the size of the batch it rode in
        assert all(sizes[n] == len(call["items"]) for n in call["items"])
    assert f'"path": "{path}", "status": 200' in worker.output() and '"batch": 4' in worker.output()


def test_a_lone_request_is_answered_after_the_wait_alone(url: str) -> None:
    answer = requests.post(url + "/lone", json={"text": "hi", "n": 7}, timeout=5)  # max_wait_ms is 50
    assert (answer.json(), answer.headers["X-Flash-Batch-Size"]) == ({"n": 7, "length": 2, "batch": 1}, "1")


def test_a_request_that_does_not_bind_answers_its_own_422_and_stays_out(url: str) -> None:
    def send(i: int) -> requests.Response:
        body = {"text": "ok", "n": i} if i % 2 == 0 else {"n": "not a number"}
        return requests.post(url + "/embed", json=body, timeout=30)

    answers = _together(6, send)
    assert [a.status_code for a in answers] == [200, 422, 200, 422, 200, 422]
    assert answers[1].json()["problems"] == [
        {"path": "text", "message": "field required"},
        {"path": "n", "message": "must be an integer"},
    ]
    assert sorted(n for c in _calls(url) for n in c["items"]) == [0, 2, 4]


def test_a_handler_exception_fails_its_batch_with_500s(url: str) -> None:
    answers = _together(4, lambda i: requests.post(url + "/fails", json={"n": i, "boom": i == 2}, timeout=30))
    assert [a.status_code for a in answers] == [500] * 4
    assert {a.json()["error"] for a in answers} == {"internal error: the batched handler failed"}
    assert len(_calls(url)) == 1
    fine = requests.post(url + "/fails", json={"n": 9}, timeout=30)
    assert (fine.status_code, fine.json()) == (200, {"ok": 9})


def test_a_result_of_the_wrong_length_is_a_500_for_the_batch(worker, url: str) -> None:
    answers = _together(3, lambda i: requests.post(url + "/short", json={"n": i}, timeout=30))
    assert {(a.status_code, a.json()["error"]) for a in answers} == {
        (500, "internal error: the batched handler returned a result of the wrong length")
    }
    assert "batched handler of POST /short returned 2 results for a batch of 3" in worker.output()


def test_a_client_gone_while_queued_is_dropped_before_the_call(url: str, worker) -> None:
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"n": 1}).encode()
    with socket.create_connection(("127.0.0.1", port)) as gone:  # queued, then hangs up
        gone.sendall(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
        time.sleep(0.1)  # let it join the forming batch (which waits 400 ms for more)
    stayed = requests.post(url + "/slow", json={"n": 2}, timeout=30)
    assert (stayed.json(), stayed.headers["X-Flash-Batch-Size"]) == ({"done": 2}, "1")
    assert _calls(url) == [{"route": "slow", "items": [2]}]


def test_ping_answers_while_a_batch_runs_and_sigterm_drains_the_queue(tmp_path: Path, worker_type: type) -> None:
    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    shutil.copytree(REPO / "tests" / "apps" / "batch", tmp_path, dirs_exist_ok=True)
    own = worker_type(build(validate_file(tmp_path / "flash.toml")).out_dir / "batch")
    own.wait_listening()
    own.wait_ready()
    try:
        with ThreadPoolExecutor(10) as pool:
            asked = [pool.submit(requests.post, own.url + "/slow", json={"n": i}, timeout=30) for i in range(10)]
            time.sleep(0.6)  # the first batch of 8 runs (1 s); two requests wait for the next
            assert requests.get(own.url + "/ping", timeout=5).status_code == 200
            own.proc.send_signal(signal.SIGTERM)
            answers = [f.result() for f in asked]
        assert sorted(a.json()["done"] for a in answers) == list(range(10))
        assert sorted(a.headers["X-Flash-Batch-Size"] for a in answers) == ["2"] * 2 + ["8"] * 8
        assert own.proc.wait(timeout=30) == 0
    finally:
        own.stop()
