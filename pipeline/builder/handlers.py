"""Check that every handler and init hook exists in what ships, by reading, not importing.

Importing user code at build time would run it (and need its dependencies); parsing the module
with `ast` finds the same mistakes (typos in module or function names) without either. The
check reads exactly the file set that enters the image (`files`), so a handler in an ignored
folder fails here rather than in the worker.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Collection, Iterator
from pathlib import Path

from flash_pipeline.config.model import FileResult, Loc, Project
from flash_pipeline.config.schema import did_you_mean
from flash_pipeline.errors import BuildError, ConfigError, Diagnostic

# ast.parse is not thread-safe on CPython 3.11 ("AST constructor recursion depth mismatch",
# python/cpython#106905), and monorepo deploys build several configs in threads at once.
_PARSE = threading.Lock()
ANY_NAME = None  # a module whose names cannot be listed (`import *`, module __getattr__)
Names = set[str] | None


def default_out_dir(project: Project) -> Path:
    """.flash/build, or .flash/build-<env> for an environment (their images differ)."""
    return project.root / ".flash" / (f"build-{project.environment}" if project.environment else "build")


def source_files(project: Project, out_dir: Path | None = None) -> list[str]:
    """The source folder's files that ship (relative, posix); ConfigError if there is no folder."""
    problems = check_source_dir(project)
    if problems:
        raise ConfigError(problems)
    out = (out_dir or default_out_dir(project)).resolve()
    # The config itself is not app code: editing it must not change every image.
    return listing(project.source_dir, skip=(out, project.root / ".flash", project.config_path))


def listing(root: Path, skip: tuple[Path, ...] = (), *, git: bool = True) -> list[str]:
    """included_files as posix strings; BuildError naming the path that could not be read."""
    from flash_pipeline.builder.ignore import included_files

    try:
        return [rel.as_posix() for rel in included_files(root, skip, git=git)]
    except OSError as exc:
        raise BuildError(
            f"cannot read {exc.filename or root}: {exc.strerror or exc}",
            "check the file's permissions, or list it in a .flashignore",
        ) from None


def with_sources(result: FileResult) -> FileResult:
    """A valid config's FileResult, with the source checks `flash validate` adds (build reads the
    same files, so a config that validates also builds)."""
    if result.project is None:
        return result
    problems = check_sources(result.project)
    return FileResult(result.display, None, tuple(problems)) if problems else result


def check_sources(project: Project) -> list[Diagnostic]:
    """What `flash validate` adds to the schema and rules: the source folder, handlers, init hooks."""
    if all(e.image for e in project.endpoints):
        return []
    try:
        return check_handlers(project, source_files(project))
    except ConfigError as exc:
        return list(exc.diagnostics)


def check_source_dir(project: Project) -> list[Diagnostic]:
    """A diagnostic if app.source is not a folder (only when some endpoint is built from it)."""
    if all(e.image for e in project.endpoints) or project.source_dir.is_dir():
        return []
    what = "is not a folder" if project.source_dir.exists() else "does not exist"
    loc = project.source_loc or project.endpoints[0].loc
    return [
        _diag(
            loc,
            "app.source",
            f"source folder {project.source!r} {what}",
            "set app.source to the folder holding your handlers, relative to flash.toml",
        )
    ]


def check_handlers(project: Project, files: Collection[str]) -> list[Diagnostic]:
    """A diagnostic for every route handler or init hook not found among the shipped files.

    files: the source folder's files that ship (relative, posix), as ignore.included_files gives.
    """
    found: list[Diagnostic] = []
    cache: dict[str, Names | tuple[str, str]] = {}
    shipped = set(files)
    for endpoint in project.endpoints:
        if endpoint.image:
            continue  # a prebuilt image brings its own code
        refs = [(r.handler, r.loc, f'endpoints.{endpoint.key}.routes."{r.method} {r.path}"') for r in endpoint.routes]
        if endpoint.init:
            refs.append((endpoint.init, endpoint.loc_of("init"), f"endpoints.{endpoint.key}.init"))
        for ref, loc, path in refs:
            problem = _check(project, shipped, ref, cache)
            if problem:
                found.append(_diag(loc, path, *problem))
    return sorted(set(found))


def _diag(loc: Loc, path: str, message: str, hint: str) -> Diagnostic:
    return Diagnostic(loc.file, loc.line, loc.col, path, message, hint)


def _check(
    project: Project, shipped: set[str], ref: str, cache: dict[str, Names | tuple[str, str]]
) -> tuple[str, str] | None:
    module, function = ref.split(":")
    if module not in cache:
        cache[module] = _module_names(project, shipped, module)
    names = cache[module]
    if isinstance(names, tuple):
        return names
    if names is not ANY_NAME and function not in names:
        guess = did_you_mean(function, sorted(names))
        return (
            f"module {module} defines no function {function!r}",
            guess or f"define `def {function}(...)` in {module.replace('.', '/')}.py",
        )
    return None


def _module_names(project: Project, shipped: set[str], module: str) -> Names | tuple[str, str]:
    """Top-level names a module defines, or (message, hint) saying why it cannot be read."""
    base = module.replace(".", "/")
    shown = project.source
    for rel in (f"{base}.py", f"{base}/__init__.py"):
        path = project.source_dir / rel
        if rel not in shipped:
            if path.is_file():
                return _not_shipped(rel)
            continue
        try:
            with _PARSE:
                tree = ast.parse(path.read_bytes(), filename=str(path))
        except OSError as exc:
            return f"{rel} cannot be read ({exc.strerror or exc})", "check the file's permissions"
        except (SyntaxError, ValueError) as exc:
            return f"{rel} has a syntax error (line {getattr(exc, 'lineno', None) or '?'})", f"run python {rel}"
        return _defined_names(tree.body)
    return (
        f"module {module} not found in {shown!r} (looked for {base}.py)",
        f"handlers are module:function with the module importable from the source folder {shown!r}",
    )


def _not_shipped(rel: str) -> tuple[str, str]:
    from flash_pipeline.builder.ignore import always_excluded

    parts = rel.split("/")
    folders = ["/".join(parts[: i + 1]) + "/" for i in range(len(parts) - 1)]
    never = next((f for f in folders if always_excluded(f)), rel if always_excluded(rel) else None)
    if never:
        return (
            f"{rel} does not ship: flash never puts {never} in an image (virtualenvs, caches and "
            "credential files stay out)",
            "move the handler module to another folder",
        )
    return (
        f"{rel} does not ship: a .gitignore or .flashignore rule excludes it",
        f"remove the rule that matches it (`git check-ignore -v {rel}` finds a .gitignore one)",
    )


def _defined_names(body: list[ast.stmt]) -> Names:
    """Every name a module binds at its top level, however: def, class, =, :=, import, for, with,
    inside if/try/match blocks too. ANY_NAME when the module can provide names we cannot list."""
    names: set[str] = set()
    for node in _top_level(body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if node.name == "__getattr__":
                return ANY_NAME
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return ANY_NAME
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            names.update(
                n.id for item in node.items if item.optional_vars for n in ast.walk(item.optional_vars)
                if isinstance(n, ast.Name)
            )  # fmt: skip
        elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _top_level(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Statements run at import time, descending into blocks but never into def or class bodies."""
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _top_level([child])
            elif isinstance(child, (ast.ExceptHandler, ast.match_case)):
                yield from _top_level(child.body)
            elif isinstance(child, ast.expr):
                yield from (n for n in ast.walk(child) if isinstance(n, ast.NamedExpr))
