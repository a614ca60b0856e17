"""`flash import`: a runpod-flash project read by AST (never imported) into flash.toml's terms.

Found: `x = Endpoint(...)` assignments (arguments mapped below) and `@x.get/post/put/patch/
delete("/path")` route decorators. Anything that cannot be mapped (queue-based `@remote` or
`@x.remote`, values computed at run time, arguments flash has no counterpart for) becomes a
Skipped entry with its file:line and why: never silently dropped. The lines `--rewrite` removes
(the runpod-flash imports, the Endpoint assignments, the route decorators) are collected too.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGES = ("runpod_flash", "tetra_rp")  # runpod-flash's module, and its earlier name
METHODS = ("get", "post", "put", "patch", "delete")
_SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".flash", "node_modules", ".tox"}
# runpod-flash argument -> (flash key, how the literal value converts)
_SIMPLE = {
    "cpu": "cpu",
    "gpu_count": "gpu_count",
    "dependencies": "dependencies",
    "env": "env",
    "idle_timeout": "idle_timeout",
    "execution_timeout_ms": "timeout",
    "flashboot": "flashboot",
    "network_volume": "network_volumes",
    "network_volumes": "network_volumes",
    "datacenter": "datacenters",
    "datacenters": "datacenters",
    "scaler_value": "scaler_value",
    "workers_min": "workers_min",
    "workers_max": "workers_max",
    "workersMin": "workers_min",
    "workersMax": "workers_max",
}


@dataclass
class Found:
    """One endpoint as read from the source."""

    variable: str
    key: str
    where: str  # file:line of its Endpoint(...)
    settings: dict[str, Any] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)  # "METHOD /path" -> "module:function"
    span: tuple[Path, int, int] | None = None  # its Endpoint(...) statement: file, first and last line


@dataclass
class Skipped:
    where: str
    what: str
    why: str


@dataclass
class Reading:
    endpoints: list[Found] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    removable: dict[Path, list[tuple[int, int]]] = field(default_factory=dict)  # file -> line ranges


def read_project(root: Path) -> Reading:
    """Two passes: every module's Endpoint(...) assignments first, then the route decorators of
    every module (handlers often import their endpoint from another module)."""
    reading = Reading()
    modules: list[tuple[Path, str, ast.Module, dict[str, str]]] = []
    known: dict[str, Found] = {}  # "module.variable" -> endpoint
    for path in sorted(_python_files(root)):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
            reading.skipped.append(Skipped(f"{path.relative_to(root)}:1", "the whole file", f"cannot parse it ({exc})"))
            continue
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        names = _imported(tree)
        modules.append((path, module, tree, names))
        if names:
            for variable, found in _endpoints(root, path, tree, names, reading).items():
                known[f"{module}.{variable}"] = found
    for path, module, tree, names in modules:
        local = {key.rpartition(".")[2]: found for key, found in known.items() if key.rpartition(".")[0] == module}
        for node in tree.body:  # `from app.endpoints import embedder`
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in known:
                        local[alias.asname or alias.name] = known[f"{node.module}.{alias.name}"]
        if not local and not names:
            continue
        ranges = reading.removable.setdefault(path, [])
        before = len(reading.skipped)
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                _decorators(function, module, path.relative_to(root), names, local, reading, ranges)
        if len(reading.skipped) == before:  # nothing of runpod-flash stays in use here: its imports can go
            ranges.extend((n.lineno, n.end_lineno or n.lineno) for n in tree.body if _is_flash_import(n, known))
    return reading


def _python_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.py") if not _SKIP_DIRS & set(p.relative_to(root).parts[:-1])]


def _endpoints(root: Path, path: Path, tree: ast.Module, names: dict[str, str], reading: Reading) -> dict[str, Found]:
    found_here: dict[str, Found] = {}
    for statement in tree.body:
        if not (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call)):
            continue
        call, targets = statement.value, statement.targets
        if names.get(_dotted(call.func)) == "Endpoint" and len(targets) == 1 and isinstance(targets[0], ast.Name):
            where = f"{path.relative_to(root)}:{statement.lineno}"
            found = _endpoint(targets[0].id, call, where, reading)
            if found is not None:
                found.span = (path, statement.lineno, statement.end_lineno or statement.lineno)
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
                    for name in ("Endpoint", "GpuGroup", "remote"):
                        found[f"{alias.asname or alias.name}.{name}"] = name
    return found


def _is_flash_import(node: ast.stmt, known: dict[str, Found]) -> bool:
    """An import of runpod-flash, or only of imported endpoints (`from app.endpoints import api`)."""
    if isinstance(node, ast.ImportFrom):
        if (node.module or "").split(".")[0] in PACKAGES:
            return True
        return bool(node.module) and all(f"{node.module}.{a.name}" in known for a in node.names)
    return isinstance(node, ast.Import) and all(a.name.split(".")[0] in PACKAGES for a in node.names)


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


def _endpoint(variable: str, call: ast.Call, where: str, reading: Reading) -> Found | None:
    args = {kw.arg: kw.value for kw in call.keywords if kw.arg}
    name = _literal(args.pop("name", None))
    if call.args and name is None:
        name = _literal(call.args[0])
    if not isinstance(name, str):
        reading.skipped.append(Skipped(where, f"{variable} = Endpoint(...)", "its name is not a literal string"))
        return None
    found = Found(variable, endpoint_key(name), where)
    for arg, node in args.items():
        value = _gpu(node) if arg in ("gpu", "gpus") else _literal(node)
        if value is _DYNAMIC:
            reading.skipped.append(Skipped(where, f"{arg}=", "its value is computed at run time: set it in flash.toml"))
        elif arg in ("gpu", "gpus"):
            found.settings["gpu"] = value[0] if isinstance(value, list) and len(value) == 1 else value
        elif arg == "workers":
            _workers(found, value, where, reading)
        elif arg in _SIMPLE:
            found.settings[_SIMPLE[arg]] = _shaped(_SIMPLE[arg], value)
        else:
            reading.skipped.append(Skipped(where, f"{arg}=", "flash has no counterpart for this argument"))
    low, high = found.settings.pop("workers_min", None), found.settings.pop("workers_max", None)
    if low is not None or high is not None:
        found.settings["workers"] = [low or 0, high if high is not None else max(low or 0, 1)]
    if "timeout" in found.settings:
        found.settings["timeout"] = max(1, int(found.settings["timeout"]) // 1000)
    if "gpu" not in found.settings and "cpu" not in found.settings and not ({"gpu", "gpus"} & set(args)):
        found.settings["cpu"] = "cpu3c-2-4"  # runpod-flash's default is a CPU worker too
    return found


def _workers(found: Found, value: Any, where: str, reading: Reading) -> None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        found.settings["workers"] = list(value)
    elif isinstance(value, int):
        found.settings["workers"] = [0, value]
    else:
        reading.skipped.append(Skipped(where, "workers=", f"expected (min, max), got {value!r}"))


def _shaped(key: str, value: Any) -> Any:
    if key in ("network_volumes", "datacenters") and isinstance(value, str):
        return [value]
    if key == "env" and isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return list(value) if isinstance(value, tuple) else value


_DYNAMIC: Any = object()


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _DYNAMIC


def _gpu(node: ast.expr) -> Any:
    """GpuGroup.ADA_24, "ADA_24", or a list of either, as pool ids."""
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_gpu(item) for item in node.elts]
        return _DYNAMIC if _DYNAMIC in items else items
    if isinstance(node, ast.Attribute) and _dotted(node).split(".")[-2:-1] == ["GpuGroup"]:
        return node.attr
    value = _literal(node)
    return value if isinstance(value, str) else _DYNAMIC


def _decorators(
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    module: str,
    relative: Path,
    names: dict[str, str],
    mine: dict[str, Found],
    reading: Reading,
    ranges: list[tuple[int, int]],
) -> None:
    for decorator in node.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = _dotted(call.func if call else decorator)
        owner, _, verb = target.rpartition(".")
        where = f"{relative}:{decorator.lineno}"
        span = (decorator.lineno, decorator.end_lineno or decorator.lineno)
        if owner in mine and verb in METHODS and call is not None:
            path = _literal(call.args[0]) if call.args else None
            if not isinstance(path, str):
                reading.skipped.append(Skipped(where, f"@{target}(...)", "its path is not a literal string"))
                continue
            mine[owner].routes[f"{verb.upper()} {path}"] = f"{module}:{node.name}"
            ranges.append(span)
        elif names.get(target) == "remote" or (owner in mine and verb in ("", "remote")) or target in mine:
            reading.skipped.append(
                Skipped(where, f"{node.name}", "a queue-based function: flash deploys load-balanced HTTP routes only")
            )
