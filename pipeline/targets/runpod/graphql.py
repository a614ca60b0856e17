"""RunPod GraphQL backend (FLASH_API=graphql): the REST backend's interface over saveTemplate/saveEndpoint.

It speaks REST-shaped endpoint dicts to the rest of flash, so planning, gating and reports are
shared. GraphQL differs in three ways handled here: an update replaces every field (so the full
desired spec is always sent), the template's platform env (PORT, PORT_HEALTH) must be carried
over, and HTTP 200 answers may carry `errors`. There are no rollouts or worker summaries, and
GraphQL has no worker logs: RunPod documents log streams on REST v2 alone
(`GET /v2/serverless/{id}/workers/{workerId}/logs`, the same key), so `flash logs` reads them there
through the REST backend whichever backend deploys.

Every endpoint flash creates gets a template of its own, named `{name}-{random}`: a replace's
new endpoint never shares (and never rewrites) the old endpoint's template, so the old endpoint
is untouched until it is deleted. Deleting an endpoint deletes its template (found by the
endpoint's templateId), so destroy, prune and failed creates strand nothing. GraphQL deletes
templates by name only, and nothing promises names are unique: a template is deleted by id by
first renaming it (saveTemplate with its id) to a name no other template can have. Retries come
from the client's Retry alone: queries on 429/5xx, mutations on 429 only; a mutation whose
answer was lost is resolved by listing again before it is sent again.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from flash_pipeline.errors import ApiError
from flash_pipeline.targets.runpod.api import AmbiguousError, Client
from flash_pipeline.targets.runpod.backend import Rollout, Template, WorkerSummary
from flash_pipeline.targets.runpod.bodies import LEASE_IMAGE, PLATFORM_ENV, EndpointBody, LiveEndpoint, Patch
from flash_pipeline.targets.runpod.rest import RestBackend
from flash_pipeline.targets.runpod.sse import Event

ENDPOINT_FIELDS = (
    "id name type gpuIds gpuCount instanceIds workersMin workersMax idleTimeout scalerType scalerValue "
    "executionTimeoutMs locations flashBootType networkVolumeId networkVolumeIds { networkVolumeId } templateId createdAt "
    "allowedCudaVersions minCudaVersion "
    "template { id name imageName containerDiskInGb dockerArgs ports env { key value } }"
)
LIST = f"query Endpoints {{ myself {{ endpoints {{ {ENDPOINT_FIELDS} }} }} }}"
SAVE_TEMPLATE = "mutation SaveTemplate($input: SaveTemplateInput) { saveTemplate(input: $input) { id } }"
SAVE_ENDPOINT = (
    f"mutation SaveEndpoint($input: EndpointInput!) {{ saveEndpoint(input: $input) {{ {ENDPOINT_FIELDS} }} }}"
)
DELETE = "mutation DeleteEndpoint($id: String!) { deleteEndpoint(id: $id) }"
TEMPLATES = "query Templates { myself { podTemplates { id name imageName env { key value } } } }"
TEMPLATE = "query Template($id: String!) { podTemplate(id: $id) { id name imageName env { key value } } }"
DELETE_TEMPLATE = "mutation DeleteTemplate($name: String!) { deleteTemplate(templateName: $name) }"
CREATE_ATTEMPTS = 4


def to_rest(node: Mapping[str, Any]) -> LiveEndpoint:
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
        "networkVolumes": [v["networkVolumeId"] for v in node.get("networkVolumeIds") or [] if v]
        or ([node["networkVolumeId"]] if node.get("networkVolumeId") else []),
        "createdAt": node.get("createdAt"),
    }
    if node.get("gpuIds"):
        body["gpu"] = {"pools": node["gpuIds"].split(","), "count": node.get("gpuCount") or 1}
        if node.get("minCudaVersion"):
            body["gpu"]["minCudaVersion"] = node["minCudaVersion"]
        if node.get("allowedCudaVersions"):
            body["gpu"]["allowedCudaVersions"] = node["allowedCudaVersions"].split(",")
    else:
        body["cpu"] = [_cpu(i) for i in node.get("instanceIds") or []]
    return cast(LiveEndpoint, body)


def _cpu(instance_id: str) -> dict[str, Any]:
    flavor, vcpu, _ = instance_id.split("-")
    return {"id": flavor, "vcpuCount": int(vcpu)}


def _instance_ids(body: Mapping[str, Any]) -> list[str]:
    return [
        f"{c['id']}-{c['vcpuCount']}-{c['vcpuCount'] * (2 if c['id'].endswith('c') else 4)}"
        for c in body.get("cpu") or []
    ]


def template_input(
    body: Mapping[str, Any], template_id: str | None, carried: Mapping[str, str], name: str
) -> dict[str, Any]:
    env = {**carried, **body.get("env", {})}
    data: dict[str, Any] = {
        "name": name,
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
    if len(body.get("networkVolumes") or []) > 1:  # the older single field keeps one-volume requests unchanged
        data["networkVolumeIds"] = [{"networkVolumeId": v} for v in body["networkVolumes"]]
    if body.get("gpu"):
        gpu = body["gpu"]
        data.update(gpuIds=",".join(gpu["pools"]), gpuCount=gpu["count"])
        data.update(minCudaVersion=gpu.get("minCudaVersion") or "")  # "" states no floor: an update resets
        data.update(allowedCudaVersions=",".join(gpu.get("allowedCudaVersions") or []))
    else:
        data["instanceIds"] = _instance_ids(body)
    if endpoint_id:
        data["id"] = endpoint_id
    return data


def unsupported(body: Mapping[str, Any]) -> list[str]:
    """What an endpoint asks for that GraphQL cannot express (deploy refuses it before any write)."""
    found = []
    if body.get("flashboot") == "PRIORITY_FLASHBOOT":
        found.append('flashboot = "priority" (GraphQL knows only FLASHBOOT and OFF)')
    if (body.get("gpu") or {}).get("excludedTypes"):
        found.append("gpu_exclude (GraphQL has no excluded GPU types)")
    return found


def template_name(endpoint_name: str) -> str:
    """A fresh name for a new endpoint's own template (unique whether or not the API insists)."""
    return f"{endpoint_name}-{uuid.uuid4().hex[:8]}"


