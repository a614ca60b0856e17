"""The only module that formats output: text, json, github annotations, markdown."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config.schema import show
from pipeline.errors import Diagnostic
from pipeline.targets.gate import describe

if TYPE_CHECKING:
    from pipeline.build.output import BuildResult
    from pipeline.config.model import Project
    from pipeline.targets.local.deploy import LocalDeploy
    from pipeline.targets.plan import Action, Change
    from pipeline.targets.runpod.converge import Outcome
from pipeline.config.model import FileResult


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def diagnostic_text(diag: Diagnostic) -> str:
    """file:line:col: error: key.path: message, then the hint indented."""
    where = f"{diag.file}:{diag.line}:{diag.col}" if diag.line else diag.file
    subject = f"{diag.path}: " if diag.path else ""
    text = f"{where}: error: {subject}{diag.message}"
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
        counts = f"{plural(len(project.endpoints), 'endpoint')}, {plural(routes, 'route')}"
        return f"flash: {results[0].display} is valid ({counts})"
    endpoints = sum(len(r.project.endpoints) for r in results if r.project)
    return f"flash: {plural(len(results), 'file')} valid ({plural(endpoints, 'endpoint')})"


def validation_text(results: Sequence[FileResult], *, annotations: bool = False, consequence: str = "") -> str:
    """Compiler-style report: every diagnostic in file order, then the summary line."""
    lines: list[str] = []
    for result in results:
        lines.extend(diagnostic_text(d) for d in result.diagnostics)
    if annotations:
        lines.extend(validation_github(results).splitlines())
    lines.append(summary(results, consequence))
    return "\n".join(lines)


def validation_github(results: Sequence[FileResult]) -> str:
    return "\n".join(github_annotation(d) for r in results for d in r.diagnostics)


def validation_json(results: Sequence[FileResult]) -> str:
    files: list[dict[str, Any]] = []
    total = 0
    for result in results:
        endpoints = [e.name for e in result.project.endpoints] if result.project else []
        problems = [
            {"file": d.file, "line": d.line, "col": d.col, "path": d.path, "message": d.message, "hint": d.hint}
            for d in result.diagnostics
        ]
        files.append({"file": result.display, "valid": not problems, "endpoints": endpoints, "errors": problems})
        total += len(problems)
    return json.dumps({"valid": total == 0, "error_count": total, "files": files}, indent=2)


def error_text(message: str, hint: str = "") -> str:
    """A single non-config failure, as printed by the CLI's error boundary."""
    return f"flash: error: {message}" + (f"\n  hint: {hint}" if hint else "")


def config_error_text(diagnostics: Sequence[Diagnostic], consequence: str) -> str:
    """A ConfigError met by build or deploy: the diagnostics and what did not happen."""
    files = sorted({d.file for d in diagnostics})
    results = [FileResult(f, None, tuple(d for d in diagnostics if d.file == f)) for f in files]
    return validation_text(results, consequence=consequence)


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def build_text(result: BuildResult, seconds: float) -> str:
    """One line per endpoint (written or unchanged, where, image), then a summary."""
    lines = []
    for e in result.endpoints:
        if e.path is None:
            lines.append(f"prebuilt  {e.key}: deploys {e.image} as is")
            continue
        state = "built    " if e.changed else "unchanged"
        lines.append(f"{state} {e.key}: {_shown_path(e.path)} ({plural(e.files, 'file')}, image {e.image})")
    built = [e for e in result.endpoints if e.path is not None]
    lines.append(f"flash: {plural(len(built), 'endpoint')} built in {seconds:.2f}s -> {_shown_path(result.out_dir)}")
    return "\n".join(lines)


def push_text(result: BuildResult) -> str:
    return "\n".join(f"pushed {e.image}" for e in result.endpoints if e.path is not None)


def local_deploy_text(outcome: LocalDeploy, *, detach: bool) -> str:
    """Per endpoint: what changed, its URL, time to healthy and cold start; then how to stop."""
    width = max(len(d.key) for d in outcome.endpoints)
    lines = []
    for d in outcome.endpoints:
        cold = f" (cold start {d.gate.cold_start:.1f}s)" if d.gate.cold_start is not None else ""
        lines.append(f"{d.key.ljust(width)}  {d.action:<9}  {d.url}  healthy in {d.gate.waited:.1f}s{cold}")
    count = plural(len(outcome.endpoints), "endpoint")
    if detach:
        lines.append(
            f"flash: {count} healthy on the local target (supervisor pid {outcome.supervisor_pid}); stop with `flash destroy --target local --yes`"
        )
    else:
        lines.append(f"flash: {count} healthy on the local target; serving until Ctrl-C")
    return "\n".join(lines)


