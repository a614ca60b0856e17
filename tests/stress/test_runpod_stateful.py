"""The stateful RunPod test (tests/emulator/stateful.py), long: many more and longer sequences than
the bounded run in tests/pipeline/test_runpod_invariants.py (`tox -e stress`, a few minutes)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "emulator"))

from stateful import Machine

pytestmark = pytest.mark.stress
EXAMPLES = int(os.environ.get("FLASH_STATEFUL_EXAMPLES", "30"))  # about 450 operations; more with the variable
# CI replays the same sequences every run (derandomized); FLASH_STATEFUL_RANDOM=1 explores new ones
RANDOM = os.environ.get("FLASH_STATEFUL_RANDOM") == "1"


@pytest.mark.timeout(1800)
def test_invariants_hold_for_long_sequences(tmp_path: Path) -> None:
    Machine.root = tmp_path
    Machine.operations = 0
    Machine.seen.clear()
    long = settings(
        max_examples=EXAMPLES,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        derandomize=not RANDOM,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # threads make replays differ: report the first failure as is
    )
    run_state_machine_as_test(Machine, settings=long)
    print(f"stateful test, long: {Machine.operations} operations: {dict(Machine.seen)}")
