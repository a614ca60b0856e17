"""`flash call`: one request to a deployed endpoint by key, on both targets."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from flash_pipeline.cli.call import send
from flash_pipeline.errors import ApiError

REPO = Path(__file__).resolve().parents[2]


def test_local_target(tmp_path: Path, flash) -> None:
    shutil.copytree(REPO / "tests" / "apps" / "io", tmp_path, dirs_exist_ok=True)
    missing = flash("call", "io", "/items/1", "--target", "local", cwd=tmp_path)
    assert (missing.code, missing.err) == (
        2,
        "flash: error: io is not running locally\n  hint: deploy it first: flash deploy --target local --detach\n",
    )
    assert flash("deploy", "--target", "local", "--detach", cwd=tmp_path).code == 0
    try:
        generated = flash(
            "call",
            "io",
            "POST",
            "/generate",
            "-d",
            '{"prompt": "hi", "max_tokens": 2}',
            "--target",
            "local",
            cwd=tmp_path,
        )
        assert (generated.code, json.loads(generated.out)) == (
            0, {"prompt": "hi", "max_tokens": 2, "temperature": 0.7, "stream": False},
        )  # fmt: skip
        (tmp_path / "body.json").write_text('{"prompt": "from a file"}')
        from_file = flash("call", "io", "/generate", "-d", "@body.json", "--target", "local", cwd=tmp_path)
        assert json.loads(from_file.out)["prompt"] == "from a file"  # -d makes it a POST
        included = flash("call", "io", "items/3", "-i", "-H", "X-Request-ID: r1", "--target", "local", cwd=tmp_path)
        lines = included.out.splitlines()
        assert (lines[0], lines[-1]) == ("HTTP 200 OK", '{"item_id":3,"verbose":false}')
        assert "Content-Type: application/json" in lines
        refused = flash("call", "io", "POST", "/generate", "-d", "{}", "--target", "local", cwd=tmp_path)
        assert refused.code == 4
        assert json.loads(refused.out)["problems"] == [{"path": "prompt", "message": "field required"}]
        bad = flash("call", "io", "POST", "/generate", "-d", "{nope", "--target", "local", cwd=tmp_path)
        assert bad.code == 2 and bad.err.startswith("flash: error: -d is not valid JSON: ")
        unknown = flash("call", "nope", "/x", "--target", "local", cwd=tmp_path)
        assert (unknown.code, unknown.err) == (
            2,
            "flash: error: no endpoint 'nope' in io-test\n  hint: choose one of: io\n",
        )
    finally:
        assert flash("destroy", "--target", "local", "--yes", cwd=tmp_path).code == 0


def test_runpod_target_rides_out_a_cold_start_and_never_prints_the_key(tmp_path: Path, flash, emulator) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "flash.toml.example", tmp_path / "flash.toml")
    absent = flash("call", "data-api", "/process", cwd=tmp_path)
    assert (absent.code, absent.err) == (
        4,
        "flash: error: demo-data-api is not deployed on RunPod\n  hint: deploy it first: flash deploy\n",
    )
    assert flash("deploy", cwd=tmp_path).code == 0
    endpoint_id = next(i for i, e in emulator.endpoints.items() if e.body["name"] == "demo-data-api")
    emulator.endpoints[endpoint_id].healthy_from = time.monotonic() + 1.0  # scaled to zero: a cold start
    called = flash("call", "data-api", "POST", "/process", "-d", '{"text": "a"}', "-i", cwd=tmp_path)
    assert called.code == 0, called.err
    assert json.loads(called.out.splitlines()[-1]) == {"endpoint": endpoint_id, "path": "/process", "method": "POST"}
    assert f"flash: {emulator.url}/lb/{endpoint_id}/process is starting (HTTP 503)" in called.err
    assert "flash: waited " in called.err and "s for a cold start" in called.err
    assert emulator.api_key not in called.out + called.err


def test_send_gives_up_at_the_deadline_without_sleeping(free_port) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with pytest.raises(ApiError) as failed:
        send(
            "GET",
            f"http://127.0.0.1:{free_port()}/x",
            None,
            {},
            deadline=20,
            echo=lambda _: None,
            clock=lambda: now[0],
            sleep=sleep,
        )
    assert "could not connect to" in str(failed.value) and "within 20s" in str(failed.value)
    assert len(slept) >= 4 and sum(slept) <= 20  # backoff within the deadline


def test_status_warns_when_runpod_lowered_max_workers_to_zero(tmp_path: Path, flash, emulator) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "flash.toml.example", tmp_path / "flash.toml")
    assert flash("deploy", cwd=tmp_path).code == 0
    endpoint_id = next(i for i, e in emulator.endpoints.items() if e.body["name"] == "demo-data-api")
    emulator.endpoints[endpoint_id].body["workers"]["max"] = 0  # 7 days without a request
    status = flash("status", cwd=tmp_path)
    assert (
        "  warning: RunPod lowered max workers to 0 (it does so after 7 days without requests), "
        "so no request can be served; `flash deploy` restores 3"
    ) in status.out.splitlines()
    assert flash("deploy", cwd=tmp_path).code == 0
    assert emulator.endpoints[endpoint_id].body["workers"]["max"] == 3
    assert "warning" not in flash("status", cwd=tmp_path).out


def test_logs_on_the_local_target(tmp_path: Path, flash) -> None:
    import os
    import signal
    import subprocess
    import sys

    import requests

    shutil.copytree(REPO / "tests" / "apps" / "calls", tmp_path, dirs_exist_ok=True)
    none = flash("logs", "--target", "local", cwd=tmp_path)
    assert none.code == 2 and none.err.startswith("flash: error: no local log for calls-test\n")
    assert flash("deploy", "--target", "local", "--detach", cwd=tmp_path).code == 0
    follower = subprocess.Popen(
        [sys.executable, "-m", "flash_pipeline", "logs", "inference", "--target", "local", "--follow"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        api = json.loads(flash("status", "--target", "local", "--format", "json", cwd=tmp_path).out)["apps"][0][
            "endpoints"
        ]["api"]["url"]
        assert requests.post(api + "/ask", json={"values": [1]}, headers={"X-Request-ID": "logged-1"}, timeout=30).ok
        lines = flash("logs", "inference", "--target", "local", "--since", "10m", cwd=tmp_path).out.splitlines()
        assert lines and all(" inference-" in line.split(" | ")[0] for line in lines)  # only inference's workers
        assert any('"request_id": "logged-1"' in line for line in lines)  # the id api forwarded
        everything = flash("logs", "--target", "local", cwd=tmp_path).out
        assert " api-1 | " in everything and " mothership-1 | " in everything
        assert follower.stdout is not None
        while '"request_id": "logged-1"' not in follower.stdout.readline():  # bounded by the test timeout
            pass
        follower.send_signal(signal.SIGINT)
        follower.communicate(timeout=30)
        assert follower.returncode == 130
    finally:
        if follower.poll() is None:
            os.kill(follower.pid, signal.SIGKILL)
        assert flash("destroy", "--target", "local", "--yes", cwd=tmp_path).code == 0


def test_logs_on_runpod_merge_the_workers_streams_and_hide_the_key(tmp_path: Path, flash, emulator) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "flash.toml.example", tmp_path / "flash.toml")
    absent = flash("logs", cwd=tmp_path)
    assert absent.code == 4 and "no workers of inference-api, data-api on RunPod to read logs from" in absent.err
    assert flash("deploy", cwd=tmp_path).code == 0
    endpoint_id = next(i for i, e in emulator.endpoints.items() if e.body["name"] == "demo-data-api")
    shown = flash("logs", "data-api", cwd=tmp_path)
    assert shown.code == 0, shown.err
    assert shown.out.splitlines() == [
        f"2026-11-23T00:00:00Z data-api-w-{endpoint_id} | Starting flash worker",
        f"2026-11-23T00:00:00Z data-api-w-{endpoint_id} | Traceback (most recent call last):",
        f"2026-11-23T00:00:00Z data-api-w-{endpoint_id} | RuntimeError: model weights missing",
    ]
    assert len(flash("logs", cwd=tmp_path).out.splitlines()) == 6  # both endpoints' workers
    assert emulator.api_key not in shown.out + shown.err
