"""The local target end to end: real supervisor, load balancers and worker processes on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def _status(flash, config: str, cwd: Path) -> dict:
    result = flash("status", "-c", config, "--target", "local", "--format", "json", cwd=cwd)
    assert result.code == 0, result.err
    return json.loads(result.out)["apps"][0]


def _pids(status: dict) -> set[int]:
    return {w["pid"] for info in status["endpoints"].values() if info for w in info["workers"]}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    """Running: a zombie (exited, its status not yet collected by whoever adopted it) is gone."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _wait_until(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tests/apps/worker in a scratch folder; whatever a test deploys is destroyed afterwards."""
    shutil.copytree(REPO / "tests" / "apps" / "worker", tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("LOCAL_TEST_GREETING", "howdy")
    yield tmp_path
    from flash_pipeline.config.validate import validate_file
    from flash_pipeline.targets.local.deploy import local_destroy

    for config in ("local.toml", "broken.toml"):
        local_destroy(validate_file(tmp_path / config))


@pytest.fixture
def example_dir(tmp_path: Path) -> Iterator[Path]:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "flash.toml.example", tmp_path / "flash.toml")
    yield tmp_path
    from flash_pipeline.config.validate import validate_file
    from flash_pipeline.targets.local.deploy import local_destroy

    local_destroy(validate_file(tmp_path / "flash.toml"))


def test_example_deploys_serves_and_destroys_without_leftovers(example_dir: Path, flash) -> None:
    result = flash("deploy", "--target", "local", "--detach", cwd=example_dir)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("inference-api  created    http://127.0.0.1:")
    assert lines[1].startswith("data-api       created    http://127.0.0.1:")
    assert lines[2].startswith("flash: 2 endpoints healthy on the local target (supervisor pid ")
    status = _status(flash, "flash.toml", example_dir)
    inference, data = status["endpoints"]["inference-api"]["url"], status["endpoints"]["data-api"]["url"]
    assert requests.post(inference + "/predict", json={"values": [1, 2]}).json() == {
        "predictions": [2.5, 4.5],
        "model": "tiny-linear",
    }
    assert requests.get(inference + "/items/2").json() == {"id": 2, "name": "second"}
    assert requests.post(data + "/process", json={"text": "a b"}).json() == {"words": 2, "chars": 3, "upper": "A B"}
    text = flash("status", "--target", "local", cwd=example_dir).out.splitlines()
    assert text[0] == f"inference-api  {inference}  workers: 1 ready  /ping: 200 ready"
    pids = _pids(status)
    ports = [int(u.rsplit(":", 1)[1]) for u in (inference, data)]
    assert len(pids) == 2
    gone = flash("destroy", "--target", "local", "--yes", cwd=example_dir)
    assert (gone.code, gone.out) == (0, "flash: stopped data-api, inference-api on the local target\n")
    assert not any(_alive(pid) for pid in pids)
    assert not any(_port_open(port) for port in ports)
    assert (
        flash("status", "--target", "local", cwd=example_dir).out.splitlines()[-1]
        == "flash: nothing is running on the local target"
    )


def test_killed_worker_is_replaced_without_failed_requests(app_dir: Path, flash) -> None:
    assert flash("deploy", "-c", "local.toml", "--target", "local", "--detach", cwd=app_dir).code == 0
    url = _status(flash, "local.toml", app_dir)["endpoints"]["pair"]["url"]
    assert requests.get(url + "/hello").json() == {"message": "howdy, world"}  # ${VAR} resolved at deploy time
    before = {w["pid"] for w in _status(flash, "local.toml", app_dir)["endpoints"]["pair"]["workers"]}
    failures: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.post(url + "/echo", json={"n": 1})
                if response.status_code != 200:
                    failures.append(response.status_code)

    thread = threading.Thread(target=traffic)
    thread.start()
    time.sleep(0.5)
    os.kill(sorted(before)[0], 9)
    _wait_until(
        lambda: (
            len(
                {
                    w["pid"]
                    for w in _status(flash, "local.toml", app_dir)["endpoints"]["pair"]["workers"]
                    if w["state"] == "ready"
                }
                - before
            )
            == 1
        ),
        what="a replacement worker",
    )
    time.sleep(0.5)
    stop.set()
    thread.join()
    assert len(failures) <= 1, failures


