"""What the local supervisor should run: one spec per endpoint (its build folder, resolved env,
workers, port), ports kept from the previous deploy, and the dependencies local workers need."""

from __future__ import annotations

import importlib.metadata
import os
import re
import socket
import sys
from collections.abc import Collection, Mapping
from pathlib import Path

from flash_pipeline.builder.output import BuildResult
from flash_pipeline.config.envvars import callees_env, resolve_env
from flash_pipeline.config.model import Endpoint, Project
from flash_pipeline.errors import BuildError
from flash_pipeline.targets.local.messages import Address, SpecBody

FIRST_PORT = 8080
_REQUIREMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def check_dependencies(project: Project) -> None:
    """Each endpoint's dependencies must be installed here: local workers use this Python."""
    for endpoint in project.endpoints:
        for requirement in endpoint.dependencies:
            match = _REQUIREMENT_NAME.match(requirement)
            if not match:
                continue
            try:
                importlib.metadata.distribution(match.group(0))
            except importlib.metadata.PackageNotFoundError:
                raise BuildError(
                    f"endpoint {endpoint.key} needs {match.group(0)}, which is not installed for the local target",
                    f"pip install '{requirement}' (local workers run with {sys.executable})",
                ) from None


def specs(
    project: Project,
    result: BuildResult,
    environ: Mapping[str, str],
    previous: Mapping[str, Address],
    avoid: Collection[int] = (),
) -> list[SpecBody]:
    """What the supervisor should run; ports stay those of the previous deploy when there was one.
    avoid: ports found taken since they were probed."""
    taken: set[int] = set(avoid)
    out: list[SpecBody] = []
    ports: dict[str, int] = {}
    built = {e.key: e for e in result.endpoints}
    for endpoint in project.endpoints:
        entry = built[endpoint.key]
        if entry.path is None:
            raise BuildError(
                f"endpoint {endpoint.key} sets image = {endpoint.image!r}; the local target runs only built endpoints",
                "remove image to run it locally",
            )
        known = previous.get(endpoint.key)
        port = (known["port"] if known else 0) or _next_free(taken)
        taken.add(port)
        ports[endpoint.key] = port
        env = resolve_env(endpoint, environ)  # callee URLs join it below, once every port is known
        digest = entry.digest or ""  # set for every built endpoint
        out.append(spec_body(endpoint, digest, env, build_dir=str(entry.path), port=port, source=project.source_dir))
    urls = {key: f"http://127.0.0.1:{port}" for key, port in ports.items()}
    for spec, endpoint in zip(out, project.endpoints, strict=True):
        # Locally no call key is needed: the balancers take no Authorization, as RunPod's do.
        spec["env"] = {**spec["env"], **callees_env(endpoint, urls)}
    return out


def spec_body(
    endpoint: Endpoint,
    digest: str,
    env: dict[str, str],
    *,
    build_dir: str = "",
    port: int = 0,
    source: Path | None = None,
) -> SpecBody:
    """The one builder of what the supervisor runs for an endpoint (a deploy), or compares (a plan:
    no build folder, no port)."""
    return {
        "key": endpoint.key,
        "name": endpoint.name,
        "build_dir": build_dir,
        "digest": digest,
        "env": env,
        "workers_min": endpoint.workers.min,
        "workers_max": endpoint.workers.max,
        "scaler_value": endpoint.scaler_value,
        "idle_timeout": endpoint.idle_timeout,
        "port": port,
        "source_dir": _shown(source) if source is not None else "",
        "timeout": min(endpoint.timeout, 330),  # the relay's and the drain's bound, as the worker's
    }


def _shown(folder: Path) -> str:
    """A folder as the user sees it: relative to where they run flash when below it, else absolute."""
    relative = os.path.relpath(folder)
    return folder.as_posix() if relative.startswith("..") else relative


def _next_free(taken: set[int]) -> int:
    port = FIRST_PORT
    while port in taken or not _port_free(port):
        port += 1
    return port


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the balancer binds: TIME_WAIT is free
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
