"""Dynamic batching: concurrent requests of one route gathered into one handler call.

A batch closes at `max_size` items or `max_wait` seconds after its first item, whichever comes
first; at most `max_concurrent` batches of a route run at once (1 by default: one GPU). Each item
keeps its own fate: a request whose client went away before the call is dropped from the batch
(its task was cancelled), a handler exception fails every request of that batch, and a result of
the wrong length fails them all with a clear log line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("flash.worker")
# Event-loop timers fire up to a millisecond late (epoll and libuv count in whole milliseconds): a
# batch closes this much early, so a request never waits longer than max_wait_ms for company.
TIMER_SLACK = 0.001


class BatchFailed(Exception):
    """The batch this request rode in failed (logged once for the whole batch)."""


@dataclass(frozen=True)
class BatchOptions:
    max_size: int
    max_wait_ms: int
    max_concurrent: int = 1


@dataclass
class _Item:
    value: Any
    future: asyncio.Future[tuple[Any, int]] = field(repr=False)


class Batcher:
    """One route's queue and the task that turns it into handler calls."""

    def __init__(
        self, name: str, func: Callable[..., Any], options: BatchOptions, *, is_async: bool, pool: Executor
    ) -> None:
        self.name, self.func, self.options = name, func, options
        self.is_async, self.pool = is_async, pool
        self.pending: collections.deque[_Item] = collections.deque()
        self.wake = asyncio.Event()  # an arrival, or a batch done
        self.slots: asyncio.Semaphore | None = None
        self.collector: asyncio.Task[None] | None = None
        self.running: set[asyncio.Task[None]] = set()

    async def submit(self, value: Any) -> tuple[Any, int]:
        """This request's result and the size of the batch it rode in; BatchFailed if the batch failed."""
        loop = asyncio.get_running_loop()
        if self.collector is None:  # made on the serving loop, at the first request
            self.slots = asyncio.Semaphore(self.options.max_concurrent)
            self.collector = loop.create_task(self._collect())
        future: asyncio.Future[tuple[Any, int]] = loop.create_future()
        self.pending.append(_Item(value, future))
        self.wake.set()
        return await future  # cancelled with the request when its client disconnects

    async def _collect(self) -> None:
        """Form batches: from a first item, until max_size or max_wait_ms; past the wait, while every
        slot is still busy, it keeps taking arrivals (up to max_size) rather than leave the model
        idle later. `wake` is set by an arrival and by a finished batch."""
        assert self.slots is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self.pending:
                await self._sleep(None)
            items = [self.pending.popleft()]
            closes = loop.time() + max(0.0, self.options.max_wait_ms / 1000 - TIMER_SLACK)
            while len(items) < self.options.max_size:
                if self.pending:
                    items.append(self.pending.popleft())
                    continue
                left = closes - loop.time()
                if left > 0:
                    await self._sleep(left)
                elif self.slots.locked():
                    await self._sleep(None)  # until an arrival or a free slot
                else:
                    break
            await self.slots.acquire()  # free already, unless the batch filled up while all were busy
            task = loop.create_task(self._run(items))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def _sleep(self, seconds: float | None) -> None:
        """Until woken, or `seconds` pass. An Event, not a queue: a wake-up lost to the timeout
        loses no request (the deque is looked at again), where a cancelled queue get could on
        Python 3.11."""
        self.wake.clear()
        if seconds is None:
            await self.wake.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

    async def _run(self, items: list[_Item]) -> None:
        assert self.slots is not None
        try:
            live = [item for item in items if not item.future.done()]  # gone clients are dropped here
            if live:
                await self._call(live)
        finally:
            self.slots.release()
            self.wake.set()

    async def _call(self, items: list[_Item]) -> None:
        values = [item.value for item in items]
        try:
            if self.is_async:
                results = await self.func(values)
            else:
                call = functools.partial(contextvars.copy_context().run, self.func, values)
                results = await asyncio.get_running_loop().run_in_executor(self.pool, call)
        except Exception:
            log.exception("batched handler of %s failed on a batch of %d", self.name, len(items))
            _fail(items, "the batched handler failed")
            return
        if not isinstance(results, (list, tuple)) or len(results) != len(items):
            got = f"{len(results)} results" if isinstance(results, (list, tuple)) else type(results).__name__
            log.error("batched handler of %s returned %s for a batch of %d", self.name, got, len(items))
            _fail(items, "the batched handler returned a result of the wrong length")
            return
        for item, result in zip(items, results, strict=True):
            if not item.future.done():
                item.future.set_result((result, len(items)))


def _fail(items: list[_Item], why: str) -> None:
    for item in items:
        if not item.future.done():
            item.future.set_exception(BatchFailed(why))
