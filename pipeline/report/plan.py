"""Plan reports: text, JSON, markdown; several configs' plans joined."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flash_pipeline.config.schema import show

if TYPE_CHECKING:
    from flash_pipeline.targets.plan import Action, Change

from flash_pipeline.report.config import plural

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
        after = f" (after {', '.join(action.after)})" if action.after else ""
        lines.append(f"  {_SYMBOLS[action.kind]} {action.key}: {action.kind}{after}")
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
        if a.after:
            item["after"] = list(a.after)
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
        after = f" (after {', '.join(f'`{k}`' for k in a.after)})" if a.after else ""
        lines.append(f"| `{a.key}` | {a.kind}{after} | {'<br>'.join(changes)} |")
    lines += ["", f"**{_plan_summary(actions)}**"]
    return "\n".join(lines)


def join_plans(outputs: Sequence[str], fmt: str) -> str:
    """One report for several configs' plans (monorepos); a single plan is printed as is."""
    if len(outputs) == 1:
        return outputs[0]
    if fmt == "json":
        plans = [json.loads(o) for o in outputs]
        return json.dumps({"changes": any(p["changes"] for p in plans), "plans": plans}, indent=2)
    return "\n\n".join(outputs)
