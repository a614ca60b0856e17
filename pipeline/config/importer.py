"""`flash import`: a runpod-flash project read by AST (never imported) into flash.toml's terms.

Every runpod-flash construct is accounted for, with its file:line:
- load-balanced endpoints: `x = Endpoint(...)` with `@x.get/post/put/patch/delete("/path")` handlers
  (handlers may import their endpoint from another module);
- queue-based workers: `@Endpoint(...)` on a function, `@x` or `@x.remote` for an `x = Endpoint(...)`,
  `@remote(...)`: listed in `queued`; the CLI lists them, or (--queue-workers) makes each an endpoint
  with one `POST /<function>` route whose body is the function's keyword arguments;
- `@Endpoint(...)` on a class, values computed at run time, arguments flash has no counterpart for:
  Skipped, with why. Values flash had to change to validate (a 1-vCPU CPU, a GPU type's wider pool,
  a network volume still to create) are Notes.
The constants (GpuGroup, GpuType, CpuInstanceType, DataCenter) are in `flash_constants`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import flash_constants as constants

PACKAGES = ("runpod_flash", "tetra_rp")  # runpod-flash's module, and its earlier name
METHODS = ("get", "post", "put", "patch", "delete")
RESOURCES = ("Endpoint", "LiveServerless", "CpuLiveServerless", "ServerlessEndpoint", "CpuServerlessEndpoint")
EXPORTS = (*RESOURCES, "GpuGroup", "GpuType", "CpuInstanceType", "DataCenter", "NetworkVolume", "remote")
_SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".flash", "node_modules", ".tox"}
# runpod-flash argument -> flash key (values literal, or constants resolved below)
_SIMPLE = {
    "gpu_count": "gpu_count",
    "gpuCount": "gpu_count",
    "dependencies": "dependencies",
    "env": "env",
    "idle_timeout": "idle_timeout",
    "idleTimeout": "idle_timeout",
    "execution_timeout_ms": "timeout",
    "executionTimeoutMs": "timeout",
    "flashboot": "flashboot",
    "scaler_value": "scaler_value",
    "scalerValue": "scaler_value",
    "workers_min": "workers_min",
    "workers_max": "workers_max",
    "workersMin": "workers_min",
    "workersMax": "workers_max",
}
_NO_COUNTERPART = {
    "system_dependencies": "flash installs pip requirements only: use a base_image that has these system packages",
    "accelerate_downloads": "flash has no counterpart: images carry their dependencies",
    "min_cuda_version": "flash has no counterpart: pick GPU pools whose drivers fit",
    "max_concurrency": "load-balanced workers take concurrent requests already (see scaler_value)",
    "template": "flash builds its own image: set base_image, env and disk in flash.toml",
    "id": "connects to an existing endpoint: flash deploys its own (call it from a handler instead)",
}


@dataclass
class Found:
    """One endpoint as read from the source: load-balanced, or made from queue-based workers."""

    variable: str  # the Endpoint variable, or the first queue-based function
    key: str
    where: str  # file:line of its Endpoint(...)
    name: str = ""  # its runpod-flash name
    settings: dict[str, Any] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)  # "METHOD /path" -> "module:function"
    queue: bool = False  # made from queue-based workers (--queue-workers)
    skipped: list[Skipped] = field(default_factory=list)  # its arguments left out, reported if it is imported
    notes: list[Skipped] = field(default_factory=list)  # its values changed to validate, likewise


@dataclass
class Skipped:
    where: str
    what: str
    why: str


@dataclass
class Queued:
    """A queue-based worker: a function runpod-flash ran as a job."""

    where: str  # file:line of its decorator
    function: str
    module: str  # dotted, from the project's folder
    path: Path
    span: tuple[int, int]  # the decorator's lines
    how: str  # "@Endpoint(...)", "@x", "@remote(...)"
    endpoint: Found | None  # its settings; None when they cannot be read


@dataclass
class Reading:
    endpoints: list[Found] = field(default_factory=list)
    queued: list[Queued] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    spans: dict[Path, list[tuple[int, int]]] = field(default_factory=dict)  # imported route decorators
    files: dict[Path, str] = field(default_factory=dict)  # every parsed file -> its module name


@dataclass
class _Module:
    path: Path
    relative: Path
    module: str
    tree: ast.Module
    names: dict[str, str]  # local name -> runpod-flash export
    constants: dict[str, ast.expr]  # module-level NAME = <expression>


def read_project(root: Path) -> Reading:
    """Two passes: every module's Endpoint(...) assignments first, then the decorators of every
    module (handlers often import their endpoint from another module)."""
    reading = Reading()
    modules: list[_Module] = []
    known: dict[str, Found] = {}  # "module.variable" -> endpoint
    for path in sorted(_python_files(root)):
        relative = path.relative_to(root)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
            reading.skipped.append(Skipped(f"{relative}:1", "the whole file", f"cannot parse it ({exc})"))
            continue
        module = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        reading.files[path] = module
        names = _imported(tree)
        constants_here = {
            target.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        info = _Module(path, relative, module, tree, names, constants_here)
        modules.append(info)
        if names:
            for variable, found in _endpoints(info, reading).items():
                known[f"{module}.{variable}"] = found
    for info in modules:
        local = {k.rpartition(".")[2]: f for k, f in known.items() if k.rpartition(".")[0] == info.module}
        for node in info.tree.body:  # `from app.endpoints import embedder`
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in known:
                        local[alias.asname or alias.name] = known[f"{node.module}.{alias.name}"]
        if local or info.names:
            for defined in ast.walk(info.tree):
                if isinstance(defined, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    _decorators(defined, info, local, reading)
    return reading


def _python_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.py") if not _SKIP_DIRS & set(p.relative_to(root).parts[:-1])]


def _endpoints(info: _Module, reading: Reading) -> dict[str, Found]:
    found_here: dict[str, Found] = {}
    for statement in info.tree.body:
        if not (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call)):
            continue
        call, targets = statement.value, statement.targets
        if info.names.get(_dotted(call.func)) in RESOURCES and len(targets) == 1 and isinstance(targets[0], ast.Name):
            where = f"{info.relative}:{statement.lineno}"
            found = _endpoint(targets[0].id, call, where, info, reading)
            if found is not None:
                found_here[targets[0].id] = found
                reading.endpoints.append(found)
    return found_here


def _imported(tree: ast.Module) -> dict[str, str]:
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
            found.update({alias.asname or alias.name: alias.name for alias in node.names})
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    for name in EXPORTS:
                        found[f"{alias.asname or alias.name}.{name}"] = name
    return found


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def endpoint_key(name: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    key = re.sub(r"^[^a-z]+", "", key)[:31].rstrip("-")
    return key or "endpoint"


def _endpoint(variable: str, call: ast.Call, where: str, info: _Module, reading: Reading) -> Found | None:
    args = {kw.arg: kw.value for kw in call.keywords if kw.arg}
    name = _literal(args.pop("name", None), info)
    if call.args and name is None:
        name = _literal(call.args[0], info)
    if not isinstance(name, str):
        reading.skipped.append(Skipped(where, f"{variable}: Endpoint(...)", "its name is not a literal string"))
        return None
    found = Found(variable, endpoint_key(name), where, name)
    Settings(found, where, info, reading).read(args)
    return found


class Settings:
    """An Endpoint(...)'s keyword arguments as flash.toml settings, with Skipped and Notes."""

    def __init__(self, found: Found, where: str, info: _Module, reading: Reading) -> None:
        self.found, self.where, self.info, self.reading = found, where, info, reading

    def skip(self, what: str, why: str) -> None:
        self.found.skipped.append(Skipped(self.where, what, why))

    def note(self, what: str, why: str) -> None:
        self.found.notes.append(Skipped(self.where, what, why))

    def read(self, args: dict[str, ast.expr]) -> None:
        settings = self.found.settings
        scaler = args.pop("scaler_type", None) or args.pop("scalerType", None)
        for arg, node in args.items():
            if arg in ("gpu", "gpus", "gpuIds"):
                self.gpu(arg, node)
            elif arg in ("cpu", "instanceIds"):
                self.cpu(arg, node)
            elif arg in ("datacenter", "datacenters", "locations"):
                self.datacenters(arg, node)
            elif arg in ("volume", "volumes", "network_volume", "network_volumes", "networkVolume"):
                self.volumes(arg, node)
            elif arg == "workers":
                self.workers(_literal(node, self.info))
            elif arg in _SIMPLE:
                value = _literal(node, self.info)
                if value is _DYNAMIC:
                    self.skip(f"{arg}=", "its value is computed at run time: set it in flash.toml")
                elif value is not None:
                    settings[_SIMPLE[arg]] = _shaped(_SIMPLE[arg], value)
            elif arg in _NO_COUNTERPART:
                self.skip(f"{arg}=", _NO_COUNTERPART[arg])
            else:
                self.skip(f"{arg}=", "flash has no counterpart for this argument")
        if scaler is not None:
            kind = _dotted(scaler).rpartition(".")[2] or str(_literal(scaler, self.info))
            if kind != "REQUEST_COUNT":
                settings.pop("scaler_value", None)
                self.note(
                    f"scaler_type={kind}",
                    "load-balanced endpoints scale on requests in flight (REQUEST_COUNT): scaler_value left at "
                    "flash's default",
                )
        low, high = settings.pop("workers_min", None), settings.pop("workers_max", None)
        if low is not None or high is not None:
            settings["workers"] = [low or 0, high if high is not None else max(low or 0, 1)]
        if "timeout" in settings:
            if settings["timeout"]:
                settings["timeout"] = max(1, int(settings["timeout"]) // 1000)
            else:
                del settings["timeout"]  # 0: runpod-flash's "no limit"; flash's default applies
        if "gpu" not in settings and "cpu" not in settings and not ({"gpu", "gpus", "gpuIds", "cpu"} & set(args)):
            settings["gpu"] = list(constants.POOLS)
            self.note("no gpu= or cpu=", "runpod-flash's default is any GPU: every GPU pool")
        order = ("gpu", "cpu", "gpu_count", "workers")
        self.found.settings = {k: settings[k] for k in (*order, *sorted(set(settings) - set(order))) if k in settings}

    def gpu(self, arg: str, node: ast.expr) -> None:
        items = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
        pools: list[str] = []
        for item in items:
            if isinstance(item, ast.Attribute):
                group, member = _dotted(item.value).rpartition(".")[2], item.attr
            else:
                value = _literal(item, self.info)
                if not isinstance(value, str):
                    self.skip(f"{arg}=", "its value is computed at run time: set gpu in flash.toml")
                    return
                group, member = "", value.split(",")[0].strip()
            found, note = constants.gpu_pool(group, member)
            if not found:
                self.skip(f"{arg}=", f"{member} is not a GPU pool or GPU type flash knows: set gpu in flash.toml")
                return
            if note:
                self.note(f"{arg}={'.'.join(filter(None, (group, member)))}", note)
            pools += [pool for pool in found if pool not in pools]
        self.found.settings["gpu"] = pools[0] if len(pools) == 1 else pools

    def cpu(self, arg: str, node: ast.expr) -> None:
        items = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
        if not items:
            return
        first = items[0]
        value = first.attr if isinstance(first, ast.Attribute) else _literal(first, self.info)
        if not isinstance(value, str):
            self.skip(f"{arg}=", "its value is computed at run time: set cpu in flash.toml")
            return
        instance, note = constants.nearest_cpu(constants.cpu_instance(value))
        if note:
            self.note(f"{arg}={value}", note)
        if len(items) > 1:
            self.note(f"{arg}=[...]", f"flash takes one CPU instance per endpoint: the first, {instance}")
        self.found.settings["cpu"] = instance

    def datacenters(self, arg: str, node: ast.expr) -> None:
        items = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
        found: list[str] = []
        for item in items:
            value = item.attr if isinstance(item, ast.Attribute) else _literal(item, self.info)
            if not isinstance(value, str):
                self.skip(f"{arg}=", "its value is computed at run time: set datacenters in flash.toml")
                return
            for part in value.split(","):
                center = constants.data_center(part)
                if center not in constants.DATA_CENTERS:
                    self.skip(f"{arg}={part.strip()}", "not a data center REST v2 lists: choose one in flash.toml")
                elif center not in found:
                    found.append(center)
        if found:
            self.found.settings["datacenters"] = found

    def volumes(self, arg: str, node: ast.expr) -> None:
        items = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
        ids: list[str] = self.found.settings.get("network_volumes", [])
        for item in items:
            shown = _dotted(item) or "NetworkVolume(...)"
            if isinstance(item, ast.Name) and isinstance(self.info.constants.get(item.id), ast.Call):
                item = self.info.constants[item.id]
            call = item if isinstance(item, ast.Call) and _dotted(item.func).endswith("NetworkVolume") else None
            value = None if call is not None else _literal(item, self.info)
            if isinstance(value, str):
                ids.append(value)
                continue
            if call is None:
                self.skip(
                    f"{arg}={shown}", "not a NetworkVolume(...) flash can read: set network_volumes in flash.toml"
                )
                continue
            kwargs = {kw.arg: _literal(kw.value, self.info) for kw in call.keywords if kw.arg}
            center = next((kw.value for kw in call.keywords if kw.arg == "datacenter"), None)
            if isinstance(center, ast.Attribute):
                kwargs["datacenter"] = constants.data_center(center.attr)
            if isinstance(kwargs.get("id"), str):
                ids.append(kwargs["id"])
                continue
            described = ", ".join(
                str(part)
                for part in (
                    f"{kwargs['size']} GB" if isinstance(kwargs.get("size"), int) else None,
                    kwargs.get("datacenter") if isinstance(kwargs.get("datacenter"), str) else None,
                )
                if part
            )
            label = kwargs.get("name") if isinstance(kwargs.get("name"), str) else shown
            self.note(
                f"{arg}={shown}",
                f"network volume {label!r}{f' ({described})' if described else ''} is to be created: create it "
                'on RunPod, then add network_volumes = ["<its id>"] to this endpoint',
            )
        if ids:
            self.found.settings["network_volumes"] = ids

    def workers(self, value: Any) -> None:
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
            self.found.settings["workers"] = [value[0], max(value[1], 1)]
        elif isinstance(value, int):
            self.found.settings["workers"] = [0, max(value, 1)]
        elif value is _DYNAMIC:
            self.skip("workers=", "its value is computed at run time: set workers in flash.toml")
        else:
            self.skip("workers=", f"expected (min, max), got {value!r}")


def _shaped(key: str, value: Any) -> Any:
    if key == "env" and isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return list(value) if isinstance(value, tuple) else value


_DYNAMIC: Any = object()


def _literal(node: ast.expr | None, info: _Module | None = None, depth: int = 0) -> Any:
    """A literal value; a module-level constant's literal value (MODEL_PATH = "/x") too."""
    if node is None:
        return None
    if info is not None and depth < 5:
        if isinstance(node, ast.Name) and node.id in info.constants:
            return _literal(info.constants[node.id], info, depth + 1)
        if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
            pairs = [
                (_literal(k, info, depth + 1), _literal(v, info, depth + 1))
                for k, v in zip(node.keys, node.values, strict=True)
            ]
            return _DYNAMIC if any(_DYNAMIC in pair for pair in pairs) else dict(pairs)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [_literal(item, info, depth + 1) for item in node.elts]
            return _DYNAMIC if _DYNAMIC in items else (items if isinstance(node, ast.List) else tuple(items))
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _DYNAMIC


def _decorators(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
    info: _Module,
    mine: dict[str, Found],
    reading: Reading,
) -> None:
    for decorator in node.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = _dotted(call.func if call else decorator)
        owner, _, verb = target.rpartition(".")
        where = f"{info.relative}:{decorator.lineno}"
        span = (decorator.lineno, decorator.end_lineno or decorator.lineno)
        if owner in mine and verb in METHODS and call is not None:
            path = _literal(call.args[0]) if call.args else None
            if not isinstance(path, str):
                reading.skipped.append(Skipped(where, f"@{target}(...)", "its path is not a literal string"))
                continue
            mine[owner].routes[f"{verb.upper()} {path}"] = f"{info.module}:{node.name}"
            reading.spans.setdefault(info.path, []).append(span)
            continue
        endpoint: Found | None = None
        if call is not None and info.names.get(target) in RESOURCES:  # @Endpoint(...)
            how = f"@{target}(...)"
            endpoint = _endpoint(node.name, call, where, info, reading)
            if endpoint is None:
                continue
        elif target in mine or (owner in mine and verb == "remote"):  # @x, @x.remote
            how, endpoint = f"@{target}", mine[target if target in mine else owner]
        elif info.names.get(target) == "remote":  # @remote(resource_config=x) or @remote(x)
            how = f"@{target}(...)" if call else f"@{target}"
            config = next((kw.value for kw in (call.keywords if call else []) if kw.arg == "resource_config"), None)
            config = config if config is not None else (call.args[0] if call and call.args else None)
            endpoint = mine.get(_dotted(config)) if config is not None else None
            if endpoint is None:
                reading.skipped.append(
                    Skipped(where, node.name, "a queue-based worker whose resource config flash cannot read")
                )
                continue
        else:
            continue
        if isinstance(node, ast.ClassDef):
            reading.skipped.append(
                Skipped(
                    where,
                    f"class {node.name}",
                    f"a class-based queue worker ({how}): flash routes call functions; write one that "
                    "creates the instance in an init hook and calls its method",
                )
            )
            continue
        reading.queued.append(Queued(where, node.name, info.module, info.path, span, how, endpoint))
