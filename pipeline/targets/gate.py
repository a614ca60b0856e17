"""The /ping health gate, shared by the local and RunPod targets.

200 passes; 204 (initializing), 5xx, connection errors and timeouts keep waiting with
the one backoff (flash_runtime.backoff) until the deadline; 401/403/404 fail at once (waiting cannot fix them).
Clock, sleep and randomness are parameters so tests drive time without patching anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flash_runtime.backoff import Backoff

if TYPE_CHECKING:  # `random` costs ~5 ms to import, and report (on the validate path) imports describe()
    import random

Probe = Callable[[], "int | str"]  # an HTTP status, or a short description of a transport error
GATE = Backoff(initial=0.5, factor=2.0, cap=10.0, jitter=0.1)  # between probes; `timeout` is the deadline
FATAL = {401: "the API key is not accepted", 403: "access is forbidden", 404: "no such endpoint or route"}


@dataclass(frozen=True)
class GateResult:
    healthy: bool
    waited: float
    last_status: str
    probes: int
    cold_start: float | None = None  # first 204 to first 200, when both were seen
    reason: str = ""


def describe(status: int | str) -> str:
    if isinstance(status, str):
        return status
    return {200: "200 ready", 204: "204 initializing"}.get(status, f"HTTP {status}")


def wait_healthy(
    probe: Probe,
    *,
    timeout: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    backoff: Backoff = GATE,
    rng: random.Random | None = None,
    on_probe: Callable[[int | str, float], None] | None = None,
    failed: Callable[[], str | None] | None = None,
) -> GateResult:
    """Probe until 200, a fatal status, `failed()` giving a reason, or timeout seconds have passed."""
    start = clock()
    first_204: float | None = None
    delays = backoff.delays(rng)
    probes = 0
    while True:
        status = probe()
        probes += 1
        now = clock()
        if on_probe:
            on_probe(status, now - start)
        if status == 204 and first_204 is None:
            first_204 = now
        if status == 200:
            cold = now - first_204 if first_204 is not None else None
            return GateResult(True, now - start, describe(status), probes, cold)
        if isinstance(status, int) and status in FATAL:
            return GateResult(False, now - start, describe(status), probes, reason=FATAL[status])
        verdict = failed() if failed is not None else None
        if verdict:  # the target knows waiting cannot help (a crash loop, a failed init hook)
            return GateResult(False, now - start, describe(status), probes, reason=verdict)
        remaining = timeout - (now - start)
        if remaining <= 0:
            return GateResult(False, now - start, describe(status), probes, reason="timed out")
        sleep(min(next(delays), remaining))
