"""Plan reports: text, JSON, markdown; several configs' plans joined."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flash_pipeline.config.schema import show

if TYPE_CHECKING:
    from flash_pipeline.targets.plan import Action, Change

from flash_pipeline.report import cost
from flash_pipeline.report.config import plural

Insight = Mapping[str, Any]  # flash_pipeline.targets.runpod.insight: cost, stock, notes (RunPod plans only)

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


def split_change(change: Change) -> list[Change]:
    """A changed gpu table one key per change (gpu.pools, gpu.excludedTypes, gpu.minCudaVersion…),
    so a plan shows what moved; any other change as it is."""
    old, new = change.old, change.new
    if change.detail or not isinstance(old, Mapping) or not isinstance(new, Mapping) or change.field != "gpu":
        return [change]
    keys = [k for k in [*old, *(k for k in new if k not in old)] if old.get(k) != new.get(k)]
    return [replace(change, field=f"{change.field}.{k}", old=old.get(k), new=new.get(k)) for k in keys]


def change_lines(change: Change) -> list[str]:
    return [change_text(part) for part in split_change(change)]


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


def plan_text(app: str, target: str, actions: Sequence[Action], insight: Insight | None = None) -> str:
    """Terraform-style: one line per endpoint, the changed fields (old -> new) beneath; on RunPod
    each endpoint's cost and stock, and the change to the app's idle floor."""
    lines = [f"plan for {app} on the {target} target:"]
    items = (insight or {}).get("endpoints", {})
    for action in actions:
        after = f" (after {', '.join(action.after)})" if action.after else ""
        lines.append(f"  {_SYMBOLS[action.kind]} {action.key}: {action.kind}{after}")
        lines.extend(f"      {line}" for c in action.changes for line in change_lines(c))
        lines.extend(f"      ({note})" for note in _action_notes(action))
        lines.extend(f"      {text}" for text in cost.endpoint_lines(items.get(action.key)))
    if (line := cost.app_line(insight)) is not None:
        lines.append(line)
    lines.append(f"flash: {_plan_summary(actions)}")
    return "\n".join(lines)


def plan_json(actions: Sequence[Action], insight: Insight | None = None) -> dict[str, Any]:
    """One app's fields in the plan document (report/document.py); each action has the same keys
    (cost and stock added on RunPod)."""
    items = []
    for a in actions:
        item: dict[str, Any] = {"endpoint": a.key, "action": a.kind, "changes": [_change_json(c) for c in a.changes]}
        item |= {"note": a.note or None, "duplicates": list(a.duplicates), "after": list(a.after)}
        if insight is not None and "floor_per_hour" in insight:
            item |= cost.endpoint_json(insight["endpoints"].get(a.key))
        items.append(item)
    out = {"changes": any(a.kind != "keep" for a in actions), "actions": items}
    if insight is not None and "floor_per_hour" in insight:
        out["cost"] = cost.app_json(insight)
    return out


def plan_markdown(app: str, target: str, actions: Sequence[Action], insight: Insight | None = None) -> str:
    """For a pull-request comment: the table, the app's idle floor, and the app as a Mermaid graph."""
    lines = [f"### flash plan: `{app}` on `{target}`", "", "| endpoint | action | changes |", "| --- | --- | --- |"]
    items = (insight or {}).get("endpoints", {})
    for a in actions:
        changes = [
            f"`{c.field}`: {c.detail}" if c.detail else f"`{c.field}`: `{show(c.old)}` → `{show(c.new)}`"
            for c in (part for whole in a.changes for part in split_change(whole))
        ]
        changes += [f"_{note}_" for note in _action_notes(a)]
        changes += [f"_{text}_" for text in cost.endpoint_lines(items.get(a.key))]
        after = f" (after {', '.join(f'`{k}`' for k in a.after)})" if a.after else ""
        lines.append(f"| `{a.key}` | {a.kind}{after} | {'<br>'.join(changes)} |")
    lines += ["", f"**{_plan_summary(actions)}**"]
    if (line := cost.app_line(insight)) is not None:
        lines += ["", f"**{line.removeprefix('flash: ')}**"]
    lines += ["", cost.mermaid(actions, insight)]
    return "\n".join(lines)


def join_plans(outputs: Sequence[str]) -> str:
    """One text or markdown report for several configs' plans (monorepos)."""
    return "\n\n".join(outputs)
