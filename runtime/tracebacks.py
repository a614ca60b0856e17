"""Tracebacks that point at the user's code: a 500's, a failed init hook's, a module that will not import.

Frames from flash's runtime, Sanic and the event loop's machinery are dropped (the user cannot act
on them), and the build copy's paths (`.flash/build/<endpoint>/src/...`) are replaced by the source
folder the user edits when the local target says where it is (FLASH_SOURCE_DIR). In an image the
paths stay those of the image (/app/src/...), which is what the user shipped.
"""

from __future__ import annotations

import os
import sys
import traceback

_RUNTIME = os.path.dirname(os.path.abspath(__file__)) + os.sep
_HIDDEN_PACKAGES = ("sanic", "sanic_routing", "uvloop", "asyncio", "concurrent", "importlib", "threading.py")


def build_source() -> str:
    """The build copy of the user's source folder this worker runs: <build>/src."""
    entry = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return os.path.join(os.path.dirname(entry), "src")


def user_path(filename: str) -> str:
    """filename with the build copy's folder replaced by the user's (FLASH_SOURCE_DIR), if it is in it."""
    shown = os.environ.get("FLASH_SOURCE_DIR")
    copy = build_source() + os.sep
    if shown and filename.startswith(copy):
        return os.path.normpath(os.path.join(shown, filename[len(copy) :]))
    return filename


def _hidden(filename: str) -> bool:
    if filename.startswith(_RUNTIME) or not os.path.isabs(filename):
        return True  # flash's runtime, or code Sanic compiles at run time ("handle_request")
    if sys.argv and sys.argv[0] and filename == os.path.abspath(sys.argv[0]):
        return True  # the generated flash_worker.py
    parts = filename.split(os.sep)
    return any(name in parts for name in _HIDDEN_PACKAGES) or os.path.basename(filename) in _HIDDEN_PACKAGES


def user_traceback(exc: BaseException) -> str:
    """The traceback of exc (and its causes) with only frames the user can act on, at the user's paths."""
    lines: list[str] = []
    for part in traceback.TracebackException.from_exception(exc).format():
        if part.startswith("  File "):
            filename = part.split('"', 2)[1]
            if _hidden(filename):
                continue
            part = part.replace(f'"{filename}"', f'"{user_path(filename)}"', 1)
        lines.append(part)
    return _rewrite_syntax_file("".join(lines), exc).rstrip("\n")


def position(exc: BaseException) -> str:
    """One line: a syntax error at file:line:col (the user's path) with Python's message; any
    other error as `Type: message` (its traceback says where)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{user_path(exc.filename)}:{exc.lineno or 1}:{exc.offset or 1}: {type(exc).__name__}: {exc.msg}"
    return f"{type(exc).__name__}: {exc}"


def _rewrite_syntax_file(text: str, exc: BaseException) -> str:
    """A SyntaxError names its file in its own line (File "...", line N): that path too."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SyntaxError) and seen.filename:
            text = text.replace(f'"{seen.filename}"', f'"{user_path(seen.filename)}"')
        seen = seen.__cause__ or seen.__context__
    return text
