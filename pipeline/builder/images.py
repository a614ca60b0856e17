"""`--push`: build, tag and push each endpoint's image with docker, podman or buildah.

Every image is built for linux/amd64, whatever the machine: RunPod runs x86-64, and an image built
on an ARM laptop would fail there with "exec format error". An endpoint whose tag is in the
registry already is skipped: the tag is a hash of the whole build context, so a no-change push
builds and pushes nothing. Endpoints build in parallel (bounded), and each line of builder output
is prefixed with its endpoint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from flash_pipeline.builder.output import BuildResult, BuiltEndpoint
from flash_pipeline.builder.registry import exists
from flash_pipeline.errors import BuildError

PLATFORM = "linux/amd64"
BUILDERS = ("docker", "podman", "buildah")
PARALLEL = 2  # builds at once: each is CPU- and disk-heavy
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
INSTALL = {
    "docker": "install Docker and start its engine (or point DOCKER_HOST at one)",
    "podman": "install podman (apt-get install podman)",
    "buildah": "install buildah (apt-get install buildah)",
}


@dataclass(frozen=True)
class Builder:
    name: str
    path: str

    def build(self, context: Path, tag: str) -> list[str]:
        if self.name == "docker":
            return [self.path, "build", "--platform", PLATFORM, "--tag", tag, str(context)]
        # podman and buildah: chroot isolation runs anywhere, containers and CI runners included;
        # the host's CA bundle is mounted for the build steps only (package downloads through a
        # TLS-inspecting proxy), never committed into the image.
        extra = ["--volume", f"{HOST_CA}:{HOST_CA}:ro"] if HOST_CA.is_file() else []
        command = "build" if self.name == "podman" else "bud"
        # --layers: keep each step's layer, so the dependency layer is reused while only code changes.
        return [self.path, command, "--platform", PLATFORM, "--isolation", "chroot", "--network", "host",
                "--layers", *extra, "--tag", tag, str(context)]  # fmt: skip

    def push(self, tag: str, insecure: bool) -> list[str]:
        if self.name == "docker":  # docker's insecure registries live in the engine's daemon.json
            return [self.path, "push", tag]
        return [self.path, "push", *(["--tls-verify=false"] if insecure else []), tag, f"docker://{tag}"]


def choose(requested: str | None = None) -> Builder:
    """The builder asked for (--builder, else FLASH_BUILDER), or the first that works: docker only
    when its engine answers, then podman, then buildah. BuildError naming what to install."""
    wanted = (requested or os.environ.get("FLASH_BUILDER") or "auto").lower()
    if wanted != "auto" and wanted not in BUILDERS:
        raise BuildError(f"unknown builder {wanted!r}", f"use one of auto, {', '.join(BUILDERS)}")
    for name in BUILDERS if wanted == "auto" else (wanted,):
        path = shutil.which(name)
        if path is None:
            if wanted != "auto":
                raise BuildError(f"{name} is not installed (no `{name}` on PATH); --push needs it", INSTALL[name])
            continue
        problem = _broken(name, path)
        if problem is None:
            return Builder(name, path)
        if wanted != "auto":
            raise BuildError(f"{name} does not work here: {problem}", INSTALL[name])
    raise BuildError(
        "no image builder found: --push needs docker (with a running engine), podman or buildah",
        "install one (apt-get install buildah is enough), or build and push the images in CI",
    )


def _broken(name: str, path: str) -> str | None:
    """Why a builder cannot build here, or None. Docker needs its engine; the others run alone."""
    probe = [path, "version", "--format", "{{.Server.Version}}"] if name == "docker" else [path, "version"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker engine answers: {reason}" if name == "docker" else reason
    return None


def push(
    result: BuildResult,
    registry: str | None,
    echo: Callable[[str], None],
    *,
    builder: str | None = None,
    insecure: bool = False,
) -> list[str]:
    """Build and push every built endpoint whose tag the registry lacks; the keys pushed."""
    targets = [e for e in result.endpoints if e.path is not None]
    if targets and not registry:
        raise BuildError(
            "app.registry is not set, so there is nowhere to push", 'add registry = "ghcr.io/your-org" to [app]'
        )
    if not targets:
        return []
    tool = choose(builder)
    todo = []
    for endpoint in targets:
        if exists(endpoint.image, insecure=insecure):
            echo(f"{endpoint.key} | {endpoint.image} is in the registry already: not built, not pushed")
        else:
            todo.append(endpoint)
    lock = threading.Lock()

    def one(endpoint: BuiltEndpoint) -> str:
        def say(line: str) -> None:
            with lock:
                echo(f"{endpoint.key} | {line}")

        assert endpoint.path is not None
        _run(tool.build(endpoint.path, endpoint.image), f"{tool.name} build of {endpoint.key}", say)
        _run(tool.push(endpoint.image, insecure), f"{tool.name} push of {endpoint.image}", say)
        return endpoint.key

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return list(pool.map(one, todo))


def _run(command: Sequence[str], what: str, say: Callable[[str], None]) -> None:
    """Run a builder command, streaming its output line by line; BuildError with its last lines."""
    say(f"{what} ...")
    tail: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            say(line)
            tail = [*tail[-4:], line]
    if proc.returncode != 0:
        raise BuildError(
            f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail),
            "the output above shows the whole log",
        )
