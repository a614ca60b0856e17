"""The /ping gate, driven by an injected clock: no real waiting, no patching."""

from __future__ import annotations

import random

from flash_pipeline.targets.gate import wait_healthy
from flash_runtime.backoff import Backoff


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(*statuses: int | str):
    answers = list(statuses)
    return lambda: answers.pop(0) if len(answers) > 1 else answers[0]


def test_passes_on_the_first_200_and_reports_cold_start() -> None:
    time = FakeTime()
    result = wait_healthy(
        scripted(204, 204, 200),
        timeout=60,
        clock=time.clock,
        sleep=time.sleep,
        backoff=Backoff(jitter=0),
        rng=random.Random(1),
    )
    assert (result.healthy, result.probes, result.last_status) == (True, 3, "200 ready")
    assert time.sleeps == [0.5, 1.0]
    assert result.cold_start == 1.5


def test_never_passes_on_204_or_5xx_or_transport_errors() -> None:
    time = FakeTime()
    result = wait_healthy(
        scripted(204, 503, "connection error (refused)", 502, 500),
        timeout=30,
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(0),
    )
    assert not result.healthy
    assert result.reason == "timed out"
    assert result.last_status == "HTTP 500"
    assert result.waited == 30


def test_fatal_statuses_fail_at_once() -> None:
    time = FakeTime()
    result = wait_healthy(scripted(204, 404), timeout=600, clock=time.clock, sleep=time.sleep, rng=random.Random(0))
    assert (result.healthy, result.probes, result.reason) == (False, 2, "no such endpoint or route")
    assert time.now < 1


def test_backoff_doubles_to_the_cap_within_jitter() -> None:
    delays = Backoff(initial=0.5, factor=2, cap=10, jitter=0.1).delays(random.Random(7))
    got = [next(delays) for _ in range(8)]
    for value, nominal in zip(got, [0.5, 1, 2, 4, 8, 10, 10, 10], strict=True):
        assert nominal * 0.9 <= value <= nominal * 1.1


def test_the_last_sleep_never_overshoots_the_deadline() -> None:
    time = FakeTime()
    wait_healthy(
        scripted(204), timeout=5, clock=time.clock, sleep=time.sleep, backoff=Backoff(jitter=0), rng=random.Random(0)
    )
    assert time.sleeps == [0.5, 1.0, 2.0, 1.5]
