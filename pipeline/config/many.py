"""Several configs in one call (monorepos): glob expansion, loading all at once, name clashes."""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from flash_pipeline.config.model import Project
from flash_pipeline.config.validate import validate_file
from flash_pipeline.errors import ConfigError, Diagnostic

T = TypeVar("T")
_GLOB = set("*?[")


def expand(patterns: Sequence[str]) -> list[str]:
    """Config paths with globs expanded (`**` included), in a stable order; a glob matching nothing stays, to be reported."""
    out: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if _GLOB & set(pattern) else []
        for name in matches or [pattern]:
            if name not in out:
                out.append(name)
    return out


def load_all(names: Sequence[str], environment: str | None, consequence: str) -> list[Project]:
    """Every config validated (every problem in every file at once); clashing RunPod names are errors."""
    projects: list[Project] = []
    problems: list[Diagnostic] = []
    for name in names:
        try:
            projects.append(validate_file(Path(name), name, environment))
        except ConfigError as exc:
            problems.extend(exc.diagnostics)
    claimed: dict[str, str] = {}
    for project in projects:
        for endpoint in project.endpoints:
            other = claimed.setdefault(endpoint.name, endpoint.loc.file)
            if other != endpoint.loc.file:
                loc = endpoint.loc
                message = f"RunPod name {endpoint.name!r} is also claimed by {other}"
                problems.append(
                    Diagnostic(
                        loc.file,
                        loc.line,
                        loc.col,
                        f"endpoints.{endpoint.key}",
                        message,
                        "give the apps different [app] names",
                    )
                )
    if problems:
        raise ConfigError(problems, consequence)
    return projects


def in_parallel(work: Callable[[Project], T], projects: Sequence[Project]) -> list[T]:
    """work(project) for each project at once (plans and deploys are network-bound)."""
    from concurrent.futures import ThreadPoolExecutor  # only when several configs run at once

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(projects)))) as pool:
        return list(pool.map(work, projects))