def local_deploy_json(outcome: LocalDeploy) -> str:
    endpoints = {
        d.key: {
            "url": d.url,
            "action": d.action,
            "healthy_after": round(d.gate.waited, 3),
            "cold_start": d.gate.cold_start,
        }
        for d in outcome.endpoints
    }
    return json.dumps({"target": "local", "supervisor_pid": outcome.supervisor_pid, "endpoints": endpoints}, indent=2)


def local_status_text(project: Project, answer: dict[str, Any] | None) -> str:
    running = (answer or {}).get("endpoints", {})
    width = max(len(e.key) for e in project.endpoints)
    lines = []
    for e in project.endpoints:
        info = running.get(e.key)
        if info is None:
            lines.append(f"{e.key.ljust(width)}  not running")
            continue
        states = [w["state"] for w in info["workers"]]
        summary = (
            ", ".join(f"{states.count(s)} {s}" for s in ("ready", "starting", "unhealthy", "stopping") if s in states)
            or "no workers (scaled to zero)"
        )
        ping = "200 ready" if info["ready"] else ("204 initializing" if "starting" in states else "no ready worker")
        lines.append(f"{e.key.ljust(width)}  {info['url']}  workers: {summary}  /ping: {ping}")
        if info.get("failure"):
            lines.append(f"{' ' * width}  cannot start: {info['failure']['reason']}")
        if info.get("monitor_error"):
            lines.append(f"{' ' * width}  supervisor error (retrying): {info['monitor_error']}")
    lines.append(
        f"flash: local supervisor pid {answer['pid']}" if answer else "flash: nothing is running on the local target"
    )
    return "\n".join(lines)


