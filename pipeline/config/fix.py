"""`flash validate --fix`: the fixes diagnostics can make safely, applied with tomlkit.

tomlkit edits the document in place, keeping every comment, blank line and the order of keys:
a renamed key stays where it was written, a replaced value keeps its trailing comment. Only
diagnostics that carry a fix are touched (an unknown key with exactly one close match, a value
an enum allows in one way only); everything else is reported as left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flash_pipeline.errors import Diagnostic


@dataclass(frozen=True)
class Fixed:
    text: str  # the document after the fixes
    applied: tuple[Diagnostic, ...]
    skipped: tuple[Diagnostic, ...]  # carried a fix that could not be applied (the key moved, a dotted key)


def describe(diag: Diagnostic) -> str:
    """One line for a fix, as the report shows it."""
    assert diag.fix is not None
    kind, path, new = diag.fix
    if kind == "rename":
        return f"{diag.file}:{diag.line}:{diag.col}: renamed {path[-1]!s} to {new}"
    return f"{diag.file}:{diag.line}:{diag.col}: set {diag.path} to {new!r}"


def apply(text: str, diagnostics: Sequence[Diagnostic]) -> Fixed:
    import tomlkit

    document = tomlkit.parse(text)
    applied: list[Diagnostic] = []
    skipped: list[Diagnostic] = []
    for diag in diagnostics:
        if diag.fix is None:
            continue
        (applied if _apply_one(document, diag.fix) else skipped).append(diag)
    return Fixed(tomlkit.dumps(document), tuple(applied), tuple(skipped))


def _apply_one(document: Any, fix: tuple[str, tuple[Any, ...], Any]) -> bool:
    kind, path, new = fix
    try:
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if kind == "set":
            parent[last] = new  # tomlkit keeps the item's comment and place
            return True
        container = getattr(parent, "value", parent)  # a Table or InlineTable wraps a Container
        if not hasattr(container, "_replace") or new in parent:
            return False
        # Container._replace keeps the key where it was written, with its value and comment;
        # tomlkit has no public rename (pop and set would move the key to the end of its table).
        container._replace(last, new, parent[last])
        return True
    except (KeyError, TypeError, IndexError):
        return False
