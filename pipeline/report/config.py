"""Validation reports: text, JSON, GitHub annotations; error lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flash_pipeline.errors import Diagnostic

if TYPE_CHECKING:
    pass
from flash_pipeline.config.model import FileResult


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def diagnostic_text(diag: Diagnostic, severity: str = "error") -> str:
    """file:line:col: error: key.path: message, then the hint indented."""
    where = f"{diag.file}:{diag.line}:{diag.col}" if diag.line else diag.file
    subject = f"{diag.path}: " if diag.path else ""
    text = f"{where}: {severity}: {subject}{diag.message}"
    return text + (f"\n  hint: {diag.hint}" if diag.hint else "")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(diag: Diagnostic) -> str:
    """A GitHub Actions workflow command that annotates the line in the pull request."""
    props = f"file={_escape_property(diag.file)}"
    if diag.line:
        props += f",line={diag.line},col={diag.col}"
    subject = f"{diag.path}: " if diag.path else ""
    message = subject + diag.message + (f"\nhint: {diag.hint}" if diag.hint else "")
    return f"::error {props}::{_escape_data(message)}"


def summary(results: Sequence[FileResult], consequence: str = "") -> str:
    """One closing line for a validation of one or many files."""
    errors = sum(len(r.diagnostics) for r in results)
    if errors:
        bad = [r for r in results if r.diagnostics]
        where = bad[0].display if len(results) == 1 else f"{len(bad)} of {plural(len(results), 'file')}"
        return f"flash: {plural(errors, 'error')} in {where}" + (f"; {consequence}" if consequence else "")
    if len(results) == 1 and results[0].project is not None:
        project = results[0].project
        routes = sum(len(e.routes) for e in project.endpoints)
        own = [e for e in project.endpoints if not e.generated]
        mothership = " and a mothership" if len(own) < len(project.endpoints) else ""
        counts = f"{plural(len(own), 'endpoint')}{mothership}, {plural(routes, 'route')}"
        return f"flash: {results[0].display} is valid ({counts})"
    endpoints = sum(len(r.project.endpoints) for r in results if r.project)
    return f"flash: {plural(len(results), 'file')} valid ({plural(endpoints, 'endpoint')})"


def validation_text(results: Sequence[FileResult], *, annotations: bool = False, consequence: str = "") -> str:
    """Compiler-style report: every diagnostic in file order, then the summary line."""
    lines: list[str] = []
    for result in results:
        lines.extend(diagnostic_text(d) for d in result.diagnostics)
        if result.project is not None:  # warnings do not fail validation
            lines.extend(diagnostic_text(d, "warning") for d in result.project.warnings)
    if annotations:
        lines.extend(validation_github(results).splitlines())
    lines.append(summary(results, consequence))
    return "\n".join(lines)


def validation_github(results: Sequence[FileResult]) -> str:
    return "\n".join(github_annotation(d) for r in results for d in r.diagnostics)


def validation_json(results: Sequence[FileResult]) -> str:
    """The versioned document (report/document.py) for files, not apps: a file that does not
    parse has no app. Every file has the same keys."""
    from flash_pipeline.report.document import VERSION

    files: list[dict[str, Any]] = []
    total = 0
    for result in results:
        endpoints = [e.name for e in result.project.endpoints] if result.project else []
        problems = [_diagnostic_json(d) for d in result.diagnostics]
        warnings = [_diagnostic_json(d) for d in result.project.warnings] if result.project is not None else []
        files.append(
            {"file": result.display, "valid": not problems, "endpoints": endpoints, "errors": problems}
            | {"warnings": warnings}
        )
        total += len(problems)
    body = {"version": VERSION, "command": "validate", "ok": total == 0, "error_count": total, "files": files}
    return json.dumps(body, indent=2)


def _diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    return {"file": d.file, "line": d.line, "col": d.col, "path": d.path, "message": d.message, "hint": d.hint}


def error_text(message: str, hint: str = "") -> str:
    """A single non-config failure, as printed by the CLI's error boundary."""
    return f"flash: error: {message}" + (f"\n  hint: {hint}" if hint else "")


def app_error_text(app: str, error: Exception) -> str:
    """One config's failure when several run at once: every line names its app (a line indented
    under another, such as a worker's log line, belongs to the one above)."""
    from flash_pipeline.errors import ConfigError

    if isinstance(error, ConfigError):
        return config_error_text(error.diagnostics, f"{error.consequence or 'nothing was done'} for {app}")
    lines = [f"{app}: {line}" if line[:1].strip() else line for line in str(error).split("\n")]
    hint = getattr(error, "hint", "")
    return error_text("\n".join(lines), f"{app}: {hint}" if hint else "")


def config_error_text(diagnostics: Sequence[Diagnostic], consequence: str) -> str:
    """A ConfigError met by build or deploy: the diagnostics and what did not happen."""
    files = sorted({d.file for d in diagnostics})
    results = [FileResult(f, None, tuple(d for d in diagnostics if d.file == f)) for f in files]
    return validation_text(results, consequence=consequence)
