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

from flash_pipeline.config.import_settings import Found, Settings, Skipped, SourceModule, dotted, literal

PACKAGES = ("runpod_flash", "tetra_rp")  # runpod-flash's module, and its earlier name
METHODS = ("get", "post", "put", "patch", "delete")
RESOURCES = ("Endpoint", "LiveServerless", "CpuLiveServerless", "ServerlessEndpoint", "CpuServerlessEndpoint")
EXPORTS = (*RESOURCES, "GpuGroup", "GpuType", "CpuInstanceType", "DataCenter", "NetworkVolume", "remote")
_SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".flash", "node_modules", ".tox"}


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
    uses: list[tuple[str, str, str, str]] = field(default_factory=list)  # every `from M import x`: where, M, x, in


def read_project(root: Path) -> Reading:
    """Two passes: every module's Endpoint(...) assignments first, then the decorators of every
    module (handlers often import their endpoint from another module)."""
    reading = Reading()
    modules: list[SourceModule] = []
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
        names = flash_names(tree)
        constants_here = {
            target.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        info = SourceModule(path, relative, module, tree, names, constants_here)
        modules.append(info)
        reading.uses += [
            (f"{relative}:{node.lineno}", _absolute(node, info), alias.name, module)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or node.level)
            for alias in node.names
        ]
        if names:
            for variable, found in _endpoints(info, reading).items():
                known[f"{module}.{variable}"] = found
    for info in modules:
        local = {k.rpartition(".")[2]: f for k, f in known.items() if k.rpartition(".")[0] == info.module}
        for node in info.tree.body:  # `from app.endpoints import embedder` (or `from .endpoints import ...`)
            if isinstance(node, ast.ImportFrom) and (node.module or node.level):
                for alias in node.names:
                    named = _known(known, _absolute(node, info), alias.name)
                    if named is not None:
                        local[alias.asname or alias.name] = named
        if local or info.names:
            for defined in ast.walk(info.tree):
                if isinstance(defined, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    _decorators(defined, info, local, reading)
    return reading


def _absolute(node: ast.ImportFrom, info: SourceModule) -> str:
    """The module an ImportFrom names, a relative one resolved against the importing module."""
    if not node.level:
        return node.module or ""
    package = info.module.split(".")[: None if info.path.name == "__init__.py" else -1]
    package = package[: len(package) - node.level + 1]
    return ".".join([*package, node.module] if node.module else package)


def _known(known: dict[str, Found], module: str, name: str) -> Found | None:
    """The endpoint `from module import name` names: module as written may be the project-relative
    one's tail (modules import from app.source, which may be below the folder imported)."""
    wanted = f"{module}.{name}"
    if wanted in known:
        return known[wanted]
    return next((found for key, found in known.items() if key.endswith("." + wanted)), None)


def _python_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.py") if not _SKIP_DIRS & set(p.relative_to(root).parts[:-1])]


def _endpoints(info: SourceModule, reading: Reading) -> dict[str, Found]:
    found_here: dict[str, Found] = {}
    for statement in info.tree.body:
        if not (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call)):
            continue
        call, targets = statement.value, statement.targets
        if info.names.get(dotted(call.func)) in RESOURCES and len(targets) == 1 and isinstance(targets[0], ast.Name):
            where = f"{info.relative}:{statement.lineno}"
            found = _endpoint(targets[0].id, call, where, info, reading)
            if found is not None:
                found_here[targets[0].id] = found
                reading.endpoints.append(found)
    return found_here


def flash_names(tree: ast.Module) -> dict[str, str]:
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


def endpoint_key(name: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    key = re.sub(r"^[^a-z]+", "", key)[:31].rstrip("-")
    return key or "endpoint"


def _endpoint(variable: str, call: ast.Call, where: str, info: SourceModule, reading: Reading) -> Found | None:
    args = {kw.arg: kw.value for kw in call.keywords if kw.arg}
    name = literal(args.pop("name", None), info)
    if call.args and name is None:
        name = literal(call.args[0], info)
    if not isinstance(name, str):
        reading.skipped.append(Skipped(where, f"{variable}: Endpoint(...)", "its name is not a literal string"))
        return None
    found = Found(variable, endpoint_key(name), where, name)
    Settings(found, where, info).read(args)
    return found


def _remote_arguments(call: ast.Call | None, endpoint: Found, where: str, info: SourceModule) -> None:
    """@remote(..., dependencies=[...]): its own arguments join its endpoint's (reported if it is imported)."""
    for keyword in call.keywords if call else []:
        value = literal(keyword.value, info)
        if keyword.arg == "dependencies" and isinstance(value, list):
            have = endpoint.settings.setdefault("dependencies", [])
            have += [d for d in value if isinstance(d, str) and d not in have]
        elif keyword.arg not in ("resource_config", None):
            endpoint.skipped.append(Skipped(where, f"@remote({keyword.arg}=)", "flash has no counterpart for it here"))


def _decorators(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
    info: SourceModule,
    mine: dict[str, Found],
    reading: Reading,
) -> None:
    for decorator in node.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = dotted(call.func if call else decorator)
        owner, _, verb = target.rpartition(".")
        where = f"{info.relative}:{decorator.lineno}"
        span = (decorator.lineno, decorator.end_lineno or decorator.lineno)
        if owner in mine and verb in METHODS and call is not None:
            path = literal(call.args[0]) if call.args else None
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
            if isinstance(config, ast.Call) and info.names.get(dotted(config.func)) in RESOURCES:  # inline
                endpoint = _endpoint(node.name, config, where, info, reading)
            elif config is not None:
                endpoint = mine.get(dotted(config))
            if endpoint is None:
                reading.skipped.append(
                    Skipped(where, node.name, "a queue-based worker whose resource config flash cannot read")
                )
                continue
            _remote_arguments(call, endpoint, where, info)
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
