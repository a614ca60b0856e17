"""The RunPod path of plan/deploy/status/destroy, kept out of cli.py so the CLI stays a switchboard."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flash_pipeline.config.model import Project
from flash_pipeline.errors import BuildError, ConfigError, FlashError
from flash_pipeline.targets.cancel import Cancel
from flash_pipeline.targets.plan import Action
from flash_pipeline.targets.runpod.converge import Outcome
from flash_pipeline.targets.runpod.provider import RunpodProvider


def runpod_plan(project: Project, provider: RunpodProvider) -> list[Action]:
    """The plan against live state, computing image tags in memory (nothing is written)."""
    return provider.plan(project, provider.images(project, None))


def runpod_plan_insight(project: Project, provider: RunpodProvider) -> tuple[list[Action], dict[str, Any]]:
    """The plan with each endpoint's cost and stock (flash_pipeline.targets.runpod.insight)."""
    from flash_pipeline.targets.runpod.insight import plan_with_insight

    return plan_with_insight(project, provider, provider.images(project, None))


def runpod_deploy(
    project: Project,
    provider: RunpodProvider,
    outcomes: list[Outcome],
    *,
    build: bool,
    push: bool,
    prune: bool,
    rollback: bool,
    timeout: float | None,
    lease_wait: float,
    echo: Callable[[str], None],
    cancel: Cancel,
    builder: str = "auto",
    insecure: bool = False,
    registry_check: bool = True,
    allow_unavailable: bool = False,
    max_floor: float | None = None,
) -> list[Outcome]:
    """Build (unless the images were pushed by CI), push if asked, check every flash-built tag is in
    its registry, then apply and gate."""
    from flash_pipeline.config.calls import require_call_key

    problems = require_call_key(project, provider.environ)
    if problems:
        raise ConfigError(problems, "nothing was deployed")
    from flash_pipeline.targets.runpod.insight import preflight

    # Stock, volumes, CUDA and the budget are checked before the build (and before any write).
    planned = provider.images(project, None)
    preflight(project, provider, planned, allow_unavailable=allow_unavailable, max_floor=max_floor, echo=echo)
    result = None
    if build:
        from flash_pipeline.builder.output import build as build_project

        try:
            result = build_project(project)
        except ConfigError as exc:
            exc.consequence = "nothing was deployed"
            raise
        if push:
            from flash_pipeline.builder.images import push as push_images

            push_images(result, project.registry, echo, builder=builder, insecure=insecure)
    cancel.check()
    images = provider.images(project, result)
    if registry_check:
        require_pushed(project, images, insecure=insecure, echo=echo)
    return provider.apply(
        project,
        images,
        outcomes,
        prune=prune,
        rollback=rollback,
        timeout=timeout,
        echo=echo,
        cancel=cancel,
        lease_wait=lease_wait,
    )


def require_pushed(project: Project, images: Mapping[str, str], *, insecure: bool, echo: Callable[[str], None]) -> None:
    """BuildError (exit 3) before any write if a flash-built tag is not in its registry: RunPod could
    never pull it, and the endpoint would never become healthy. A registry that cannot be asked
    (unreachable, a credential helper flash cannot use) is reported and not held against the deploy."""
    from flash_pipeline.builder.registry import exists

    missing = []
    for endpoint in project.endpoints:
        if endpoint.image:
            continue  # the user's own image: theirs to have pushed
        image = images[endpoint.key]
        found = exists(image, insecure=insecure)
        if found is None:
            echo(f"{endpoint.key}: cannot ask the registry whether {image} is there; deploying it anyway")
        elif not found:
            missing.append(image)
    if missing:
        raise BuildError(
            f"not in the registry, so RunPod could not pull it: {', '.join(missing)}; nothing was deployed",
            "pass --push to build and push the images (or push them in CI before `deploy --no-build`)",
        )


def write_github_outputs(
    outcomes: list[Outcome], environ: Mapping[str, str], summary_markdown: str, app: str | None = None
) -> None:
    """In GitHub Actions: `<endpoint>_url` / `<endpoint>_id` outputs (`<app>_<endpoint>_…` when several
    configs deploy at once, so they never collide) and a step-summary table."""
    output = environ.get("GITHUB_OUTPUT")
    if output:
        with Path(output).open("a", encoding="utf-8") as handle:
            for o in outcomes:
                if o.endpoint_id and o.action not in ("deleted", "orphaned", "failed", "pending"):
                    key = (f"{app}_{o.key}" if app else o.key).replace("-", "_")
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
    journal: list[tuple[Project, list[Outcome]]],
    cancel: Cancel,
    summarize: Callable[[str, list[Outcome]], str],
) -> list[tuple[Project, list[Outcome], FlashError | None]]:
    """Deploy several configs at once; each one's outcomes, and its error if it failed.

    `journal` fills in as the work goes (one outcome list per project), for the report of an
    interrupted run. `summarize` renders the GitHub step summary (formatting is the report stage's).
    """
    from flash_pipeline.targets.cancel import in_threads

    journal.extend((p, []) for p in projects)
    several = len(projects) > 1

    def one(entry: tuple[Project, list[Outcome]]) -> tuple[Project, list[Outcome], FlashError | None]:
        project, outcomes = entry
        try:
            runpod_deploy(project, provider, outcomes, echo=echo, cancel=cancel, **options)
        except FlashError as exc:
            error: FlashError | None = exc
        else:
            error = None
        app = project.name if several else None
        write_github_outputs(outcomes, environ, summarize(project.name, outcomes), app)
        return project, outcomes, error

    return in_threads(one, list(journal))
