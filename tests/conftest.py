"""Shared fixtures: run the CLI in-process exactly as the `flash` script does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from flash_pipeline.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "flash.toml.example"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def flash(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Call `flash ARGS...` in-process (through the real error boundary) and capture what it prints."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)

    def run(*args: str, cwd: Path | None = None) -> Result:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        captured = capsys.readouterr()
        code = exit_info.value.code
        return Result(code if isinstance(code, int) else 0, captured.out, captured.err)

    return run


def _free_port() -> int:
    """A port nothing listens on right now (loopback)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    return _free_port


def dockerfile_command(build_dir: Path) -> list[str]:
    """The CMD of an endpoint's generated Dockerfile: what every test runs, exactly."""
    import json

    line = next(line for line in (build_dir / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    return list(json.loads(line[4:]))


class Worker:
    """A generated worker running as a real subprocess, started with the Dockerfile's command."""

    def __init__(self, build_dir: Path, env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import sys
        import tempfile

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = dockerfile_command(build_dir)
        assert command[0] == "python"
        full_env = {**os.environ, "PORT": str(self.port), "HOST": "127.0.0.1", **(env or {})}
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker
        self.proc = subprocess.Popen(
            [sys.executable, *command[1:]],
            cwd=build_dir / "src",
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_listening(self, timeout: float = 30.0) -> None:
        import time

        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.output()}")
            try:
                requests.get(self.url + "/ping", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"worker did not listen within {timeout}s:\n{self.output()}")

    def wait_ready(self, timeout: float = 30.0) -> None:
        import time

        import requests

        deadline = time.monotonic() + timeout
        while requests.get(self.url + "/ping", timeout=2).status_code != 200:
            assert time.monotonic() < deadline, f"never ready:\n{self.output()}"
            time.sleep(0.05)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def stop(self) -> int:
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def start_worker() -> object:
    """Start workers from build folders; every one is stopped at the end of the test."""
    started: list[Worker] = []

    def start(build_dir: Path, env: dict[str, str] | None = None, *, ready: bool = True) -> Worker:
        worker = Worker(build_dir, env)
        started.append(worker)
        worker.wait_listening()
        if ready:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def worker_type() -> type:
    """The Worker class, for module-scoped workers (one process shared by a module's tests)."""
    return Worker


@pytest.fixture(scope="session")
def worker_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/apps/worker copied to a temp folder and built with `flash build`; returns .flash/build."""
    import shutil

    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    root = tmp_path_factory.mktemp("worker-app")
    shutil.copytree(REPO / "tests" / "apps" / "worker", root, dirs_exist_ok=True)
    project = validate_file(root / "flash.toml")
    return build(project).out_dir


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch):
    """A RunPod emulator on loopback, with the environment pointing flash at it."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "emulator"))
    from runpod_emulator import Emulator

    with Emulator() as emu:
        monkeypatch.setenv("RUNPOD_API_BASE_URL", emu.url)
        monkeypatch.setenv("RUNPOD_API_KEY", emu.api_key)
        monkeypatch.delenv("FLASH_API", raising=False)
        # The emulator stands in for RunPod, not for ghcr.io: tests of the registry check use a
        # loopback registry of their own (test_runpod_registry.py).
        monkeypatch.setenv("FLASH_NO_REGISTRY_CHECK", "1")
        yield emu
