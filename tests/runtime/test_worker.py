"""The generated worker, run as a real subprocess from the build output, checked over HTTP."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests


def test_every_binding_rule(worker_build: Path, start_worker) -> None:
    url = start_worker(worker_build / "api").url
    assert requests.get(url + "/hello").json() == {"message": "hello, world"}
    assert requests.get(url + "/hello", params={"name": "ada"}).json() == {"message": "hello, ada"}
    assert requests.post(url + "/echo", json={"a": [1, 2]}).json() == {"echo": {"a": [1, 2]}}
    put = requests.put(url + "/items/7", json={"x": 1}, params={"dry_run": "true"})
    assert (put.status_code, put.json()) == (200, {"item_id": 7, "body": {"x": 1}, "dry_run": True})
    assert requests.get(url + "/items/3/tags/red").json() == {"item_id": 3, "tag": "red"}
    found = requests.get(
        url + "/search", params=[("q", "cats"), ("limit", "2"), ("tags", "a"), ("tags", "b"), ("score", "0.9")]
    )
    assert found.json() == {"q": "cats", "limit": 2, "tags": ["a", "b"], "score": 0.9}
    assert requests.get(url + "/raw", headers={"X-Test": "yes"}).json() == {"method": "GET", "agent": "yes"}
    assert requests.get(url + "/async").json() == {"async": True}


def test_results(worker_build: Path, start_worker) -> None:
    url = start_worker(worker_build / "api").url
    created = requests.post(url + "/created", json={"name": "n"})
    assert (created.status_code, created.json()) == (201, {"created": "n"})
    passed = requests.get(url + "/response")
    assert (passed.status_code, passed.text, passed.headers["X-Custom"]) == (202, "plain text", "yes")
    deleted = requests.delete(url + "/items/1")
    assert (deleted.status_code, deleted.json()) == (200, None)


def test_streaming_async_generator(worker_build: Path, start_worker) -> None:
    url = start_worker(worker_build / "api").url
    with requests.get(url + "/stream", params={"count": "2"}, stream=True) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        body = b"".join(response.iter_content(chunk_size=None)).decode()
    assert body == 'data: {"index":0}\n\ndata: {"index":1}\n\ndata: done\n\n'


def test_error_statuses_are_json_with_an_error_field(worker_build: Path, start_worker) -> None:
    worker = start_worker(worker_build / "api")
    url = worker.url
    cases = [
        (
            requests.post(url + "/echo", data=b"{nope", headers={"Content-Type": "application/json"}),
            400,
            "request body is not valid JSON (line 1, column 2)",
        ),
        (requests.post(url + "/echo"), 422, "missing JSON body (for argument 'body')"),
        (
            requests.post(url + "/typed", json={"not": "a list"}),
            422,
            "argument 'values': expected a JSON array as the request body",
        ),
        (requests.get(url + "/items/abc/tags/x"), 422, "argument 'item_id': expected int, got 'abc'"),
        (requests.get(url + "/search"), 422, "missing query parameter 'q'"),
        (requests.get(url + "/nowhere"), 404, "no route for GET /nowhere"),
        (requests.patch(url + "/hello"), 405, "method PATCH not allowed for /hello"),
        (requests.post(url + "/echo", data=b"x" * (30 * 1024 * 1024 + 1)), 413, "request body is larger than 30 MB"),
        (requests.get(url + "/boom", headers={"X-Request-Id": "req-123"}), 500, "internal error"),
        (requests.get(url + "/not-json"), 500, "internal error"),
    ]
    for response, status, message in cases:
        assert (response.status_code, response.json()["error"]) == (status, message), response.text
    boom = cases[8][0].json()
    assert boom == {"error": "internal error", "request_id": "req-123"}
    assert "secret internal detail" not in cases[8][0].text
    output = worker.output()
    assert "ValueError: secret internal detail" in output  # the traceback is in the log only
    assert "req-123" in output


def test_ping_204_until_slow_init_returns_then_200(worker_build: Path, start_worker) -> None:
    worker = start_worker(worker_build / "api", {"INIT_SECONDS": "1.5"}, ready=False)
    first = requests.get(worker.url + "/ping")
    assert (first.status_code, first.content) == (204, b"")
    blocked = requests.get(worker.url + "/hello")
    assert (blocked.status_code, blocked.json()["error"]) == (503, "worker is initializing")
    worker.wait_ready()
    assert requests.get(worker.url + "/ping").json() == {"status": "ready", "websockets": 0}
    assert requests.get(worker.url + "/hello").status_code == 200


def test_failing_init_answers_503_and_logs_why(worker_build: Path, start_worker) -> None:
    worker = start_worker(worker_build / "broken", ready=False)
    deadline = time.monotonic() + 10
    while (ping := requests.get(worker.url + "/ping")).status_code == 204 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (ping.status_code, ping.json()) == (503, {"status": "failed"})
    assert "RuntimeError: model weights missing" in worker.output()


def test_ping_answers_while_sync_handlers_block(worker_build: Path, start_worker) -> None:
    url = start_worker(worker_build / "api").url
    threads = [
        threading.Thread(target=requests.get, args=(url + "/slow",), kwargs={"params": {"seconds": "1.5"}})
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # the handlers are now sleeping in the pool
    pings = [requests.get(url + "/ping", timeout=1).status_code for _ in range(5)]
    for thread in threads:
        thread.join()
    assert pings == [200] * 5


def test_health_port_serves_ping_when_it_differs(worker_build: Path, start_worker, free_port) -> None:
    health = free_port()
    start_worker(worker_build / "api", {"PORT_HEALTH": str(health)})
    response = requests.get(f"http://127.0.0.1:{health}/ping")
    assert response.status_code == 200
    assert requests.get(f"http://127.0.0.1:{health}/hello").status_code == 404


def test_sigterm_lets_in_flight_requests_finish(worker_build: Path, start_worker) -> None:
    worker = start_worker(worker_build / "api")
    result: dict[str, object] = {}

    def call() -> None:
        response = requests.get(worker.url + "/slow", params={"seconds": "1"})
        result["status"], result["body"] = response.status_code, response.json()

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.3)
    worker.proc.terminate()
    thread.join(timeout=20)
    assert result == {"status": 200, "body": {"slept": 1.0}}
    assert worker.proc.wait(timeout=20) == 0


def test_one_log_line_per_request_and_none_for_ping(worker_build: Path, start_worker) -> None:
    worker = start_worker(worker_build / "api")
    requests.get(worker.url + "/hello", headers={"X-Request-Id": "abc"})
    requests.get(worker.url + "/ping")
    lines = [line for line in worker.output().splitlines() if '"request_id"' in line]
    assert len(lines) == 1
    assert '"method": "GET", "path": "/hello", "status": 200' in lines[0]
    assert '"request_id": "abc"' in lines[0]


@pytest.mark.stress  # waits 66 s of wall time: the stress suite
def test_requests_longer_than_a_minute_finish_within_the_endpoint_timeout(worker_build: Path, start_worker) -> None:
    """Sanic answers 503 after 60 s by default; the worker takes the endpoint's timeout (600 s, capped at 330)."""
    assert "TIMEOUT = 330" in (worker_build / "api" / "flash_worker.py").read_text()
    url = start_worker(worker_build / "api").url
    answers: dict[str, requests.Response] = {}

    def call(path: str) -> None:
        answers[path] = requests.get(url + path, params={"seconds": "65"}, timeout=120)

    threads = [threading.Thread(target=call, args=(path,)) for path in ("/slow", "/slow-async")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {path: (r.status_code, r.json()) for path, r in answers.items()} == {
        "/slow": (200, {"slept": 65.0}),
        "/slow-async": (200, {"slept": 65.0}),
    }


def test_a_pair_is_value_and_status_only_when_the_second_item_is_a_status(worker_build: Path, start_worker) -> None:
    url = start_worker(worker_build / "api").url
    pair, flagged = requests.get(url + "/pair"), requests.get(url + "/flagged")
    assert (pair.status_code, pair.json()) == (200, [3, 4])
    assert (flagged.status_code, flagged.json()) == (200, ["x", True])


def test_head_answers_for_get_routes_without_a_body(worker_build: Path, start_worker) -> None:
    url = start_worker(worker_build / "api").url
    head = requests.head(url + "/hello", params={"name": "ada"})
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["Content-Type"] == "application/json"
    assert requests.head(url + "/ping").status_code == 200
    assert requests.head(url + "/echo").status_code == 405  # POST routes get no HEAD


def test_an_exception_mid_stream_ends_with_an_error_event(worker_build: Path, start_worker) -> None:
    worker = start_worker(worker_build / "api")
    with requests.get(worker.url + "/stream-fails", headers={"X-Request-Id": "req-9"}, stream=True) as response:
        body = b"".join(response.iter_content(chunk_size=None)).decode()
    assert body == 'data: {"index":0}\n\nevent: error\ndata: {"error":"internal error","request_id":"req-9"}\n\n'
    assert "RuntimeError: secret stream detail" in worker.output()


def test_an_unresolvable_annotation_leaves_the_other_parameters_converted(worker_build: Path, start_worker) -> None:
    url = start_worker(worker_build / "api").url
    answer = requests.get(url + "/partly-typed", params={"limit": "5", "price": "1.50"})
    assert answer.json() == {"limit": 5, "price": "1.50"}  # limit is an int; price stays the string it was
    assert requests.get(url + "/partly-typed", params={"limit": "x"}).status_code == 422


def test_a_port_that_cannot_be_had_is_one_clear_line_and_exit_3(worker_build: Path, free_port) -> None:
    import os
    import socket
    import subprocess
    import sys

    from tests.conftest import dockerfile_command

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = dockerfile_command(worker_build / "api")
        done = subprocess.run(
            [sys.executable, *command[1:]],
            cwd=worker_build / "api" / "src",
            env={**os.environ, "PORT": str(port), "HOST": "127.0.0.1"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().endswith(
        f"ERROR flash.worker: cannot listen on 127.0.0.1:{port}: the port is already in use: "
        "stop what holds it, or set PORT to a free port"
    )


def test_manifest_says_who_the_worker_is_and_which_build_it_runs(worker_build: Path, start_worker) -> None:
    url = start_worker(worker_build / "api", {"FLASH_BUILD": "0123abcd4567"}).url
    manifest = requests.get(url + "/manifest").json()
    assert {k: manifest[k] for k in ("app", "environment", "endpoint", "build", "calls")} == {
        "app": "worker-test",
        "environment": None,
        "endpoint": "api",
        "build": "0123abcd4567",
        "calls": {},
    }
    assert manifest["routes"][:3] == ["GET /hello", "POST /echo", "PUT /items/{item_id}"]
