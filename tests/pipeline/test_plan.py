"""Pure planning: create / update / keep / orphan, with no false drift."""

from __future__ import annotations

from flash_pipeline.targets.plan import Action, Change, plan_deploy


def test_create_update_keep_orphan() -> None:
    desired = {"a": {"workers": [0, 3], "env": "x"}, "b": {"workers": [1, 2]}, "c": {"workers": [0, 1]}}
    live = {"a": {"workers": [0, 3], "env": "x"}, "b": {"workers": [1, 5]}, "old": {"workers": [0, 1]}}
    assert plan_deploy(desired, live) == [
        Action("keep", "a"),
        Action("update", "b", (Change("workers", [1, 5], [1, 2]),)),
        Action("create", "c"),
        Action("orphan", "old"),
    ]


def test_no_false_drift_from_empty_containers_numbers_or_key_order() -> None:
    desired = {"a": {"datacenters": [], "env": {"B": "2", "A": "1"}, "disk": 20, "volumes": None}}
    live = {"a": {"datacenters": None, "env": {"A": "1", "B": "2"}, "disk": 20.0}}
    assert plan_deploy(desired, live) == [Action("keep", "a")]


def test_booleans_are_not_numbers() -> None:
    assert plan_deploy({"a": {"flashboot": False}}, {"a": {"flashboot": 0}}) == [
        Action("update", "a", (Change("flashboot", 0, False),))
    ]


def test_env_changes_name_keys_never_values() -> None:
    desired = {"a": {"env": {"TOKEN": "new-secret", "ADDED": "1", "SAME": "x"}}}
    live = {"a": {"env": {"TOKEN": "old-secret", "GONE": "2", "SAME": "x"}}}
    [action] = plan_deploy(desired, live)
    assert action.changes == (Change("env", None, None, "ADDED added, TOKEN changed, GONE removed"),)
