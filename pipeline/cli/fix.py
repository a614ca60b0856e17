"""The `--fix` / `--diff` path of `flash validate`: apply safe fixes per file, then validate again."""

from __future__ import annotations

import difflib
import os
import tempfile
from pathlib import Path

import click

from pipeline.config.model import FileResult
from pipeline.errors import BuildError


def fix_files(results: list[FileResult], *, write: bool) -> list[FileResult]:
    """Each file with fixes: fixed in place (or its diff shown); the results of validating again."""
    from pipeline.build.handlers import with_sources
    from pipeline.cli.common import environment
    from pipeline.config.fix import apply, describe
    from pipeline.config.validate import check_file

    out = []
    for result in results:
        path = Path(result.display)
        if not any(d.fix for d in result.diagnostics):
            out.append(result)
            continue
        before = path.read_text(encoding="utf-8")
        fixed = apply(before, result.diagnostics)
        if not write:
            lines = difflib.unified_diff(
                before.splitlines(keepends=True), fixed.text.splitlines(keepends=True), f"a/{path}", f"b/{path}"
            )
            click.echo("".join(lines), nl=False)
            out.append(result)
            continue
        _replace(path, fixed.text)
        for diag in fixed.applied:
            click.echo(f"fixed {describe(diag)}", err=True)
        out.append(with_sources(check_file(path, result.display, environment())))
    return out


def _replace(path: Path, text: str) -> None:
    """Write atomically: an interrupted fix leaves the old file, never half a new one."""
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        raise BuildError(f"cannot write {path}: {exc.strerror or exc}", "check the file's permissions") from None
