"""A RunPod control plane (REST v2 subset) and LB data plane on loopback, for the tests.

Every request body is validated against RunPod's own OpenAPI document (openapi-v2.json beside
this file); invalid ones get RFC 9457 problem+json 422s, as the real API answers. Faults are
scripted: 429 with Retry-After, 503 JSON, 502 HTML, and connections dropped after a write was
applied. Rollouts keep old workers answering until they finish, so a gate that does not wait
for them would pass on the wrong version.

As strict as RunPod where flash's safety depends on it, and relying on nothing its documents do
not promise: the compute family of an endpoint is immutable (a PATCH switching gpu/cpu is a 400),
templates outlive the endpoints that used them (REST and GraphQL share them), 429s carry a real
Retry-After (`retry_after` seconds), endpoint names may repeat, and `createdAt` is the real
creation time. Template names are unique by default; RunPod does not promise it, so
`unique_template_names = False` lets two templates share a name.

Per operation ("list", "create", "update", "delete", "template.create", ... the same names for
REST and GraphQL, see `operation()`): `op_latency` seconds before it runs, `op_faults` (a Faults
of its own) and `hooks` (a callable run before the operation; a test blocks it on an Event to
hold a create in flight). GraphQL documents the schema rejects are kept in `rejected`.

Data plane: /lb/{id}/ping answers 204 for `warmup` seconds after a (re)deploy, then 200; an
image whose reference contains "unhealthy" answers 503 forever. /lb/{id}/manifest reports the
FLASH_BUILD of the release serving (the previous one during a rollout; for an endpoint named in
`stale`, that build for ever: an old worker RunPod still routes to). It takes the API key or a key in
`data_keys` (a key restricted to some endpoints); `secrets` are the account's RunPod secrets,
resolved in the env of the real workers `serve_builds` runs.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import catalog
import graphql_subset
from graphql import GraphQLError
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from worker_logs import WorkerLogs

OPENAPI = json.loads((Path(__file__).with_name("openapi-v2.json")).read_text())
_DOC_URI = "urn:runpod:openapi-v2"
_REGISTRY = Registry().with_resource(_DOC_URI, Resource.from_contents(OPENAPI, default_specification=DRAFT202012))
CONTAINER_FIELDS = ("image", "env", "args", "disk", "ports")


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{_DOC_URI}#/components/schemas/{name}"}, registry=_REGISTRY)


CREATE = _validator("CreateEndpointRequest")
UPDATE = _validator("UpdateEndpointRequest")
ENDPOINT = _validator("Endpoint")
CREATE_TEMPLATE = _validator("CreateTemplateRequest")
UPDATE_TEMPLATE = _validator("UpdateTemplateRequest")
TEMPLATE = _validator("Template")


@dataclass
class Faults:
    rate: float = 0.0  # share of control-plane calls that fail
    kinds: tuple[str, ...] = ("429", "503", "502", "drop")
    seed: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng.seed(self.seed)

    def draw(self) -> str | None:
        return self.rng.choice(self.kinds) if self.rng.random() < self.rate else None


@dataclass
class Deployed:
    body: dict[str, Any]
    healthy_from: float
    rollout_until: float = 0.0
    previous_image: str = ""
    previous_build: str | None = None


class Emulator:
    """State plus a ThreadingHTTPServer. Use as a context manager."""

    def __init__(
        self, api_key: str = "rpa_test_key", *, warmup: float = 0.3, rollout: float = 0.4, latency: float = 0.0
    ) -> None:
        self.api_key = api_key
        self.warmup = warmup
        self.rollout = rollout
        self.latency = latency
        self.faults = Faults()
        self.op_latency: dict[str, float] = {}  # operation -> extra seconds before it runs
        self.op_faults: dict[str, Faults] = {}  # operation -> its own faults (instead of `faults`)
        self.hooks: dict[str, Any] = {}  # operation -> callable(), run before the operation
        self.on_call: Any = None  # callable(operation), run before every control-plane call
        self.after: dict[str, Any] = {}  # operation -> callable(), run once it is applied, before the answer
        self.unique_template_names = True  # RunPod's documents do not promise it: tests switch it off
        self.rejected: list[str] = []  # GraphQL documents the schema refused
        self.ops: list[str] = []  # the operation of each control-plane call (see operation())
        self.retry_after = 1  # seconds a 429 asks for (RunPod never says 0)
        self.refuse_creates = ""  # when set, endpoint creates fail with this business error
        self.stale: dict[str, str] = {}  # endpoint name -> the build an old worker keeps answering with
        self.data_keys: set[str] = set()  # keys the data plane accepts besides the API key
        self.secrets: dict[str, str] = {}  # RunPod secrets: {{ RUNPOD_SECRET_name }} in worker env
        self.endpoints: dict[str, Deployed] = {}
        self.calls: list[tuple[str, str]] = []  # control-plane (method, path), faults included
        self.times: list[float] = []  # time.monotonic() of each call in self.calls
        self.events: list[str] = []  # "create <name>", "<status> <name> <data-plane path>", in order
        self.templates: dict[str, dict[str, Any]] = {}  # GraphQL side of the same account
        self.gql_endpoints: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.logs = WorkerLogs()  # worker log streams (worker_logs.py)
        self.market = catalog.Market()  # catalog, billing, volumes and worker states (tests/emulator/catalog.py)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Emulator:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.supervisor is not None:
            from flash_pipeline.targets.local import process

            process.stop(self.supervisor, {"pid": self.supervisor_pid, "pgid": self.supervisor_pid})

    # -- real workers behind the data plane (the local target's supervisor) -------------------
    supervisor: Any = None
    supervisor_pid: int = 0

    def serve_builds(self, builds: dict[str, dict[str, Any]], state_dir: Path) -> None:
        """Run real workers for endpoints whose image is a key of builds ({image: spec fields})."""
        self.builds = builds
        self.state_dir = state_dir

    def _sync_workers(self) -> None:
        builds = getattr(self, "builds", None)
        if not builds:
            return
        from flash_pipeline.targets.local import control as local
        from flash_pipeline.targets.local import process

        if self.supervisor is None:
            where = local.Paths(self.state_dir, self.state_dir / "emu.sock", self.state_dir / "emu.log")
            self.supervisor_pid = process.start_supervisor(where, detach=True).pid
            self.supervisor = where
        specs = []
        for endpoint_id, deployed in self.endpoints.items():
            spec = builds.get(str(deployed.body.get("image")))
            if spec is not None:
                workers = deployed.body.get("workers", {})
                env = {
                    k: self.resolve(v)
                    for k, v in deployed.body.get("env", {}).items()
                    if k not in ("PORT", "PORT_HEALTH")
                }
                specs.append({**spec, "key": endpoint_id, "name": deployed.body["name"], "env": env, "port": 0,
                              "workers_min": max(1, workers.get("min", 1)), "workers_max": max(1, workers.get("max", 1)),
                              "scaler_value": deployed.body.get("scaling", {}).get("requestCount", 4), "idle_timeout": workers.get("idleTimeout", 5)})  # fmt: skip
        answer = local.send(self.supervisor, {"cmd": "apply", "endpoints": specs})
        self.worker_urls = {k: v["url"] for k, v in answer["endpoints"].items()}

    def resolve(self, value: str) -> str:
        """What RunPod does to env at worker start: {{ RUNPOD_SECRET_name }} becomes the secret."""
        return re.sub(
            r"\{\{\s*RUNPOD_SECRET_([A-Za-z0-9_-]+)\s*\}\}", lambda m: self.secrets.get(m.group(1), ""), value
        )

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "GET"]

    # -- control plane -------------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        endpoint_id = uuid.uuid4().hex[:10]
        full = {
            **body,
            "id": endpoint_id,
            "workers": {"min": 0, "max": 3, "idleTimeout": 5, **body.get("workers", {})},
            "dataCenterIds": body.get("dataCenterIds", []),
            "networkVolumes": body.get("networkVolumes", []),
            "timeout": body.get("timeout", 300000),
            "flashboot": body.get("flashboot", "OFF"),
            "createdAt": _now_iso(),
            "requestUrls": {"base": f"{self.url}/lb/{endpoint_id}", "health": f"{self.url}/lb/{endpoint_id}/ping"},
            "env": {**body.get("env", {}), "PORT": "80", "PORT_HEALTH": "80"},  # the platform injects these
        }
        self.endpoints[endpoint_id] = Deployed(_complete(full), time.monotonic() + self.warmup)
        self.events.append(f"create {body.get('name')}")
        return self.public(endpoint_id)

    def family_change(self, endpoint_id: str, body: dict[str, Any]) -> str | None:
        """RunPod never changes an endpoint's compute family in place."""
        current = self.endpoints[endpoint_id].body
        if "gpu" in body and current.get("cpu"):
            return "gpu"
        if "cpu" in body and current.get("gpu"):
            return "cpu"
        return None

    def check_template_name(self, name: str | None, template_id: str | None) -> None:
        """Names unique on the account (REST and GraphQL), unless `unique_template_names` is off."""
        taken = any(t["name"] == name and t["id"] != template_id for t in self.templates.values())
        if name and taken and self.unique_template_names:
            from graphql import GraphQLError

            raise GraphQLError(f"Template name must be unique: {name}")

    def now_iso(self) -> str:
        return _now_iso()

    def save_template(self, body: dict[str, Any], template_id: str | None = None) -> dict[str, Any]:
        """REST template create/update."""
        name = body.get("name")
        self.check_template_name(name, template_id)
        if template_id is None:
            template_id = uuid.uuid4().hex[:10]
            self.templates[template_id] = {
                "id": template_id, "name": name, "imageName": body.get("image", ""), "containerDiskInGb": body.get("disk", 20),
                "dockerArgs": body.get("args", ""), "env": [], "volumeInGb": 0, "isServerless": bool(body.get("serverless")),
            }  # fmt: skip
        stored = self.templates[template_id]
        if "env" in body:
            stored["env"] = [{"key": k, "value": v} for k, v in body["env"].items()]
        if "image" in body:
            stored["imageName"] = body["image"]
        if name:
            stored["name"] = name
        return self.public_template(template_id)

    def public_template(self, template_id: str) -> dict[str, Any]:
        t = self.templates[template_id]
        body = {
            "id": t["id"], "name": t["name"], "image": t["imageName"], "args": t.get("dockerArgs", ""),
            "disk": max(1, t.get("containerDiskInGb") or 1), "mounts": {}, "ports": [],
            "env": {e["key"]: e["value"] for e in t.get("env") or []}, "registry": None,
            "serverless": bool(t.get("isServerless")), "public": False, "category": "NVIDIA", "startSsh": False,
            "startJupyter": False, "allowedCudaVersions": [],
        }  # fmt: skip
        errors = [e.message for e in TEMPLATE.iter_errors(body)]
        assert not errors, f"the emulator built an invalid Template: {errors}"
        return body

    def template_in_use(self, template_id: str) -> bool:
        return any(n.get("templateId") == template_id for n in self.gql_endpoints.values())

    def patch(self, endpoint_id: str, body: dict[str, Any]) -> dict[str, Any]:
        deployed = self.endpoints[endpoint_id]
        container_change = any(k in body and body[k] != deployed.body.get(k) for k in CONTAINER_FIELDS)
        merged = {**deployed.body, **body}
        if "gpu" in body:
            merged["gpu"] = catalog.merge_gpu(deployed.body.get("gpu") or {}, body["gpu"])
        if "env" in body:
            merged["env"] = {**body["env"], "PORT": "80", "PORT_HEALTH": "80"}
        if container_change:  # a new release: old workers keep answering until the rollout ends
            now = time.monotonic()
            deployed.previous_image = str(deployed.body.get("image", ""))
            deployed.previous_build = deployed.body.get("env", {}).get("FLASH_BUILD")
            deployed.rollout_until = now + self.rollout
            deployed.healthy_from = now + self.rollout + self.warmup
        deployed.body = _complete(merged)
        return self.public(endpoint_id)

    def mirror(self, endpoint_id: str) -> None:
        """Give a GraphQL endpoint a data plane: warm-up restarts when its image changes."""
        node = self.gql_endpoints[endpoint_id]
        template = self.templates[node["templateId"]]
        image = template["imageName"]
        env = {e["key"]: e["value"] for e in template.get("env") or []}
        known = self.endpoints.get(endpoint_id)
        if known is None or known.body.get("image") != image:
            self.endpoints[endpoint_id] = Deployed(
                {"name": node["name"], "image": image, "env": env, "gql": True}, time.monotonic() + self.warmup
            )
        else:
            known.body["env"] = env

    def public(self, endpoint_id: str) -> dict[str, Any]:
        body = dict(self.endpoints[endpoint_id].body)
        errors = [e.message for e in ENDPOINT.iter_errors(body)]
        assert not errors, f"the emulator built an invalid Endpoint: {errors}"
        return body

    def ping_status(self, endpoint_id: str) -> int:
        deployed = self.endpoints.get(endpoint_id)
        if deployed is None:
            return 404
        now = time.monotonic()
        if now < deployed.rollout_until:  # old workers still serve
            return 503 if "unhealthy" in deployed.previous_image else 200
        if "unhealthy" in str(deployed.body.get("image", "")):
            return 503
        return 200 if now >= deployed.healthy_from else 204

    def serving_build(self, endpoint_id: str) -> str | None:
        """The FLASH_BUILD of the release whose workers answer now."""
        deployed = self.endpoints[endpoint_id]
        if time.monotonic() < deployed.rollout_until:
            return deployed.previous_build
        return self.stale.get(str(deployed.body.get("name"))) or deployed.body.get("env", {}).get("FLASH_BUILD")


