"""RunPod REST v2 backend: endpoint bodies, normalised comparison, and the five calls flash makes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.errors import ApiError
from pipeline.http import AmbiguousError, Client
from pipeline.model import Cpu, Endpoint

LB_PORTS = ["80/http"]  # the worker listens on $PORT, 80 unless RunPod says otherwise
PLATFORM_ENV = frozenset({"PORT", "PORT_HEALTH"})  # injected by RunPod: never drift
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


def desired_body(endpoint: Endpoint, image: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The CreateEndpointRequest for an endpoint (also the source of sparse PATCHes)."""
    body: dict[str, Any] = {
        "name": endpoint.name,
        "type": "LOAD_BALANCER",
        "image": image,
        "env": dict(env),
        "ports": list(LB_PORTS),
        "disk": endpoint.disk,
        "timeout": endpoint.timeout * 1000,
        "flashboot": "FLASHBOOT" if endpoint.flashboot else "OFF",
        "scaling": {"type": "REQUEST_COUNT", "requestCount": endpoint.scaler_value},
        "workers": {"min": endpoint.workers.min, "max": endpoint.workers.max, "idleTimeout": endpoint.idle_timeout},
        "dataCenterIds": list(endpoint.datacenters),
        "networkVolumes": list(endpoint.network_volumes),
    }
    if isinstance(endpoint.compute, Cpu):
        body["cpu"] = [{"id": endpoint.compute.flavor, "vcpuCount": endpoint.compute.vcpu}]
    else:
        body["gpu"] = {"pools": list(endpoint.compute.pools), "count": endpoint.compute.count}
    return body


def comparable(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields flash owns, normalised; env values as digests so a plan never shows a secret."""
    out: dict[str, Any] = {name: body.get(name) for name in COMPARED}
    env = {k: v for k, v in (body.get("env") or {}).items() if k not in PLATFORM_ENV}
    out["env"] = {k: "sha256:" + hashlib.sha256(str(v).encode()).hexdigest()[:10] for k, v in sorted(env.items())}
    gpu = body.get("gpu")
    out["gpu"] = {"pools": list(gpu.get("pools") or []), "count": gpu.get("count", 1)} if gpu else None
    cpu = body.get("cpu")
    out["cpu"] = [{"id": c.get("id"), "vcpuCount": c.get("vcpuCount")} for c in cpu] if cpu else None
    return out


def sparse_patch(desired: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
    """Only the changed fields, with their full desired values (lists and maps replace wholesale)."""
    return {name: desired[name] for name in fields if name in desired}


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

    def find(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.list() if e.get("name") == name), None)

    def create(self, body: Mapping[str, Any], attempts: int = 6) -> dict[str, Any]:
        """POST, never blindly twice: after an answer that may hide an applied create, look it up first."""
        name = str(body["name"])
        for attempt in range(attempts):
            try:
                created: dict[str, Any] = self.client.request(f"create {name}", "POST", "/v2/serverless", dict(body))
                return created
            except ApiError as exc:
                ambiguous = isinstance(exc, AmbiguousError) or (exc.status or 0) >= 500
                if not (ambiguous or exc.status == 429) or attempt == attempts - 1:
                    raise
            if ambiguous:  # the create may have been applied before the answer was lost
                found = self.find(name)
                if found is not None:
                    return found
            self.sleep(min(10.0, 0.5 * 2**attempt))
        raise ApiError(f"create {name}", f"create {name}: gave up after {attempts} attempts")

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

    def rollout(self, endpoint_id: str, name: str) -> dict[str, Any]:
        answer = self.client.request(f"rollout of {name}", "GET", f"/v2/serverless/{endpoint_id}/releases")
        return dict(answer.get("rollout") or {}) if isinstance(answer, dict) else {}

    def worker_summary(self, endpoint_id: str, name: str) -> dict[str, Any]:
        answer = self.client.request(f"workers of {name}", "GET", f"/v2/serverless/{endpoint_id}/workers")
        if not isinstance(answer, dict):
            return {}
        summary = dict(answer.get("summary") or {})
        failing = [w for w in answer.get("workers") or [] if w.get("status") in ("UNHEALTHY", "INITIALIZING")]
        if failing:  # the last log lines of one failing worker say more than any count
            worker = str(failing[0]["id"])
            summary["logs"] = self.client.event_lines(
                f"logs of {name}", f"/v2/serverless/{endpoint_id}/workers/{worker}/logs?tail=5", limit=5
            )
            summary["worker"] = worker
        return summary


def health_url(live: Mapping[str, Any], lb_template: str) -> tuple[str, str]:
    """(base, health) URLs: requestUrls when the API gives them, else RUNPOD_LB_URL_TEMPLATE."""
    urls = live.get("requestUrls") or {}
    base = urls.get("base") or lb_template.replace("{endpoint_id}", str(live["id"]))
    return base.rstrip("/"), urls.get("health") or base.rstrip("/") + "/ping"
