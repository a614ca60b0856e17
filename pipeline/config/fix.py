"""`flash validate --fix`: the fixes diagnostics can make safely, applied with tomlkit.

tomlkit edits the document in place, keeping every comment, blank line and the order of keys:
a renamed key stays where it was written, a replaced value keeps its trailing comment. Only
diagnostics that carry a fix are touched (an unknown key with exactly one close match, a value
an enum allows in one way only); everything else is reported as left.
"""

from __future__ import annotations

import json
import re
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
    """Apply every fix that can be; a fix counts as applied only when the result shows it (a key
    renamed is gone under its old name and there under the new one; a value set reads back)."""
    import tomlkit

    document = tomlkit.parse(text)
    applied: list[Diagnostic] = []
    skipped: list[Diagnostic] = []
    headers: list[Diagnostic] = []
    for diag in diagnostics:
        if diag.fix is None:
            continue
        kind, path, new = diag.fix
        if kind == "rename" and _header_lines(text, path):
            headers.append(diag)  # a table header: renamed in the text, after the key-level fixes
            continue
        (applied if _apply_one(document, diag.fix) else skipped).append(diag)
    out = tomlkit.dumps(document)
    for diag in headers:
        assert diag.fix is not None
        _, path, new = diag.fix
        out, done = _rename_header(out, path, str(new))
        (applied if done else skipped).append(diag)
    confirmed = [d for d in applied if _shows(out, d)]
    skipped.extend(d for d in applied if d not in confirmed)
    return Fixed(out, tuple(confirmed), tuple(skipped))


def _shows(text: str, diag: Diagnostic) -> bool:
    """Whether the fixed text holds diag's fix."""
    import tomllib

    assert diag.fix is not None
    kind, path, new = diag.fix
    try:
        data: Any = tomllib.loads(text)
        for part in path[:-1]:
            data = data[part]
    except (tomllib.TOMLDecodeError, KeyError, TypeError, IndexError):
        return False
    if not isinstance(data, dict):
        return False
    if kind == "set":
        return bool(data.get(path[-1]) == new)
    return path[-1] not in data and new in data


_HEADER = re.compile(r"^(\s*\[\[?)([^\]]*)(\]\]?.*)$")


def _split_key(raw: str) -> list[str]:
    """A dotted key's raw parts (quotes kept), split on the dots outside quotes."""
    parts, current, quote = [], "", ""
    for char in raw:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == ".":
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def _bare(raw: str) -> str:
    text = raw.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'" else text


def _header_lines(text: str, path: tuple[Any, ...]) -> list[int]:
    """Lines whose table header is path or a table below it."""
    found = []
    for number, line in enumerate(text.splitlines()):
        match = _HEADER.match(line)
        if match and [_bare(p) for p in _split_key(match.group(2))][: len(path)] == [str(p) for p in path]:
            found.append(number)
    return found


def _rename_header(text: str, path: tuple[Any, ...], new: str) -> tuple[str, bool]:
    """Rename the last part of path in every table header at or below it; False if the new name is taken."""
    lines = text.splitlines(keepends=True)
    numbers = _header_lines(text, path)
    if not numbers or _header_lines(text, (*path[:-1], new)):
        return text, False
    shown = new if re.fullmatch(r"[A-Za-z0-9_-]+", new) else json.dumps(new)
    for number in numbers:
        match = _HEADER.match(lines[number])
        assert match is not None
        parts = _split_key(match.group(2))
        index = len(path) - 1
        raw = parts[index]
        parts[index] = raw[: len(raw) - len(raw.lstrip())] + shown + raw[len(raw.rstrip()) :]
        lines[number] = (
            match.group(1) + ".".join(parts) + match.group(3) + lines[number][len(lines[number].rstrip("\r\n")) :]
        )
    return "".join(lines), True


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
