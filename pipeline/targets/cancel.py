"""Interruption: SIGINT/SIGTERM stop a deploy within a second or two, at a safe point.

The work runs in daemon threads; the main thread only waits and handles signals. A signal sets
one Cancel: every sleep (gate backoff, rollout waits, lease waits) wakes and raises Interrupted,
and every write checks it first, so no new write starts. A request already in flight is
abandoned with its thread (daemon threads die with the process); the caller reports what was
done, and a re-run converges because endpoints are found by name and markers.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flash_pipeline.errors import Interrupted

T = TypeVar("T")
R = TypeVar("R")
GRACE = 1.0  # seconds the work gets to reach a safe point after a signal


class Cancel:
    """A cancellation flag whose sleep wakes at once when it is set."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def set(self) -> None:
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        """Raise Interrupted if cancelled: called before every write."""
        if self.event.is_set():
            raise Interrupted()

    def sleep(self, seconds: float) -> None:
        if self.event.wait(max(0.0, seconds)):
            raise Interrupted()


def in_threads(work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """work(item) for every item at once, in daemon threads (an interrupted run never waits on them).

    The first exception (Interrupted first of all) is raised after every thread has ended.
    """
    results: list[Any] = [None] * len(items)
    errors: list[BaseException] = []

    def run(index: int, item: T) -> None:
        try:
            results[index] = work(item)
        except BaseException as exc:  # handed to the caller's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, item), daemon=True) for i, item in enumerate(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise next((e for e in errors if isinstance(e, Interrupted)), errors[0])
    return results


def run_interruptible(work: Callable[[], T], cancel: Cancel, *, grace: float = GRACE) -> T:
    """Run work in a daemon thread; the first SIGINT/SIGTERM cancels it, a second exits at once.

    Raises Interrupted when cancelled (after giving the work `grace` seconds to stop cleanly).
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # re-raised in the calling thread
            outcome["error"] = exc

    def on_signal(_signum: int, _frame: object) -> None:
        if cancel.is_set():  # a second Ctrl-C: the user means it
            sys.stderr.write("\nflash: interrupted again; exiting now\n")
            sys.stderr.flush()
            os._exit(130)
        cancel.set()

    thread = threading.Thread(target=target, daemon=True)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        thread.start()
        while thread.is_alive() and not cancel.is_set():
            thread.join(0.05)
        if cancel.is_set():
            thread.join(grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if "value" in outcome and not cancel.is_set():
        value: T = outcome["value"]
        return value
    if "error" in outcome and not isinstance(outcome["error"], Interrupted) and not cancel.is_set():
        raise outcome["error"]
    if cancel.is_set():
        raise Interrupted()
    raise outcome["error"]
