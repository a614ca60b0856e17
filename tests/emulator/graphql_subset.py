"""The GraphQL subset of RunPod's API that flash uses, served by the emulator.

Parsed and validated by graphql-core against the SDL below, so an unknown input field or a bad
variable is a 400 (as RunPod answers), while business errors come back as HTTP 200 with `errors`.
saveEndpoint with an id replaces the whole endpoint: omitted fields fall back to defaults.
"""

from __future__ import annotations

import uuid
from typing import Any

from graphql import GraphQLError, build_schema, execute, parse, validate

SDL = """
type Query { myself: User }
type User { endpoints: [Endpoint!]! podTemplates: [Template!]! }
type EnvVar { key: String! value: String! }
type Template { id: String! name: String! imageName: String! containerDiskInGb: Int! dockerArgs: String!
  ports: String env: [EnvVar!]! volumeInGb: Int! isServerless: Boolean! }
type Endpoint { id: String! name: String! type: String templateId: String template: Template
  gpuIds: String gpuCount: Int instanceIds: [String!] workersMin: Int workersMax: Int idleTimeout: Int
  scalerType: String scalerValue: Int executionTimeoutMs: Int locations: String flashBootType: String
  networkVolumeId: String networkVolumeIds: [String!] allowedCudaVersions: String minCudaVersion: String }
input EnvironmentVariableInput { key: String! value: String! }
input SaveTemplateInput { id: String name: String! imageName: String! containerDiskInGb: Int! dockerArgs: String!
  env: [EnvironmentVariableInput!]! volumeInGb: Int! isServerless: Boolean! ports: String }
input EndpointInput { id: String name: String! type: String templateId: String gpuIds: String gpuCount: Int
  instanceIds: [String!] workersMin: Int workersMax: Int idleTimeout: Int scalerType: String scalerValue: Int
  executionTimeoutMs: Int locations: String flashBootType: String networkVolumeId: String networkVolumeIds: [String!]
  allowedCudaVersions: String minCudaVersion: String }
type Mutation { saveTemplate(input: SaveTemplateInput): Template
  saveEndpoint(input: EndpointInput!): Endpoint
  deleteEndpoint(id: String!): String
  deleteTemplate(templateName: String!): String }
"""
SCHEMA = build_schema(SDL)
DEFAULTS = {"type": "QB", "gpuCount": 1, "workersMin": 0, "workersMax": 3, "idleTimeout": 5, "scalerType": "QUEUE_DELAY", "scalerValue": 4,
            "executionTimeoutMs": 600000, "locations": None, "flashBootType": "OFF", "networkVolumeId": None, "networkVolumeIds": None, "gpuIds": None, "instanceIds": None,
            "allowedCudaVersions": None, "minCudaVersion": None}  # fmt: skip


class Root:
    def __init__(self, emulator: Any) -> None:
        self.emu = emulator

    def myself(self, _info: Any) -> dict[str, Any]:
        return {
            "endpoints": [self._view(i) for i in self.emu.gql_endpoints],
            "podTemplates": list(self.emu.templates.values()),
        }

    def _view(self, endpoint_id: str) -> dict[str, Any]:
        node = dict(self.emu.gql_endpoints[endpoint_id])
        node["template"] = self.emu.templates.get(node.get("templateId"))
        return node

    def saveTemplate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        template_id = input.get("id") or uuid.uuid4().hex[:10]
        if input.get("id") and template_id not in self.emu.templates:
            raise GraphQLError("Template not found")
        if any(t["name"] == input["name"] and t["id"] != template_id for t in self.emu.templates.values()):
            raise GraphQLError(f"Template name must be unique: {input['name']}")
        self.emu.templates[template_id] = {**input, "id": template_id}
        for endpoint_id, node in self.emu.gql_endpoints.items():
            if node.get("templateId") == template_id:  # its workers start from the new template
                self.emu.mirror(endpoint_id)
        return self.emu.templates[template_id]

    def saveEndpoint(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        endpoint_id = input.get("id") or uuid.uuid4().hex[:10]
        if input.get("id") and endpoint_id not in self.emu.gql_endpoints:
            raise GraphQLError("Endpoint not found")
        if not input.get("id") and self.emu.refuse_creates:
            raise GraphQLError(self.emu.refuse_creates)
        if input.get("templateId") not in self.emu.templates:
            raise GraphQLError("templateId is required and must exist")
        self.emu.gql_endpoints[endpoint_id] = {**DEFAULTS, **input, "id": endpoint_id}  # full replace
        self.emu.mirror(endpoint_id)
        return self._view(endpoint_id)

    def deleteEndpoint(self, _info: Any, id: str) -> None:
        """The template stays: RunPod's GraphQL deletes endpoints only."""
        if self.emu.gql_endpoints.pop(id, None) is None:
            raise GraphQLError("Endpoint not found")
        self.emu.endpoints.pop(id, None)

    def deleteTemplate(self, _info: Any, templateName: str) -> None:
        found = next((t for t in self.emu.templates.values() if t["name"] == templateName), None)
        if found is None:
            raise GraphQLError("Template not found")
        if self.emu.template_in_use(found["id"]):
            raise GraphQLError("Template is in use by an endpoint")
        del self.emu.templates[found["id"]]


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
        return 400, {"errors": [{"message": p.message} for p in problems]}
    result = execute(SCHEMA, document, root_value=Root(emulator), variable_values=payload.get("variables") or {})
    if result.errors and result.data is None:  # variables that do not fit their input types
        return 400, {"errors": [{"message": e.message} for e in result.errors]}
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [{"message": e.message, "path": e.path} for e in result.errors]
    return 200, body