def test_burst_scales_up_to_max_and_idle_scales_back_to_min(app_dir: Path, flash) -> None:
    assert flash("deploy", "-c", "local.toml", "--target", "local", "--detach", cwd=app_dir).code == 0
    url = _status(flash, "local.toml", app_dir)["endpoints"]["scale"]["url"]
    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(requests.get(url + "/slow", params={"seconds": "2"}).status_code)
        )
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    counts = []
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and any(t.is_alive() for t in threads):
        counts.append(len(_status(flash, "local.toml", app_dir)["endpoints"]["scale"]["workers"]))
        time.sleep(0.2)
    for thread in threads:
        thread.join()
    assert results == [200] * 6
    assert max(counts) == 3  # scaler_value 1: one worker per in-flight request, capped at max
    _wait_until(
        lambda: len(_status(flash, "local.toml", app_dir)["endpoints"]["scale"]["workers"]) == 1,
        what="idle scale-down to min",
    )


def test_min_zero_cold_start_on_first_request(app_dir: Path, flash) -> None:
    result = flash("deploy", "-c", "local.toml", "--target", "local", "--detach", cwd=app_dir)
    assert "cold" in result.out
    status = _status(flash, "local.toml", app_dir)["endpoints"]["cold"]
    assert requests.get(status["url"] + "/hello").json() == {"message": "hello, world"}


def test_streaming_passes_through_and_a_client_disconnect_leaks_nothing(app_dir: Path, flash) -> None:
    assert flash("deploy", "-c", "local.toml", "--target", "local", "--detach", cwd=app_dir).code == 0
    url = _status(flash, "local.toml", app_dir)["endpoints"]["scale"]["url"]
    with requests.get(url + "/stream", params={"count": "3"}, stream=True) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert (
            b"".join(response.iter_content(None))
            == b'data: {"index":0}\n\ndata: {"index":1}\n\ndata: {"index":2}\n\ndata: done\n\n'
        )
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(b"GET /stream?count=200 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    _wait_until(
        lambda: all(w["inflight"] == 0 for w in _status(flash, "local.toml", app_dir)["endpoints"]["scale"]["workers"]),
        what="in-flight back to 0",
    )
    assert requests.get(url + "/hello").status_code == 200


def test_second_deploy_restarts_only_changed_endpoints(app_dir: Path, flash) -> None:
    assert flash("deploy", "-c", "local.toml", "--target", "local", "--detach", cwd=app_dir).code == 0
    before = _status(flash, "local.toml", app_dir)["endpoints"]
    config = app_dir / "local.toml"
    config.write_text(
        config.read_text().replace(
            '"GET /hello" = "svc.handlers:hello"\n"POST /echo"', '"GET /hi" = "svc.handlers:hello"\n"POST /echo"'
        )
    )
    again = flash("deploy", "-c", "local.toml", "--target", "local", "--detach", cwd=app_dir)
    assert again.code == 0, again.err
    actions = {line.split()[0]: line.split()[1] for line in again.out.splitlines()[:3]}
    assert actions == {"scale": "unchanged", "pair": "updated", "cold": "unchanged"}
    after = _status(flash, "local.toml", app_dir)["endpoints"]
    assert after["pair"]["url"] == before["pair"]["url"]
    assert {w["pid"] for w in after["scale"]["workers"]} == {w["pid"] for w in before["scale"]["workers"]}
    assert requests.get(after["pair"]["url"] + "/hi").json() == {"message": "howdy, world"}


def test_failing_init_exits_5_and_leaves_nothing_running(app_dir: Path, flash) -> None:
    # The deploy fails as soon as the supervisor sees the init hook fail, not after the timeout.
    result = flash(
        "deploy", "-c", "broken.toml", "--target", "local", "--detach", "--health-timeout", "300", cwd=app_dir
    )
    assert result.code == 5
    lines = result.err.splitlines()
    start = lines.index(
        "flash: error: broken: cannot start: worker init hook failed (/ping answers 503); its last output:"
    )
    assert lines[start + 1 :][-2:] == [
        "    RuntimeError: model weights missing",
        "  hint: fix the error in the worker's output (restarting it would not help); "
        f"see {app_dir / '.flash/local/supervisor.log'}",
    ]
    assert "RuntimeError: model weights missing" in (app_dir / ".flash/local/supervisor.log").read_text()
    assert flash("status", "-c", "broken.toml", "--target", "local", cwd=app_dir).out.endswith(
        "nothing is running on the local target\n"
    )


