"""`flash import`'s vocabulary and one Endpoint(...)'s keyword arguments read as flash.toml settings:
constants (flash_constants) resolved, values that would not validate changed with a note, arguments
flash has no counterpart for reported with why. Read by AST: runpod-flash is never imported.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flash_pipeline.config import flash_constants as constants

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


# runpod-flash's Endpoint defaults that differ from flash's (workers [0, 3], idle_timeout 5 s)
RUNPOD_FLASH_DEFAULTS: dict[str, Any] = {"workers": (0, 1), "idle_timeout": 60}
_CAMEL = {"idle_timeout": "idleTimeout"}


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
class SourceModule:
    path: Path
    relative: Path
    module: str
    tree: ast.Module
    names: dict[str, str]  # local name -> runpod-flash export
    constants: dict[str, ast.expr]  # module-level NAME = <expression>


def dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


class Settings:
    """An Endpoint(...)'s keyword arguments as flash.toml settings, with Skipped and Notes."""

    def __init__(self, found: Found, where: str, info: SourceModule) -> None:
        self.found, self.where, self.info = found, where, info

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
                self.workers(literal(node, self.info))
            elif arg in _SIMPLE:
                value = literal(node, self.info)
                if value is DYNAMIC:
                    self.skip(f"{arg}=", "its value is computed at run time: set it in flash.toml")
                elif value is not None:
                    settings[_SIMPLE[arg]] = _shaped(_SIMPLE[arg], value)
            elif arg in _NO_COUNTERPART:
                self.skip(f"{arg}=", _NO_COUNTERPART[arg])
            else:
                self.skip(f"{arg}=", "flash has no counterpart for this argument")
        if scaler is not None:
            kind = dotted(scaler).rpartition(".")[2] or str(literal(scaler, self.info))
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
        for key, value in RUNPOD_FLASH_DEFAULTS.items():  # what it ran with, where flash's own default differs
            if key not in settings and not ({key, _CAMEL.get(key, key)} & set(args)):
                settings[key] = list(value) if isinstance(value, tuple) else value
        order = ("gpu", "cpu", "gpu_count", "workers")
        self.found.settings = {k: settings[k] for k in (*order, *sorted(set(settings) - set(order))) if k in settings}

    def gpu(self, arg: str, node: ast.expr) -> None:
        items = node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]
        pools: list[str] = []
        for item in items:
            if isinstance(item, ast.Attribute):
                group, member = dotted(item.value).rpartition(".")[2], item.attr
            else:
                value = literal(item, self.info)
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
        value = first.attr if isinstance(first, ast.Attribute) else literal(first, self.info)
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
            value = item.attr if isinstance(item, ast.Attribute) else literal(item, self.info)
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
            shown = dotted(item) or "NetworkVolume(...)"
            if isinstance(item, ast.Name) and isinstance(self.info.constants.get(item.id), ast.Call):
                item = self.info.constants[item.id]
            call = item if isinstance(item, ast.Call) and dotted(item.func).endswith("NetworkVolume") else None
            value = None if call is not None else literal(item, self.info)
            if isinstance(value, str):
                ids.append(value)
                continue
            if call is None:
                self.skip(
                    f"{arg}={shown}", "not a NetworkVolume(...) flash can read: set network_volumes in flash.toml"
                )
                continue
            kwargs = {kw.arg: literal(kw.value, self.info) for kw in call.keywords if kw.arg}
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
        elif value is DYNAMIC:
            self.skip("workers=", "its value is computed at run time: set workers in flash.toml")
        else:
            self.skip("workers=", f"expected (min, max), got {value!r}")


def _shaped(key: str, value: Any) -> Any:
    if key == "env" and isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return list(value) if isinstance(value, tuple) else value


DYNAMIC: Any = object()


def literal(node: ast.expr | None, info: SourceModule | None = None, depth: int = 0) -> Any:
    """A literal value; a module-level constant's literal value (MODEL_PATH = "/x") too."""
    if node is None:
        return None
    if info is not None and depth < 5:
        if isinstance(node, ast.Name) and node.id in info.constants:
            return literal(info.constants[node.id], info, depth + 1)
        if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
            pairs = [
                (literal(k, info, depth + 1), literal(v, info, depth + 1))
                for k, v in zip(node.keys, node.values, strict=True)
            ]
            return DYNAMIC if any(DYNAMIC in pair for pair in pairs) else dict(pairs)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [literal(item, info, depth + 1) for item in node.elts]
            return DYNAMIC if DYNAMIC in items else (items if isinstance(node, ast.List) else tuple(items))
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return DYNAMIC