def operation(method: str, path: str, payload: Any) -> str:
    """What a control-plane request does, named alike for REST and GraphQL."""
    if path == "/graphql":
        return graphql_subset.operation(payload)
    if path.startswith("/v2/catalog"):
        return "catalog"  # prices and stock (tests/emulator/catalog.py)
    if path.startswith("/v2/templates"):
        has_id = bool(path.removeprefix("/v2/templates").strip("/"))
        kind = {"GET": "get" if has_id else "list", "POST": "create", "PATCH": "update", "DELETE": "delete"}
        return "template." + kind.get(method, method.lower())
    tail = path.removeprefix("/v2/serverless").strip("/").split("/")
    if len(tail) > 1:
        return tail[-1] if tail[-1] in ("releases", "workers") else "logs"
    kinds = {"GET": "get" if tail[0] else "list", "POST": "create", "PATCH": "update", "DELETE": "delete"}
    return kinds.get(method, method.lower())


def _now_iso() -> str:
    """The creation time, to the microsecond: duplicates of one name sort oldest first."""
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _complete(body: dict[str, Any]) -> dict[str, Any]:
    """Fill what the API derives: CPU memory from the flavor, GPU CUDA constraint defaults."""
    if body.get("cpu"):
        body["cpu"] = [{**c, "memory": c["vcpuCount"] * (2 if c["id"].endswith("c") else 4)} for c in body["cpu"]]
    if body.get("gpu"):
        body["gpu"] = {"allowedCudaVersions": [], "minCudaVersion": None, **body["gpu"]}
    return body


