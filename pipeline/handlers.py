"""Check that every handler and init hook exists in the source folder, by reading, not importing.

Importing user code at build time would run it (and need its dependencies); parsing the module
with `ast` finds the same mistakes (typos in module or function names) without either.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline.errors import Diagnostic
from pipeline.model import Loc, Project
from pipeline.schema import did_you_mean


def check_handlers(project: Project) -> list[Diagnostic]:
    """A diagnostic for every route handler or init hook that cannot be found."""
    found: list[Diagnostic] = []
    cache: dict[str, set[str] | str] = {}
    source = project.source_dir
    if not source.is_dir():
        return [
            _diag(
                project.endpoints[0].loc,
                "app.source",
                f"source folder {project.source!r} does not exist",
                "set app.source to the folder holding your handlers, relative to flash.toml",
            )
        ]
    for endpoint in project.endpoints:
        if endpoint.image:
            continue  # a prebuilt image brings its own code
        refs = [(r.handler, r.loc, f'endpoints.{endpoint.key}.routes."{r.method} {r.path}"') for r in endpoint.routes]
        if endpoint.init:
            refs.append((endpoint.init, endpoint.loc, f"endpoints.{endpoint.key}.init"))
        for ref, loc, path in refs:
            problem = _check(source, ref, cache, project.source)
            if problem:
                found.append(_diag(loc, path, *problem))
    return sorted(set(found))


def _diag(loc: Loc, path: str, message: str, hint: str) -> Diagnostic:
    return Diagnostic(loc.file, loc.line, loc.col, path, message, hint)


def _check(source: Path, ref: str, cache: dict[str, set[str] | str], shown: str) -> tuple[str, str] | None:
    module, function = ref.split(":")
    if module not in cache:
        cache[module] = _module_names(source, module, shown)
    names = cache[module]
    if isinstance(names, str):
        return names, _module_hint(module, shown)
    if function not in names:
        guess = did_you_mean(function, sorted(names))
        return (
            f"module {module} defines no function {function!r}",
            guess or f"define `def {function}(...)` in {module.replace('.', '/')}.py",
        )
    return None


def _module_hint(module: str, shown: str) -> str:
    return f"handlers are module:function with the module importable from the source folder {shown!r}"


def _module_names(source: Path, module: str, shown: str) -> set[str] | str:
    """Top-level names a module defines, or a message saying why it cannot be read."""
    base = source.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            try:
                tree = ast.parse(candidate.read_bytes(), filename=str(candidate))
            except (SyntaxError, ValueError) as exc:
                return f"{candidate.relative_to(source)} has a syntax error (line {getattr(exc, 'lineno', '?')})"
            return _defined_names(tree)
    return f"module {module} not found in {shown!r} (looked for {base.relative_to(source)}.py)"


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names
