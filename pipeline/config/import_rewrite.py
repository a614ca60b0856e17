"""`flash import --rewrite`: remove the runpod-flash lines from a project's source, safe by construction.

What goes: the decorators of what was imported (route decorators; the `@Endpoint(...)` of a queue-based
worker made an endpoint), then, until nothing changes, every module-level runpod-flash object no
remaining line uses (`api = Endpoint(...)`, `volume = NetworkVolume(...)`), every runpod-flash import
none of whose names is still used, and every `from app.endpoints import api` of such an object.
Then the result is checked, independently of how it was planned: every changed file parses; no kept
statement shares a line with a removed one; every name a file still uses is still bound; every
`from M import x` of a changed project module still finds x. Any failure refuses the whole rewrite
with its reason, and the caller writes nothing. The lines removed are exactly the lines listed.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flash_pipeline.config.importer import PACKAGES, flash_names

_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__spec__", "__path__", "__package__"}


@dataclass
class Plan:
    lines: dict[Path, list[int]] = field(default_factory=dict)  # file -> the line numbers removed
    texts: dict[Path, str] = field(default_factory=dict)  # file -> its text after
    refused: list[str] = field(default_factory=list)  # why nothing may be written


@dataclass
class _File:
    path: Path
    shown: str
    module: str
    text: str
    tree: ast.Module
    flash: dict[str, str]  # local name -> runpod-flash export
    removed: set[int] = field(default_factory=set)
    gone: set[int] = field(default_factory=set)  # id() of each statement removed on purpose


def plan_rewrite(root: Path, files: dict[Path, str], spans: dict[Path, list[tuple[int, int]]]) -> Plan:
    """The lines to remove (spans first, then what they leave unused) and the checked result."""
    parsed: dict[Path, _File] = {}
    for path, module in files.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, str(path))
        parsed[path] = _File(path, str(path.relative_to(root)), module, text, tree, flash_names(tree))
    for path, ranges in spans.items():
        for start, end in ranges:
            parsed[path].removed.update(range(start, end + 1))
    objects = {f.module: _flash_objects(f) for f in parsed.values()}
    while _sweep(parsed, objects):
        pass
    plan = Plan()
    for f in parsed.values():
        if f.removed:
            plan.lines[f.path] = sorted(f.removed)
            kept = [line for n, line in enumerate(f.text.splitlines(keepends=True), 1) if n not in f.removed]
            plan.texts[f.path] = "".join(kept)
    plan.refused = _check(parsed, plan)
    return plan


def _flash_objects(f: _File) -> set[str]:
    """Module-level names bound to a runpod-flash object: `api = Endpoint(...)`."""
    return {
        target.id
        for node in f.tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and dotted(node.value.func) in f.flash
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _sweep(parsed: dict[Path, _File], objects: dict[str, set[str]]) -> bool:
    """One pass of removing what no kept line uses; True when something went."""
    changed = False
    imported = {pair for f in parsed.values() for pair in _project_imports(f, objects)}
    for f in parsed.values():
        used = _used(f.tree, f.removed)
        for node in f.tree.body:
            lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
            if lines <= f.removed:
                continue
            if _is_flash_import(node) or _imports_only_objects(node, f, objects):
                unused = not (_bound(node) & used)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                names = {t.id for t in node.targets if isinstance(t, ast.Name)}
                unused = (
                    dotted(node.value.func) in f.flash
                    and len(names) == len(node.targets)
                    and not names & used
                    and not any((f.module, name) in imported for name in names)
                )
            else:
                continue
            if unused:
                f.removed |= lines
                f.gone.add(id(node))
                changed = True
    return changed


def _is_flash_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] in PACKAGES
    return isinstance(node, ast.Import) and all(a.name.split(".")[0] in PACKAGES for a in node.names)


def _imports_only_objects(node: ast.stmt, f: _File, objects: dict[str, set[str]]) -> bool:
    """`from app.endpoints import api`, every name a runpod-flash object of a project module."""
    if not isinstance(node, ast.ImportFrom):
        return False
    module = _module_of(node, f, objects)
    return module is not None and all(alias.name in objects[module] for alias in node.names)


def _project_imports(f: _File, objects: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(project module, name) for each kept `from M import name` of f."""
    found = []
    for node in f.tree.body:
        if isinstance(node, ast.ImportFrom) and node.lineno not in f.removed:
            module = _module_of(node, f, objects)
            if module is not None:
                found += [(module, alias.name) for alias in node.names]
    return found


def _module_of(node: ast.ImportFrom, f: _File, modules: Mapping[str, object]) -> str | None:
    """The project module an ImportFrom names (relative ones resolved), if it is one of ours."""
    name = node.module or ""
    if node.level:
        package = f.module.split(".")
        if f.path.name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        name = ".".join([*package, name] if name else package)
    if name in modules:
        return name
    return next((m for m in modules if m.endswith("." + name)), None) if name else None


def _bound(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return set()


def dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def _used(tree: ast.Module, removed: set[int]) -> set[str]:
    """Names read anywhere outside the removed lines (decorators and statements wholly removed)."""
    used: set[str] = set()

    def gone(node: ast.AST) -> bool:
        start = getattr(node, "lineno", None)
        end = getattr(node, "end_lineno", None) or start
        return start is not None and end is not None and set(range(start, end + 1)) <= removed

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.stmt, ast.expr)) and gone(node):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            used.add(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return used


def _module_bindings(tree: ast.Module) -> set[str]:
    """Names bound at module level (imports, assignments, defs, classes; inside if/try too)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _check(parsed: dict[Path, _File], plan: Plan) -> list[str]:
    """Why the planned rewrite is not safe, if it is not (empty: safe)."""
    problems: list[str] = []
    after: dict[str, set[str]] = {}
    for path, text in plan.texts.items():
        f = parsed[path]
        try:
            tree = ast.parse(text, str(path))
        except SyntaxError as exc:
            problems.append(f"{f.shown} would not parse after the rewrite (line {exc.lineno}: {exc.msg})")
            continue
        problems += _shared_lines(f)
        before, now = _module_bindings(f.tree), _module_bindings(tree)
        after[f.module] = now
        still = _used(tree, set())
        for name in sorted((before - now) & still - _BUILTINS):
            problems.append(f"{f.shown} would still use {name} but no longer define or import it")
    for f in parsed.values():
        for node in ast.walk(f.tree):
            if isinstance(node, ast.ImportFrom) and node.lineno not in f.removed:
                module = _module_of(node, f, after)
                if module is None:
                    continue
                for alias in node.names:
                    if alias.name not in after[module] and alias.name != "*":
                        problems.append(
                            f"{f.shown}:{node.lineno} imports {alias.name} from {module}, which the rewrite removes"
                        )
    return problems


def _shared_lines(f: _File) -> list[str]:
    """A kept statement must not share a line with a removed one (`a = Endpoint(...); b = 1`)."""
    problems = []
    for node in ast.walk(f.tree):
        if not isinstance(node, ast.stmt) or id(node) in f.gone:
            continue
        lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        body = getattr(node, "body", None)
        head = set(range(node.lineno, body[0].lineno)) if isinstance(body, list) and body else lines
        if head & f.removed:
            problems.append(f"{f.shown}:{node.lineno} shares a line with a removed runpod-flash line")
    return problems
