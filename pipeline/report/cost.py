"""What a plan says besides the diff (flash_pipeline.targets.runpod.insight): cost floor and ceiling,
the change to the app's idle floor, stock warnings and errors; and the Mermaid picture of the app."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flash_pipeline.targets.plan import Action


def usd(value: float) -> str:
    return f"${value:.2f}"


def per_hour(low: float, high: float) -> str:
    """$1.10/h, or a range $0.69-$1.10/h when the pools are priced differently."""
    return f"{usd(high)}/h" if round(low, 2) == round(high, 2) else f"{usd(low)}-{usd(high)}/h"


def change(delta: float) -> str:
    """+ $1.10/h while idle; - $0.40/h while idle; unchanged."""
    if round(delta, 2) == 0:
        return "unchanged"
    return f"{'+' if delta > 0 else '-'} {usd(abs(delta))}/h while idle"


def cost_text(item: Mapping[str, Any] | None) -> str | None:
    """cost: $1.10/h floor (+ $1.10/h while idle), $3.30/h ceiling."""
    if not item or not item.get("cost"):
        return None
    ranges = item["range"]
    delta = item.get("floor_change_per_hour", 0.0)
    moved = f" ({change(delta)})" if round(delta, 2) else ""
    return f"cost: {per_hour(*ranges['floor'])} floor{moved}, {per_hour(*ranges['ceiling'])} ceiling"


def endpoint_lines(item: Mapping[str, Any] | None) -> list[str]:
    """The lines under an endpoint in a text plan: cost, errors, warnings, notes."""
    if not item:
        return []
    lines = [text] if (text := cost_text(item)) else []
    lines += [f"error: {text}" for text in [*item.get("blocking", []), *item.get("errors", [])]]
    lines += [f"warning: {text}" for text in item.get("warnings", [])]
    lines += [f"({text})" for text in item.get("notes", [])]
    return lines


def app_line(insight: Mapping[str, Any] | None) -> str | None:
    """flash: idle floor $1.10/h (+ $1.10/h while idle); or why costs are unknown."""
    if insight is None or "floor_per_hour" not in insight:
        return None
    if insight["floor_per_hour"] is None:
        why = insight.get("catalog") or "a pool or CPU flavor is not in the RunPod catalog"
        return f"flash: costs unknown: {why}"
    floor = insight["floor_per_hour"]
    budget = f"; budget {usd(insight['max_floor'])}/h" if insight.get("max_floor") is not None else ""
    return f"flash: idle floor {usd(floor)}/h ({change(insight['floor_change_per_hour'])}){budget}"


def app_json(insight: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "floor_per_hour": insight.get("floor_per_hour"),
        "floor_change_per_hour": insight.get("floor_change_per_hour"),
        "max_floor": insight.get("max_floor"),
        "catalog_error": insight.get("catalog"),
    }


def endpoint_json(item: Mapping[str, Any] | None) -> dict[str, Any]:
    if not item:
        return {}
    out: dict[str, Any] = {"compute": item["compute"], "cost": item.get("cost")}
    if item.get("cost"):
        out["floor_change_per_hour"] = item["floor_change_per_hour"]
    out["availability"] = item.get("availability")
    out["errors"] = [*item.get("blocking", []), *item.get("errors", [])]
    out["warnings"] = list(item.get("warnings", []))
    if item.get("notes"):
        out["notes"] = list(item["notes"])
    return out


def _node_id(key: str) -> str:
    return "n_" + key.replace("-", "_")


def mermaid(actions: Sequence[Action], insight: Mapping[str, Any] | None) -> str:
    """The app as a Mermaid flowchart GitHub renders: one node per endpoint (action, compute, cost
    floor), `calls` as edges, the mothership as a hexagon, each deploy layer a subgraph."""
    items = (insight or {}).get("endpoints", {})
    lines = ["```mermaid", "flowchart LR"]
    for layer in sorted({a.layer for a in actions if a.kind != "orphan"}):
        lines.append(f'  subgraph layer{layer}["deploy layer {layer + 1}"]')
        for action in (a for a in actions if a.layer == layer and a.kind != "orphan"):
            lines.append("    " + _node(action, items.get(action.key)))
        lines.append("  end")
    for action in (a for a in actions if a.kind == "orphan"):
        lines.append("  " + _node(action, None))
    for action in actions:
        arrow = "-.->" if action.key == "mothership" else "-->"
        lines.extend(f"  {_node_id(action.key)} {arrow} {_node_id(callee)}" for callee in action.after)
    for kind, style in _STYLES.items():
        lines.append(f"  classDef {kind} {style}")
    for action in actions:
        lines.append(f"  class {_node_id(action.key)} {action.kind}")
    lines.append("```")
    return "\n".join(lines)


_STYLES = {
    "create": "fill:#dafbe1,stroke:#1a7f37",
    "update": "fill:#fff8c5,stroke:#9a6700",
    "adopt": "fill:#fff8c5,stroke:#9a6700",
    "replace": "fill:#ffebe9,stroke:#cf222e",
    "keep": "fill:#f6f8fa,stroke:#8c959f",
    "orphan": "fill:#f6f8fa,stroke:#cf222e,stroke-dasharray:4",
    "conflict": "fill:#ffebe9,stroke:#cf222e,stroke-width:3px",
}
_WORDS = {"keep": "unchanged"}


def _node(action: Action, item: Mapping[str, Any] | None) -> str:
    parts = [action.key, _WORDS.get(action.kind, action.kind)]
    if item:
        parts.append(item["compute"])
        if item.get("cost"):
            parts.append(f"floor {per_hour(*item['range']['floor'])}")
    label = "<br/>".join(parts)
    shape = ('{{"', '"}}') if action.key == "mothership" else ('["', '"]')
    return f"{_node_id(action.key)}{shape[0]}{label}{shape[1]}"
