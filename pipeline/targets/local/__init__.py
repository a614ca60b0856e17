"""Deploy targets. Each offers plan, apply, status and destroy: LocalProvider here, RunpodProvider in
runpod.py (over REST v2 or GraphQL). Their inputs differ (local runs build folders, RunPod runs
pushed images), so the CLI picks one by --target rather than through a shared base class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flash_pipeline.builder.output import BuildResult
    from flash_pipeline.config.model import Project
    from flash_pipeline.targets.local.deploy import LocalDeploy
    from flash_pipeline.targets.plan import Action


class LocalProvider:
    """Worker processes behind local load balancers on this machine."""

    name = "local"

    def plan(self, project: Project) -> list[Action]:
        from flash_pipeline.targets.local.deploy import local_plan

        return local_plan(project)

    def apply(
        self, project: Project, build: BuildResult, *, detach: bool, timeout: float | None, echo: Callable[[str], None]
    ) -> LocalDeploy:
        from flash_pipeline.targets.local.deploy import deploy_local

        return deploy_local(project, build, detach=detach, timeout=timeout, echo=echo)

    def status(self, project: Project) -> dict[str, Any] | None:
        from flash_pipeline.targets.local.deploy import local_status

        return local_status(project)

    def destroy(self, project: Project) -> list[str]:
        from flash_pipeline.targets.local.deploy import local_destroy

        return local_destroy(project)
