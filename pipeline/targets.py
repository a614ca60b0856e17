"""The RunPod path of plan/deploy/status/destroy, kept out of cli.py so the CLI stays a switchboard."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, FlashError
from pipeline.model import Project
from pipeline.plan import Action
from pipeline.providers.runpod import RunpodProvider
from pipeline.runpod_deploy import Outcome


def runpod_plan(project: Project, provider: RunpodProvider) -> list[Action]:
    """The plan against live state, computing image tags in memory (nothing is written)."""
    return provider.plan(project, provider.images(project, None))


def runpod_deploy(
    project: Project,
    provider: RunpodProvider,
    *,
    build: bool,
    push: bool,
    prune: bool,
    rollback: bool,
    timeout: float | None,
    echo: Callable[[str], None],
) -> list[Outcome]:
    """Build (unless the images were pushed by CI), push if asked, then apply and gate."""
    result = None
    if build:
        from pipeline.build import build as build_project

        try:
            result = build_project(project)
        except ConfigError as exc:
            exc.consequence = "nothing was deployed"
            raise
        if push:
            from pipeline.docker import push as push_images

            push_images(result, project.registry, echo)
    return provider.apply(
        project, provider.images(project, result), prune=prune, rollback=rollback, timeout=timeout, echo=echo
    )


def write_github_outputs(outcomes: list[Outcome], environ: Mapping[str, str], summary_markdown: str) -> None:
    """In GitHub Actions: `<endpoint>_url` / `<endpoint>_id` outputs and a step-summary table."""
    output = environ.get("GITHUB_OUTPUT")
    if output:
        with Path(output).open("a", encoding="utf-8") as handle:
            for o in outcomes:
                if o.endpoint_id and o.action != "deleted":
                    key = o.key.replace("-", "_")
                    handle.write(f"{key}_url={o.url}\n{key}_id={o.endpoint_id}\n")
    step_summary = environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(summary_markdown + "\n")


def deploy_configs(
    projects: list[Project],
    provider: RunpodProvider,
    options: Mapping[str, Any],
    echo: Callable[[str], None],
    environ: Mapping[str, str],
) -> list[tuple[Project, list[Outcome], FlashError | None]]:
    """Deploy several configs at once; each one's outcomes, and its error if it failed."""
    from pipeline import report
    from pipeline.multi import in_parallel

    def one(project: Project) -> tuple[Project, list[Outcome], FlashError | None]:
        try:
            outcomes = runpod_deploy(project, provider, echo=echo, **options)
        except FlashError as exc:
            return project, list(getattr(exc, "outcomes", [])), exc
        write_github_outputs(outcomes, environ, report.runpod_summary_markdown(project.name, outcomes))
        return project, outcomes, None

    return in_parallel(one, projects)
