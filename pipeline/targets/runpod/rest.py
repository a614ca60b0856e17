"""RunPod REST v2 backend: endpoint bodies, normalised comparison, and the five calls flash makes."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Mapping
from typing import Any

from flash_pipeline.config.model import Cpu, Endpoint
from flash_pipeline.errors import ApiError
from flash_pipeline.targets.runpod.api import AmbiguousError, Client
from flash_pipeline.targets.runpod.ownership import MARKERS

LB_PORTS = ["80/http"]  # the worker listens on $PORT, 80 unless RunPod says otherwise
LEASE_IMAGE = "flash-lease:none"  # a lease template is never run; an image is required all the same
PLATFORM_ENV = frozenset({"PORT", "PORT_HEALTH"})  # injected by RunPod: never drift
CREATE_ATTEMPTS = 4
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


def desired_body(endpoint: Endpoint, image: str, env: Mapping[str, str], owner: Mapping[str, str]) -> dict[str, Any]:
    """The CreateEndpointRequest for an endpoint (also the source of sparse PATCHes); env carries the owner markers."""
    body: dict[str, Any] = {
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
        body["gpu"] = {"pools": list(endpoint.compute.pools), "count": endpoint.compute.count}
        if endpoint.gpu_exclude:  # sent with the pools every time: pools without them clear them
            body["gpu"]["excludedTypes"] = list(endpoint.gpu_exclude)
        if endpoint.cuda is not None and endpoint.cuda.minimum:
            body["gpu"]["minCudaVersion"] = endpoint.cuda.minimum
        elif endpoint.cuda is not None:
            body["gpu"]["allowedCudaVersions"] = list(endpoint.cuda.allowed)
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


def api_form(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields flash owns, in the form the API accepts back (what a rollback re-sends).

    A live endpoint carries read-only and derived values (cpu memory, gpu CUDA constraints as
    null, platform env) that a PATCH would be refused for; only what flash sets is kept.
    """
    out: dict[str, Any] = {name: body.get(name) for name in COMPARED}
    out["env"] = {k: str(v) for k, v in sorted((body.get("env") or {}).items()) if k not in PLATFORM_ENV}
    gpu = body.get("gpu")
    out["gpu"] = _gpu_form(gpu) if gpu else None
    cpu = body.get("cpu")
    out["cpu"] = [{"id": c.get("id"), "vcpuCount": c.get("vcpuCount")} for c in cpu] if cpu else None
    return out


def comparable(body: Mapping[str, Any]) -> dict[str, Any]:
    """api_form without the owner markers: what a plan compares (markers are identity, not drift).

    Values stay in memory for the comparison; the plan reports env changes by key only.
    """
    out = api_form(body)
    out["env"] = {k: v for k, v in out["env"].items() if k not in MARKERS}
    return out


def family(body: Mapping[str, Any]) -> str:
    """The compute family, which RunPod never changes in place: "gpu" or "cpu"."""
    return "gpu" if body.get("gpu") else "cpu"


