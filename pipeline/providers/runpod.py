"""The RunPod target: plan, apply, status, destroy over REST v2, or GraphQL with FLASH_API=graphql."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.build import BuildResult, render_all
from pipeline.errors import ApiError, BuildError, UsageError
from pipeline.http import Client
from pipeline.model import Project
from pipeline.plan import Action
from pipeline.providers.backend import Backend
from pipeline.providers.runpod_graphql import GraphqlBackend
from pipeline.providers.runpod_rest import RestBackend, health_url
from pipeline.render import content_hash, image_ref
from pipeline.runpod_deploy import Outcome, default_context, deploy_runpod, live_endpoints, plan_runpod


class RunpodProvider:
    name = "runpod"

    def __init__(self, client: Client, environ: Mapping[str, str], *, graphql: bool = False) -> None:
        self.client = client
        self.environ = environ
        self.backend: Backend = GraphqlBackend(client) if graphql else RestBackend(client)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RunpodProvider:
        """Credentials are checked here, before any build work."""
        env = os.environ if environ is None else environ
        backend = env.get("FLASH_API", "rest")
        if backend not in ("rest", "graphql"):
            raise UsageError(f"FLASH_API={backend!r} is not a backend flash knows", "use rest (default) or graphql")
        return cls(Client.from_environment(env), env, graphql=backend == "graphql")

    def images(self, project: Project, result: BuildResult | None) -> dict[str, str]:
        """Each endpoint's image: its own `image`, else the build's {registry}/{app}-{endpoint}:{hash}."""
        if any(not e.image for e in project.endpoints) and not project.registry:
            raise BuildError(
                "app.registry is not set: RunPod can only run images pushed to a registry",
                'add registry = "ghcr.io/your-org" to [app], or set image on every endpoint',
            )
        if result is not None:
            return {e.key: e.image for e in result.endpoints}
        trees = render_all(project)  # --no-build: the same tags, computed without writing
        return {e.key: e.image or image_ref(project, e, content_hash(trees[e.key])) for e in project.endpoints}

    def plan(self, project: Project, images: Mapping[str, str]) -> list[Action]:
        return plan_runpod(project, self.backend, images, self.environ)

    def apply(
        self,
        project: Project,
        images: Mapping[str, str],
        *,
        prune: bool,
        rollback: bool,
        timeout: float | None,
        echo: Callable[[str], None],
    ) -> list[Outcome]:
        ctx = default_context(self.backend, self.environ, echo)
        return deploy_runpod(project, ctx, images, self.environ, prune=prune, rollback=rollback, timeout=timeout)

    def status(self, project: Project) -> list[dict[str, Any]]:
        live = live_endpoints(project, self.backend)
        template = self.environ.get("RUNPOD_LB_URL_TEMPLATE", "https://{endpoint_id}.api.runpod.ai")
        rows: list[dict[str, Any]] = []
        for endpoint in project.endpoints:
            found = live.get(endpoint.key)
            if found is None:
                rows.append({"endpoint": endpoint.key, "name": endpoint.name, "id": None})
                continue
            base, health = health_url(found, template)
            summary = self.backend.worker_summary(str(found["id"]), endpoint.name)
            rows.append(
                {
                    "endpoint": endpoint.key,
                    "name": endpoint.name,
                    "id": found["id"],
                    "url": base,
                    "workers": summary,
                    "ping": self.client.probe(health),
                }
            )
        return rows

    def destroy(self, project: Project) -> list[str]:
        """Delete every `{app}-…` endpoint, then verify by listing again."""
        live = live_endpoints(project, self.backend)
        for key, endpoint in sorted(live.items()):
            self.backend.delete(str(endpoint["id"]), project.prefix + key)
        left = live_endpoints(project, self.backend)
        if left:
            raise ApiError(
                "destroy", f"still present after delete: {', '.join(sorted(left))}", hint="run `flash destroy` again"
            )
        return sorted(live)