def made_for(template_name: str, endpoint_name: str) -> bool:
    """A template flash made for this endpoint name (`{name}-{random}`, or an older flash's `{name}-template`)."""
    rest = template_name.removeprefix(endpoint_name + "-")
    return rest != template_name and (rest == "template" or (len(rest) == 8 and rest.isalnum()))


class GraphqlBackend:
    name = "graphql"

    def __init__(self, client: Client, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.sleep = sleep

    def _call(self, operation: str, query: str, variables: Mapping[str, Any] | None = None, *, query_only: bool) -> Any:
        """POST /graphql once (the client's Retry repeats what is safe to repeat)."""
        payload = {"query": query, "variables": dict(variables or {})}
        answer = self.client.request(operation, "POST", "/graphql", payload, idempotent=query_only)
        if not isinstance(answer, dict):
            raise ApiError(operation, f"{operation}: unexpected GraphQL answer")
        if answer.get("errors"):  # GraphQL reports business errors with HTTP 200
            messages = "; ".join(str(e.get("message", e)) for e in answer["errors"][:3])
            raise ApiError(operation, f"{operation}: {messages}")
        return answer.get("data") or {}

    def list(self) -> list[LiveEndpoint]:
        data = self._call("list endpoints", LIST, query_only=True)
        return [to_rest(node) for node in ((data.get("myself") or {}).get("endpoints") or [])]

    def unsupported(self, body: EndpointBody) -> builtins.list[str]:
        return unsupported(body)

    def templates(self) -> builtins.list[Template]:
        data = self._call("list templates", TEMPLATES, query_only=True)
        found = (data.get("myself") or {}).get("podTemplates") or []
        return [cast(Template, {**t, "env": {e["key"]: e["value"] for e in t.get("env") or []}}) for t in found]

    def _mutate(self, operation: str, query: str, variables: Mapping[str, Any], settle: Callable[[], Any]) -> Any:
        """A mutation sent again only once a listing (settle) shows it was not applied."""
        for attempt in range(CREATE_ATTEMPTS):
            try:
                return self._call(operation, query, variables, query_only=False)
            except ApiError as exc:
                if not (isinstance(exc, AmbiguousError) or (exc.status or 0) >= 500) or attempt == CREATE_ATTEMPTS - 1:
                    raise
            applied = settle()
            if applied is not None:
                return applied
            self.sleep(self.client.backoff.delay(attempt))
        raise AssertionError("unreachable")

    def _template(self, body: Mapping[str, Any], carried: Mapping[str, str], current: Template | None) -> str:
        """Save the endpoint's template: `current` ({id, name}) in place, else a new one of its own."""
        name = str(current["name"]) if current else template_name(str(body["name"]))
        template_id = str(current["id"]) if current else None

        def settle() -> Any:
            found = next((t for t in self.templates() if t.get("name") == name), None)
            return {"saveTemplate": found} if found else None

        data = template_input(body, template_id, carried, name)
        saved = self._mutate(f"save template {name}", SAVE_TEMPLATE, {"input": data}, settle)
        return str(saved["saveTemplate"]["id"])

    def create(self, body: EndpointBody, known: Callable[[], LiveEndpoint | None]) -> LiveEndpoint:
        name = str(body["name"])
        template_id = self._template(body, {}, None)
        found: list[LiveEndpoint] = []

        def settle() -> LiveEndpoint | None:
            endpoint = known()
            found.extend([endpoint] if endpoint else [])
            return endpoint

        try:
            saved = self._mutate(
                f"create {name}", SAVE_ENDPOINT, {"input": endpoint_input(body, template_id, None)}, settle
            )
        except ApiError:
            self._drop_template(template_id)  # a failed create leaves no template behind
            raise
        return found[0] if found else to_rest(saved["saveEndpoint"])

    def update(self, endpoint_id: str, patch: Patch, name: str) -> LiveEndpoint:
        """Full replace: the live spec with the patch applied, template env's PORT/PORT_HEALTH kept."""
        current = next((e for e in self.list() if e["id"] == endpoint_id), None)
        if current is None:
            raise ApiError(f"update {name}", f"update {name}: endpoint {endpoint_id} no longer exists", status=404)
        full = {**current, **patch}
        carried = {k: v for k, v in current.get("env", {}).items() if k in PLATFORM_ENV}
        template = next((t for t in self.templates() if t.get("id") == current.get("templateId")), None)
        template_id = self._template(full, carried, template)
        saved = self._call(
            f"update {name}",
            SAVE_ENDPOINT,
            {"input": endpoint_input(full, template_id, endpoint_id)},
            query_only=True,  # a full replace with absolute values: safe to repeat
        )
        return to_rest(saved["saveEndpoint"])

    def delete(self, endpoint_id: str, name: str) -> None:
        """Delete the endpoint, then the template flash made for it (templates outlive their endpoints)."""
        current = next((e for e in self.list() if e["id"] == endpoint_id), None)
        self._delete(f"delete {name}", DELETE, {"id": endpoint_id})
        template_id = str((current or {}).get("templateId") or "")
        if template_id:
            template = next((t for t in self.templates() if t.get("id") == template_id), None)
            if template is not None and made_for(str(template.get("name")), name):
                self._drop_template(template_id)

    def _drop_template(self, template_id: str) -> None:
        """Delete one template by id, unless an endpoint still uses it."""
        if any(e.get("templateId") == template_id for e in self.list()):
            return
        try:
            self.delete_template(template_id, "")
        except ApiError:
            pass  # a stray template blocks nothing: its name is never asked for again

    def create_template(self, name: str, env: Mapping[str, str]) -> str:
        data = template_input({"image": LEASE_IMAGE, "disk": 1, "env": env}, None, {}, name)
        saved = self._call(f"create template {name}", SAVE_TEMPLATE, {"input": data}, query_only=False)
        return str(saved["saveTemplate"]["id"])

    def template(self, template_id: str) -> Template | None:
        data = self._call("read the deploy lease", TEMPLATE, {"id": template_id}, query_only=True)
        found = data.get("podTemplate")
        return (
            cast(Template, {**found, "env": {e["key"]: e["value"] for e in found.get("env") or []}}) if found else None
        )

    def update_template(self, template_id: str, env: Mapping[str, str]) -> None:
        current = self.template(template_id)
        if current is None:
            raise ApiError("renew the deploy lease", "the deploy lease is gone", status=404)
        data = template_input({"image": LEASE_IMAGE, "disk": 1, "env": env}, template_id, {}, current["name"])
        self._call("renew the deploy lease", SAVE_TEMPLATE, {"input": data}, query_only=True)

    def delete_template(self, template_id: str, name: str) -> None:
        """By id: GraphQL deletes by name alone, so the template is first renamed (by id) to a name
        no other can have. Gone already is what we wanted."""
        current = self.template(template_id)
        if current is None:
            return
        doomed = f"flash-deleting {uuid.uuid4().hex}"
        data = template_input(
            {"image": current.get("imageName") or LEASE_IMAGE, "disk": 1, "env": current["env"]},
            template_id,
            {},
            doomed,
        )
        try:
            self._call(f"delete template {name or current['name']}", SAVE_TEMPLATE, {"input": data}, query_only=True)
        except ApiError as exc:
            if "not found" in str(exc).lower():
                return
            raise
        self._delete(f"delete template {name or current['name']}", DELETE_TEMPLATE, {"name": doomed})

    def _delete(self, operation: str, query: str, variables: Mapping[str, Any]) -> None:
        """A delete mutation; "not found" is what we wanted (a retry after a lost answer, or a race)."""
        try:
            self._call(operation, query, variables, query_only=True)
        except ApiError as exc:
            if "not found" not in str(exc).lower():
                raise

    def rollout(self, endpoint_id: str, name: str) -> Rollout:
        return {"inProgress": False}  # GraphQL exposes no rollouts: the gate relies on /ping alone

    def workers(self, endpoint_id: str, name: str) -> WorkerSummary:
        return {}  # GraphQL exposes no worker summary

    def log_workers(self, endpoint_id: str, name: str) -> builtins.list[str]:
        """GraphQL has no workers or logs: RunPod documents them on REST v2 only (see the module)."""
        return RestBackend(self.client).log_workers(endpoint_id, name)

    def logs(
        self, endpoint_id: str, worker_id: str, query: str, *, last_event_id: str = "", idle: float | None
    ) -> Iterator[Event]:
        """GraphQL has no log stream: RunPod documents it on REST v2 only (see the module)."""
        return RestBackend(self.client).logs(endpoint_id, worker_id, query, last_event_id=last_event_id, idle=idle)
