"""RunPod GraphQL backend (FLASH_API=graphql): the REST backend's interface over saveTemplate/saveEndpoint.

It speaks REST-shaped endpoint dicts to the rest of flash, so planning, gating and reports are
shared. GraphQL differs in three ways handled here: an update replaces every field (so the full
desired spec is always sent), the template's platform env (PORT, PORT_HEALTH) must be carried
over, and HTTP 200 answers may carry `errors`. There are no rollouts or worker summaries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.errors import ApiError
from pipeline.http import AmbiguousError, Client
from pipeline.providers.runpod_rest import PLATFORM_ENV

ENDPOINT_FIELDS = (
    "id name type gpuIds gpuCount instanceIds workersMin workersMax idleTimeout scalerType scalerValue "
    "executionTimeoutMs locations flashBootType networkVolumeId templateId "
    "template { id name imageName containerDiskInGb dockerArgs ports env { key value } }"
)
LIST = f"query Endpoints {{ myself {{ endpoints {{ {ENDPOINT_FIELDS} }} }} }}"
SAVE_TEMPLATE = "mutation SaveTemplate($input: SaveTemplateInput) { saveTemplate(input: $input) { id } }"
SAVE_ENDPOINT = (
    f"mutation SaveEndpoint($input: EndpointInput!) {{ saveEndpoint(input: $input) {{ {ENDPOINT_FIELDS} }} }}"
)
DELETE = "mutation DeleteEndpoint($id: String!) { deleteEndpoint(id: $id) }"


def to_rest(node: Mapping[str, Any]) -> dict[str, Any]:
    """A GraphQL endpoint (with its template) in the REST v2 shape flash compares."""
    template = node.get("template") or {}
    body: dict[str, Any] = {
        "id": node["id"],
        "name": node["name"],
        "templateId": node.get("templateId") or template.get("id"),
        "image": template.get("imageName"),
        "env": {e["key"]: e["value"] for e in template.get("env") or []},
        "ports": [p for p in (template.get("ports") or "").split(",") if p],
        "disk": template.get("containerDiskInGb"),
        "timeout": node.get("executionTimeoutMs"),
        "flashboot": node.get("flashBootType") or "OFF",
        "scaling": {"type": node.get("scalerType"), "requestCount": node.get("scalerValue")},
        "workers": {
            "min": node.get("workersMin"),
            "max": node.get("workersMax"),
            "idleTimeout": node.get("idleTimeout"),
        },
        "dataCenterIds": [d for d in (node.get("locations") or "").split(",") if d],
        "networkVolumes": [node["networkVolumeId"]] if node.get("networkVolumeId") else [],
    }
    if node.get("gpuIds"):
        body["gpu"] = {"pools": node["gpuIds"].split(","), "count": node.get("gpuCount") or 1}
    else:
        body["cpu"] = [_cpu(i) for i in node.get("instanceIds") or []]
    return body


def _cpu(instance_id: str) -> dict[str, Any]:
    flavor, vcpu, _ = instance_id.split("-")
    return {"id": flavor, "vcpuCount": int(vcpu)}


def _instance_ids(body: Mapping[str, Any]) -> list[str]:
    return [
        f"{c['id']}-{c['vcpuCount']}-{c['vcpuCount'] * (2 if c['id'].endswith('c') else 4)}"
        for c in body.get("cpu") or []
    ]


def template_input(body: Mapping[str, Any], template_id: str | None, carried: Mapping[str, str]) -> dict[str, Any]:
    env = {**carried, **body.get("env", {})}
    data: dict[str, Any] = {
        "name": f"{body['name']}-template",
        "imageName": body["image"],
        "containerDiskInGb": body["disk"],
        "dockerArgs": "",
        "env": [{"key": k, "value": v} for k, v in sorted(env.items())],
        "volumeInGb": 0,
        "isServerless": True,
        "ports": ",".join(body.get("ports") or []),
    }
    if template_id:
        data["id"] = template_id
    return data


def endpoint_input(body: Mapping[str, Any], template_id: str, endpoint_id: str | None) -> dict[str, Any]:
    """Every field, always: an update resets whatever it omits."""
    workers = body["workers"]
    data: dict[str, Any] = {
        "name": body["name"],
        "type": "LB",
        "templateId": template_id,
        "scalerType": "REQUEST_COUNT",
        "scalerValue": body["scaling"]["requestCount"],
        "workersMin": workers["min"],
        "workersMax": workers["max"],
        "idleTimeout": workers["idleTimeout"],
        "executionTimeoutMs": body["timeout"],
        "locations": ",".join(body.get("dataCenterIds") or []),
        "flashBootType": body["flashboot"],
        "networkVolumeId": (body.get("networkVolumes") or [None])[0],
    }
    if body.get("gpu"):
        data.update(gpuIds=",".join(body["gpu"]["pools"]), gpuCount=body["gpu"]["count"])
    else:
        data["instanceIds"] = _instance_ids(body)
    if endpoint_id:
        data["id"] = endpoint_id
    return data


class GraphqlBackend:
    name = "graphql"

    def __init__(self, client: Client, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.sleep = sleep

    def _call(
        self, operation: str, query: str, variables: Mapping[str, Any] | None = None, *, retry: bool = True
    ) -> Any:
        """POST /graphql; retried on 429/5xx when the operation is safe to repeat."""
        for attempt in range(6 if retry else 1):
            try:
                answer = self.client.request(
                    operation, "POST", "/graphql", {"query": query, "variables": dict(variables or {})}
                )
            except ApiError as exc:
                transient = isinstance(exc, AmbiguousError) or exc.status in (429, 500, 502, 503, 504)
                if not (retry and transient) or attempt == 5:
                    raise
                self.sleep(min(10.0, 0.5 * 2**attempt))
                continue
            if not isinstance(answer, dict):
                raise ApiError(operation, f"{operation}: unexpected GraphQL answer")
            if answer.get("errors"):  # GraphQL reports business errors with HTTP 200
                messages = "; ".join(str(e.get("message", e)) for e in answer["errors"][:3])
                raise ApiError(operation, f"{operation}: {messages}")
            return answer.get("data") or {}
        raise AssertionError("unreachable")

    def list(self) -> list[dict[str, Any]]:
        data = self._call("list endpoints", LIST)
        return [to_rest(node) for node in ((data.get("myself") or {}).get("endpoints") or [])]

    def find(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.list() if e.get("name") == name), None)

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = str(body["name"])
        template = self._call(
            f"create template of {name}", SAVE_TEMPLATE, {"input": template_input(body, None, {})}, retry=False
        )
        template_id = template["saveTemplate"]["id"]
        try:
            saved = self._call(
                f"create {name}", SAVE_ENDPOINT, {"input": endpoint_input(body, template_id, None)}, retry=False
            )
        except ApiError as exc:
            found = self.find(name) if isinstance(exc, AmbiguousError) or (exc.status or 0) >= 500 else None
            if found is None:
                raise
            return found
        return to_rest(saved["saveEndpoint"])

    def update(self, endpoint_id: str, patch: Mapping[str, Any], name: str) -> dict[str, Any]:
        """Full replace: the live spec with the patch applied, template env's PORT/PORT_HEALTH kept."""
        current = next((e for e in self.list() if e["id"] == endpoint_id), None)
        if current is None:
            raise ApiError(f"update {name}", f"update {name}: endpoint {endpoint_id} no longer exists", status=404)
        full = {**current, **patch}
        carried = {k: v for k, v in current.get("env", {}).items() if k in PLATFORM_ENV}
        template_id = str(current.get("templateId") or "")
        self._call(
            f"update template of {name}", SAVE_TEMPLATE, {"input": template_input(full, template_id or None, carried)}
        )
        saved = self._call(f"update {name}", SAVE_ENDPOINT, {"input": endpoint_input(full, template_id, endpoint_id)})
        return to_rest(saved["saveEndpoint"])

    def delete(self, endpoint_id: str, name: str) -> None:
        self._call(f"delete {name}", DELETE, {"id": endpoint_id})

    def rollout(self, endpoint_id: str, name: str) -> dict[str, Any]:
        return {"inProgress": False}  # GraphQL exposes no rollouts: the gate relies on /ping alone

    def worker_summary(self, endpoint_id: str, name: str) -> dict[str, Any]:
        return {}
