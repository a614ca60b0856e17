"""The house rules of the layout, checked on the installed package: data flows one way (config ->
build -> targets -> report -> cli), a target package never imports the other, nothing imports cli."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

STAGES = {"config": 1, "builder": 2, "targets": 3, "report": 4, "cli": 5}  # anything else is shared (0)
TARGETS = ("flash_pipeline.targets.local", "flash_pipeline.targets.runpod")


def _package_root() -> Path:
    spec = importlib.util.find_spec("flash_pipeline")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def _modules() -> dict[str, Path]:
    root = _package_root()
    found = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[0].startswith("_"):  # _schemas, _templates: data, not code
            continue
        name = ".".join(("flash_pipeline", *parts)).removesuffix(".__init__")
        found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Every pipeline module `name` imports, at the top or inside a function (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from flash_pipeline import report`
    return {module for module in found if module == "flash_pipeline" or module.startswith("flash_pipeline.")}


def _stage(module: str) -> int:
    parts = module.split(".")
    return STAGES.get(parts[1], 0) if len(parts) > 1 else 0


def _target(module: str) -> str | None:
    return next((t for t in TARGETS if module == t or module.startswith(t + ".")), None)


def test_the_package_is_laid_out_in_stages() -> None:
    modules = _modules()
    for stage in (
        "flash_pipeline.config",
        "flash_pipeline.builder",
        "flash_pipeline.targets.local",
        "flash_pipeline.targets.runpod",
    ):
        assert stage in modules, f"{stage} is missing from the installed package"


def test_imports_flow_one_way_and_targets_stay_apart() -> None:
    modules = _modules()
    problems = []
    for name, path in sorted(modules.items()):
        for imported in sorted(_imports(name, path)):
            known = imported if imported in modules else imported.rpartition(".")[0]
            if known not in modules:
                continue  # an attribute of a module (`from flash_pipeline.x import name`)
            in_cli = lambda module: module == "flash_pipeline.cli" or module.startswith("flash_pipeline.cli.")  # noqa: E731
            if in_cli(known) and not in_cli(name) and name != "flash_pipeline.__main__":
                problems.append(f"{name} imports the CLI")
            elif _stage(known) > _stage(name) and name != "flash_pipeline.__main__":
                problems.append(f"{name} imports {known}, a later stage")
            mine, theirs = _target(name), _target(known)
            if mine and theirs and mine != theirs:
                problems.append(f"{name} imports {known}, the other target")
            if theirs and not mine and _stage(name) == STAGES["targets"]:
                problems.append(f"{name} (shared by the targets) imports {known}, one target")
    assert problems == []


def test_the_checker_sees_a_violation() -> None:
    """The walk is real: it finds imports inside functions, relative or not."""
    source = _package_root() / "targets" / "runpod" / "apply.py"
    assert "flash_pipeline.targets.runpod.provider" in _imports("flash_pipeline.targets.runpod.apply", source)
    assert _stage("flash_pipeline.report") > _stage("flash_pipeline.targets.runpod.apply")
    assert _target("flash_pipeline.targets.local.deploy") != _target("flash_pipeline.targets.runpod.deploy")


RUNPOD = "flash_pipeline.targets.runpod"
BACKENDS = {f"{RUNPOD}.rest", f"{RUNPOD}.graphql"}
PICKER = f"{RUNPOD}.backend"  # the one module that picks a backend (FLASH_API)


def test_only_the_backends_and_the_picker_import_a_backend() -> None:
    """Planning, gating, status, logs and reports speak the bodies of targets.runpod.bodies through
    the Backend protocol: nothing outside the RunPod backends imports REST or GraphQL code."""
    problems = []
    for name, path in sorted(_modules().items()):
        if name in BACKENDS or name == PICKER:
            continue
        problems += [f"{name} imports {imported}" for imported in sorted(_imports(name, path) & BACKENDS)]
    assert problems == []


def test_rest_paths_and_http_headers_stay_in_their_modules() -> None:
    """The REST v2 endpoint paths are built by the REST backend alone (`flash logs` goes through the
    backend too), GraphQL queries by the GraphQL backend, and only the HTTP client reads its
    session's headers (the provider is given the key's header explicitly)."""
    problems = []
    for name, path in sorted(_modules().items()):
        source = path.read_text(encoding="utf-8")
        code = ast.unparse(ast.parse(source))  # docstrings stay; comments go
        if name != f"{RUNPOD}.rest" and "/v2/serverless" in code.replace("GET /v2/serverless", ""):
            problems.append(f"{name} builds a REST v2 endpoint path")
        if name != f"{RUNPOD}.graphql" and "'/graphql'" in code:
            problems.append(f"{name} calls GraphQL")
        if name != f"{RUNPOD}.api" and "session.headers" in code:
            problems.append(f"{name} reads the HTTP session's headers")
    assert problems == []


def test_the_backend_checker_sees_a_violation() -> None:
    source = _package_root() / "targets" / "runpod" / "backend.py"
    assert _imports(PICKER, source) >= BACKENDS
