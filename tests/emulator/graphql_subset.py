"""RunPod's GraphQL, served by the emulator from RunPod's own schema (graphql-subset.graphql beside this file).

Every document is parsed and validated by graphql-core against that schema, so a field selected
the wrong way (`networkVolumeIds` as a scalar) or an unknown input field is a 400, as RunPod
answers, while business errors come back as HTTP 200 with `errors`. saveEndpoint with an id
replaces the whole endpoint: omitted fields fall back to defaults. The schema promises nothing
about template names, so `emulator.unique_template_names` decides whether two may share one;
deleteTemplate takes a name, and where several templates share it, which one goes is not
promised either (the emulator deletes the newest).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, build_schema, execute, parse, validate

SDL = (Path(__file__).with_name("graphql-subset.graphql")).read_text()
SCHEMA = build_schema(SDL)
DEFAULTS = {"type": "QB", "gpuCount": 1, "workersMin": 0, "workersMax": 3, "idleTimeout": 5, "scalerType": "QUEUE_DELAY", "scalerValue": 4,
            "executionTimeoutMs": 600000, "locations": None, "flashBootType": "OFF", "networkVolumeId": None, "networkVolumeIds": None, "gpuIds": None, "instanceIds": None,
            "allowedCudaVersions": None, "minCudaVersion": None}  # fmt: skip


class Root:
    def __init__(self, emulator: Any) -> None:
        self.emu = emulator

    def myself(self, _info: Any) -> dict[str, Any]:
        return {
            "id": "user-1",
            "endpoints": [self._view(i) for i in self.emu.gql_endpoints],
            "podTemplates": list(self.emu.templates.values()),
        }

    def podTemplate(self, _info: Any, id: str) -> dict[str, Any] | None:
        return self.emu.templates.get(id)  # type: ignore[no-any-return]

    def _view(self, endpoint_id: str) -> dict[str, Any]:
        node = dict(self.emu.gql_endpoints[endpoint_id])
        node["template"] = self.emu.templates.get(node.get("templateId"))
        return node

    def saveTemplate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        template_id = input.get("id") or uuid.uuid4().hex[:10]
        if input.get("id") and template_id not in self.emu.templates:
            raise GraphQLError("Template not found")
        self.emu.check_template_name(input["name"], template_id)
        self.emu.templates[template_id] = {**input, "id": template_id}
        for endpoint_id, node in self.emu.gql_endpoints.items():
            if node.get("templateId") == template_id:  # its workers start from the new template
                self.emu.mirror(endpoint_id)
        return self.emu.templates[template_id]  # type: ignore[no-any-return]

    def saveEndpoint(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        endpoint_id = input.get("id") or uuid.uuid4().hex[:10]
        if input.get("id") and endpoint_id not in self.emu.gql_endpoints:
            raise GraphQLError("Endpoint not found")
        if not input.get("id") and self.emu.refuse_creates:
            raise GraphQLError(self.emu.refuse_creates)
        if input.get("templateId") not in self.emu.templates:
            raise GraphQLError("templateId is required and must exist")
        node = {**DEFAULTS, **input, "id": endpoint_id}  # full replace
        volumes = input.get("networkVolumeIds")
        node["networkVolumeIds"] = (
            [{"networkVolumeId": v["networkVolumeId"], "dataCenterId": "EU-RO-1"} for v in volumes if v]
            if volumes
            else None
        )
        node["createdAt"] = (self.emu.gql_endpoints.get(endpoint_id) or {}).get("createdAt") or self.emu.now_iso()
        self.emu.gql_endpoints[endpoint_id] = node
        self.emu.mirror(endpoint_id)
        return self._view(endpoint_id)

    def deleteEndpoint(self, _info: Any, id: str) -> None:
        """The template stays: RunPod's GraphQL deletes endpoints only."""
        if self.emu.gql_endpoints.pop(id, None) is None:
            raise GraphQLError("Endpoint not found")
        self.emu.endpoints.pop(id, None)

    def deleteTemplate(self, _info: Any, templateName: str | None = None) -> None:
        found = [t for t in self.emu.templates.values() if t["name"] == templateName]
        if not found:
            raise GraphQLError("Template not found")
        doomed = found[-1]  # several of one name: which one goes is not promised
        if self.emu.template_in_use(doomed["id"]):
            raise GraphQLError("Template is in use by an endpoint")
        del self.emu.templates[doomed["id"]]


def operation(payload: Any) -> str:
    """The emulator's name for what a GraphQL request does (for per-operation latency and faults)."""
    try:
        document = parse(payload["query"])
        definition = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        field = definition.selection_set.selections[0]
        name = field.name.value  # type: ignore[attr-defined]
        if name == "myself":
            inner = [s.name.value for s in field.selection_set.selections]  # type: ignore[attr-defined]
            return "template.list" if "podTemplates" in inner else "list"
        given = bool(((payload.get("variables") or {}).get("input") or {}).get("id"))
    except Exception:
        return "graphql"
    return {
        "saveEndpoint": "update" if given else "create",
        "saveTemplate": "template.update" if given else "template.create",
        "deleteEndpoint": "delete",
        "deleteTemplate": "template.delete",
        "podTemplate": "template.get",
    }.get(name, "graphql")


def run(emulator: Any, payload: Any) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for one GraphQL request."""
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return 400, {"errors": [{"message": "expected {query, variables}"}]}
    try:
        document = parse(payload["query"])
    except GraphQLError as exc:
        return 400, {"errors": [{"message": exc.message}]}
    problems = validate(SCHEMA, document)
    if problems:
        emulator.rejected.append(payload["query"])
        return 400, {"errors": [{"message": p.message} for p in problems]}
    result = execute(SCHEMA, document, root_value=Root(emulator), variable_values=payload.get("variables") or {})
    if result.errors and result.data is None:  # variables that do not fit their input types
        emulator.rejected.append(payload["query"])
        return 400, {"errors": [{"message": e.message} for e in result.errors]}
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [{"message": e.message, "path": e.path} for e in result.errors]
    return 200, body
