"""The one backoff of flash, and the one rule of what may be sent again.

`Backoff` is a value: how long to wait before attempt n (exponential from `initial` by `factor`,
capped at `cap`, with +/- `jitter`) and the `deadline` for all attempts. Clock and randomness are
passed in, so it is pure. Every retry loop uses it: calls, the relay and the mothership (here),
the CLI's `flash call`, the local workers' restarts, the /ping gate, the SSE log stream, the
deploy lease, and the RunPod backends' ambiguous writes. Its `retryable` is the relay's contract
(runtime/relay.py) in one function: only an attempt that provably never reached a handler is
tried again. Standard library only: it ships in every image, and the CLI imports it too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `random` costs ~5 ms to import; the validate path reaches this module (report -> gate)
    import random

DEADLINE = 300.0  # calls and the mothership: under RunPod's 5.5-minute processing limit
NO_WORKER = "X-Flash-No-Worker"  # marks a balancer's own "no worker available" answer (value "1")
RUNPOD_NO_WORKER = "no workers available"  # the `error` of RunPod's LB when no worker came in time


@dataclass(frozen=True)
class Backoff:
    """When to try again and how long to wait; pure, with the clock and randomness passed in."""

    deadline: float = DEADLINE
    initial: float = 0.5
    factor: float = 2.0
    cap: float = 10.0
    jitter: float = 0.2

    @staticmethod
    def retryable(status: int | None, body: Any, headers: Mapping[str, str] | None = None) -> bool:
        """Whether an attempt provably never reached a handler: `status` None (the connection failed
        before the request was written), RunPod's "no workers available", a balancer's marked answer."""
        if status is None:
            return True
        if headers is not None and headers.get(NO_WORKER) == "1":
            return True
        return isinstance(body, dict) and str(body.get("error", "")).lower() == RUNPOD_NO_WORKER

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after attempt `attempt` (from 0) failed. With jitter, `rng` draws it (a fresh
        generator when None); without, no randomness is used."""
        try:
            base = min(self.cap, self.initial * self.factor**attempt)
        except OverflowError:  # a loop that has run for hours: long since at the cap
            base = self.cap if self.initial else 0.0
        if not self.jitter:
            return base
        if rng is None:
            import random

            rng = random.Random()
        return max(0.0, base * (1 + rng.uniform(-self.jitter, self.jitter)))

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """delay(0), delay(1), … without end: for loops that count time, not attempts."""
        if rng is None and self.jitter:
            import random

            rng = random.Random()
        attempt = 0
        while True:
            yield self.delay(attempt, rng)
            attempt += 1

    def time_left(self, elapsed: float, wait: float) -> bool:
        return elapsed + wait <= self.deadline


RetryPolicy = Backoff  # its name before the backoffs became one; handlers may still pass policy=RetryPolicy(...)
