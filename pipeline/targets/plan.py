"""Pure planning: desired endpoints against live ones, after normalising both.

An endpoint is found by its key (the RunPod name on the cloud path), never by a local record.
Values are normalised before comparing so that `[]` and a missing list, or 4 and 4.0, never
show up as drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flash_pipeline.config.model import Project

Spec = Mapping[str, Any]


SECRET_FIELDS = frozenset({"env"})  # values never shown, nor digests of them: only which keys changed


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any
    detail: str = ""  # for secret fields, in place of old and new: "TOKEN changed, DEBUG added"


@dataclass(frozen=True)
class Action:
    kind: str  # create | update | keep | orphan; on RunPod also adopt | replace | conflict
    key: str
    changes: tuple[Change, ...] = ()
    note: str = ""
    duplicates: tuple[str, ...] = ()  # ids of extra endpoints of ours with this name (deploy deletes them)
    layer: int = 0  # deploy order: an endpoint is deployed after the endpoints it calls (lower layers)
    after: tuple[str, ...] = ()  # the endpoints it calls, which are deployed and gated first


def normalise(value: Any) -> Any:
    """A canonical form: None and empty containers alike, numbers by value, lists in order."""
    if value is None or value == [] or value == {} or value == ():
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, Mapping):
        return {k: normalise(v) for k, v in sorted(value.items())}
    return value


def same(a: Any, b: Any) -> bool:
    """Equal after normalising; compared as JSON so that False is not 0."""
    return json.dumps(normalise(a), sort_keys=True, default=str) == json.dumps(
        normalise(b), sort_keys=True, default=str
    )


def plan_deploy(desired: Mapping[str, Spec], live: Mapping[str, Spec]) -> list[Action]:
    """Create what is missing, update what differs, keep the rest; live extras are orphans."""
    actions = []
    for key, spec in desired.items():
        if key not in live:
            actions.append(Action("create", key))
            continue
        changes = tuple(
            _change(name, live[key].get(name), spec[name]) for name in spec if not same(spec[name], live[key].get(name))
        )
        actions.append(Action("update" if changes else "keep", key, changes))
    actions.extend(Action("orphan", key) for key in live if key not in desired)
    return actions


def in_layers(actions: list[Action], project: Project) -> list[Action]:
    """The actions with their deploy layer and callees set from the project's `calls` graph."""
    from flash_pipeline.config.calls import layers

    calls = {e.key: e.calls for e in project.endpoints}
    order = {key: n for n, layer in enumerate(layers(calls, list(calls))) for key in layer}
    return [replace(a, layer=order.get(a.key, 0), after=tuple(calls.get(a.key, ()))) for a in actions]


def _change(name: str, old: Any, new: Any) -> Change:
    if name not in SECRET_FIELDS:
        return Change(name, old, new)
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return Change(name, None, None, "changed")
    parts = [f"{k} added" for k in sorted(set(new) - set(old))]
    parts += [f"{k} changed" for k in sorted(set(new) & set(old)) if not same(new[k], old[k])]
    parts += [f"{k} removed" for k in sorted(set(old) - set(new))]
    return Change(name, None, None, ", ".join(parts) or "changed")


def has_changes(actions: list[Action]) -> bool:
    return any(a.kind != "keep" for a in actions)
