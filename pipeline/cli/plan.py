"""`flash plan` on either target, for one config or many in parallel."""

from __future__ import annotations

from typing import Any

import click

from flash_pipeline.cli.common import environment, runpod_provider
from flash_pipeline.config.model import Project
from flash_pipeline.errors import ConfigError, Exit, FlashError


def plan(
    configs: list[str],
    target: str,
    fmt: str,
    detailed_exitcode: bool,
    *,
    max_floor: float | None = None,
    allow_unavailable: bool = False,
) -> int:
    from flash_pipeline import report
    from flash_pipeline.config.many import expand, in_parallel, load_all
    from flash_pipeline.targets.plan import Action, has_changes
    from flash_pipeline.targets.runpod.insight import compute_text, refusals

    projects = load_all(expand(configs), environment(), "nothing was planned")
    provider = runpod_provider() if target == "runpod" else None

    def plan_one(project: Project) -> tuple[list[Action], dict[str, Any] | None] | FlashError:
        try:
            if provider is not None:
                from flash_pipeline.targets.runpod.apply import runpod_plan_insight

                return runpod_plan_insight(project, provider)
            from flash_pipeline.targets.local.deploy import local_plan

            computes = {"endpoints": {e.key: {"compute": compute_text(e)} for e in project.endpoints}}
            return local_plan(project), computes if fmt == "markdown" else None
        except FlashError as exc:
            if isinstance(exc, ConfigError):
                exc.consequence = "nothing was planned"
            if len(projects) == 1:
                raise
            return exc  # one app's failure is reported with its name; the others are planned

    answers = in_parallel(plan_one, projects)
    planned = [(p, a) for p, a in zip(projects, answers, strict=True) if not isinstance(a, FlashError)]
    failed = [(p.name, a) for p, a in zip(projects, answers, strict=True) if isinstance(a, FlashError)]
    render = {"json": report.plan_json, "markdown": report.plan_markdown}.get(fmt, report.plan_text)
    outputs = [render(p.name, target, actions, found) for p, (actions, found) in planned]
    if outputs:
        click.echo(report.join_plans(outputs, fmt, several=len(projects) > 1))
    for app, error in failed:
        click.echo(report.app_error_text(app, error), err=True)
    problems = [
        f"{p.name}: endpoint {a.key!r}: {a.note}"
        for p, (actions, _) in planned
        for a in actions
        if a.kind == "conflict"
    ]
    for project, (_, found) in planned:
        if found is not None and "floor_per_hour" in found:
            reasons = refusals(found, allow_unavailable=allow_unavailable, max_floor=max_floor)
            problems += [f"{project.name}: {reason}" for reason in reasons]
    for problem in problems:  # deploy would refuse: say so with the exit code too
        click.echo(report.error_text(problem), err=True)
    if failed or problems:
        return max([error.exit_code for _, error in failed] + ([Exit.API] if problems else []))
    return Exit.CHANGES if detailed_exitcode and any(has_changes(a) for _, (a, _) in planned) else Exit.OK
