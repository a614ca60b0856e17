"""What the RunPod target needs from a control-plane backend (REST v2 or GraphQL), and the one
place that picks one (FLASH_API). Nothing else imports a backend's module.

Both speak the REST v2-shaped bodies of flash_pipeline.targets.runpod.bodies, so planning,
gating, status, logs and reporting are shared.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol, TypedDict

from flash_pipeline.errors import UsageError
from flash_pipeline.targets.runpod.api import Client
from flash_pipeline.targets.runpod.bodies import EndpointBody, LiveEndpoint, Patch
from flash_pipeline.targets.runpod.sse import Event

APIS = ("rest", "graphql")


class WorkerSummary(TypedDict, total=False):
    """An endpoint's workers by state, those on an old release, and a failing worker's last lines."""

    running: int
    idle: int
    initializing: int
    throttled: int
    unhealthy: int
    total: int
    stale: int
    worker: str
    logs: list[str]


class Rollout(TypedDict, total=False):
    inProgress: bool
    workersOnLatest: int
    workersTotal: int
    percentOnLatest: float


class Template(TypedDict, total=False):
    """A template as flash reads it back (the deploy lease; on GraphQL, each endpoint's container)."""

    id: str
    name: str
    imageName: str
    env: dict[str, str]


class Backend(Protocol):
    name: str
    client: Client

    # -- endpoints ---------------------------------------------------------------------------
    def list(self) -> list[LiveEndpoint]: ...

    def create(self, body: EndpointBody, known: Callable[[], LiveEndpoint | None]) -> LiveEndpoint:
        """Create; after an ambiguous failure, `known()` (a fresh listing) says whether it was applied."""
        ...

    def update(self, endpoint_id: str, patch: Patch, name: str) -> LiveEndpoint: ...

    def delete(self, endpoint_id: str, name: str) -> None: ...

    def unsupported(self, body: EndpointBody) -> builtins.list[str]:
        """What a body asks for that this backend cannot express (refused before any write)."""
        ...

    # -- releases and workers ----------------------------------------------------------------
    def rollout(self, endpoint_id: str, name: str) -> Rollout: ...

    def workers(self, endpoint_id: str, name: str) -> WorkerSummary: ...

    def log_workers(self, endpoint_id: str, name: str) -> builtins.list[str]:
        """The ids of the endpoint's workers, each with a log stream `logs` reads."""
        ...

    def logs(
        self, endpoint_id: str, worker_id: str, query: str, *, last_event_id: str = "", idle: float | None
    ) -> Iterator[Event]:
        """One worker's log stream (`query`: tail=N or since=TIME), ending when the server closes it
        or nothing comes for `idle` seconds; sse.StreamRefused on an HTTP error status."""
        ...

    # -- templates: the deploy lease (flash_pipeline.targets.runpod.lease) and, on GraphQL, each
    # endpoint's container spec.
    def templates(self) -> builtins.list[Template]: ...

    def template(self, template_id: str) -> Template | None: ...

    def create_template(self, name: str, env: Mapping[str, str]) -> str: ...

    def update_template(self, template_id: str, env: Mapping[str, str]) -> None: ...

    def delete_template(self, template_id: str, name: str) -> None: ...


def api_of(environ: Mapping[str, str]) -> str:
    """The backend FLASH_API names: rest (the default) or graphql; UsageError for any other."""
    api = environ.get("FLASH_API", "rest")
    if api not in APIS:
        raise UsageError(f"FLASH_API={api!r} is not a backend flash knows", "use rest (default) or graphql")
    return api


def open_backend(client: Client, api: str) -> Backend:
    """The backend of that name over one client (the only place a backend's module is imported)."""
    if api == "graphql":
        from flash_pipeline.targets.runpod.graphql import GraphqlBackend

        return GraphqlBackend(client)
    from flash_pipeline.targets.runpod.rest import RestBackend

    return RestBackend(client)
