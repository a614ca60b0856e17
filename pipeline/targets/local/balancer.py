"""One endpoint on the local target: its load balancer in front of its workers (workers.py).

Mirrors RunPod's LB endpoints: routes unprefixed on the endpoint's own port, traffic only to
workers answering /ping 200, a cold start when none is running, 413 for bodies over 30 MB before
any of it is read. Requests are forwarded by the one relay (runtime/relay.py, its contract in its
docstring): never sent twice once a worker may have handled them, streamed both ways, client
disconnects passed on. The balancer's own "no worker available" answers carry X-Flash-No-Worker,
so callers (the mothership, `flash_runtime.endpoint()`) retry them and never an app's own 503.
The front closes connections that send no complete request head within HEADER_TIMEOUT (the
keep-alive timer aiohttp arms from the first byte), so stalled clients cannot hold sockets.

WebSockets are relayed too (the relay's `upgrade`): an open socket holds its worker as a request
in flight, so it counts toward REQUEST_COUNT scaling and its worker is never stopped for idleness.

Worker affinity, as RunPod's (../shared/runpod/API.md): each worker is `<key>-<n>` (its
RUNPOD_POD_ID) and every answer relayed from it, the 101 of a WebSocket included, carries
`X-Runpod-Worker-Id`. A request sending `X-Runpod-Worker-Id: <id>` goes to that worker while it is
ready (else to any); `strict <id>` goes only there, waiting up to AFFINITY_WAIT for it to be
ready, and is answered 404 `{"error": "affinity_worker_gone"}` once it is gone (stopped, exited,
never one of this endpoint's); `strict-resume <id>` starts it again if it is gone.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from flash_pipeline.config.envvars import build_hash
from flash_pipeline.targets.local import rollout
from flash_pipeline.targets.local.messages import Comparable, EndpointStatus, LastFailure, SpecBody
from flash_pipeline.targets.local.workers import Worker, WorkerPool
from flash_runtime.backoff import Backoff
from flash_runtime.relay import GRACE, Relay, Upstream, error, not_allowed, request_id

COLD_START_WAIT = 120.0  # RunPod's LB waits about two minutes for a worker
AFFINITY_WAIT = 300.0  # RunPod waits up to ~5 minutes for the worker a `strict` request names
WORKER_ID = "X-Runpod-Worker-Id"
_AFFINITY_MODES = {"strict": False, "strict-resume": True}  # mode -> starts the worker again if gone
HEADER_TIMEOUT = 10.0  # a connection must send a whole request head within this (and idle no longer)
REQUEST_TIMEOUT = 330.0  # RunPod's LB processing limit, when the spec names no timeout
# A worker that cannot be reached is marked unhealthy and the request goes to the next one soon.
RETRIES = Backoff(deadline=COLD_START_WAIT, initial=0.05, cap=1.0)
_OUT_OF_FDS = {errno.EMFILE, errno.ENFILE}
_REVISION_KEY = os.urandom(32)  # see EndpointSpec.revision


def parse_affinity(value: str) -> tuple[str, str] | None:
    """X-Runpod-Worker-Id's value as (mode, worker id): `<id>` (prefer), `strict <id>`,
    `strict-resume <id>` (RunPod's grammar); None when it is none of those."""
    words = value.split()
    if len(words) == 1:
        return "prefer", words[0]
    if len(words) == 2 and words[0].lower() in _AFFINITY_MODES:
        return words[0].lower(), words[1]
    return None


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
    source_dir: str = ""  # the user's source folder as they see it: tracebacks name it, not the build copy
    timeout: float = REQUEST_TIMEOUT  # the endpoint's `timeout` (at most RunPod's 330 s): the relay's and the drain's

    @classmethod
    def from_dict(cls, data: SpecBody) -> EndpointSpec:
        return cls(**data)

    def revision(self) -> str:
        """Names the code and env a worker runs, for this supervisor's life. Keyed with a secret of
        this process: `flash status` shows it, and a plain digest of a short env value is that value."""
        identity = json.dumps([self.digest, sorted(self.env.items()), self.build_dir]).encode()
        return hmac.new(_REVISION_KEY, identity, hashlib.sha256).hexdigest()[:16]

    def same_code(self, other: EndpointSpec) -> bool:
        return (self.digest, self.env, self.build_dir) == (other.digest, other.env, other.build_dir)

    def comparable(self) -> Comparable:
        """What `flash plan` compares; env as a digest, so no value ever leaves the supervisor."""
        env_digest = hashlib.sha256(json.dumps(sorted(self.env.items())).encode()).hexdigest()[:12]
        return {
            "build": build_hash(self.digest),
            "env": env_digest,
            "workers": [self.workers_min, self.workers_max],
            "scaler_value": self.scaler_value,
            "idle_timeout": self.idle_timeout,
        }


class Endpoint:
    """The load balancer of one endpoint, and its worker pool."""

    def __init__(self, spec: EndpointSpec, echo: Callable[[str], None]) -> None:
        self.spec = spec
        self.pool = WorkerPool(spec, echo, self._ping_worker)
        self.runner: web.ServerRunner | None = None
        self.relay: Relay | None = None
        self.probes: aiohttp.ClientSession | None = None  # health checks never queue behind requests
        self.monitor: asyncio.Task[None] | None = None
        self.rollout: rollout.Rollout | None = None  # a new build starting beside the serving workers
        self.last_failure: LastFailure | None = None  # the last build that could not start, kept for status
        self.affinity_wait = AFFINITY_WAIT

    async def start(self) -> None:
        self.relay = Relay("flash-balancer", policy=RETRIES, timeout=self.spec.timeout, answer_expect=True)
        await self.relay.open()
        self.probes = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32, force_close=True), timeout=aiohttp.ClientTimeout(total=2)
        )
        server = web.Server(
            self._handle,
            keepalive_timeout=HEADER_TIMEOUT,
            access_log=None,
            auto_decompress=False,
            handler_cancellation=True,  # a client that leaves cancels its upstream request
        )
        # Stopping drains: no new connections, in-flight requests and streams get the endpoint's timeout.
        self.runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=self.spec.timeout + GRACE)
        await self.runner.setup()
        # reuse_address: a destroy and a redeploy get the same port even with connections in TIME_WAIT.
        site = web.TCPSite(self.runner, "127.0.0.1", self.spec.port, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError:  # the port was taken (by another process since the CLI probed it): leave nothing open
            await self.stop()
            raise
        self.spec.port = site.port
        self.monitor = asyncio.create_task(self.pool.monitor())

    async def replace_spec(self, spec: EndpointSpec) -> bool:
        """Adopt a new spec. The port stays. Scaling settings apply at once; new code or env starts a
        rollout: new workers beside the serving ones, switched to once one answers /ping 200 (the
        old ones then stop); a build that cannot start is dropped and the old workers keep serving."""
        changed = not self.spec.same_code(spec)
        spec.port = self.spec.port
        if not changed:
            self.spec = self.pool.spec = spec
            await self.abandon("superseded by a newer deploy")
            return False
        await self.abandon("superseded by a newer deploy")
        if not self.pool.ready():
            # Nothing serves (scaled to zero, still starting, or failing): nothing to keep; restart in place.
            self.spec = self.pool.spec = spec
            self.pool.failure, self.pool.start_failures, self.pool.next_start = None, 0, 0.0
            self.last_failure = None
            await self.pool.stop_all("new build")
            return True
        self.rollout = rollout.begin(self, spec, self._ping_worker)
        return True

    async def abandon(self, why: str) -> bool:
        """Stop a rollout in progress (its new workers); the serving workers stay. Whether there was one."""
        return await rollout.abandon(self, why)

    async def stop(self) -> None:
        await self.abandon("shutting down")
        if self.monitor:
            self.monitor.cancel()
        if self.relay:
            await self.relay.sockets.close()  # open sockets would hold the drain below for the whole timeout
        if self.runner:
            await self.runner.cleanup()
        await self.pool.stop_all("shutting down")
        if self.relay:
            await self.relay.close()
        if self.probes:
            await self.probes.close()

    # -- requests -------------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/ping":
            if request.method not in ("GET", "HEAD"):
                return not_allowed(request)
            return self._ping_answer(request_id(request))
        assert self.relay is not None
        pinned = request.headers.get(WORKER_ID)
        if pinned is None:
            return await self.relay.forward(request, self._pick, request.raw_path)
        affinity = parse_affinity(pinned)
        if affinity is None:
            why = f"{WORKER_ID} must be `<worker id>`, `strict <worker id>` or `strict-resume <worker id>`"
            return error(400, why, request_id(request))

        async def pick(rid: str) -> Upstream | web.StreamResponse:
            return await self._pick(rid, affinity)

        return await self.relay.forward(request, pick, request.raw_path)

    def _number(self, worker_id: str) -> int | None:
        """The number of this endpoint's worker `<key>-<n>`; None for another id."""
        prefix, _, number = worker_id.rpartition("-")
        return int(number) if prefix == self.spec.key and number.isdigit() else None

    async def _pick(self, rid: str, affinity: tuple[str, str] | None = None) -> Upstream | web.StreamResponse:
        """The ready worker with the fewest requests in flight (or the one `affinity` names), or the
        balancer's own answer: its marked 503, or 404 affinity_worker_gone."""
        if affinity is not None:
            mode, worker_id = affinity
            number = self._number(worker_id)
            if mode != "prefer":
                return await self._pick_pinned(rid, number, _AFFINITY_MODES[mode])
            found = self.pool.find(number) if number is not None else None
            if found is not None and found.state == "ready":
                found.inflight += 1
                return found
        worker = await self.pool.pick(COLD_START_WAIT)
        if worker is None:
            if self.pool.failure:
                return error(503, f"{self.spec.key} cannot start: {self.pool.failure['reason']}", rid)
            why = f"no worker of {self.spec.key} became ready within {COLD_START_WAIT:.0f}s"
            return error(503, why, rid, no_worker=True)
        worker.inflight += 1
        return worker

    async def _pick_pinned(self, rid: str, number: int | None, resume: bool) -> Upstream | web.StreamResponse:
        """Only worker `number`: waited for while it starts (up to affinity_wait), started again if
        gone and `resume`; 404 affinity_worker_gone otherwise."""
        pool = self.pool
        worker = pool.find(number) if number is not None else None
        if worker is None and resume and number is not None and number in pool.issued:
            try:
                worker = await pool.resume(number)
            except OSError as exc:
                return error(503, f"worker {self.spec.key}-{number} could not be started: {exc}", rid)
        if worker is None:
            return error(404, "affinity_worker_gone", rid)
        deadline = time.monotonic() + self.affinity_wait
        worker.wanted += 1
        try:
            while worker.state != "ready":
                left = deadline - time.monotonic()
                if worker.state == "stopping" or worker not in pool.workers or left <= 0:
                    return error(404, "affinity_worker_gone", rid)
                try:
                    await asyncio.wait_for(pool.ticked.wait(), timeout=left)
                except TimeoutError:
                    pass
        finally:
            worker.wanted -= 1
        worker.inflight += 1
        return worker

    def _ping_answer(self, rid: str) -> web.Response:
        pool = self.pool
        if pool.ready():
            return web.json_response({"status": "ready"})
        if pool.failure is not None:
            return error(503, f"{self.spec.key} cannot start: {pool.failure['reason']}", rid, status="failed")
        if any(w.state == "starting" for w in pool.workers):
            return web.Response(status=204)
        if not pool.workers:  # one is about to start (or, at min 0, this ping starts one: a cold start)
            if self.spec.workers_min == 0:
                pool.spawn(self._cold_start_for_ping())
            return web.Response(status=204)
        return error(503, "no healthy worker", rid, workers=[w.state for w in pool.workers])

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

    def status(self) -> EndpointStatus:
        pool = self.pool
        return {
            "url": f"http://127.0.0.1:{self.spec.port}",
            "port": self.spec.port,
            "digest": self.spec.digest,
            "spec": self.spec.comparable(),
            "workers": [
                {
                    "number": w.number,
                    "id": w.worker_id,
                    "pid": w.proc.pid,
                    "port": w.port,
                    "state": w.state,
                    "inflight": w.inflight,
                }
                for w in pool.workers
            ],
            "ready": len(pool.ready()),
            "restarts": pool.restarts,
            "failure": pool.failure,
            "monitor_error": pool.monitor_error,
            "revision": self.spec.revision(),
            "rollout": (
                None
                if self.rollout is None
                else {"revision": self.rollout.spec.revision(), "workers": [w.state for w in self.rollout.pool.workers]}
            ),
            "last_failure": self.last_failure,
        }
