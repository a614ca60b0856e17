"""The local deploy's gate: wait until each endpoint serves the build a deploy asked for.

An endpoint already serving gets its new build beside the old workers (rollout.py), so the gate
asks the supervisor which revision serves rather than only /ping through the balancer (which the
old workers answer meanwhile). It runs in daemon threads and sleeps on a Cancel: Ctrl-C in the
calling thread is never held up by it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager

from flash_pipeline.config.model import Project
from flash_pipeline.errors import ApiError
from flash_pipeline.targets.cancel import Cancel
from flash_pipeline.targets.gate import GateResult, describe, wait_healthy
from flash_pipeline.targets.local import control as local
from flash_pipeline.targets.local.messages import EndpointStatus, Failure
from flash_runtime.backoff import Backoff

# Local workers start in about a second: probe often, so the gate adds little to that.
LOCAL_BACKOFF = Backoff(initial=0.1, factor=1.5, cap=1.0, jitter=0.1)


def wanted_revision(info: EndpointStatus) -> str:
    """The revision this deploy asked for: the one rolling out, else the one serving."""
    rollout = info["rollout"]
    return rollout["revision"] if rollout else info["revision"]


def abandon(
    where: local.Paths, endpoints: Mapping[str, EndpointStatus], changes: Mapping[str, str] | None = None
) -> None:
    """Drop what an apply (its answer's `endpoints` and `changes`) started in a supervisor this
    command did not start: new endpoints, new builds."""
    rollouts = [k for k, info in endpoints.items() if info["rollout"]]
    created = [k for k, change in (changes or {}).items() if change == "created"]
    try:
        local.send(where, {"cmd": "abandon", "rollouts": rollouts, "created": created}, timeout=2)
    except ApiError:
        pass


@contextmanager
def no_interrupts() -> Iterator[None]:
    """A second Ctrl-C must not cut the cleanup of the first short (it is bounded: about a second)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def gate_all(
    project: Project,
    where: local.Paths,
    wanted: Mapping[str, str],
    timeout: float | None,
    echo: Callable[[str], None],
    cancel: Cancel,
    keys: Collection[str] | None = None,
) -> dict[str, GateResult]:
    """Wait until each endpoint serves the revision this deploy asked for (/ping 200), cannot
    start, or times out. Runs in daemon threads: Ctrl-C in the calling thread is never held up."""

    def look(key: str) -> EndpointStatus | None:
        try:
            return local.send(where, {"cmd": "status"}, timeout=5).get("endpoints", {}).get(key)
        except ApiError:
            return None

    def gate(key: str, limit: float) -> GateResult:
        last: list[int | str | None] = [None]
        seen: dict[str, EndpointStatus | None] = {}

        def probe() -> int | str:
            info = seen["info"] = look(key)
            if info is None:
                return "the supervisor does not answer"
            if info["revision"] != wanted[key]:
                return 204  # the new build's workers start beside the serving ones
            return local.ping(info["url"])

        def failure() -> str | None:
            """The supervisor's verdict that the build cannot start (crash loop, failed init): stop waiting."""
            info = seen.get("info")
            if not info:
                return None
            kept, rollout, failed = info["last_failure"], info["rollout"], info["failure"]
            if info["revision"] != wanted[key]:
                if kept and kept["revision"] == wanted[key]:
                    return cannot_start(kept, kept=True)
                if not rollout or rollout["revision"] != wanted[key]:
                    return "cannot start: replaced by another deploy meanwhile"
                return None
            return cannot_start(failed) if failed else None

        def on_probe(status: int | str, waited: float) -> None:
            if status != last[0]:
                last[0] = status
                echo(f"{key}: /ping {describe(status)} after {waited:.1f}s")

        return wait_healthy(
            probe,
            timeout=limit,
            clock=time.monotonic,
            sleep=cancel.sleep,
            backoff=LOCAL_BACKOFF,
            rng=random.Random(),
            on_probe=on_probe,
            failed=failure,
        )

    chosen = [e for e in project.endpoints if keys is None or e.key in keys]
    limits = {e.key: timeout if timeout is not None else e.health_timeout for e in chosen}
    results: dict[str, GateResult] = {}
    errors: list[BaseException] = []

    def run(key: str) -> None:
        try:
            results[key] = gate(key, limits[key])
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(key,), daemon=True) for key in limits]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.05)  # short joins: a signal reaches this thread at once
    if errors:
        raise errors[0]
    return results


def cannot_start(found: Failure, *, kept: bool = False) -> str:
    output = "".join(f"\n    {line}" for line in found["output"][-8:])
    verdict = f"cannot start: {found['reason']}" + ("; the previous workers keep serving" if kept else "")
    return verdict + (f"; its last output:{output}" if output else "")
