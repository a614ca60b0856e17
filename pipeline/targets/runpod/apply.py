"""The RunPod path of plan/deploy/status/destroy, kept out of cli.py so the CLI stays a switchboard."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flash_pipeline.config.model import Project
from flash_pipeline.errors import BuildError, ConfigError, FlashError
from flash_pipeline.targets.cancel import Cancel
from flash_pipeline.targets.plan import Action
from flash_pipeline.targets.runpod.converge import Outcome
from flash_pipeline.targets.runpod.deploy import DeployOptions
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
    options: DeployOptions,
    *,
    echo: Callable[[str], None],
    cancel: Cancel,
) -> list[Outcome]:
    """Build (unless the images were pushed by CI), push if asked, check every flash-built tag is in
    its registry, then apply and gate; each endpoint's outcome."""
    from flash_pipeline.config.calls import require_call_key

    problems = require_call_key(project, provider.environ)
    if problems:
        raise ConfigError(problems, "nothing was deployed")
    from flash_pipeline.targets.runpod.insight import preflight

    # Stock, volumes, CUDA and the budget are checked before the build (and before any write).
    planned = provider.images(project, None)
    preflight(
        project, provider, planned, allow_unavailable=options.allow_unavailable, max_floor=options.max_floor, echo=echo
    )
    result = None
    if options.build:
        from flash_pipeline.builder.output import build as build_project

        try:
            result = build_project(project)
        except ConfigError as exc:
            exc.consequence = "nothing was deployed"
            raise
        if options.push:
            from flash_pipeline.builder.images import push as push_images

            push_images(result, project.registry, echo, builder=options.builder, insecure=options.insecure)
    cancel.check()
    images = provider.images(project, result)
    if options.registry_check:
        require_pushed(project, images, insecure=options.insecure, echo=echo)
    return provider.apply(project, images, options, echo=echo, cancel=cancel)


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


@dataclass(frozen=True)
class DeployResult:
    """One config's deploy: each endpoint's outcome, and the error that stopped it (None if none)."""

    project: Project
    outcomes: list[Outcome]
    error: FlashError | None = None


def deploy_configs(
    projects: list[Project],
    provider: RunpodProvider,
    options: DeployOptions,
    echo: Callable[[str], None],
    cancel: Cancel,
    done: Callable[[DeployResult], None] = lambda result: None,
) -> list[DeployResult]:
    """Deploy several configs at once; each one's result, in the order of `projects`.

    `done` is given each config's result as soon as that config is finished (the report stage
    writes the GitHub outputs then, before the others end). While the work goes on,
    `provider.outcomes_of(project)` shows each config's outcomes so far.
    """
    from flash_pipeline.targets.cancel import in_threads

    def one(project: Project) -> DeployResult:
        try:
            outcomes = runpod_deploy(project, provider, options, echo=echo, cancel=cancel)
        except FlashError as exc:
            result = DeployResult(project, provider.outcomes_of(project), exc)
        else:
            result = DeployResult(project, outcomes)
        done(result)
        return result

    return in_threads(one, list(projects))
