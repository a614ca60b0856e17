"""One endpoint on the local target: its worker processes, its load balancer, its scaling.

Mirrors RunPod's LB endpoints: routes unprefixed on the endpoint's own port, traffic only to
workers answering /ping 200, REQUEST_COUNT scaling between workers.min and workers.max, idle
workers stopped after idle_timeout, crashed workers replaced, a cold start when min is 0.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.providers.local_http import Head, ProtocolError, body_framing, read_head, relay_body, simple_response

COLD_START_WAIT = 120.0  # RunPod's LB waits about two minutes for a worker
TICK = 0.2
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}


@dataclass
class EndpointSpec:
    """What the CLI asks for; env values are already resolved (held in memory only)."""

    key: str
    name: str
    build_dir: str
    digest: str
    env: dict[str, str]
    workers_min: int
    workers_max: int
    scaler_value: int
    idle_timeout: int
    port: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointSpec:
        return cls(**data)

    def same_code(self, other: EndpointSpec) -> bool:
        return (self.digest, self.env, self.build_dir) == (other.digest, other.env, other.build_dir)

    def comparable(self) -> dict[str, Any]:
        """What `flash plan` compares; env as a digest, so no value ever leaves the supervisor."""
        env_digest = hashlib.sha256(json.dumps(sorted(self.env.items())).encode()).hexdigest()[:12]
        return {
            "build": self.digest[:12],
            "env": env_digest,
            "workers": [self.workers_min, self.workers_max],
            "scaler_value": self.scaler_value,
            "idle_timeout": self.idle_timeout,
        }


@dataclass
class Worker:
    number: int
    port: int
    proc: asyncio.subprocess.Process
    started: float
    state: str = "starting"  # starting | ready | unhealthy | stopping
    inflight: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)


def _die_with_parent() -> None:
    # Linux: a worker gets SIGTERM if the supervisor dies, so no process outlives it.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Endpoint:
    """Workers and load balancer of one endpoint."""

    def __init__(self, spec: EndpointSpec, echo: Callable[[str], None]) -> None:
        self.spec = spec
        self.echo = echo
        self.workers: list[Worker] = []
        self.next_number = 1
        self.waiting = 0
        self.ready_event = asyncio.Event()
        self.server: asyncio.base_events.Server | None = None
        self.monitor: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.spec.port, limit=256 * 1024)
        if not self.spec.port:  # port 0: the system chose one; report that one
            self.spec.port = int(self.server.sockets[0].getsockname()[1])
        self.monitor = asyncio.create_task(self._monitor())

    async def replace_spec(self, spec: EndpointSpec) -> bool:
        """Adopt a new spec; restart workers only when the code or env changed. The port stays."""
        changed = not self.spec.same_code(spec)
        spec.port = self.spec.port
        self.spec = spec
        if changed:
            for worker in list(self.workers):
                await self._stop_worker(worker, "new build")
        return changed

    async def stop(self) -> None:
        if self.monitor:
            self.monitor.cancel()
        if self.server:
            self.server.close()
        await asyncio.gather(*(self._stop_worker(w, "shutting down") for w in list(self.workers)))

    # -- workers ---------------------------------------------------------------------------
    async def _start_worker(self) -> None:
        number, port = self.next_number, _free_port()
        self.next_number += 1
        build = Path(self.spec.build_dir)
        env = {k: v for k, v in os.environ.items() if k != "RUNPOD_API_KEY"}  # the deploy key never reaches a worker
        env.update(self.spec.env)
        env.update({"PORT": str(port), "PORT_HEALTH": str(port), "HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"})
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "../flash_worker.py",
            cwd=build / "src",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        worker = Worker(number, port, proc, time.monotonic())
        self.workers.append(worker)
        self._spawn(self._pipe_output(worker))
        self.echo(f"{self.spec.key}-{number} | started (pid {proc.pid}, port {port})")

    async def _pipe_output(self, worker: Worker) -> None:
        assert worker.proc.stdout is not None
        prefix = f"{self.spec.key}-{worker.number} | "
        while line := await worker.proc.stdout.readline():
            self.echo(prefix + line.decode("utf-8", "replace").rstrip())

    async def _stop_worker(self, worker: Worker, why: str) -> None:
        if worker.state == "stopping":
            return
        worker.state = "stopping"
        for _, writer in worker.pool:
            writer.close()
        worker.pool.clear()
        if worker.proc.returncode is None:
            self.echo(f"{self.spec.key}-{worker.number} | stopping ({why})")
            worker.proc.terminate()
            try:
                await asyncio.wait_for(worker.proc.wait(), timeout=20)
            except TimeoutError:
                worker.proc.kill()
                await worker.proc.wait()
        if worker in self.workers:
            self.workers.remove(worker)

    async def _monitor(self) -> None:
        while True:
            await asyncio.gather(*(self._check(w) for w in list(self.workers)), return_exceptions=True)
            await self._scale()
            self.ready_event.set() if self.ready() else self.ready_event.clear()
            await asyncio.sleep(TICK)

    async def _check(self, worker: Worker) -> None:
        if worker.state == "stopping":
            return
        if worker.proc.returncode is not None:
            self.echo(f"{self.spec.key}-{worker.number} | exited with code {worker.proc.returncode}; replacing it")
            worker.state = "stopping"
            self.workers.remove(worker)
            return
        status = await _ping(worker.port)
        previous = worker.state
        if status == 200:
            worker.state = "ready"
        elif status == 204:
            worker.state = "starting"
        elif status is not None or previous != "starting":  # no answer yet is normal while booting
            worker.state = "unhealthy"
        if worker.state == "ready" and previous != "ready":
            self.echo(f"{self.spec.key}-{worker.number} | ready in {time.monotonic() - worker.started:.1f}s")

    async def _scale(self) -> None:
        alive = [w for w in self.workers if w.state != "stopping"]
        demand = sum(w.inflight for w in alive) + self.waiting
        target = min(self.spec.workers_max, max(self.spec.workers_min, math.ceil(demand / self.spec.scaler_value)))
        for _ in range(target - len(alive)):
            await self._start_worker()
        now = time.monotonic()
        idle = [
            w for w in alive if w.state == "ready" and w.inflight == 0 and now - w.idle_since >= self.spec.idle_timeout
        ]
        for worker in idle[: max(0, len(alive) - target)]:
            self._spawn(self._stop_worker(worker, f"idle for {self.spec.idle_timeout}s"))

    def ready(self) -> list[Worker]:
        return [w for w in self.workers if w.state == "ready"]

    # -- load balancer ---------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await read_head(reader)
                if head is None or not await self._one_request(head, reader, writer):
                    break
        except (ProtocolError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _one_request(self, head: Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the client connection should close."""
        method, target = head.start.split(" ", 2)[:2]
        framing = body_framing(head, is_response=False)
        if target.split("?")[0] == "/ping":
            writer.write(self._ping_answer())
            await relay_body(reader, _Discard(), framing)  # type: ignore[arg-type]
            return head.keep_alive
        if (head.get("expect") or "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits a second for this before large bodies
        headers = [(k, v) for k, v in head.headers if k.lower() not in HOP_BY_HOP and k.lower() != "expect"]
        upstream = Head(head.start, [*headers, ("Connection", "keep-alive")]).encode() + await _read_all(
            reader, framing
        )
        for _ in range(5):  # a worker that died unnoticed is skipped: the request was never delivered
            worker = await self._pick()
            if worker is None:
                body = json.dumps({"error": f"no worker of {self.spec.key} became ready within {COLD_START_WAIT:.0f}s"})
                writer.write(simple_response(503, body.encode(), close=True))
                return False
            worker.inflight += 1
            try:
                outcome = await self._forward(worker, method, upstream, writer, head.keep_alive)
            finally:
                worker.inflight -= 1
                worker.idle_since = time.monotonic()
            if outcome is not None:
                return outcome
        writer.write(simple_response(502, b'{"error":"no worker reachable"}', close=True))
        return False

    def _ping_answer(self) -> bytes:
        if self.ready():
            return simple_response(200, b'{"status":"ready"}')
        if any(w.state == "starting" for w in self.workers):
            return simple_response(204)
        if not self.workers and self.spec.workers_min == 0:
            self._spawn(self._cold_start_for_ping())
            return simple_response(204)
        return simple_response(
            503, json.dumps({"error": "no healthy worker", "workers": [w.state for w in self.workers]}).encode()
        )

    async def _cold_start_for_ping(self) -> None:
        # A /ping with no worker behaves like a request: it starts one (RunPod's cold start).
        self.waiting += 1
        try:
            await asyncio.wait_for(self.ready_event.wait(), timeout=COLD_START_WAIT)
        except TimeoutError:
            pass
        finally:
            self.waiting -= 1

    async def _pick(self) -> Worker | None:
        deadline = time.monotonic() + COLD_START_WAIT
        while not self.ready():
            self.waiting += 1
            try:
                await asyncio.wait_for(self.ready_event.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return None
            finally:
                self.waiting -= 1
        return min(self.ready(), key=lambda w: w.inflight)

    async def _forward(
        self, worker: Worker, method: str, upstream: bytes, writer: asyncio.StreamWriter, keep_alive: bool
    ) -> bool | None:
        """Send one request to worker and relay the answer; None if it could not be delivered."""
        for attempt in range(2):  # a pooled connection may have gone stale: retry once on a fresh one
            pooled = bool(worker.pool) and attempt == 0
            try:
                up_reader, up_writer = (
                    worker.pool.pop() if pooled else await asyncio.open_connection("127.0.0.1", worker.port)
                )
            except OSError:
                worker.state = "unhealthy"
                return None
            up_writer.write(upstream)
            try:
                await up_writer.drain()
                response = await read_head(up_reader)
            except (ConnectionError, ProtocolError):
                response = None
            if response is None:
                up_writer.close()
                if pooled:
                    continue
                writer.write(simple_response(502, b'{"error":"worker closed the connection"}', close=True))
                return False
            return await self._relay(worker, method, response, up_reader, up_writer, writer, keep_alive)
        return None

    async def _relay(
        self,
        worker: Worker,
        method: str,
        response: Head,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        writer: asyncio.StreamWriter,
        client_keep_alive: bool,
    ) -> bool:
        framing = body_framing(response, is_response=True, request_method=method)
        try:
            writer.write(response.encode())
            await relay_body(up_reader, writer, framing)
        except BaseException:
            up_writer.close()  # never reuse a connection left mid-body (client gone, worker gone)
            raise
        if response.keep_alive and framing[0] != "close" and worker.state != "stopping":
            worker.pool.append((up_reader, up_writer))
        else:
            up_writer.close()
        return client_keep_alive and framing[0] != "close"

    def status(self) -> dict[str, Any]:
        return {
            "url": f"http://127.0.0.1:{self.spec.port}",
            "port": self.spec.port,
            "digest": self.spec.digest,
            "spec": self.spec.comparable(),
            "workers": [
                {"number": w.number, "pid": w.proc.pid, "port": w.port, "state": w.state, "inflight": w.inflight}
                for w in self.workers
            ],
            "ready": len(self.ready()),
        }


class _Discard:
    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


async def _read_all(reader: asyncio.StreamReader, framing: tuple[str, int]) -> bytes:
    """A request body, re-framed for the worker (which then sees Content-Length)."""
    kind, length = framing
    if kind == "length":
        return await reader.readexactly(length)
    if kind == "chunked":
        sink = _Collect()
        await relay_body(reader, sink, framing)  # type: ignore[arg-type]
        return sink.data
    return b""


class _Collect(_Discard):
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


async def _ping(port: int) -> int | None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout=1)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        head = await asyncio.wait_for(read_head(reader), timeout=2)
        return int(head.start.split(" ")[1]) if head else None
    except (OSError, TimeoutError, ProtocolError, ValueError, IndexError):
        return None
    finally:
        writer.close()
