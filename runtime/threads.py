"""Blocking work off the event loop in a daemon thread: a worker told to stop (SIGTERM) while an
init hook loads a model exits at once, instead of waiting for the hook as it would for a thread
of asyncio's default executor (joined at interpreter exit)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def in_daemon_thread(func: Callable[[], T], name: str = "flash-init") -> T:
    """func() in a new daemon thread; its result (or exception) here."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = func(), None
        except BaseException as exc:  # handed to the awaiting task
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop is closed: the worker is stopping, nobody waits for this any more

    threading.Thread(target=run, daemon=True, name=name).start()
    return await future
