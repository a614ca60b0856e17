"""Build and push reports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flash_pipeline.builder.output import BuildResult

from flash_pipeline.report.config import plural


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def build_text(result: BuildResult, seconds: float) -> str:
    """One line per endpoint (written or unchanged, where, image), then a summary."""
    lines = []
    for e in result.endpoints:
        if e.path is None:
            lines.append(f"prebuilt  {e.key}: deploys {e.image} as is")
            continue
        state = "built    " if e.changed else "unchanged"
        lines.append(f"{state} {e.key}: {_shown_path(e.path)} ({plural(e.files, 'file')}, image {e.image})")
    built = [e for e in result.endpoints if e.path is not None]
    lines.append(f"flash: {plural(len(built), 'endpoint')} built in {seconds:.2f}s -> {_shown_path(result.out_dir)}")
    return "\n".join(lines)


def push_text(result: BuildResult, pushed: Sequence[str]) -> str:
    built = [e for e in result.endpoints if e.path is not None]
    lines = [f"pushed {e.image}" if e.key in pushed else f"in the registry already: {e.image}" for e in built]
    return "\n".join(lines)
