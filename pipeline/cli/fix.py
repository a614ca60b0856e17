"""The `--fix` / `--diff` path of `flash validate`: apply safe fixes per file, then validate again."""

from __future__ import annotations

import difflib
from pathlib import Path

import click

from flash_pipeline.cli.common import write_atomically
from flash_pipeline.config.model import FileResult


def fix_files(results: list[FileResult], *, write: bool) -> list[FileResult]:
    """Each file with fixes: fixed in place (or its diff shown); the results of validating again."""
    from flash_pipeline.builder.handlers import with_sources
    from flash_pipeline.cli.common import environment
    from flash_pipeline.config.fix import apply, describe
    from flash_pipeline.config.validate import check_file

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
        write_atomically(path, fixed.text)
        for diag in fixed.applied:
            click.echo(f"fixed {describe(diag)}", err=True)
        out.append(with_sources(check_file(path, result.display, environment())))
    return out
