"""`flash build --push`: docker build and push of each built endpoint; clear errors without an engine."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence

from pipeline.build.output import BuildResult
from pipeline.errors import BuildError

ENGINE_HINT = "start Docker (or point DOCKER_HOST at an engine) and retry; or build in CI and deploy the pushed image"


def require_engine(docker: str = "docker") -> str:
    """Path of the docker client, after checking an engine answers; BuildError otherwise."""
    client = shutil.which(docker)
    if client is None:
        raise BuildError(
            "docker is not installed (no `docker` on PATH); --push needs it",
            "install Docker, or build and push the images in CI",
        )
    probe = subprocess.run(
        [client, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no answer"])[-1]
        raise BuildError(f"no Docker engine answers: {reason}", ENGINE_HINT)
    return client


def push(result: BuildResult, registry: str | None, echo: Callable[[str], None], docker: str = "docker") -> None:
    """docker build + docker push every endpoint that has a build folder."""
    targets = [e for e in result.endpoints if e.path is not None]
    if targets and not registry:
        raise BuildError(
            "app.registry is not set, so there is nowhere to push", 'add registry = "ghcr.io/your-org" to [app]'
        )
    client = require_engine(docker)
    for endpoint in targets:
        _run([client, "build", "--tag", endpoint.image, str(endpoint.path)], f"docker build of {endpoint.key}", echo)
        _run([client, "push", endpoint.image], f"docker push of {endpoint.image}", echo)


def _run(command: Sequence[str], what: str, echo: Callable[[str], None]) -> None:
    echo(f"{what} ...")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise BuildError(
            f"{what} failed (exit {done.returncode}):\n{tail}", "run the command above by hand to see the whole log"
        )
