"""Read and parse flash.toml; map a key path back to line:col.

tomllib does the parsing (stdlib, fast, exact syntax-error positions). TOML parsers keep no
positions, so a small scanner walks the (already valid) text once and records where every key
and value starts. Diagnostics point at values; unknown keys point at the key itself.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flash_pipeline.errors import ConfigError, Diagnostic

KeyPath = tuple[str | int, ...]
MAX_DEPTH = 32  # deeper than any real config; keeps every recursive step (scanner, schema) safe

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}\n#]*")
_SYNTAX_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_SYNTAX_POS_EOF = re.compile(r"\s*\(at end of document\)$")
# tomllib's terse messages, turned into something a first-time TOML writer can act on.
_SYNTAX_HINTS = {
    "Cannot overwrite a value": "this key or table is defined twice; keep one",
    "Cannot declare": "this table is defined twice; merge the two",
    "Invalid value": 'strings need quotes, e.g. name = "demo"',
    "Expected '=' after a key in a key/value pair": "write key = value; quote keys with spaces",
    "Illegal character '\\n'": "a string is missing its closing quote",
    "Invalid statement": "expected key = value or a [table] header",
    "Unclosed array": "close the list with ]",
    "Unterminated string": "close the string with a matching quote",
}


@dataclass(frozen=True)
class Source:
    """One parsed config file: its display name, data and positions."""

    path: Path
    display: str
    data: dict[str, Any]
    locator: Locator

    def loc(self, path: KeyPath, *, key: bool = False) -> tuple[int, int]:
        return self.locator.find(path, key=key)


@dataclass
class Locator:
    """Positions (line, col; 1-based) of keys and values by key path."""

    keys: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    values: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def find(self, path: KeyPath, *, key: bool = False) -> tuple[int, int]:
        """Position of path's key (or value); the nearest known ancestor when it has none."""
        table = self.keys if key else self.values
        for end in range(len(path), 0, -1):
            prefix = path[:end]
            if prefix in table:
                return table[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return (1, 1)


def load(path: Path, display: str | None = None) -> Source:
    """Read and parse a config file; raise ConfigError for unreadable or malformed TOML."""
    shown = display if display is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark (Windows editors) is fine
    except FileNotFoundError:
        raise ConfigError(
            [_file_problem(shown, "file not found", "pass the path of a flash.toml with -c, or run `flash init`")]
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            [_file_problem(shown, "is a folder, not a file", f"try {shown.rstrip('/')}/flash.toml")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([_file_problem(shown, "is not UTF-8 text", "save the file as UTF-8")]) from None
    except OSError as exc:
        raise ConfigError(
            [_file_problem(shown, f"cannot be read ({exc.strerror})", "check the path and its permissions")]
        ) from None
    return parse(text, path, shown)


def parse(text: str, path: Path, display: str) -> Source:
    """Parse TOML text into a Source."""
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(display, str(exc), text)]) from None
    except RecursionError:
        data = None  # tomllib recurses per nesting level
    if data is None or _depth(data) > MAX_DEPTH:
        raise ConfigError(
            [
                Diagnostic(
                    display,
                    1,
                    1,
                    "",
                    f"values are nested more than {MAX_DEPTH} levels deep",
                    "a flash.toml needs a few levels at most; check for a generated or corrupted file",
                )
            ]
        )
    locator = Locator()
    try:
        _Scanner(text, locator).run()
    except (IndexError, ValueError, RecursionError):
        # Positions are a convenience: a scanner gap must never hide the real report.
        pass
    return Source(path=path, display=display, data=data, locator=locator)


def _depth(data: Any) -> int:
    """How deeply tables and arrays nest (iteratively: the data may be deeper than the stack)."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


def _file_problem(display: str, message: str, hint: str) -> Diagnostic:
    return Diagnostic(file=display, line=0, col=0, path="", message=message, hint=hint)


def _syntax_problem(display: str, message: str, text: str) -> Diagnostic:
    line, col = 1, 1
    match = _SYNTAX_POS.search(message)
    if match:
        line, col = int(match.group(1)), int(match.group(2))
        message = message[: match.start()]
    elif _SYNTAX_POS_EOF.search(message):
        message = _SYNTAX_POS_EOF.sub("", message)
        line = text.count("\n") + 1
    hint = next(
        (h for k, h in _SYNTAX_HINTS.items() if message.startswith(k)), "check the TOML syntax near this position"
    )
    return Diagnostic(file=display, line=line, col=col, path="", message=f"TOML syntax: {message}", hint=hint)


class _Scanner:
    """Walks valid TOML text recording key and value positions."""

    def __init__(self, text: str, locator: Locator) -> None:
        self.text = text
        self.pos = 0
        self.loc = locator
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.array_tables: dict[KeyPath, int] = {}

    def here(self, pos: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, pos)
        return line, pos - self.line_starts[line - 1] + 1

    def run(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip(newlines=True)
            if self.pos >= len(self.text):
                return
            if self.text[self.pos] == "[":
                table = self.header()
            else:
                self.pair(table)

    def skip(self, *, newlines: bool) -> None:
        text, blanks = self.text, " \t\r\n" if newlines else " \t"
        while self.pos < len(text):
            char = text[self.pos]
            if char in blanks:
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def header(self) -> KeyPath:
        is_array = self.text.startswith("[[", self.pos)
        start = self.pos
        self.pos += 2 if is_array else 1
        keys = self.dotted_key(())
        self.pos = self.text.index("]", self.pos) + (2 if is_array else 1)
        path = tuple(keys)
        if is_array:
            index = self.array_tables.get(path, 0)
            self.array_tables[path] = index + 1
            path = path + (index,)
        self.loc.values.setdefault(path, self.here(start))
        return path

    def pair(self, table: KeyPath) -> None:
        keys = self.dotted_key(table)
        self.skip(newlines=False)
        self.pos += 1  # "="
        self.skip(newlines=False)
        self.value(table + tuple(keys))

    def dotted_key(self, prefix: KeyPath) -> list[str | int]:
        keys: list[str | int] = []
        while True:
            self.skip(newlines=False)
            start = self.pos
            keys.append(self.simple_key())
            self.loc.keys.setdefault(prefix + tuple(keys), self.here(start))
            self.skip(newlines=False)
            if self.pos < len(self.text) and self.text[self.pos] == ".":
                self.pos += 1
                continue
            return keys

    def simple_key(self) -> str:
        text, char = self.text, self.text[self.pos]
        if char == '"':
            end = self.string_end(self.pos)
            raw = text[self.pos : end]
            self.pos = end
            return str(tomllib.loads(f"k = {raw}")["k"]) if "\\" in raw else raw[1:-1]
        if char == "'":
            end = text.index("'", self.pos + 1) + 1
            raw = text[self.pos : end]
            self.pos = end
            return raw[1:-1]
        match = _BARE.match(text, self.pos)
        if not match:
            raise ValueError("unexpected key")
        self.pos = match.end()
        return match.group(0)

    def string_end(self, pos: int) -> int:
        """Index just past the basic string starting at pos."""
        text, i = self.text, pos + 1
        while text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        return i + 1

    def value(self, path: KeyPath) -> None:
        text, start = self.text, self.pos
        self.loc.values.setdefault(path, self.here(start))
        for quote in ('"""', "'''"):
            if text.startswith(quote, start):
                end = text.index(quote, start + 3)
                while text.startswith(quote[0], end + 3):  # up to two quotes may close the content
                    end += 1
                self.pos = end + 3
                return
        char = text[start]
        if char == '"':
            self.pos = self.string_end(start)
        elif char == "'":
            self.pos = text.index("'", start + 1) + 1
        elif char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        else:
            self.pos = max(_SCALAR.match(text, start).end(), start + 1)  # type: ignore[union-attr]

    def array(self, path: KeyPath) -> None:
        self.pos += 1
        index = 0
        while True:
            self.skip(newlines=True)
            if self.text[self.pos] == "]":
                self.pos += 1
                return
            self.value(path + (index,))
            index += 1
            self.skip(newlines=True)
            if self.text[self.pos] == ",":
                self.pos += 1

    def inline_table(self, path: KeyPath) -> None:
        self.pos += 1
        while True:
            self.skip(newlines=False)
            if self.text[self.pos] == "}":
                self.pos += 1
                return
            self.pair(path)
            self.skip(newlines=False)
            if self.text[self.pos] == ",":
                self.pos += 1
