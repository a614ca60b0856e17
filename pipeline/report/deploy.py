"""Deploy reports (both targets), destroy lists and live deploy progress."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flash_pipeline.targets.local.deploy import LocalDeploy
    from flash_pipeline.targets.runpod.converge import Outcome

from flash_pipeline.report.config import plural


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


def local_deploy_json(outcome: LocalDeploy) -> dict[str, Any]:
    """One app's fields in the deploy document (report/document.py)."""
    endpoints = {
        d.key: {
            "url": d.url,
            "action": d.action,
            "healthy_after": round(d.gate.waited, 3),
            "cold_start": d.gate.cold_start,
        }
        for d in outcome.endpoints
    }
    return {"supervisor_pid": outcome.supervisor_pid, "endpoints": endpoints}


_RESULTS = (
    "created", "updated", "replaced", "adopted", "rolled back", "failed", "not deployed", "unchanged", "deleted", "orphaned",
    "replacing", "pending",  # only where a run stopped half-way: still counted, as their rows say them
)  # fmt: skip


def result(o: Outcome) -> str:
    """The one word for what became of an endpoint: its row says it and the counts count it, so
    they always agree. An endpoint with an error is `failed` (its note says what is left, e.g. a
    new endpoint kept for inspection) unless it was rolled back or not deployed at all."""
    return "failed" if o.error and o.action not in ("rolled back", "not deployed") else o.action


def deploy_counts(outcomes: Sequence[Outcome]) -> str:
    """What actually happened, by kind (the rows' words)."""
    kinds = [result(o) for o in outcomes]
    counts = {k: kinds.count(k) for k in _RESULTS}
    basic = ("created", "updated", "unchanged", "deleted", "orphaned")
    return ", ".join(f"{counts[k]} {k}" for k in _RESULTS if counts[k] or k in basic)


def runpod_deploy_text(outcomes: Sequence[Outcome], app: str | None = None) -> str:
    """Per endpoint: what became of it, id, URL, time to healthy and cold start; then the counts.
    With `app` (several configs deployed at once) the block begins and ends with the app's name."""
    width = max(len(o.key) for o in outcomes)
    lines = [f"deploy of {app}:"] if app else []
    for o in outcomes:
        gate = o.gate
        health = ""
        if gate is not None:
            cold = f" (cold start {gate.cold_start:.1f}s)" if gate.cold_start is not None else ""
            health = f"  healthy in {gate.waited:.1f}s{cold}" if gate.healthy else f"  NOT healthy ({gate.last_status})"
        note = f"  ({o.note})" if o.note else ""
        lines.append(f"{o.key.ljust(width)}  {result(o):<11}  {o.endpoint_id or '-'}  {o.url or '-'}{health}{note}")
    verdict = "deploy to RunPod failed" if any(o.error for o in outcomes) else "deployed to RunPod"
    lines.append(f"flash: {app + ': ' if app else ''}{verdict}: {deploy_counts(outcomes)}")
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


def runpod_deploy_json(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """One app's fields in the deploy document (report/document.py): its endpoints by key."""
    return {"endpoints": {o.key: _outcome_json(o) for o in outcomes}}


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
        lines.append(f"| `{o.key}` | {result(o)} | `{o.endpoint_id or '-'}` | {o.url or '-'} | {waited} |")
    return "\n".join(lines)


def interrupted_text(deploys: Sequence[tuple[str, Sequence[Outcome]]]) -> str:
    """After Ctrl-C: per endpoint what was done (ids) and what was not; how to converge."""
    lines = ["flash: interrupted: no further change was sent. Where each endpoint stands:"]
    for app, outcomes in deploys:
        for o in outcomes:
            where = f"{app}/{o.key}" if len(deploys) > 1 else o.key
            if o.action == "pending":
                state = "not changed" if not o.endpoint_id else f"not changed ({o.endpoint_id})"
                state += f" ({o.note})" if o.note else ""
            else:
                state = f"{o.action} {o.endpoint_id or ''}".rstrip()
                if (o.gate is None or not o.gate.healthy) and o.action != "deleted":
                    state += " (health not confirmed)"
                if o.retire:  # a replace's old endpoint: its callers may still name it
                    state += f" (the old endpoint {o.retire} is kept)"
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
