"""How an app's endpoints find each other on RunPod: the env flash gives each endpoint (its build
hash, its callees' URLs, the call key) and the deploy order (callees gated before their callers).

RunPod endpoint ids never change on update, so a callee's URL is known from the listing for every
endpoint that already exists; only a created (or replaced) callee's URL is learnt during the
deploy, and its callers' env is completed then, before they are written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flash_pipeline.config.envvars import build_env, callees_env, resolve_value
from flash_pipeline.config.model import Endpoint, Project
from flash_pipeline.targets.runpod.bodies import EndpointBody


def build_of(endpoint: Endpoint, image: str) -> str | None:
    """A flash-built endpoint's build hash: the tag flash gave its image. None for the user's own image."""
    return None if endpoint.image else image.rpartition(":")[2]


def wiring(
    project: Project, endpoint: Endpoint, image: str, urls: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, str]:
    """The env flash sets on an endpoint: FLASH_BUILD (what /manifest must answer for the gate),
    and for a caller FLASH_ENDPOINTS ({callee: URL}; "" while a callee's URL is not known yet) and
    FLASH_CALL_KEY (the call key as written: RunPod resolves a {{ RUNPOD_SECRET_… }} itself)."""
    env: dict[str, str] = build_env(build_of(endpoint, image))
    env.update(callees_env(endpoint, urls))
    if endpoint.calls and project.call_key:
        env["FLASH_CALL_KEY"] = resolve_value(project.call_key, environ)
    return env


def rewired(body: EndpointBody, endpoint: Endpoint, urls: Mapping[str, str]) -> EndpointBody:
    """The body with FLASH_ENDPOINTS naming the callees' URLs as deployed."""
    if not endpoint.calls:
        return body.copy()
    return {**body, "env": {**body["env"], **callees_env(endpoint, urls)}}


def waits_on(endpoint: Endpoint, failed: Sequence[str]) -> str | None:
    """The first callee of this endpoint that did not come up healthy, if any."""
    return next((key for key in endpoint.calls if key in failed), None)
