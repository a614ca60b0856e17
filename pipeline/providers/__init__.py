"""Deploy targets behind one small interface: plan, apply, status, destroy.

The local target implements it today; the RunPod backends (REST v2, GraphQL) plug in here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pipeline.build import BuildResult
    from pipeline.deploy import LocalDeploy
    from pipeline.model import Project
    from pipeline.plan import Action


class Provider(Protocol):
    name: str

    def plan(self, project: Project) -> list[Action]: ...

    def apply(
        self, project: Project, build: BuildResult, *, detach: bool, timeout: float | None, echo: Callable[[str], None]
    ) -> LocalDeploy: ...

    def status(self, project: Project) -> dict[str, Any] | None: ...

    def destroy(self, project: Project) -> list[str]: ...


class LocalProvider:
    """Worker processes behind local load balancers on this machine."""

    name = "local"

    def plan(self, project: Project) -> list[Action]:
        from pipeline.deploy import local_plan

        return local_plan(project)

    def apply(
        self, project: Project, build: BuildResult, *, detach: bool, timeout: float | None, echo: Callable[[str], None]
    ) -> LocalDeploy:
        from pipeline.deploy import deploy_local

        return deploy_local(project, build, detach=detach, timeout=timeout, echo=echo)

    def status(self, project: Project) -> dict[str, Any] | None:
        from pipeline.deploy import local_status

        return local_status(project)

    def destroy(self, project: Project) -> list[str]:
        from pipeline.deploy import local_destroy

        return local_destroy(project)
