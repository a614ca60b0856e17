"""The one backoff (flash_runtime.backoff.Backoff): the delays every retry loop of flash waits."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from flash_runtime.backoff import Backoff

policies = st.builds(
    Backoff,
    initial=st.floats(0, 5),
    factor=st.floats(1, 4),
    cap=st.floats(0, 60),
    jitter=st.floats(0, 0.5),
)


@given(policies, st.integers(0, 2**31), st.integers(0, 2**32))
def test_a_delay_is_the_capped_exponential_within_its_jitter(policy: Backoff, attempt: int, seed: int) -> None:
    got = policy.delay(attempt, random.Random(seed))
    try:
        base = min(policy.cap, policy.initial * policy.factor**attempt)
    except OverflowError:  # the hours-long loop: at the cap, never an error
        base = policy.cap if policy.initial else 0.0
    assert max(0.0, base * (1 - policy.jitter)) - 1e-9 <= got <= base * (1 + policy.jitter) + 1e-9


@given(policies, st.integers(0, 2**32))
def test_delays_are_delay_of_each_attempt_in_turn(policy: Backoff, seed: int) -> None:
    """The gate and the log stream iterate; calls and the relay count attempts: the same numbers."""
    counting = random.Random(seed)
    counted = [policy.delay(n, counting) for n in range(12)]
    assert list(itertools.islice(policy.delays(random.Random(seed)), 12)) == counted


def test_without_jitter_the_delays_are_exact_and_need_no_randomness() -> None:
    """The RunPod backends' ambiguous writes (0.5, 1, 2 s, as urllib3 sleeps) and local restarts."""
    writes = Backoff(initial=0.5, factor=2.0, cap=30.0, jitter=0.0)
    assert list(itertools.islice(writes.delays(), 4)) == [0.5, 1.0, 2.0, 4.0]
    assert writes.delay(10_000) == 30.0
    lease = Backoff(initial=1.0, factor=1.5, cap=5.0, jitter=0.0)
    assert list(itertools.islice(lease.delays(), 6)) == [1.0, 1.5, 2.25, 3.375, 5.0, 5.0]
