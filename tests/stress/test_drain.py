"""SIGTERM drains: a 25 s request and a 25 s stream in flight both complete, on a worker (Sanic's
graceful shutdown set from the endpoint's timeout, /ping 503 meanwhile, a second signal ignored)
and on the local target (the supervisor stops its balancer first, then its workers with one SIGTERM).

Slow by nature (each test waits out a 25 s request): run with `tox -e stress`. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.stress
SECONDS = 25
CONFIG = """\
[app]
name = "drain"

[endpoints.api]
cpu = "cpu3c-2-4"
workers = [1, 1]
timeout = 60

[endpoints.api.routes]
"GET /sleep" = "svc.handlers:sleep"
"GET /ticks" = "svc.handlers:ticks"
"""
HANDLERS = """\
import asyncio


async def sleep(s: float) -> dict:
    print("started sleep", flush=True)
    await asyncio.sleep(s)
    return {"slept": s}


async def ticks(n: int):
    for index in range(n):
        yield {"tick": index}
        await asyncio.sleep(1)
"""


def _app(folder: Path) -> Path:
    (folder / "svc").mkdir(parents=True)
    (folder / "svc" / "__init__.py").write_text("")
    (folder / "svc" / "handlers.py").write_text(HANDLERS)
    (folder / "flash.toml").write_text(CONFIG)
    return folder / "flash.toml"


def _wait(check: Callable[[], Any], what: str, bound: float = 60.0) -> Any:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"not within {bound:.0f}s: {what}")


class InFlight:
    """A 25 s request and a 25 s stream, each on a thread; what they got at the end."""

    def __init__(self, base: str) -> None:
        self.answer: Any = None
        self.ticks: list[bytes] = []
        self.stream_done = threading.Event()
        self.threads = [
            threading.Thread(target=self._request, args=(base,), daemon=True),
            threading.Thread(target=self._stream, args=(base,), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _request(self, base: str) -> None:
        try:
            answer = requests.get(base + "/sleep", params={"s": SECONDS}, timeout=120)
            self.answer = (answer.status_code, answer.json())
        except (requests.RequestException, ValueError) as exc:
            self.answer = exc

    def _stream(self, base: str) -> None:
        try:
            with requests.get(base + "/ticks", params={"n": SECONDS}, stream=True, timeout=120) as answer:
                for line in answer.iter_lines():
                    if b'"tick"' in line:
                        self.ticks.append(line)
        except requests.RequestException as exc:
            self.ticks.append(repr(exc).encode())
        finally:
            self.stream_done.set()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(120)


def test_a_worker_given_sigterm_finishes_its_request_and_stream(tmp_path: Path, start_worker, free_port) -> None:
    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    out = build(validate_file(_app(tmp_path))).out_dir
    health = free_port()
    worker = start_worker(out / "api", {"PORT_HEALTH": str(health)})
    flight = InFlight(worker.url)
    _wait(lambda: "started sleep" in worker.output() and flight.ticks, "the request and the stream are in flight")
    worker.proc.send_signal(signal.SIGTERM)
    ping = f"http://127.0.0.1:{health}/ping"
    _wait(lambda: requests.get(ping, timeout=5).status_code == 503, "/ping answers 503 while draining")
    worker.proc.send_signal(signal.SIGTERM)  # a second signal (a process group's, a terminal's) is ignored
    flight.join()
    assert flight.answer == (200, {"slept": SECONDS})
    assert len(flight.ticks) == SECONDS, flight.ticks[-3:]
    assert worker.proc.wait(timeout=60) == 0
    assert "Traceback" not in worker.output()


def test_the_local_target_given_sigterm_finishes_its_request_and_stream(tmp_path: Path) -> None:
    config = _app(tmp_path)
    flash = [sys.executable, "-m", "flash_pipeline"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run([*flash, "deploy", "-c", str(config), "--target", "local", "--detach"],
                   check=True, capture_output=True, cwd=tmp_path, env=env, timeout=180)  # fmt: skip

    def status() -> dict[str, Any]:
        out = subprocess.run([*flash, "status", "-c", str(config), "--target", "local", "--format", "json"],
                             check=True, capture_output=True, text=True, cwd=tmp_path, env=env).stdout  # fmt: skip
        return json.loads(out)["apps"][0]  # type: ignore[no-any-return]

    state = json.loads((tmp_path / ".flash" / "local" / "state.json").read_text())
    try:
        flight = InFlight(status()["endpoints"]["api"]["url"])
        _wait(lambda: flight.ticks and status()["endpoints"]["api"]["workers"][0]["inflight"] == 2, "both in flight")
        os.kill(state["pid"], signal.SIGTERM)
        flight.join()
        assert flight.answer == (200, {"slept": SECONDS})
        assert len(flight.ticks) == SECONDS, flight.ticks[-3:]
    finally:
        subprocess.run([*flash, "destroy", "-c", str(config), "--target", "local", "--yes"],
                       capture_output=True, cwd=tmp_path, env=env, timeout=120)  # fmt: skip


def test_the_mothership_given_sigterm_twice_finishes_its_request_and_stream(tmp_path: Path, free_port) -> None:
    events = tmp_path / "events.log"
    events.touch()
    upstream, port = free_port(), free_port()
    stand_in = Path(__file__).resolve().parents[1] / "runtime" / "relay_upstream.py"
    env = {**os.environ, "EVENTS": str(events), "HOST": "127.0.0.1"}
    endpoint = subprocess.Popen([sys.executable, str(stand_in)], env={**env, "PORT": str(upstream)})
    ship = subprocess.Popen(
        [sys.executable, "-c", 'from flash_runtime.mothership import main\nmain({"app": "d", "environment": None, "endpoints": {}})'],
        env={**env, "PORT": str(port), "FLASH_ENDPOINTS": json.dumps({"ep": f"http://127.0.0.1:{upstream}"})},
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/ep"
        _wait(lambda: _answers(base + "/status/200"), "the mothership and its endpoint answer")
        answer: list[Any] = []
        ticks: list[bytes] = []

        def slow() -> None:
            got = requests.get(base + "/sleep", params={"s": SECONDS}, timeout=120)
            answer.append((got.status_code, got.json()))

        def stream() -> None:
            with requests.get(base + "/stream-slow", params={"s": SECONDS}, stream=True, timeout=120) as got:
                ticks.extend(line for line in got.iter_lines() if line.startswith(b"data:"))

        threads = [threading.Thread(target=slow, daemon=True), threading.Thread(target=stream, daemon=True)]
        for thread in threads:
            thread.start()
        _wait(lambda: events.read_text().count("started") == 2, "the request and the stream are in flight")
        ship.send_signal(signal.SIGTERM)
        ship.send_signal(signal.SIGTERM)  # ignored: the drain goes on
        for thread in threads:
            thread.join(120)
        assert answer == [(200, {"slept": SECONDS})]
        assert len(ticks) == SECONDS
        assert ship.wait(timeout=60) == 0
    finally:
        for proc in (ship, endpoint):
            proc.kill()
            proc.wait()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