def test_missing_variable_is_a_config_error_before_anything_starts(
    app_dir: Path, flash, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCAL_TEST_GREETING")
    result = flash("deploy", "-c", "local.toml", "--target", "local", "--detach", cwd=app_dir)
    assert result.code == 2
    assert result.err == (
        "local.toml:20:20: error: endpoints.pair.env.GREETING: ${LOCAL_TEST_GREETING} is not set in the deploying environment\n"
        "  hint: export LOCAL_TEST_GREETING=… before deploying\n"
        "flash: 1 error in local.toml; nothing was deployed\n"
    )
    assert not (app_dir / ".flash" / "local" / "state.json").exists()


def test_missing_dependency_names_endpoint_and_package(app_dir: Path, flash) -> None:
    config = app_dir / "local.toml"
    config.write_text(
        config.read_text().replace(
            "idle_timeout = 60", 'idle_timeout = 60\ndependencies = ["surely-not-installed-pkg>=1"]'
        )
    )
    result = flash("deploy", "-c", "local.toml", "--target", "local", "--detach", cwd=app_dir)
    assert result.code == 3
    assert (
        result.err.splitlines()[0]
        == "flash: error: endpoint cold needs surely-not-installed-pkg, which is not installed for the local target"
    )


def test_runpod_key_never_reaches_local_workers(app_dir: Path, flash, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_SECRET_KEY_123")
    svc = app_dir / "svc" / "handlers.py"
    svc.write_text(svc.read_text() + "\n\ndef env_dump() -> dict:\n    return dict(os.environ)\n")
    config = app_dir / "local.toml"
    config.write_text(
        config.read_text().replace(
            '"POST /echo" = "svc.handlers:echo"',
            '"POST /echo" = "svc.handlers:echo"\n"GET /env" = "svc.handlers:env_dump"',
        )
    )
    result = flash("deploy", "-c", "local.toml", "--target", "local", "--detach", cwd=app_dir)
    assert result.code == 0
    url = _status(flash, "local.toml", app_dir)["endpoints"]["pair"]["url"]
    env = requests.get(url + "/env").json()
    assert "RUNPOD_API_KEY" not in env and env["GREETING"] == "howdy"
    assert "rpa_SECRET_KEY_123" not in result.out + result.err
    assert not any(
        "howdy" in p.read_text(errors="replace")
        for p in (app_dir / ".flash").rglob("*")
        if p.is_file() and p.suffix != ".log"
    )


def test_destroy_refuses_without_a_terminal_or_yes(example_dir: Path, flash) -> None:
    result = flash("destroy", "--target", "local", cwd=example_dir)
    assert result.code == 2
    assert (
        result.err
        == "flash: error: refusing to destroy without confirmation: stdin is not a terminal\n  hint: pass --yes\n"
    )


def test_plan_shows_create_then_keep_then_the_changed_fields(example_dir: Path, flash) -> None:
    before = flash("plan", "--target", "local", "--detailed-exitcode", cwd=example_dir)
    assert (before.code, before.out) == (
        10,
        "plan for demo on the local target:\n  + inference-api: create\n  + data-api: create\nflash: 2 to create, 0 to update, 0 unchanged, 0 orphaned\n",
    )
    assert flash("deploy", "--target", "local", "--detach", cwd=example_dir).code == 0
    same = flash("plan", "--target", "local", "--detailed-exitcode", cwd=example_dir)
    assert (same.code, same.out.splitlines()[-1]) == (0, "flash: 0 to create, 0 to update, 2 unchanged, 0 orphaned")
    config = example_dir / "flash.toml"
    config.write_text(
        config.read_text()
        .replace("workers = [1, 3]", "workers = [1, 2]")
        .replace(
            "[endpoints.data-api.routes]",
            '[endpoints.extra]\ncpu = "cpu3c-2-4"\n\n[endpoints.extra.routes]\n"GET /x" = "app.handlers:health"\n\n[endpoints.data-api.routes]',
        )
    )
    changed = flash("plan", "--target", "local", "--format", "markdown", cwd=example_dir)
    assert changed.out.splitlines()[:9] == [
        "### flash plan: `demo` on `local`",
        "",
        "| endpoint | action | changes |",
        "| --- | --- | --- |",
        "| `inference-api` | keep |  |",
        "| `data-api` | update | `workers`: `[1, 3]` → `[1, 2]` |",
        "| `extra` | create |  |",
        "",
        "**1 to create, 1 to update, 1 unchanged, 0 orphaned**",
    ]
    assert '    n_data_api["data-api<br/>update<br/>cpu3c-4-8"]' in changed.out.splitlines()  # the Mermaid graph
    report = json.loads(flash("plan", "--target", "local", "--format", "json", cwd=example_dir).out)["apps"][0]
    assert report["changes"] is True
    assert [a["action"] for a in report["actions"]] == ["keep", "update", "create"]


def test_expect_100_continue_is_answered_by_the_balancer(example_dir: Path, flash) -> None:
    assert flash("deploy", "--target", "local", "--detach", cwd=example_dir).code == 0
    url = _status(flash, "flash.toml", example_dir)["endpoints"]["data-api"]["url"]
    body = json.dumps({"text": "x " * 1000}).encode()
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(
            b"POST /process HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer = b""
        while b'"upper"' not in answer:
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200") and b'"words":1000' in answer


def test_manifest_through_the_balancer_names_the_build_that_serves(example_dir: Path, flash) -> None:
    assert flash("deploy", "--target", "local", "--detach", cwd=example_dir).code == 0
    url = _status(flash, "flash.toml", example_dir)["endpoints"]["data-api"]["url"]
    built = json.loads((example_dir / ".flash/build/manifest.json").read_text())["endpoints"]["data-api"]["hash"]
    manifest = requests.get(url + "/manifest").json()
    assert manifest == {
        "app": "demo",
        "environment": None,
        "endpoint": "data-api",
        "build": built[:12],
        "routes": ["POST /process"],
        "calls": {},
    }


def test_an_endpoint_calls_another_through_runtime_endpoint(tmp_path: Path, flash) -> None:
    shutil.copytree(REPO / "tests" / "apps" / "calls", tmp_path, dirs_exist_ok=True)
    try:
        deployed = flash("deploy", "--target", "local", "--detach", cwd=tmp_path)
        assert deployed.code == 0, deployed.err
        status = _status(flash, "flash.toml", tmp_path)["endpoints"]
        api, inference = status["api"]["url"], status["inference"]["url"]
        asked = requests.post(api + "/ask", json={"values": [1, 2]}, headers={"X-Request-ID": "trace-1"})
        assert asked.json() == {"via": "async", "doubled": [2, 4], "request_id": "trace-1", "authorization": None}
        asked = requests.post(api + "/ask-sync", json={"values": [3]}, headers={"X-Request-ID": "trace-2"})
        assert asked.json() == {"via": "sync", "doubled": [6], "request_id": "trace-2", "authorization": None}
        missing = requests.post(api + "/ask-missing", json={})
        assert (missing.status_code, missing.json()["error"]) == (
            400,
            "endpoint 'billing' is not in this endpoint's `calls` (it may call: inference); "
            "add it to calls = [...] in flash.toml and deploy again",
        )
        manifest = requests.get(api + "/manifest").json()
        assert manifest["calls"] == {"inference": inference}
        # The mothership: one URL for the app, routing by endpoint key, and the whole app's manifest.
        mothership = status["mothership"]["url"]
        via = requests.post(mothership + "/api/ask", json={"values": [5]}, headers={"X-Request-ID": "trace-3"})
        assert via.json() == {"via": "async", "doubled": [10], "request_id": "trace-3", "authorization": None}
        direct = requests.post(mothership + "/inference/predict", json={"values": [4]}, headers={"X-Request-ID": "t"})
        assert direct.json() == {"doubled": [8], "request_id": "t", "authorization": None}
        unknown = requests.get(mothership + "/billing/x", headers={"X-Request-ID": "u"})
        assert (unknown.status_code, unknown.json()) == (
            404,
            {
                "error": "no endpoint 'billing' in app 'calls-test'",
                "request_id": "u",
                "endpoints": ["api", "inference"],
            },
        )
        app = requests.get(mothership + "/manifest").json()
        assert {k: (v["url"], v["routes"], v["ping"]) for k, v in app["endpoints"].items()} == {
            "api": (api, ["POST /ask", "POST /ask-sync", "POST /ask-missing"], 200),
            "inference": (inference, ["POST /predict"], 200),
        }
        assert app["endpoints"]["api"]["build"] == manifest["build"]
        assert flash("plan", "--target", "local", "--detailed-exitcode", cwd=tmp_path).code == 0  # wiring is stable
        _kill_callees_under_load(flash, tmp_path, api)
    finally:
        from flash_pipeline.config.validate import validate_file
        from flash_pipeline.targets.local.deploy import local_destroy

        local_destroy(validate_file(tmp_path / "flash.toml"))


def _kill_callees_under_load(flash, cwd: Path, api: str) -> None:
    """Every inference worker killed while api's handlers call it. A call the dead worker may have
    handled is never sent again (the relay's contract): its caller fails (500), at most one per call
    in flight at the kill. Every other request succeeds once replacements are up (calls not yet
    delivered ride out the restart), and none hangs (each has a bounded wait)."""
    from concurrent.futures import ThreadPoolExecutor

    def ask(n: int) -> tuple[int, object]:
        answer = requests.post(api + "/ask", json={"values": [n]}, timeout=120)
        return answer.status_code, answer.json()

    victims = {w["pid"] for w in _status(flash, "flash.toml", cwd)["endpoints"]["inference"]["workers"]}
    with ThreadPoolExecutor(16) as pool:
        asked = [pool.submit(ask, n) for n in range(48)]
        asked[0].result()  # load is flowing: most requests are still to come
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        results = [f.result() for f in asked]
    failed = [n for n, (status, _) in enumerate(results) if status != 200]
    assert all(results[n][0] == 500 for n in failed) and len(failed) <= 16  # 16 in flight at most
    assert len(failed) < 48 - 16  # the calls made after the kill (most of them) succeed
    answered = [(n, body) for n, (status, body) in enumerate(results) if status == 200]
    assert all(body["doubled"] == [2 * n] for n, body in answered)  # type: ignore[index]
    replaced = {w["pid"] for w in _status(flash, "flash.toml", cwd)["endpoints"]["inference"]["workers"]}
    assert replaced and not replaced & victims


def test_two_apps_deployed_at_the_same_moment_both_run(tmp_path: Path) -> None:
    """Both deploys find 8080 free, then only one balancer can bind it: the other takes the next
    free port (its callers rewired), instead of failing with "address already in use"."""
    import subprocess
    import sys

    calls, hello = tmp_path / "calls", tmp_path / "hello"
    shutil.copytree(REPO / "examples" / "calls", calls)
    hello.mkdir()
    subprocess.run([sys.executable, "-m", "flash_pipeline", "init", str(hello)], check=True, capture_output=True)
    command = [sys.executable, "-m", "flash_pipeline", "deploy", "--target", "local", "--detach", "--format", "json"]
    runs = [
        subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for folder in (calls, hello)
    ]
    try:
        outputs = [run.communicate(timeout=120) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        first, second = ({k: v for k, v in json.loads(out)["apps"][0]["endpoints"].items()} for out, _ in outputs)
        ports = [item["url"] for item in [*first.values(), *second.values()]]
        assert len(set(ports)) == len(ports) == 4, ports  # calls-demo's api, inference, mothership; hello's api
        assert {item["action"] for item in [*first.values(), *second.values()]} == {"created"}
        answer = requests.post(first["api"]["url"] + "/classify", json={"text": "hello world"}, timeout=30)
        assert (answer.status_code, answer.json()["label"]) == (200, "long")  # api reaches inference, wherever it is
        assert requests.get(second["api"]["url"] + "/hello", timeout=30).json() == {"message": "hello, world"}
    finally:
        for folder in (calls, hello):
            subprocess.run(
                [sys.executable, "-m", "flash_pipeline", "destroy", "--target", "local", "--yes"], cwd=folder
            )
