"""`flash plan` on either target, for one config or many in parallel."""

from __future__ import annotations

import click

from flash_pipeline.cli.common import environment, runpod_provider
from flash_pipeline.config.model import Project
from flash_pipeline.errors import ConfigError


def plan(configs: list[str], target: str, fmt: str, detailed_exitcode: bool) -> int:
    from flash_pipeline import report
    from flash_pipeline.config.many import expand, in_parallel, load_all
    from flash_pipeline.targets.plan import Action, has_changes

    provider = runpod_provider() if target == "runpod" else None
    projects = load_all(expand(configs), environment(), "nothing was planned")

    def plan_one(project: Project) -> list[Action]:
        if provider is not None:
            from flash_pipeline.targets.runpod.apply import runpod_plan

            return runpod_plan(project, provider)
        from flash_pipeline.targets.local import LocalProvider

        return LocalProvider().plan(project)

    try:
        plans = in_parallel(plan_one, projects)
    except ConfigError as exc:
        exc.consequence = "nothing was planned"
        raise
    render = {"json": report.plan_json, "markdown": report.plan_markdown}.get(fmt, report.plan_text)
    outputs = [render(p.name, target, actions) for p, actions in zip(projects, plans, strict=True)]
    click.echo(report.join_plans(outputs, fmt))
    conflicts = [
        (p.name, a) for p, actions in zip(projects, plans, strict=True) for a in actions if a.kind == "conflict"
    ]
    if conflicts:  # deploy would refuse: say so with the exit code too
        for app, action in conflicts:
            click.echo(report.error_text(f"{app}: endpoint {action.key!r}: {action.note}"), err=True)
        return 4
    return 10 if detailed_exitcode and any(has_changes(a) for a in plans) else 0
