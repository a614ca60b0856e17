"""Pure planning: desired endpoints against live ones, after normalising both.

An endpoint is found by its key (the RunPod name on the cloud path), never by a local record.
Values are normalised before comparing so that `[]` and a missing list, or 4 and 4.0, never
show up as drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Spec = Mapping[str, Any]


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Action:
    kind: str  # create | update | keep | orphan
    key: str
    changes: tuple[Change, ...] = ()


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
            Change(name, live[key].get(name), spec[name]) for name in spec if not same(spec[name], live[key].get(name))
        )
        actions.append(Action("update" if changes else "keep", key, changes))
    actions.extend(Action("orphan", key) for key in live if key not in desired)
    return actions


def has_changes(actions: list[Action]) -> bool:
    return any(a.kind != "keep" for a in actions)
