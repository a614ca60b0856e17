"""The RunPod target keeps its promises under any interleaving (issue 22): the stateful test, bounded.

tests/emulator/stateful.py drives random sequences of deploys (config variants: compute changes
that replace, env changes, endpoints added and removed, a changing `calls` graph, the mothership
on and off, two environments), destroys, unlocks, two or three commands at once, interruptions
and faults, on REST or GraphQL, and checks the six invariants at every quiescent point. Here it
runs with a fixed seed and a fresh one; tests/stress/test_runpod_stateful.py runs it long.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "emulator"))

from stateful import Machine

BOUNDED = settings(
    max_examples=4,
    stateful_step_count=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
    database=None,
)


@pytest.fixture
def machine(tmp_path: Path) -> type[Machine]:
    Machine.root = tmp_path
    Machine.operations = 0
    Machine.seen.clear()
    return Machine


def test_invariants_hold_for_a_fixed_seed(machine: type[Machine]) -> None:
    run_state_machine_as_test(machine, settings=settings(BOUNDED, derandomize=True))
    print(f"stateful test, fixed seed: {machine.operations} operations: {dict(machine.seen)}")


def test_invariants_hold_for_a_fresh_seed(machine: type[Machine]) -> None:
    run_state_machine_as_test(machine, settings=BOUNDED)
    print(f"stateful test, fresh seed: {machine.operations} operations: {dict(machine.seen)}")