def _handler(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            pass

        def _send(
            self,
            status: int,
            body: Any = None,
            content_type: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            if getattr(self, "_event", ""):
                emulator.events.append(f"{status} {self._event}")
            data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            if data:
                self.send_header("Content-Type", content_type)
            self.send_header("X-Request-Id", uuid.uuid4().hex[:12])
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _problem(self, status: int, title: str, detail: str, errors: list[str] | None = None) -> None:
            problem: dict[str, Any] = {"title": title, "status": status, "detail": detail}
            if errors:
                problem["errors"] = errors
            self._send(status, problem, "application/problem+json")

        def _read(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else None

        def _body(self) -> Any:
            return self._payload

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PATCH(self) -> None:
            self._route("PATCH")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def _route(self, method: str) -> None:
            self._event = ""  # set by the data plane only (a handler serves a whole keep-alive connection)
            self._payload = None
            path = self.path.split("?")[0]
            if path.startswith("/lb/"):
                return self._data_plane(method, path)
            emulator.calls.append((method, path))
            emulator.times.append(time.monotonic())
            if self.headers.get("Authorization") != f"Bearer {emulator.api_key}":
                return self._problem(401, "Unauthorized", "invalid or missing API key")
            if method in ("POST", "PATCH"):
                try:
                    self._payload = self._read()
                except ValueError:
                    return self._problem(400, "Bad Request", "the body is not JSON")
            op = self._op = operation(method, path, self._payload)
            emulator.ops.append(op)
            delay = emulator.latency + emulator.op_latency.get(op, 0.0)
            if delay:
                time.sleep(delay)
            for hook in (emulator.on_call, emulator.hooks.get(op)):
                if hook is not None:
                    hook() if hook is not emulator.on_call else hook(op)
            fault = (emulator.op_faults.get(op) or emulator.faults).draw()
            if fault == "404":
                return self._problem(404, "Not Found", "not found")
            if fault in ("429", "503", "502"):
                if fault == "429":
                    return self._send(
                        429,
                        {"title": "Too Many Requests", "status": 429, "detail": "slow down"},
                        "application/problem+json",
                        {"Retry-After": str(emulator.retry_after)},
                    )
                if fault == "503":
                    return self._problem(503, "Service Unavailable", "try again")
                return self._send(
                    502, b"<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>", "text/html"
                )
            logs = re.fullmatch(r"/v2/serverless/([^/]+)/workers/([^/]+)/logs", path)
            if logs and method == "GET" and logs.group(1) in emulator.endpoints:  # streams: outside the lock
                return emulator.logs.serve(self, logs.group(2), self.path.partition("?")[2])
            with emulator.lock:
                served = catalog.serve(emulator, method, path, self.path.partition("?")[2])
                if served is not None:
                    return self._send(
                        served[0], served[1], "application/json" if served[0] < 400 else "application/problem+json"
                    )
                if path == "/graphql" and method == "POST":
                    status, answer = graphql_subset.run(emulator, self._body())
                    if fault == "drop":  # applied, but the answer is lost
                        return self._drop()
                    return self._send(status, answer)
                if path.startswith("/v2/templates"):
                    return self._templates(method, path, drop=fault == "drop")
                self._control(method, path, drop=fault == "drop")

        def _drop(self) -> None:
            self.close_connection = True
            self.connection.shutdown(2)

        def _templates(self, method: str, path: str, *, drop: bool = False) -> None:
            body = self._body() if method in ("POST", "PATCH") else None
            template_id = path.removeprefix("/v2/templates").strip("/") or None
            if template_id and template_id not in emulator.templates:
                return self._problem(404, "Not Found", "template not found")
            if method == "GET" and not template_id:
                return self._send(200, {"templates": [emulator.public_template(i) for i in emulator.templates]})
            if method == "GET" and template_id:
                return self._send(200, emulator.public_template(template_id))
            if method == "DELETE" and template_id:
                if emulator.template_in_use(template_id):
                    return self._problem(400, "Bad Request", "template is bound to a serverless endpoint")
                del emulator.templates[template_id]
                return self._drop() if drop else self._send(204)
            validator = CREATE_TEMPLATE if method == "POST" else UPDATE_TEMPLATE
            errors = [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in validator.iter_errors(body)]
            if errors or method not in ("POST", "PATCH") or (method == "POST") == bool(template_id):
                return self._problem(
                    422, "Unprocessable Entity", "request body does not match the template schema", errors
                )
            try:
                saved = emulator.save_template(body, template_id)
            except GraphQLError as exc:
                return self._problem(400, "Bad Request", exc.message)
            return self._drop() if drop else self._send(201 if method == "POST" else 200, saved)

        def _control(self, method: str, path: str, *, drop: bool) -> None:
            body = self._body() if method in ("POST", "PATCH") else None
            match = re.fullmatch(r"/v2/serverless(?:/([^/]+))?(?:/(releases|workers))?(?:/[^/]+/(logs))?", path)
            if not match:
                return self._problem(404, "Not Found", f"no route {path}")
            endpoint_id, sub = match.group(1), match.group(3) or match.group(2)
            if endpoint_id and endpoint_id not in emulator.endpoints:
                return self._problem(404, "Not Found", "endpoint not found")
            if method == "GET" and not endpoint_id:
                rest = [i for i, e in emulator.endpoints.items() if not e.body.get("gql")]
                return self._send(200, {"endpoints": [emulator.public(i) for i in rest]})
            if method == "GET" and sub == "releases":
                deployed = emulator.endpoints[endpoint_id]
                busy = time.monotonic() < deployed.rollout_until
                rollout = {
                    "inProgress": busy,
                    "workersOnLatest": 0 if busy else 1,
                    "workersTotal": 1,
                    "percentOnLatest": 0 if busy else 100,
                }
                return self._send(200, {"rollout": rollout, "releases": []})
            if method == "GET" and sub == "workers" and catalog.workers_answer(emulator, endpoint_id) is not None:
                return self._send(200, catalog.workers_answer(emulator, endpoint_id))
            if method == "GET" and sub == "workers":
                status = emulator.ping_status(endpoint_id)
                summary = {
                    "running": 0,
                    "idle": int(status == 200),
                    "initializing": int(status == 204),
                    "throttled": 0,
                    "unhealthy": int(status == 503),
                    "total": 1,
                }
                state = {200: "IDLE", 204: "INITIALIZING"}.get(status, "UNHEALTHY")
                worker = {"id": f"w-{endpoint_id}", "status": state, "gpuCount": 0, "isStale": False}
                later = [{**worker, "id": w} for w in emulator.logs.workers(endpoint_id)]
                return self._send(200, {"workers": [worker, *later], "summary": summary})
            if method == "GET":
                return self._send(200, emulator.public(endpoint_id))
            if method == "POST" and not endpoint_id:
                errors = [
                    f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in CREATE.iter_errors(body)
                ]
                if not errors and catalog.gpu_problem(emulator.market, body):
                    return self._problem(400, "Bad Request", str(catalog.gpu_problem(emulator.market, body)))
                if errors:
                    return self._problem(
                        422, "Unprocessable Entity", "request body does not match CreateEndpointRequest", errors
                    )
                result, status = emulator.create(body), 201
            elif method == "PATCH" and endpoint_id and not sub:
                if emulator.family_change(endpoint_id, body or {}):
                    return self._problem(400, "Bad Request", "endpoint compute family cannot be changed (gpu/cpu)")
                errors = [
                    f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in UPDATE.iter_errors(body)
                ]
                if not errors and catalog.gpu_problem(emulator.market, body):
                    return self._problem(400, "Bad Request", str(catalog.gpu_problem(emulator.market, body)))
                if errors:
                    return self._problem(
                        422, "Unprocessable Entity", "request body does not match UpdateEndpointRequest", errors
                    )
                result, status = emulator.patch(endpoint_id, body), 200
            elif method == "DELETE" and endpoint_id and not sub:
                del emulator.endpoints[endpoint_id]
                result, status = None, 204
            else:
                return self._problem(405, "Method Not Allowed", f"{method} {path}")
            if method != "GET":
                emulator._sync_workers()
            after = emulator.after.get(self._op)
            if after is not None:  # applied: other calls may run (and see it) while the hook holds the answer
                emulator.lock.release()
                try:
                    after()
                finally:
                    emulator.lock.acquire()
            if drop:  # applied, but the answer is lost
                return self._drop()
            return self._send(status, result)

        def _data_plane(self, method: str, path: str) -> None:
            parts = path.split("/", 3)
            endpoint_id, rest = parts[2], "/" + (parts[3] if len(parts) > 3 else "")
            self._event = (
                f"{emulator.endpoints[endpoint_id].body.get('name')} {rest}"
                if endpoint_id in emulator.endpoints
                else ""
            )
            keys = {emulator.api_key, *emulator.data_keys}
            if self.headers.get("Authorization") not in {f"Bearer {key}" for key in keys}:
                return self._send(401, {"error": "unauthorized"})
            real = getattr(emulator, "worker_urls", {}).get(endpoint_id)
            if real is not None:  # a built endpoint: real workers answer, through the local balancer
                return self._proxy(real, method, rest)
            status = emulator.ping_status(endpoint_id)
            if rest in ("/ping", catalog.health_path(emulator, endpoint_id)):
                return self._send(status, {"status": "ready"} if status == 200 else None)
            if status != 200:  # RunPod's LB answer while no worker is ready (shared/runpod/API.md)
                return self._send(503, {"error": "no workers available"})
            if rest == "/manifest":
                return self._send(200, {"endpoint": endpoint_id, "build": emulator.serving_build(endpoint_id)})
            return self._send(200, {"endpoint": endpoint_id, "path": rest, "method": method})

        def _proxy(self, base: str, method: str, rest: str) -> None:
            import http.client

            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            query = self.path.partition("?")[2]
            conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
            try:
                conn.request(
                    method,
                    rest + (f"?{query}" if query else ""),
                    body=body or None,
                    headers={
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in ("host", "content-length", "connection")
                    },
                )
                answer = conn.getresponse()
                data = answer.read()
            except OSError:
                return self._send(502, {"error": "worker unreachable"})
            finally:
                conn.close()
            return self._send(answer.status, data or None, answer.getheader("Content-Type") or "application/json")

    return Handler
