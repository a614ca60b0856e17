"""One local endpoint's worker processes: start, watch, replace, scale, like RunPod's LB workers.

Traffic goes only to workers answering /ping 200. Workers are added up to workers.max as
requests queue (REQUEST_COUNT scaling: ceil(demand / scaler_value)), stopped after idle_timeout
down to workers.min, and replaced when they exit or stop answering. A worker that dies (or whose
init hook fails) before it is ever ready is a *start failure*: restarts back off exponentially, and
after CRASH_LIMIT in a row the endpoint reports a failure with the exit code and the last output
lines, so a deploy fails in seconds instead of waiting out its health timeout.

The monitor loop never dies: an exception in one tick (a spawn that fails because the build folder
was swapped, no file descriptors left) is recorded, shown by `flash status`, and retried.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import math
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flash_pipeline.config.envvars import build_env, build_hash
from flash_pipeline.targets.local.messages import Failure
from flash_runtime.backoff import Backoff

if TYPE_CHECKING:  # the balancer imports this module
    from flash_pipeline.targets.local.balancer import EndpointSpec

Ping = Callable[["Worker"], Awaitable["tuple[int, str | None] | None"]]  # balancer.Endpoint._ping_worker

TICK = 0.2  # seconds between health checks and scaling decisions
CRASH_LIMIT = 3  # start failures in a row before the endpoint reports it cannot start
UNHEALTHY_AFTER = 3  # failed checks in a row before a ready worker is replaced
MONITOR_RETRY = Backoff(initial=2 * TICK, factor=2.0, cap=5.0, jitter=0.0)  # after a tick that failed
RESTARTS = Backoff(initial=0.5, factor=2.0, cap=30.0, jitter=0.0)  # no start for 0.5 s, doubling per failure
STOP_GRACE = 5.0  # after the endpoint's timeout, before a draining worker is killed
TAIL = 20  # output lines kept per worker, quoted when it fails


@dataclass
class Worker:
    number: int
    port: int
    proc: asyncio.subprocess.Process
    started: float
    state: str = "starting"  # starting | ready | unhealthy | failed | stopping
    inflight: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    bad_checks: int = 0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))
    worker_id: str = ""  # `<endpoint key>-<number>`: its RUNPOD_POD_ID, what X-Runpod-Worker-Id names
    wanted: int = 0  # requests pinned to it (strict affinity) waiting for it to be ready: it is not idle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def release(self, reached: bool) -> None:
        """One request through the relay is over; a worker that could not be reached gets no more
        traffic until the monitor's next check says otherwise."""
        self.inflight -= 1
        self.idle_since = time.monotonic()
        if not reached and self.state == "ready":
            self.state = "unhealthy"


