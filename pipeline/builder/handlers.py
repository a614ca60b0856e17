"""Check that every handler and init hook exists in what ships, by reading, not importing.

Importing user code at build time would run it (and need its dependencies); parsing the module
with `ast` finds the same mistakes (typos in module or function names) without either. The
check reads exactly the file set that enters the image (`files`), so a handler in an ignored
folder fails here rather than in the worker.
"""

from __future__ import annotations

import ast
import os
import re
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
    cache: dict[str, Names | tuple[str, str] | Diagnostic] = {}
    shipped = set(files)
    for endpoint in project.endpoints:
        if endpoint.image:
            continue  # a prebuilt image brings its own code
        refs = [(r.handler, r.loc, f'endpoints.{endpoint.key}.routes."{r.method} {r.path}"') for r in endpoint.routes]
        if endpoint.init:
            refs.append((endpoint.init, endpoint.loc_of("init"), f"endpoints.{endpoint.key}.init"))
        for ref, loc, path in refs:
            problem = _check(project, shipped, ref, cache, loc.file)
            if isinstance(problem, Diagnostic):
                found.append(problem)  # in the user's module: one per file, however many routes name it
            elif problem:
                found.append(_diag(loc, path, *problem))
        for route in (r for r in endpoint.routes if r.method == "WS"):
            if _plain_def(project, shipped, route.module, route.function):
                where = f'endpoints.{endpoint.key}.routes."WS {route.path}"'
                found.append(
                    _diag(
                        route.loc,
                        where,
                        f"WebSocket handler {route.handler} is a plain `def`",
                        f"make it `async def {route.function}(ws, ...)`",
                    )
                )
    found.extend(_old_client_imports(project, shipped))
    return sorted(set(found))


