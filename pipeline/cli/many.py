"""A one-config command run over several configs (`-c` repeated, or a glob): build, status, destroy, unlock."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flash_pipeline.cli.common import config_paths, echo_err, environment
from flash_pipeline.errors import FlashError


def run_each(patterns: Sequence[str], consequence: str, one: Callable[[str, str | None], int]) -> int:
    """`one(config, app)` for each config -c names; `app` is None when there is only one (its output and
    errors are then those of the single-config command). With several, every config is validated
    first (every problem at once, RunPod names that clash), so that nothing runs unless all can;
    then a config that fails does not stop the others: its error is printed naming its app, and
    the most serious exit code is returned."""
    from flash_pipeline import report
    from flash_pipeline.config.many import load_all

    names = config_paths(patterns)
    if len(names) == 1:
        return one(names[0], None)
    projects = load_all(names, environment(), consequence)
    worst = 0
    for name, project in zip(names, projects, strict=True):
        try:
            code = one(name, project.name)
        except FlashError as exc:
            echo_err(report.app_error_text(project.name, exc))
            code = exc.exit_code
        worst = max(worst, code)
    return worst
