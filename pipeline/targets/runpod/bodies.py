"""RunPod endpoint bodies, whichever backend carries them: the desired body of an endpoint, the
sparse patch of a change, the normalised form a plan compares, and the URLs of a live endpoint.

Both backends speak these REST v2-shaped bodies (GraphQL translates at its edge), so planning,
gating and reporting never import a backend. The types below are the shapes flash writes and
reads; `Any` stays at the JSON boundary (a listing is typed once, where a backend decodes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict, cast

from flash_pipeline.config.model import Cpu, Endpoint
from flash_pipeline.targets.runpod.ownership import MARKERS

LB_PORTS = ["80/http"]  # the worker listens on $PORT, 80 unless RunPod says otherwise
LEASE_IMAGE = "flash-lease:none"  # a lease template is never run; an image is required all the same
PLATFORM_ENV = frozenset({"PORT", "PORT_HEALTH"})  # injected by RunPod: never drift
HEALTH_PATH_ENV = "HEALTH_CHECK_PATH"  # the path RunPod polls when not /ping
GPU_OPTIONAL = ("excludedTypes", "minCudaVersion", "allowedCudaVersions")
COMPARED = (
    "image",
    "env",
    "ports",
    "disk",
    "timeout",
    "flashboot",
    "scaling",
    "workers",
    "dataCenterIds",
    "networkVolumes",
    "gpu",
    "cpu",
)


class Scaling(TypedDict):
    type: str
    requestCount: int


class Workers(TypedDict):
    min: int
    max: int
    idleTimeout: int


class Gpu(TypedDict):
    pools: list[str]
    count: int
    excludedTypes: NotRequired[list[str]]
    minCudaVersion: NotRequired[str]
    allowedCudaVersions: NotRequired[list[str]]


class CpuFlavor(TypedDict):
    id: str
    vcpuCount: int


class EndpointBody(TypedDict):
    """A CreateEndpointRequest as flash sends it (a load-balanced endpoint; gpu or cpu, never both)."""

    name: str
    type: str
    image: str
    env: dict[str, str]
    ports: list[str]
    disk: int
    timeout: int
    flashboot: str
    scaling: Scaling
    workers: Workers
    dataCenterIds: list[str]
    networkVolumes: list[str]
    gpu: NotRequired[Gpu]
    cpu: NotRequired[list[CpuFlavor]]


class Patch(TypedDict, total=False):
    """An UpdateEndpointRequest: only the changed fields, each with its full value."""

    image: str
    env: dict[str, str]
    ports: list[str]
    disk: int
    timeout: int
    flashboot: str
    scaling: Scaling
    workers: Workers
    dataCenterIds: list[str]
    networkVolumes: list[str]
    gpu: Gpu
    cpu: list[CpuFlavor]


class LiveEndpoint(TypedDict, total=False):
    """An endpoint as a listing shows it (REST v2 shape; GraphQL's listing is translated to it).
    The API may add fields, and may leave any out but `id` and `name`."""

    id: str
    name: str
    templateId: str | None
    image: str | None
    env: dict[str, str]
    ports: list[str]
    disk: int | None
    timeout: int | None
    flashboot: str
    scaling: Mapping[str, Any]
    workers: Mapping[str, Any]
    dataCenterIds: list[str]
    networkVolumes: list[str]
    gpu: Mapping[str, Any]
    cpu: list[Mapping[str, Any]]
    createdAt: str | None
    requestUrls: Mapping[str, str]


Comparable = dict[str, object]  # the COMPARED fields of a body, normalised (None where unset)


def desired_body(endpoint: Endpoint, image: str, env: Mapping[str, str], owner: Mapping[str, str]) -> EndpointBody:
    """The CreateEndpointRequest for an endpoint (also the source of sparse PATCHes); env carries the owner markers."""
    body: EndpointBody = {
        "name": endpoint.name,
        "type": "LOAD_BALANCER",
        "image": image,
        "env": {**env, **owner},
        "ports": list(LB_PORTS),
        "disk": endpoint.disk,
        "timeout": endpoint.timeout * 1000,
        "flashboot": flashboot_mode(endpoint),
        "scaling": {"type": "REQUEST_COUNT", "requestCount": endpoint.scaler_value},
        "workers": {"min": endpoint.workers.min, "max": endpoint.workers.max, "idleTimeout": endpoint.idle_timeout},
        "dataCenterIds": list(endpoint.datacenters),
        "networkVolumes": list(endpoint.network_volumes),
    }
    if endpoint.health_path != "/ping":  # RunPod polls it; so does the gate
        body["env"][HEALTH_PATH_ENV] = endpoint.health_path
    if isinstance(endpoint.compute, Cpu):
        body["cpu"] = [{"id": endpoint.compute.flavor, "vcpuCount": endpoint.compute.vcpu}]
    else:
        gpu: Gpu = {"pools": list(endpoint.compute.pools), "count": endpoint.compute.count}
        if endpoint.gpu_exclude:  # sent with the pools every time: pools without them clear them
            gpu["excludedTypes"] = list(endpoint.gpu_exclude)
        if endpoint.cuda is not None and endpoint.cuda.minimum:
            gpu["minCudaVersion"] = endpoint.cuda.minimum
        elif endpoint.cuda is not None:
            gpu["allowedCudaVersions"] = list(endpoint.cuda.allowed)
        body["gpu"] = gpu
    return body


def flashboot_mode(endpoint: Endpoint) -> str:
    if not endpoint.flashboot:
        return "OFF"
    return "PRIORITY_FLASHBOOT" if endpoint.flashboot_priority else "FLASHBOOT"


def _gpu_form(gpu: Mapping[str, Any]) -> dict[str, Any]:
    """The GPU selection flash owns: pools, count, exclusions and the CUDA constraint (unset ones left out)."""
    out: dict[str, Any] = {"pools": list(gpu.get("pools") or []), "count": gpu.get("count", 1)}
    for name in GPU_OPTIONAL:
        if gpu.get(name):
            out[name] = list(gpu[name]) if isinstance(gpu[name], list) else gpu[name]
    return out


def api_form(body: Mapping[str, Any]) -> Comparable:
    """The fields flash owns, in the form the API accepts back (what a rollback re-sends).

    A live endpoint carries read-only and derived values (cpu memory, gpu CUDA constraints as
    null, platform env) that a PATCH would be refused for; only what flash sets is kept.
    """
    out: Comparable = {name: body.get(name) for name in COMPARED}
    out["env"] = {k: str(v) for k, v in sorted((body.get("env") or {}).items()) if k not in PLATFORM_ENV}
    gpu = body.get("gpu")
    out["gpu"] = _gpu_form(gpu) if gpu else None
    cpu = body.get("cpu")
    out["cpu"] = [{"id": c.get("id"), "vcpuCount": c.get("vcpuCount")} for c in cpu] if cpu else None
    return out


def comparable(body: Mapping[str, Any]) -> Comparable:
    """api_form without the owner markers: what a plan compares (markers are identity, not drift).

    Values stay in memory for the comparison; the plan reports env changes by key only.
    """
    out = api_form(body)
    out["env"] = {k: v for k, v in cast(dict[str, str], out["env"]).items() if k not in MARKERS}
    return out


def family(body: Mapping[str, Any]) -> str:
    """The compute family, which RunPod never changes in place: "gpu" or "cpu"."""
    return "gpu" if body.get("gpu") else "cpu"


def sparse_patch(desired: Mapping[str, Any], fields: list[str]) -> Patch:
    """Only the changed fields, with their full values (lists and maps replace wholesale).

    A PATCH's `gpu` states the CUDA constraint explicitly ("" and [] clear one): RunPod leaves an
    omitted constraint as it was, so a plan (or a rollback) that drops one must say so.
    """
    patch = {name: desired[name] for name in fields if desired.get(name) is not None}  # null is never accepted
    if isinstance(patch.get("gpu"), Mapping):
        gpu = dict(patch["gpu"])
        gpu.setdefault("minCudaVersion", "")
        gpu.setdefault("allowedCudaVersions", [])
        patch["gpu"] = gpu
    return cast(Patch, patch)


def health_url(live: Mapping[str, Any], lb_template: str, path: str = "/ping") -> tuple[str, str]:
    """(base, health) URLs: requestUrls when the API gives them, else RUNPOD_LB_URL_TEMPLATE; a
    health path other than /ping (HEALTH_CHECK_PATH) is polled on the base URL."""
    urls = live.get("requestUrls") or {}
    base = urls.get("base") or lb_template.replace("{endpoint_id}", str(live["id"]))
    if path != "/ping":
        return base.rstrip("/"), base.rstrip("/") + path
    return base.rstrip("/"), urls.get("health") or base.rstrip("/") + "/ping"