# The client's import name before flash's packages got names a user's code cannot shadow.
_OLD_CLIENT = "runtime"
_OLD_NAME = re.compile(rf"(?<![\w.]){_OLD_CLIENT}\b")  # the module name in a statement, not `my_runtime` or `x.runtime`
# Top-level names the worker has loaded before the source folder goes on sys.path: a handler
# module of the app's with one of these names is never the one imported.
RESERVED = {"flash_runtime": "package"}
# A `try:` whose handler catches one of these makes an import in it optional (a fallback runs).
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _old_client_imports(project: Project, shipped: set[str]) -> list[Diagnostic]:
    """Each `from runtime import ...` / `import runtime` in shipped code, where the app has no
    `runtime` module of its own: flash's client is `flash_runtime` now, and the old name would
    fail in the worker with "No module named 'runtime'"."""
    if f"{_OLD_CLIENT}.py" in shipped or any(
        rel.startswith(f"{_OLD_CLIENT}/") and rel.endswith(".py") for rel in shipped
    ):
        return []  # the app's own `runtime` module: its imports are the user's business (a folder of data is none)
    import os.path

    config_shown = project.endpoints[0].loc.file if project.endpoints else ""
    found = []
    for rel in sorted(r for r in shipped if r.endswith(".py")):
        path = project.source_dir / rel
        try:
            data = path.read_bytes()
            if _OLD_CLIENT.encode() not in data:
                continue  # most files never mention it: skip the parse
            with _PARSE:
                tree = ast.parse(data, filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue  # unreadable or broken files are reported where a handler needs them
        optional = _guarded_imports(tree)
        for node in ast.walk(tree):
            if id(node) in optional:
                continue  # `try: from runtime import ... except ImportError:` has its fallback
            if isinstance(node, ast.ImportFrom):
                old = node.level == 0 and (node.module or "").split(".")[0] == _OLD_CLIENT
            elif isinstance(node, ast.Import):
                old = any(a.name.split(".")[0] == _OLD_CLIENT for a in node.names)
            else:
                continue
            if old:
                stmt = ast.get_source_segment(data.decode("utf-8", "replace"), node) or "import runtime"
                found.append(
                    Diagnostic(
                        os.path.normpath(os.path.join(os.path.dirname(config_shown), project.source, rel)),
                        node.lineno,
                        node.col_offset + 1,
                        "imports",
                        f"`{stmt}`: flash's client is named flash_runtime now (the app has no `runtime` module)",
                        f"write `{_OLD_NAME.sub('flash_runtime', stmt, count=1)}`",
                    )
                )
    return found


def _plain_def(project: Project, shipped: set[str], module: str, function: str) -> bool:
    """Whether module's top level defines function with a plain `def` (and no `async def` of it)."""
    base = module.replace(".", "/")
    rel = next((r for r in (f"{base}.py", f"{base}/__init__.py") if r in shipped), None)
    if rel is None:
        return False  # reported by the existence check
    try:
        with _PARSE:
            tree = ast.parse((project.source_dir / rel).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return False  # reported by the existence check
    kinds = {type(n) for n in _top_level(tree.body) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
             and n.name == function}  # fmt: skip
    return kinds == {ast.FunctionDef}


def _guarded_imports(tree: ast.AST) -> set[int]:
    """ids of the import statements in the body of a `try:` that catches ImportError (or wider)."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Try, ast.TryStar)) and any(_catches_import_error(h) for h in node.handlers):
            guarded.update(
                id(inner)
                for stmt in node.body
                for inner in ast.walk(stmt)
                if isinstance(inner, (ast.Import, ast.ImportFrom))
            )
    return guarded


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True  # a bare `except:`
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        (c.id if isinstance(c, ast.Name) else c.attr if isinstance(c, ast.Attribute) else "") in _IMPORT_ERRORS
        for c in caught
    )


def _diag(loc: Loc, path: str, message: str, hint: str) -> Diagnostic:
    return Diagnostic(loc.file, loc.line, loc.col, path, message, hint)


def _check(
    project: Project, shipped: set[str], ref: str, cache: dict[str, Names | tuple[str, str] | Diagnostic], shown: str
) -> tuple[str, str] | Diagnostic | None:
    module, function = ref.split(":")
    top = module.split(".")[0]
    if top in RESERVED:
        return (
            f"module {module} cannot be imported in the worker: {top!r} is flash's own {RESERVED[top]} there, "
            f"ahead of the source folder",
            f"rename your {top} {'package' if '.' in module else 'module'} (and the handler reference)",
        )
    if module not in cache:
        cache[module] = _module_names(project, shipped, module, shown)
    names = cache[module]
    if isinstance(names, (tuple, Diagnostic)):
        return names
    if names is not ANY_NAME and function not in names:
        guess = did_you_mean(function, sorted(names))
        return (
            f"module {module} defines no function {function!r}",
            guess or f"define `def {function}(...)` in {module.replace('.', '/')}.py",
        )
    return None


def _module_names(
    project: Project, shipped: set[str], module: str, config_shown: str
) -> Names | tuple[str, str] | Diagnostic:
    """Top-level names a module defines, (message, hint) saying why it cannot be read, or its
    syntax error at its own file:line:col with Python's message."""
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
        except SyntaxError as exc:
            return syntax_diagnostic(exc, _shown(config_shown, project.source, rel), module)
        except ValueError as exc:  # a null byte in the source
            return f"{rel} cannot be parsed ({exc})", f"run python {rel}"
        return _defined_names(tree.body)
    return (
        f"module {module} not found in {shown!r} (looked for {base}.py)",
        f"handlers are module:function with the module importable from the source folder {shown!r}",
    )


def _shown(config_shown: str, source: str, rel: str) -> str:
    """A source file's path as the user knows it: next to the config as they named it."""
    return os.path.normpath(os.path.join(os.path.dirname(config_shown), source, rel))


def syntax_diagnostic(exc: SyntaxError, shown: str, module: str) -> Diagnostic:
    """A module's syntax error at its file:line:col, with Python's own message."""
    return Diagnostic(
        shown,
        exc.lineno or 1,
        exc.offset or 1,
        "",
        f"{type(exc).__name__}: {exc.msg}",
        "",
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
