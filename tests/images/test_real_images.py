"""Real images: flash.toml.example built and pushed with buildah into a loopback registry, then run.

Needs buildah, mmdebstrap and docker-registry (Debian packages; `.ci/run` installs them) and root;
skipped with the reason otherwise. No public registry is reachable here, so the base image is a
stand-in for python:3.11-slim made from Debian's own python3 with mmdebstrap, cached between runs.
Run with `tox -e images` (a few minutes the first time).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.images
REPO = Path(__file__).resolve().parents[2]
BASE = "localhost/flash-test-python:3.11-slim"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flash-tests"
FLASH = [sys.executable, "-m", "flash_pipeline"]
NEEDED = ("buildah", "mmdebstrap", "docker-registry")


def _missing() -> str | None:
    absent = [tool for tool in NEEDED if shutil.which(tool) is None]
    if absent:
        return f"needs {', '.join(absent)} (apt-get install {' '.join(absent)})"
    if os.geteuid() != 0:
        return "needs root (buildah with chroot isolation, mmdebstrap)"
    return None


if _missing():
    pytest.skip(_missing() or "", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["buildah", *args], capture_output=True, text=True, check=check, timeout=600)


@pytest.fixture(scope="session")
def base_image() -> str:
    return ensure_base_image()


def ensure_base_image() -> str:
    """python:3.11-slim's stand-in: Debian bookworm's python3 and pip, `python` on PATH, pip allowed
    to install into the system Python (as in the official image). Also used by bench/images.py."""
    if _buildah("inspect", "--type", "image", BASE, check=False).returncode == 0:
        return BASE
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / "python3.11-bookworm.tar"
    if not tarball.exists():
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            [
                "mmdebstrap", "--variant=minbase", "--include=python3,python3-pip,python-is-python3,ca-certificates",
                '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
                "bookworm", str(partial), "http://deb.debian.org/debian",
            ],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        partial.rename(tarball)
    container = _buildah("from", "scratch").stdout.strip()
    try:
        _buildah("add", container, str(tarball), "/")
        _buildah("config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", container)
        _buildah("commit", "-q", container, BASE)
    finally:
        _buildah("rm", container, check=False)
    return BASE


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on a loopback port (plain HTTP)."""
    folder = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = folder / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def example(tmp_path: Path, base_image: str, registry: str) -> Path:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    config = (REPO / "flash.toml.example").read_text()
    config = config.replace('registry = "ghcr.io/acme"', f'registry = "{registry}/acme"')
    config = config.replace("[defaults]", f'[defaults]\nbase_image = "{base_image}"', 1)
    (tmp_path / "flash.toml").write_text(config)
    source = tmp_path / "examples" / "demo"
    (source / ".env").write_text("SECRET=1\n")
    (source / "deploy.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (source / ".git").mkdir()
    (source / ".git" / "config").write_text("[core]\n")
    return tmp_path


def _flash(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLASH, *args], cwd=folder, capture_output=True, text=True, timeout=1200)


def _images(folder: Path) -> dict[str, str]:
    manifest = json.loads((folder / ".flash/build/manifest.json").read_text())
    return {key: entry["image"] for key, entry in manifest["endpoints"].items()}


def test_build_push_and_a_no_change_push_that_pushes_nothing(example: Path, registry: str) -> None:
    first = _flash(example, "build", "--push", "--builder", "buildah", "--insecure-registry")
    assert first.returncode == 0, first.stdout + first.stderr
    images = _images(example)
    assert all(image.startswith(f"{registry}/acme/demo-") for image in images.values())
    assert first.stdout.splitlines()[-2:] == [f"pushed {images['inference-api']}", f"pushed {images['data-api']}"]
    assert "data-api | buildah build of data-api ..." in first.stdout
    from flash_pipeline.builder.registry import exists

    assert all(exists(image, insecure=True) for image in images.values())
    again = _flash(example, "build", "--push", "--builder", "buildah", "--insecure-registry")
    assert again.returncode == 0, again.stderr
    assert "buildah build" not in again.stdout and "buildah push" not in again.stdout
    assert again.stdout.splitlines()[-2:] == [
        f"in the registry already: {images['inference-api']}",
        f"in the registry already: {images['data-api']}",
    ]


def test_the_image_runs_as_root_on_port_80_and_ships_no_secret(example: Path) -> None:
    assert _flash(example, "build", "--push", "--builder", "buildah", "--insecure-registry").returncode == 0
    image = _images(example)["inference-api"]
    command = json.loads(_buildah("inspect", "--type", "image", image).stdout)["OCIv1"]["config"]["Cmd"]
    container = _buildah("from", image).stdout.strip()
    try:
        mount = Path(_buildah("mount", container).stdout.strip())
        shipped = sorted(p.name for p in (mount / "app" / "src").iterdir())
        assert ".env" not in shipped and "deploy.pem" not in shipped and ".git" not in shipped, shipped
        assert "app" in shipped
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", 80)) == 0:
                pytest.skip("port 80 is taken on this machine")
        worker = subprocess.Popen(
            ["buildah", "run", "--isolation", "chroot", "--network", "host",
             "--env", "PORT=80", "--env", "HOST=127.0.0.1", "--env", "EXAMPLE_LOAD_SECONDS=2", "--env", "MODEL=tiny-linear", container, "--", *command],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            seen = []
            deadline = time.monotonic() + 60
            while not seen or seen[-1] != 200:
                assert time.monotonic() < deadline, f"/ping answers {seen[-5:]}"
                try:
                    seen.append(requests.get("http://127.0.0.1:80/ping", timeout=1).status_code)
                except requests.RequestException:
                    time.sleep(0.1)
            assert 204 in seen  # the init hook ran while /ping said "initializing"
            answer = requests.post("http://127.0.0.1:80/predict", json={"values": [1, 2]}, timeout=5)
            assert answer.json() == {"predictions": [2.5, 4.5], "model": "tiny-linear"}
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
    finally:
        _buildah("umount", container, check=False)
        _buildah("rm", container, check=False)