def _die_with_parent() -> None:
    # Linux: a worker gets SIGTERM if the supervisor dies, so no process outlives it.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerPool:
    """The workers of one endpoint and the loop that keeps them right."""

    def __init__(
        self,
        spec: EndpointSpec,
        echo: Callable[[str], None],
        ping: Ping,
        *,
        numbers: Iterator[int] | None = None,
        crash_limit: int = CRASH_LIMIT,
    ) -> None:
        self.spec = spec
        self.echo = echo
        self._ping = ping  # async: (status, state from the body) or None when nothing answered
        self.workers: list[Worker] = []
        # Shared by the pools of one endpoint (a new build's pool starts beside the serving one):
        # worker numbers stay unique in the output.
        self.numbers = numbers if numbers is not None else itertools.count(1)
        self.crash_limit = crash_limit  # a new build beside a serving one: its first failure is the verdict
        self.waiting = 0  # requests (and cold-start pings) waiting for a ready worker
        self.ready_event = asyncio.Event()
        self.start_failures = 0  # in a row, since the last worker that became ready
        self.next_start = 0.0  # monotonic time before which no worker is started (backoff)
        self.failure: Failure | None = None
        self.monitor_error: str | None = None
        self.spawn_error: str | None = None  # the last failed worker start, until one succeeds
        self.restarts = 0
        self.issued: set[int] = set()  # numbers this pool started: those `strict-resume` may start again
        self.ticked = asyncio.Event()  # set (and replaced) after every tick of the monitor
        self._tasks: set[asyncio.Task[Any]] = set()  # strong references: the loop keeps only weak ones

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def ready(self) -> list[Worker]:
        return [w for w in self.workers if w.state == "ready"]

    # -- the monitor ----------------------------------------------------------------------
    async def monitor(self) -> None:
        delay, failures = TICK, 0
        while True:
            try:
                await self._tick()
            except Exception as exc:  # the loop must outlive any one failure
                text = f"{type(exc).__name__}: {exc}"
                if text != self.monitor_error:  # once per distinct error, not once per tick
                    self.echo(f"{self.spec.key} | monitor: {text}; retrying")
                self.monitor_error = text
                delay, failures = MONITOR_RETRY.delay(failures), failures + 1
            else:  # a spawn that failed stays visible through the backoff, until one succeeds
                self.monitor_error, delay, failures = self.spawn_error, TICK, 0
            self.ready_event.set() if self.ready() else self.ready_event.clear()
            self.ticked.set()
            self.ticked = asyncio.Event()
            await asyncio.sleep(delay)

    async def _tick(self) -> None:
        results = await asyncio.gather(*(self._check(w) for w in list(self.workers)), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result
        await self._scale()

    async def _check(self, worker: Worker) -> None:
        if worker.state == "stopping":
            return
        code = worker.proc.returncode
        if code is not None:
            self.workers.remove(worker)
            was_ready, worker.state = worker.state == "ready", "stopping"
            self._lost(worker, f"exited with code {code}", was_ready)
            return
        answer = await self._ping(worker)
        status, body_state = answer if answer is not None else (None, None)
        previous = worker.state
        if status == 0:
            return  # the supervisor could not ask (out of file descriptors): no verdict on the worker
        if status == 200:
            worker.state, worker.bad_checks = "ready", 0
            if previous == "starting":
                self.start_failures, self.failure = 0, None
                self.echo(f"{self.spec.key}-{worker.number} | ready in {time.monotonic() - worker.started:.1f}s")
        elif status == 204:
            worker.state = "starting" if previous != "ready" else previous
        elif status == 503 and body_state == "failed":
            self._lost(worker, "init hook failed (/ping answers 503)", was_ready=False, final=True)
            self.spawn(self.stop_worker(worker, "init hook failed"))
        elif status is None and previous == "starting":
            pass  # no answer yet is normal while the worker boots
        else:
            worker.bad_checks += 1
            if worker.bad_checks >= UNHEALTHY_AFTER:
                worker.state = "unhealthy"
                self.echo(f"{self.spec.key}-{worker.number} | unhealthy (/ping: {status or 'no answer'}); replacing it")
                self.spawn(self.stop_worker(worker, "unhealthy"))

    def _lost(self, worker: Worker, why: str, was_ready: bool, *, final: bool = False) -> None:
        """A worker is gone or useless; a start failure if it was never ready. `final`: the cause
        is deterministic (a failed init hook), so one failure already says the endpoint cannot start."""
        self.restarts += 1
        if was_ready:
            self.echo(f"{self.spec.key}-{worker.number} | {why}; replacing it")
            return
        wait = self._back_off()
        self.echo(f"{self.spec.key}-{worker.number} | {why} before it was ready; next start in {wait:.1f}s")
        if final:
            self.failure = {"reason": f"worker {why}", "times": self.start_failures, "output": list(worker.tail)}
        elif self.start_failures >= self.crash_limit:
            times = f" ({self.start_failures} times in a row)" if self.start_failures > 1 else ""
            reason = f"worker {why} before it was ready{times}"
            self.failure = {"reason": reason, "times": self.start_failures, "output": list(worker.tail)}

    def _back_off(self) -> float:
        """Count a start failure; no start for 0.5 s, doubling per failure in a row, up to the cap."""
        self.start_failures += 1
        wait = RESTARTS.delay(self.start_failures - 1)
        self.next_start = time.monotonic() + wait
        return wait

    async def _scale(self) -> None:
        live = [w for w in self.workers if w.state in ("starting", "ready")]
        demand = sum(w.inflight + w.wanted for w in live) + self.waiting
        spec = self.spec
        target = min(spec.workers_max, max(spec.workers_min, math.ceil(demand / spec.scaler_value)))
        if len(live) < target and time.monotonic() >= self.next_start:
            # While workers keep failing to start, add one at a time: a crash loop must not fork-bomb.
            for _ in range(1 if self.start_failures else target - len(live)):
                await self._start_worker()
        now = time.monotonic()
        ready = [w for w in live if w.state == "ready"]
        idle = [w for w in ready if w.inflight == w.wanted == 0 and now - w.idle_since >= spec.idle_timeout]
        # Idle scale-down stops ready workers only beyond the target, never one still needed
        # while others are only starting (those would leave the endpoint with nothing ready).
        removable = min(len(live) - target, len(ready) - min(target, len(ready)))
        for worker in idle[: max(0, removable)]:
            self.spawn(self.stop_worker(worker, f"idle for {spec.idle_timeout}s"))

    # -- processes ------------------------------------------------------------------------
    async def _start_worker(self, number: int | None = None) -> Worker:
        number = next(self.numbers) if number is None else number
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k != "RUNPOD_API_KEY"}  # the deploy key never reaches a worker
        env.update(self.spec.env)
        env.update({"PORT": str(port), "PORT_HEALTH": str(port), "HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"})
        env.update(build_env(build_hash(self.spec.digest)))  # what /manifest reports, as on RunPod
        worker_id = env["RUNPOD_POD_ID"] = f"{self.spec.key}-{number}"  # as RunPod names a worker to it
        if getattr(self.spec, "source_dir", ""):
            env["FLASH_SOURCE_DIR"] = self.spec.source_dir  # tracebacks point at the user's files
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "../flash_worker.py",
                cwd=Path(self.spec.build_dir) / "src",
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            self.spawn_error = f"{type(exc).__name__}: {exc}"
            self._back_off()  # like a crash: the cause (a swapped build, no file descriptors) may pass
            raise
        self.spawn_error = None
        worker = Worker(number, port, proc, time.monotonic(), worker_id=worker_id)
        self.workers.append(worker)
        self.issued.add(number)
        self.spawn(self._pipe_output(worker))
        self.echo(f"{self.spec.key}-{number} | started (pid {proc.pid}, port {port})")
        return worker

    def find(self, number: int) -> Worker | None:
        """The live (not stopping) worker with this number."""
        return next((w for w in self.workers if w.number == number and w.state != "stopping"), None)

    async def resume(self, number: int) -> Worker:
        """Start worker `number` again (`strict-resume`: it scaled down, or exited)."""
        worker = await self._start_worker(number)
        self.echo(f"{worker.worker_id} | resumed (X-Runpod-Worker-Id: strict-resume)")
        return worker

    async def _pipe_output(self, worker: Worker) -> None:
        assert worker.proc.stdout is not None
        prefix = f"{self.spec.key}-{worker.number} | "
        while line := await worker.proc.stdout.readline():
            text = line.decode("utf-8", "replace").rstrip()
            worker.tail.append(text)
            self.echo(prefix + text)

    async def stop_worker(self, worker: Worker, why: str) -> None:
        if worker.state == "stopping" and worker not in self.workers:
            return
        worker.state = "stopping"
        if worker.proc.returncode is None:
            self.echo(f"{self.spec.key}-{worker.number} | stopping ({why})")
            # One SIGTERM: the worker stops accepting, answers /ping 503 and lets its requests and
            # streams finish within the endpoint's timeout (a second signal would cut them).
            worker.proc.terminate()
            try:
                await asyncio.wait_for(worker.proc.wait(), timeout=float(self.spec.timeout) + STOP_GRACE)
            except TimeoutError:
                worker.proc.kill()
                await worker.proc.wait()
        if worker in self.workers:
            self.workers.remove(worker)

    async def stop_all(self, why: str) -> None:
        await asyncio.gather(*(self.stop_worker(w, why) for w in list(self.workers)))

    async def pick(self, wait: float) -> Worker | None:
        """The ready worker with the fewest requests in flight; waits (a cold start) up to `wait` s."""
        deadline = time.monotonic() + wait
        while not self.ready():
            if self.failure is not None:
                return None
            self.waiting += 1
            try:
                await asyncio.wait_for(self.ready_event.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return None
            finally:
                self.waiting -= 1
        return min(self.ready(), key=lambda w: w.inflight)
