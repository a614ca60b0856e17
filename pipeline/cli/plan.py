"""`flash plan` (and `deploy --dry-run`) on either target, for one config or many in parallel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from flash_pipeline.cli.common import environment, runpod_provider
from flash_pipeline.config.model import Project
from flash_pipeline.errors import ConfigError, Exit, FlashError


def plan(
    names: Sequence[str],
    target: str,
    fmt: str,
    detailed_exitcode: bool,
    *,
    max_floor: float | None = None,
    allow_unavailable: bool = False,
) -> int:
    """`names`: the configs, globs expanded. One app's failure is reported with its name and the
    others are planned; with one config, its error is the command's (after the JSON document)."""
    from flash_pipeline import report
    from flash_pipeline.config.many import in_parallel, load_all
    from flash_pipeline.targets.plan import Action, has_changes
    from flash_pipeline.targets.runpod.insight import compute_text, refusals

    projects = load_all(names, environment(), "nothing was planned")
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
            return exc

    answers = in_parallel(plan_one, projects)
    problems: dict[str, list[str]] = {}  # per app: what deploy would refuse
    for project, answer in zip(projects, answers, strict=True):
        if isinstance(answer, FlashError):
            continue
        actions, found = answer
        mine = [f"endpoint {a.key!r}: {a.note}" for a in actions if a.kind == "conflict"]
        if found is not None and "floor_per_hour" in found:
            mine += refusals(found, allow_unavailable=allow_unavailable, max_floor=max_floor)
        problems[project.name] = mine
    planned = [(p, a) for p, a in zip(projects, answers, strict=True) if not isinstance(a, FlashError)]
    failed = [(p.name, a) for p, a in zip(projects, answers, strict=True) if isinstance(a, FlashError)]
    changes = any(has_changes(actions) for _, (actions, _) in planned)
    if fmt == "json":
        apps = [
            report.app_json(p.name, names[i], target, _unplanned(target), error=a)
            if isinstance(a, FlashError)
            else report.app_json(p.name, names[i], target, report.plan_json(*a), ok=not problems[p.name])
            for i, (p, a) in enumerate(zip(projects, answers, strict=True))
        ]
        click.echo(report.json_document("plan", apps, changes=changes))
    elif planned:
        render = report.plan_markdown if fmt == "markdown" else report.plan_text
        click.echo(report.join_plans([render(p.name, target, actions, found) for p, (actions, found) in planned]))
    if failed and len(projects) == 1:
        raise failed[0][1]  # the command's own error, as for any one-config command
    for app, error in failed:
        click.echo(report.app_error_text(app, error), err=True)
    for app, reasons in problems.items():  # deploy would refuse: say so with the exit code too
        for reason in reasons:
            click.echo(report.error_text(f"{app}: {reason}"), err=True)
    if failed or any(problems.values()):
        return max([error.exit_code for _, error in failed] + ([Exit.API] if any(problems.values()) else []))
    return Exit.CHANGES if detailed_exitcode and changes else Exit.OK


def _unplanned(target: str) -> dict[str, Any]:
    """A failed app's plan fields: the keys of a planned one, empty."""
    return {"changes": False, "actions": []} | ({"cost": None} if target == "runpod" else {})
