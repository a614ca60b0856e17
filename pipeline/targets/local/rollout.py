"""A redeploy of one endpoint that never loses it: the new build's workers start beside the
serving ones, and the balancer switches to them only once one answers /ping 200 (then the old
ones stop). A new build that cannot start (its first failure is the verdict: an import or syntax
error, a failing init hook) is dropped, the old workers keep serving, and the endpoint keeps the
reason for `flash status` (`last_failure`). A newer deploy, or an interrupted one, abandons it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flash_pipeline.targets.local.workers import TICK, Ping, WorkerPool

if TYPE_CHECKING:
    from flash_pipeline.targets.local.balancer import Endpoint, EndpointSpec


@dataclass
class Rollout:
    """A new build's workers, starting beside the serving ones until one answers /ping 200."""

    spec: EndpointSpec
    pool: WorkerPool
    task: asyncio.Task[None] | None = None
    abandoned: str = ""


def begin(endpoint: Endpoint, spec: EndpointSpec, ping: Ping) -> Rollout:
    """Start the new build's pool beside the serving one (worker numbers continue the endpoint's)."""
    staged = WorkerPool(spec, endpoint.pool.echo, ping, numbers=endpoint.pool.numbers, crash_limit=1)
    started = Rollout(spec, staged)
    started.task = asyncio.create_task(_roll(endpoint, started))
    return started


async def _roll(endpoint: Endpoint, rollout: Rollout) -> None:
    staged = rollout.pool
    staged.waiting += 1  # demand of one: even at workers.min 0 the new build is started and proved
    monitor = asyncio.create_task(staged.monitor())
    try:
        while not staged.ready() and staged.failure is None:
            try:  # the monitor sets ready_event as soon as a worker answers /ping 200
                await asyncio.wait_for(staged.ready_event.wait(), timeout=TICK)
            except TimeoutError:
                pass
    except asyncio.CancelledError:
        monitor.cancel()
        await staged.stop_all(rollout.abandoned or "cancelled")
        raise
    staged.waiting -= 1
    key = endpoint.spec.key
    if staged.failure is not None:
        monitor.cancel()
        await staged.stop_all("the new build cannot start")
        endpoint.last_failure = {**staged.failure, "revision": rollout.spec.revision(), "kept_previous": True}
        endpoint.rollout = None
        staged.echo(
            f"{key} | the new build cannot start: {staged.failure['reason']}; the previous workers keep serving"
        )
        return
    old, old_monitor = endpoint.pool, endpoint.monitor
    endpoint.pool, endpoint.monitor, endpoint.spec, endpoint.rollout = staged, monitor, rollout.spec, None
    endpoint.last_failure = None
    staged.echo(f"{key} | switched to the new build")
    if old_monitor:
        old_monitor.cancel()
    await old.stop_all("replaced by the new build")


async def abandon(endpoint: Endpoint, why: str) -> bool:
    """Stop a rollout in progress (its new workers); the serving workers stay. Whether there was one."""
    rollout, endpoint.rollout = endpoint.rollout, None
    if rollout is None or rollout.task is None:
        return False
    rollout.abandoned = why
    rollout.task.cancel()
    try:
        await rollout.task
    except asyncio.CancelledError:
        pass
    return True
