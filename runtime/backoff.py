"""The one backoff of flash's runtime, and the one rule of what may be sent again.

`RetryPolicy` is a value: how long to wait before attempt n (exponential, capped, with jitter)
and the deadline for all attempts; clock and randomness are passed in, so it is pure. Its
`retryable` is the relay's contract (runtime/relay.py) in one function: only an attempt that
provably never reached a handler is tried again. No aiohttp here: the CLI's loops use it too.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEADLINE = 300.0  # calls and the mothership: under RunPod's 5.5-minute processing limit
NO_WORKER = "X-Flash-No-Worker"  # marks a balancer's own "no worker available" answer (value "1")
RUNPOD_NO_WORKER = "no workers available"  # the `error` of RunPod's LB when no worker came in time


@dataclass(frozen=True)
class RetryPolicy:
    """The one backoff of flash's runtime: when to try again and how long to wait; pure, with the
    clock and randomness passed in."""

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

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.cap, self.initial * self.factor**attempt)
        return max(0.0, base * (1 + rng.uniform(-self.jitter, self.jitter)))

    def time_left(self, elapsed: float, wait: float) -> bool:
        return elapsed + wait <= self.deadline
