"""Real images of the example (buildah; root; a loopback registry): build times, size over the base,
and the container cold start (start -> first /ping 200), flash's worker against the same handlers
on FastAPI + uvicorn (runpod-flash's stack) on the same base, measured alternately.

Run as root with buildah, mmdebstrap and docker-registry installed: `python bench/images.py`.
The base image is the stand-in for python:3.11-slim that tests/images makes (Debian's python3).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from common import REPO, table

sys.path.insert(0, str(REPO / "tests" / "images"))
BASE = "localhost/flash-test-python:3.11-slim"
FASTAPI_APP = '''\
"""The example's inference-api handlers on FastAPI + uvicorn, with a /ping like flash's."""
import asyncio
import os

import uvicorn
from fastapi import FastAPI, Response

from app import handlers, model

app = FastAPI()
state = {"ready": False}


@app.on_event("startup")
async def start() -> None:
    async def init() -> None:
        await asyncio.to_thread(model.load)
        state["ready"] = True

    asyncio.get_running_loop().create_task(init())


@app.get("/ping")
async def ping() -> Response:
    return Response(status_code=200 if state["ready"] else 204)


@app.post("/predict")
async def predict(body: dict) -> dict:
    return handlers.predict(**body)


if __name__ == "__main__":
    uvicorn.run(app, host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", "80")), log_level="warning")
'''
FASTAPI_DOCKERFILE = f"""FROM {BASE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=80 PYTHONPATH=/app/src
WORKDIR /app
RUN pip install --no-cache-dir --disable-pip-version-check fastapi uvicorn
COPY src /app/src
COPY serve.py /app/serve.py
WORKDIR /app/src
CMD ["python", "../serve.py"]
"""


def _buildah(*args: str) -> str:
    return subprocess.run(["buildah", *args], capture_output=True, text=True, check=True, timeout=900).stdout


def _size_mb(image: str) -> float:
    """Bytes of the image's layers (podman shares buildah's storage and reports them exactly)."""
    done = subprocess.run(
        ["podman", "image", "inspect", image, "--format", "{{.Size}}"], capture_output=True, text=True
    )
    return int(done.stdout.strip()) / 1e6


def _cold_start(image: str, port: int) -> float:
    """Seconds from `buildah run` to the first /ping 200 (the container's start included)."""
    config = json.loads(_buildah("inspect", "--type", "image", image))["OCIv1"]["config"]
    container = _buildah("from", image).strip()
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["buildah", "run", "--isolation", "chroot", "--network", "host", "--env", f"PORT={port}",
         "--env", "HOST=127.0.0.1", "--env", "EXAMPLE_LOAD_SECONDS=0", "--env", "LOG_LEVEL=WARNING",
         container, "--", *config["Cmd"]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except requests.RequestException:
                pass
            if time.perf_counter() - started > 60:
                raise RuntimeError(f"{image} never answered /ping 200")
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        _buildah("rm", container)


def _bare_start(image: str) -> float:
    """Seconds for `buildah run IMAGE python -c pass`: the container's and Python's own start."""
    container = _buildah("from", image).strip()
    try:
        started = time.perf_counter()
        subprocess.run(["buildah", "run", "--isolation", "chroot", container, "--", "python", "-c", "pass"], check=True)
        return time.perf_counter() - started
    finally:
        _buildah("rm", container)


def main(rounds: int = 5) -> None:
    from test_real_images import ensure_base_image  # the tests' cached stand-in for python:3.11-slim

    ensure_base_image()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copytree(REPO / "examples", folder / "examples")
        config = (
            (REPO / "flash.toml.example").read_text().replace("[defaults]", f'[defaults]\nbase_image = "{BASE}"', 1)
        )
        (folder / "flash.toml").write_text(config)
        flash = [sys.executable, "-m", "flash_pipeline"]
        subprocess.run([*flash, "build"], cwd=folder, check=True, capture_output=True)
        context = folder / ".flash/build/inference-api"
        timings = {}
        for name, extra in (
            ("cold (no cache)", ["--no-cache"]),
            ("no change (layer cache)", []),
            ("source changed (dependency layer cached)", []),
        ):
            if name.startswith("source changed"):
                (context / "src" / "app" / "handlers.py").write_text(
                    (context / "src" / "app" / "handlers.py").read_text() + "\n# changed\n"
                )
            started = time.perf_counter()
            _buildah("bud", "--isolation", "chroot", "--network", "host", "--platform", "linux/amd64", "--layers",
                     "--volume", "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
                     *extra, "--tag", "localhost/bench-flash:latest", str(context))  # fmt: skip
            timings[name] = time.perf_counter() - started
        peer = folder / "peer"
        shutil.copytree(context / "src", peer / "src")
        (peer / "serve.py").write_text(FASTAPI_APP)
        (peer / "Dockerfile").write_text(FASTAPI_DOCKERFILE)
        _buildah("bud", "--isolation", "chroot", "--network", "host", "--volume",
                 "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
                 "--tag", "localhost/bench-fastapi:latest", str(peer))  # fmt: skip
    base = _size_mb(BASE)
    print("## example image (inference-api), buildah, linux/amd64\n")
    rows = [(name, f"{seconds:.1f}") for name, seconds in timings.items()]
    print(table(["build", "seconds"], rows))
    print()
    sizes = [(n, f"{_size_mb(i):.1f}", f"{_size_mb(i) - base:.1f}") for n, i in
             (("flash worker", "localhost/bench-flash:latest"), ("FastAPI + uvicorn", "localhost/bench-fastapi:latest"))]  # fmt: skip
    print(table(["image", "size MB", "over the base MB"], sizes))
    print()
    samples: dict[str, list[float]] = {"flash worker": [], "FastAPI + uvicorn": [], "bare": []}
    images = {"flash worker": "localhost/bench-flash:latest", "FastAPI + uvicorn": "localhost/bench-fastapi:latest"}
    for _ in range(rounds):
        for name, image in images.items():
            samples[name].append(_cold_start(image, 18080))
        samples["bare"].append(_bare_start(images["flash worker"]))
    med = {name: sorted(values)[rounds // 2] for name, values in samples.items()}
    print(f"## container cold start: start -> first /ping 200 ({rounds} alternating runs, medians)\n")
    rows = []
    for name in images:
        net = med[name] - med["bare"]
        rows.append((name, f"{med[name] * 1000:.0f}", f"{med[name] / med['FastAPI + uvicorn']:.2f}x",
                     f"{net * 1000:.0f}", f"{net / (med['FastAPI + uvicorn'] - med['bare']):.2f}x"))  # fmt: skip
    rows.append(("`python -c pass` in the same container", f"{med['bare'] * 1000:.0f}", "", "", ""))
    print(table(["worker", "median ms", "vs FastAPI", "minus container+python start ms", "vs FastAPI"], rows))


if __name__ == "__main__":
    main()