def _without_spec(info: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if info is None else {k: v for k, v in info.items() if k != "spec"}


def local_status_json(project: Project, answer: dict[str, Any] | None) -> str:
    running = (answer or {}).get("endpoints", {})
    return json.dumps(
        {
            "target": "local",
            "running": answer is not None,
            # "spec" holds an env digest for plans: never printed (a digest of a short secret is the secret)
            "endpoints": {e.key: _without_spec(running.get(e.key)) for e in project.endpoints},
        },
        indent=2,
    )


_SYMBOLS = {"create": "+", "update": "~", "keep": " ", "orphan": "!", "adopt": "~", "replace": "±", "conflict": "x"}
_PLAN_KINDS = ("create", "update", "replace", "adopt", "keep", "orphan", "conflict")
_PLAN_WORDS = {
    "create": "to create",
    "update": "to update",
    "replace": "to replace",
    "adopt": "to adopt",
    "keep": "unchanged",
    "orphan": "orphaned",
    "conflict": "in conflict",
}


def _plan_summary(actions: Sequence[Action]) -> str:
    """Always the four basic counts (scripts read them); the rarer kinds only when present."""
    counts = {kind: sum(1 for a in actions if a.kind == kind) for kind in _PLAN_KINDS}
    shown = [k for k in _PLAN_KINDS if counts[k] or k in ("create", "update", "keep", "orphan")]
    return ", ".join(f"{counts[k]} {_PLAN_WORDS[k]}" for k in shown)


def change_text(change: Change) -> str:
    """One changed field: old -> new, or for env only which keys changed (values never shown)."""
    if change.detail:
        return f"{change.field}: {change.detail}"
    return f"{change.field}: {show(change.old)} -> {show(change.new)}"


def _change_json(change: Change) -> dict[str, Any]:
    if change.detail:
        return {"field": change.field, "detail": change.detail}
    return {"field": change.field, "old": change.old, "new": change.new}


def _action_notes(action: Action) -> list[str]:
    notes = [action.note] if action.note else []
    if action.duplicates:
        notes.append(
            f"{plural(len(action.duplicates), 'duplicate')} ({', '.join(action.duplicates)}): deploy deletes them, keeping the oldest"
        )
    return notes


def plan_text(app: str, target: str, actions: Sequence[Action]) -> str:
    """Terraform-style: one line per endpoint, the changed fields (old -> new) beneath."""
    lines = [f"plan for {app} on the {target} target:"]
    for action in actions:
        lines.append(f"  {_SYMBOLS[action.kind]} {action.key}: {action.kind}")
        lines.extend(f"      {change_text(c)}" for c in action.changes)
        lines.extend(f"      ({note})" for note in _action_notes(action))
    lines.append(f"flash: {_plan_summary(actions)}")
    return "\n".join(lines)


def plan_json(app: str, target: str, actions: Sequence[Action]) -> str:
    items = []
    for a in actions:
        item: dict[str, Any] = {"endpoint": a.key, "action": a.kind, "changes": [_change_json(c) for c in a.changes]}
        if a.note:
            item["note"] = a.note
        if a.duplicates:
            item["duplicates"] = list(a.duplicates)
        items.append(item)
    return json.dumps(
        {"app": app, "target": target, "changes": any(a.kind != "keep" for a in actions), "actions": items}, indent=2
    )


def plan_markdown(app: str, target: str, actions: Sequence[Action]) -> str:
    """For a pull-request comment."""
    lines = [f"### flash plan: `{app}` on `{target}`", "", "| endpoint | action | changes |", "| --- | --- | --- |"]
    for a in actions:
        changes = [
            f"`{c.field}`: {c.detail}" if c.detail else f"`{c.field}`: `{show(c.old)}` → `{show(c.new)}`"
            for c in a.changes
        ]
        changes += [f"_{note}_" for note in _action_notes(a)]
        lines.append(f"| `{a.key}` | {a.kind} | {'<br>'.join(changes)} |")
    lines += ["", f"**{_plan_summary(actions)}**"]
    return "\n".join(lines)


_RESULTS = ("created", "updated", "replaced", "adopted", "rolled back", "failed", "unchanged", "deleted", "orphaned")


def deploy_counts(outcomes: Sequence[Outcome]) -> str:
    """What actually happened, by kind; an endpoint with an error counts as failed unless rolled back."""
    kinds = ["failed" if o.error and not o.rolled_back else o.action for o in outcomes]
    counts = {k: kinds.count(k) for k in _RESULTS}
    basic = ("created", "updated", "unchanged", "deleted", "orphaned")
    return ", ".join(f"{counts[k]} {k}" for k in _RESULTS if counts[k] or k in basic)


def runpod_deploy_text(outcomes: Sequence[Outcome]) -> str:
    """Per endpoint: what was done, id, URL, time to healthy and cold start; then the counts."""
    width = max(len(o.key) for o in outcomes)
    lines = []
    for o in outcomes:
        gate = o.gate
        health = ""
        if gate is not None:
            cold = f" (cold start {gate.cold_start:.1f}s)" if gate.cold_start is not None else ""
            health = f"  healthy in {gate.waited:.1f}s{cold}" if gate.healthy else f"  NOT healthy ({gate.last_status})"
        note = f"  ({o.note})" if o.note else ""
        lines.append(f"{o.key.ljust(width)}  {o.action:<11}  {o.endpoint_id or '-'}  {o.url or '-'}{health}{note}")
    verdict = "deploy to RunPod failed" if any(o.error for o in outcomes) else "deployed to RunPod"
    lines.append(f"flash: {verdict}: {deploy_counts(outcomes)}")
    return "\n".join(lines)


def _outcome_json(o: Outcome) -> dict[str, Any]:
    return {
        "action": o.action,
        "id": o.endpoint_id,
        "url": o.url,
        "healthy": o.healthy,
        "healthy_after": round(o.gate.waited, 3) if o.gate and o.gate.healthy else None,
        "cold_start": o.gate.cold_start if o.gate else None,
        "changed": list(o.changed),
        "error": o.error or None,
        "note": o.note,
    }


def runpod_deploy_json(outcomes: Sequence[Outcome]) -> str:
    items = {o.key: _outcome_json(o) for o in outcomes}
    return json.dumps({"target": "runpod", "ok": not any(o.error for o in outcomes), "endpoints": items}, indent=2)


def runpod_deploys_json(deploys: Sequence[tuple[str, Sequence[Outcome]]]) -> str:
    """One JSON document for one config's deploy, or several (keys become "app/endpoint")."""
    if len(deploys) == 1:
        return runpod_deploy_json(deploys[0][1])
    merged = {f"{app}/{o.key}": _outcome_json(o) for app, outcomes in deploys for o in outcomes}
    ok = not any(o.error for _, outcomes in deploys for o in outcomes)
    return json.dumps({"target": "runpod", "ok": ok, "endpoints": merged}, indent=2)


def runpod_summary_markdown(app: str, outcomes: Sequence[Outcome]) -> str:
    """The $GITHUB_STEP_SUMMARY table."""
    lines = [
        f"### flash deploy: `{app}`",
        "",
        "| endpoint | action | id | URL | healthy after |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        waited = f"{o.gate.waited:.1f}s" if o.gate and o.gate.healthy else "—"
        lines.append(f"| `{o.key}` | {o.action} | `{o.endpoint_id or '-'}` | {o.url or '-'} | {waited} |")
    return "\n".join(lines)


def interrupted_text(deploys: Sequence[tuple[str, Sequence[Outcome]]]) -> str:
    """After Ctrl-C: per endpoint what was done (ids) and what was not; how to converge."""
    lines = ["flash: interrupted: no further change was sent. Where each endpoint stands:"]
    for app, outcomes in deploys:
        for o in outcomes:
            where = f"{app}/{o.key}" if len(deploys) > 1 else o.key
            if o.action == "pending":
                state = "not changed" if not o.endpoint_id else f"not changed ({o.endpoint_id})"
            else:
                state = f"{o.action} {o.endpoint_id or ''}".rstrip()
                if o.gate is None or not o.gate.healthy:
                    state += " (health not confirmed)"
            lines.append(f"  {where}: {state}")
        if not outcomes:
            lines.append(f"  {app}: nothing was changed")
    lines.append("flash: run the same deploy again to converge (endpoints are found by name and owner markers)")
    return "\n".join(lines)


def destroy_list(app: str, doomed: Sequence[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in doomed)
    lines = [f"flash: {plural(len(doomed), 'RunPod endpoint')} of {app} to delete:"]
    lines += [f"  {name.ljust(width)}  {endpoint_id}" for name, endpoint_id in doomed]
    return "\n".join(lines)


def runpod_status_text(rows: Sequence[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        if row["id"] is None:
            owner = f" (the name {row['name']} belongs to {row['owner']})" if row.get("owner") else ""
            lines.append(f"{row['endpoint']}  not deployed{owner}")
            continue
        workers = row["workers"]
        summary = ", ".join(
            f"{workers.get(k, 0)} {k}"
            for k in ("idle", "running", "initializing", "throttled", "unhealthy")
            if workers.get(k)
        )
        line = f"{row['endpoint']}  {row['id']}  {row['url']}  workers: {summary or 'none'}  /ping: {describe(row['ping'])}"
        if row.get("duplicates"):
            line += f"  (duplicates: {', '.join(row['duplicates'])}; deploy deletes them)"
        if row.get("adopt"):
            line += "  (no flash owner markers yet; deploy adopts it)"
        lines.append(line)
    return "\n".join(lines)


def runpod_status_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps({"target": "runpod", "endpoints": list(rows)}, indent=2)


class Progress:
    """Live deploy progress: one updating line per endpoint on a terminal, timestamped lines otherwise.

    Fed the "endpoint: message" lines the gate emits; other lines pass through unchanged.
    """

    _KEYED = re.compile(r"^([a-z][a-z0-9-]{0,30}): (.*)$")

    def __init__(
        self, write: Callable[[str], None], *, tty: bool, clock: Callable[[], str] = lambda: time.strftime("%H:%M:%S")
    ) -> None:
        self.write = write
        self.tty = tty
        self.clock = clock
        self.lines: dict[str, str] = {}
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        match = self._KEYED.match(line)
        with self.lock:
            if not self.tty:
                self.write(f"{self.clock()} {line}\n")
            elif match is None:
                self.write(line + "\n")
            else:
                self._redraw(match.group(1), match.group(2))

    def _redraw(self, key: str, message: str) -> None:
        known = len(self.lines)
        self.lines[key] = message
        width = max(len(k) for k in self.lines)
        up = f"\x1b[{known}F" if known else ""  # back to the first progress line
        body = "".join(f"\x1b[2K{k.ljust(width)}  {v}\n" for k, v in self.lines.items())
        self.write(up + body)


def join_plans(outputs: Sequence[str], fmt: str) -> str:
    """One report for several configs' plans (monorepos); a single plan is printed as is."""
    if len(outputs) == 1:
        return outputs[0]
    if fmt == "json":
        plans = [json.loads(o) for o in outputs]
        return json.dumps({"changes": any(p["changes"] for p in plans), "plans": plans}, indent=2)
    return "\n\n".join(outputs)
