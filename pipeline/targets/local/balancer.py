"""One endpoint on the local target: its load balancer in front of its workers (local_workers.py).

Mirrors RunPod's LB endpoints: routes unprefixed on the endpoint's own port, traffic only to
workers answering /ping 200, a cold start when none is running, 413 for bodies over 30 MB before
any of it is read. HTTP on both sides is aiohttp (a dependency for this: a well-kept server and
a pooled client with C parsers, instead of the hand-written HTTP/1.1 this replaces):
- the front closes connections that send no complete request head within HEADER_TIMEOUT (the
  keep-alive timer aiohttp arms from the first byte), so stalled clients cannot hold sockets;
- bodies stream both ways (chunked uploads too): memory stays flat whatever the size;
- the upstream pool is bounded and idle connections expire (UPSTREAM_IDLE).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from flash_pipeline.targets.local.workers import Worker, WorkerPool

COLD_START_WAIT = 120.0  # RunPod's LB waits about two minutes for a worker
MAX_BODY = 30 * 1024 * 1024  # RunPod's LB limit for a request body
HEADER_TIMEOUT = 10.0  # a connection must send a whole request head within this (and idle no longer)
UPSTREAM_LIMIT = 256  # connections to this endpoint's workers, at most; more requests queue
UPSTREAM_IDLE = 15.0  # an idle pooled connection to a worker is closed after this
SMALL = 64 * 1024  # bodies up to this are read whole (replayable on another worker); larger ones stream
ATTEMPTS = 3  # workers tried when one cannot be reached (the request never reached it)
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding", "host"}
)
_NO_FORWARD = HOP_BY_HOP | {"content-length", "expect"}
_OUT_OF_FDS = {errno.EMFILE, errno.ENFILE}


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


def _error(code: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=code)


class Endpoint:
    """The load balancer of one endpoint, and its worker pool."""

    def __init__(self, spec: EndpointSpec, echo: Callable[[str], None]) -> None:
        self.spec = spec
        self.pool = WorkerPool(spec, echo, self._ping_worker)
        self.runner: web.ServerRunner | None = None
        self.session: aiohttp.ClientSession | None = None
        self.probes: aiohttp.ClientSession | None = None  # health checks never queue behind requests
        self.monitor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=UPSTREAM_LIMIT, keepalive_timeout=UPSTREAM_IDLE),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),  # the worker bounds its own requests
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        self.probes = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32, force_close=True), timeout=aiohttp.ClientTimeout(total=2)
        )
        server = web.Server(self._handle, keepalive_timeout=HEADER_TIMEOUT, access_log=None, auto_decompress=False)
        self.runner = web.ServerRunner(server, handle_signals=False)
        await self.runner.setup()
        # reuse_address: a destroy and a redeploy get the same port even with connections in TIME_WAIT.
        site = web.TCPSite(self.runner, "127.0.0.1", self.spec.port, backlog=1024, reuse_address=True)
        await site.start()
        self.spec.port = site.port
        self.monitor = asyncio.create_task(self.pool.monitor())

    async def replace_spec(self, spec: EndpointSpec) -> bool:
        """Adopt a new spec; restart workers only when the code or env changed. The port stays."""
        changed = not self.spec.same_code(spec)
        spec.port = self.spec.port
        self.spec = self.pool.spec = spec
        if changed:
            self.pool.failure, self.pool.start_failures, self.pool.next_start = None, 0, 0.0
            await self.pool.stop_all("new build")
        return changed

    async def stop(self) -> None:
        if self.monitor:
            self.monitor.cancel()
        if self.runner:
            await self.runner.cleanup()
        await self.pool.stop_all("shutting down")
        for session in (self.session, self.probes):
            if session:
                await session.close()

    # -- requests -------------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/ping":
            return self._ping_answer()
        length = request.content_length
        if length is not None and length > MAX_BODY:
            answer = _error(413, "request body is larger than 30 MB")
            answer.force_close()
            return answer
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(
                b"HTTP/1.1 100 Continue\r\n\r\n"
            )  # curl waits a second for it before large bodies
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _NO_FORWARD]
        data: Any = None
        if length is not None:
            headers.append(("Content-Length", str(length)))
            data = await request.read() if length <= SMALL else request.content
        elif request.headers.get("Transfer-Encoding"):
            data = request.content  # chunked: streamed on as chunked
        replayable = data is None or isinstance(data, bytes)
        for _ in range(ATTEMPTS):
            worker = await self.pool.pick(COLD_START_WAIT)
            if worker is None:
                if self.pool.failure:
                    return _error(503, f"{self.spec.key} cannot start: {self.pool.failure['reason']}")
                return _error(503, f"no worker of {self.spec.key} became ready within {COLD_START_WAIT:.0f}s")
            worker.inflight += 1
            try:
                return await self._forward(request, worker, headers, data)
            except aiohttp.ClientConnectorError as exc:  # never delivered: another worker may take it
                if exc.os_error.errno in _OUT_OF_FDS:
                    return _error(503, "the local balancer is out of file descriptors; retry shortly")
                worker.state = "unhealthy"  # no traffic until the monitor's next check says otherwise
                if not replayable:
                    return _error(502, "worker could not be reached")
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError):
                # Delivered, maybe handled: never sent twice. (aiohttp itself retries a stale pooled
                # connection for idempotent methods.)
                worker.state = "unhealthy" if worker.proc.returncode is not None else worker.state
                return _error(502, "worker closed the connection")
            finally:
                worker.inflight -= 1
                worker.idle_since = time.monotonic()
        return _error(502, "no worker reachable")

    async def _forward(self, request: web.BaseRequest, worker: Worker, headers: Any, data: Any) -> web.StreamResponse:
        assert self.session is not None
        url = URL(worker.url + request.raw_path, encoded=True)
        async with self.session.request(
            request.method, url, headers=headers, data=data, allow_redirects=False
        ) as upstream:
            out = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]
            size = upstream.content_length
            if request.method != "HEAD" and size is not None and size <= SMALL:
                body = await upstream.read()
                out = [(k, v) for k, v in out if k.lower() != "content-length"]
                return web.Response(body=body, status=upstream.status, headers=out)
            answer = web.StreamResponse(status=upstream.status, headers=out)
            await answer.prepare(request)
            async for chunk in upstream.content.iter_any():  # streams stay streams (SSE)
                await answer.write(chunk)
            await answer.write_eof()
            return answer

    def _ping_answer(self) -> web.Response:
        pool = self.pool
        if pool.ready():
            return web.json_response({"status": "ready"})
        if pool.failure is not None:
            return _error(503, f"{self.spec.key} cannot start: {pool.failure['reason']}", status="failed")
        if any(w.state == "starting" for w in pool.workers):
            return web.Response(status=204)
        if not pool.workers:  # one is about to start (or, at min 0, this ping starts one: a cold start)
            if self.spec.workers_min == 0:
                pool.spawn(self._cold_start_for_ping())
            return web.Response(status=204)
        return _error(503, "no healthy worker", workers=[w.state for w in pool.workers])

    async def _cold_start_for_ping(self) -> None:
        # A /ping with no worker behaves like a request: it starts one (RunPod's cold start).
        await self.pool.pick(COLD_START_WAIT)

    async def _ping_worker(self, worker: Worker) -> tuple[int, str | None] | None:
        """A worker's /ping: (status, the "status" field of a JSON body), None without an answer,
        (0, None) when this process could not even ask (no file descriptors: not the worker's fault)."""
        assert self.probes is not None
        try:
            async with self.probes.get(worker.url + "/ping") as answer:
                state = None
                if answer.status == 503:
                    try:
                        state = (await answer.json(content_type=None)).get("status")
                    except (ValueError, AttributeError):
                        pass
                return answer.status, state
        except aiohttp.ClientConnectorError as exc:
            return (0, None) if exc.os_error.errno in _OUT_OF_FDS else None
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None

    def status(self) -> dict[str, Any]:
        pool = self.pool
        return {
            "url": f"http://127.0.0.1:{self.spec.port}",
            "port": self.spec.port,
            "digest": self.spec.digest,
            "spec": self.spec.comparable(),
            "workers": [
                {"number": w.number, "pid": w.proc.pid, "port": w.port, "state": w.state, "inflight": w.inflight}
                for w in pool.workers
            ],
            "ready": len(pool.ready()),
            "restarts": pool.restarts,
            "failure": pool.failure,
            "monitor_error": pool.monitor_error,
        }