def sparse_patch(desired: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
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
    return patch


class RestBackend:
    """GET/POST/PATCH/DELETE /v2/serverless… through one Client."""

    name = "rest"

    def __init__(self, client: Client, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.sleep = sleep

    def list(self) -> list[dict[str, Any]]:
        answer = self.client.request("list endpoints", "GET", "/v2/serverless")
        endpoints = answer.get("endpoints") if isinstance(answer, dict) else None
        if not isinstance(endpoints, list):
            raise ApiError("list endpoints", "list endpoints: unexpected answer shape (no endpoints list)")
        return endpoints

    def create(self, body: Mapping[str, Any], known: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        """POST once; when the answer is lost or a 5xx (the create may have been applied), ask `known`
        (a fresh listing) before trying again, so a retry never makes a duplicate.

        429s are retried by the client's Retry (they apply nothing); this loop only resolves
        ambiguity, and sleeps the same backoff between attempts.
        """
        name = str(body["name"])
        for attempt in range(CREATE_ATTEMPTS):
            try:
                created: dict[str, Any] = self.client.request(f"create {name}", "POST", "/v2/serverless", dict(body))
                return created
            except ApiError as exc:
                if not _ambiguous(exc) or attempt == CREATE_ATTEMPTS - 1:
                    raise
            found = known()
            if found is not None:
                return found
            self.sleep(self.client.backoff.delay(attempt))
        raise AssertionError("unreachable")

    def update(self, endpoint_id: str, patch: Mapping[str, Any], name: str) -> dict[str, Any]:
        updated: dict[str, Any] = self.client.request(
            f"update {name}", "PATCH", f"/v2/serverless/{endpoint_id}", dict(patch)
        )
        return updated

    def delete(self, endpoint_id: str, name: str) -> None:
        try:
            self.client.request(f"delete {name}", "DELETE", f"/v2/serverless/{endpoint_id}")
        except ApiError as exc:
            if exc.status != 404:  # already gone is what we wanted
                raise

    def templates(self) -> builtins.list[dict[str, Any]]:
        answer = self.client.request("list templates", "GET", "/v2/templates")
        return list(answer.get("templates") or []) if isinstance(answer, dict) else []

    def template(self, template_id: str) -> dict[str, Any] | None:
        """One template by id; None once it is gone."""
        try:
            answer = self.client.request("read the deploy lease", "GET", f"/v2/templates/{template_id}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return dict(answer) if isinstance(answer, dict) else None

    def create_template(self, name: str, env: Mapping[str, str]) -> str:
        """A template used as a lease (template names are unique on an account); its id."""
        body = {"name": name, "image": LEASE_IMAGE, "env": dict(env), "serverless": True}
        body |= {"startSsh": False, "startJupyter": False}
        answer = self.client.request(f"create template {name}", "POST", "/v2/templates", body)
        return str(answer["id"])

    def update_template(self, template_id: str, env: Mapping[str, str]) -> None:
        self.client.request("renew the deploy lease", "PATCH", f"/v2/templates/{template_id}", {"env": dict(env)})

    def delete_template(self, template_id: str, name: str) -> None:
        try:
            self.client.request(f"delete template {name}", "DELETE", f"/v2/templates/{template_id}")
        except ApiError as exc:
            if exc.status != 404:
                raise

    def rollout(self, endpoint_id: str, name: str) -> dict[str, Any]:
        answer = self.client.request(f"rollout of {name}", "GET", f"/v2/serverless/{endpoint_id}/releases")
        return dict(answer.get("rollout") or {}) if isinstance(answer, dict) else {}

    def worker_summary(self, endpoint_id: str, name: str) -> dict[str, Any]:
        answer = self.client.request(f"workers of {name}", "GET", f"/v2/serverless/{endpoint_id}/workers")
        if not isinstance(answer, dict):
            return {}
        summary = dict(answer.get("summary") or {})
        summary["stale"] = sum(1 for w in answer.get("workers") or [] if w.get("isStale"))
        failing = [w for w in answer.get("workers") or [] if w.get("status") in ("UNHEALTHY", "INITIALIZING")]
        if failing:  # the last log lines of one failing worker say more than any count
            worker = str(failing[0]["id"])
            summary["logs"] = self.client.event_lines(
                f"logs of {name}", f"/v2/serverless/{endpoint_id}/workers/{worker}/logs?tail=5", limit=5
            )
            summary["worker"] = worker
        return summary


def _ambiguous(exc: ApiError) -> bool:
    """A failure after which a write may or may not have been applied."""
    return isinstance(exc, AmbiguousError) or (exc.status or 0) >= 500


def health_url(live: Mapping[str, Any], lb_template: str, path: str = "/ping") -> tuple[str, str]:
    """(base, health) URLs: requestUrls when the API gives them, else RUNPOD_LB_URL_TEMPLATE; a
    health path other than /ping (HEALTH_CHECK_PATH) is polled on the base URL."""
    urls = live.get("requestUrls") or {}
    base = urls.get("base") or lb_template.replace("{endpoint_id}", str(live["id"]))
    if path != "/ping":
        return base.rstrip("/"), base.rstrip("/") + path
    return base.rstrip("/"), urls.get("health") or base.rstrip("/") + "/ping"
