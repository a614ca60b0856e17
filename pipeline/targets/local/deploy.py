"""The deploy stage for the local target: provision, gate every endpoint on /ping, report."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flash_pipeline.builder.output import BuildResult
from flash_pipeline.config.model import Project
from flash_pipeline.errors import ApiError, HealthError
from flash_pipeline.targets.gate import Backoff, GateResult, describe, wait_healthy
from flash_pipeline.targets.local import control as local
from flash_pipeline.targets.plan import Action, in_layers, plan_deploy

# Local workers start in about a second: probe often, so the gate adds little to that.
LOCAL_BACKOFF = Backoff(initial=0.1, factor=1.5, cap=1.0, jitter=0.1)


@dataclass(frozen=True)
class Deployed:
    key: str
    url: str
    action: str  # created | updated | unchanged
    gate: GateResult


@dataclass(frozen=True)
class LocalDeploy:
    endpoints: tuple[Deployed, ...]
    supervisor_pid: int
    started_supervisor: bool


def deploy_local(
    project: Project,
    result: BuildResult,
    *,
    detach: bool,
    timeout: float | None,
    echo: Callable[[str], None],
    environ: Mapping[str, str] | None = None,
) -> LocalDeploy:
    """Run every endpoint locally and wait until each answers /ping 200; HealthError if one does not."""
    where = local.paths(project)
    local.check_dependencies(project)
    started, pid = False, 0
    try:
        with local.deploy_lock(where):  # a concurrent deploy of this folder waits, then updates in place
            state = local.read_state(where)
            specs = local.specs(
                project, result, environ if environ is not None else os.environ, state["endpoints"] if state else {}
            )
            if state is None:
                pid, started = local.start_supervisor(where, detach=detach).pid, True
            else:
                pid = int(state["pid"])
            answer = local.send(where, {"cmd": "apply", "endpoints": specs})
        urls = {key: info["url"] for key, info in answer["endpoints"].items()}
        gates = _gate_all(project, urls, timeout, echo, where)
    except BaseException:  # Ctrl-C, SIGTERM/SIGHUP or a failure mid-deploy: a supervisor we started must not linger
        if started:
            local.stop(where, {"pid": pid, "pgid": pid})
        raise
    changes: dict[str, str] = answer["changes"]
    deployed = tuple(
        Deployed(e.key, urls[e.key], changes.get(e.key, "created"), gates[e.key]) for e in project.endpoints
    )
    failed = [d for d in deployed if not d.gate.healthy]
    if failed:
        if started:  # nothing was running before this deploy: leave nothing running after it
            local.stop(where, {"pid": pid, "pgid": pid})
        first = failed[0]
        hint = _failure_hint(first.gate, detach, where)
        detail = first.gate.reason if first.gate.reason.startswith("cannot start") else ""
        raise HealthError(first.key, first.gate.waited, first.gate.last_status, hint, detail)
    return LocalDeploy(deployed, pid, started)


def _gate_all(
    project: Project, urls: Mapping[str, str], timeout: float | None, echo: Callable[[str], None], where: local.Paths
) -> dict[str, GateResult]:
    def failure(key: str) -> str | None:
        """The supervisor's verdict that an endpoint cannot start (crash loop, failed init): stop waiting."""
        try:
            info = local.send(where, {"cmd": "status"}, timeout=5)["endpoints"].get(key, {})
        except ApiError:
            return None
        found = info.get("failure")
        if not found:
            return None
        output = "".join(f"\n    {line}" for line in found.get("output", [])[-8:])
        return f"cannot start: {found['reason']}" + (f"; its last output:{output}" if output else "")

    def gate(key: str, limit: float) -> GateResult:
        last: list[Any] = [None]

        def on_probe(status: int | str, waited: float) -> None:
            if status != last[0]:
                last[0] = status
                echo(f"{key}: /ping {describe(status)} after {waited:.1f}s")

        return wait_healthy(
            lambda: local.ping(urls[key]),
            timeout=limit,
            clock=time.monotonic,
            sleep=time.sleep,
            backoff=LOCAL_BACKOFF,
            rng=random.Random(),
            on_probe=on_probe,
            failed=lambda: failure(key),
        )

    with ThreadPoolExecutor(max_workers=max(1, len(project.endpoints))) as pool:
        futures = {
            e.key: pool.submit(gate, e.key, timeout if timeout is not None else e.health_timeout)
            for e in project.endpoints
        }
        return {key: future.result() for key, future in futures.items()}


def _failure_hint(gate: GateResult, detach: bool, where: local.Paths) -> str:
    if gate.reason.startswith("cannot start"):
        cause = "fix the error in the worker's output (restarting it would not help)"
    elif gate.last_status == "HTTP 503":
        cause = "its workers answer /ping 503: the init hook failed or the worker is unhealthy"
    elif gate.last_status.startswith("204"):
        cause = "its workers were still initializing: raise health.timeout or --timeout"
    else:
        cause = f"the last /ping gave {gate.last_status}"
    where_logs = f"see {where.log}" if detach else "see the worker output above"
    return f"{cause}; {where_logs}"


def local_status(project: Project) -> dict[str, Any] | None:
    """The supervisor's view of every endpoint, or None if nothing runs locally."""
    where = local.paths(project)
    if local.read_state(where) is None:
        return None
    answer: dict[str, Any] = local.send(where, {"cmd": "status"}, timeout=10)
    return answer


def local_destroy(project: Project) -> list[str]:
    """Stop every local endpoint; the keys that were running."""
    where = local.paths(project)
    state = local.read_state(where)
    if state is None:
        return []
    keys = sorted(state.get("endpoints", {}))
    local.stop(where, state)
    return keys


def local_plan(project: Project, environ: Mapping[str, str] | None = None) -> list[Action]:
    """What `flash deploy --target local` would change, from an in-memory build; changes nothing."""
    from flash_pipeline.builder.output import content_hashes
    from flash_pipeline.config.envvars import resolve_env
    from flash_pipeline.targets.local.balancer import EndpointSpec

    hashes = content_hashes(project)
    env_source = environ if environ is not None else os.environ
    answer = local_status(project)
    urls = {key: info["url"] for key, info in (answer or {}).get("endpoints", {}).items()}
    desired = {}
    for e in project.endpoints:
        if e.key not in hashes:
            continue  # prebuilt images do not run locally; deploy says so
        spec = EndpointSpec(
            e.key,
            e.name,
            "",
            hashes[e.key],
            resolve_env(e, env_source) | local.wiring(e, urls),
            e.workers.min,
            e.workers.max,
            e.scaler_value,
            e.idle_timeout,
            0,
        )
        desired[e.key] = spec.comparable()
    live = {key: info["spec"] for key, info in (answer or {}).get("endpoints", {}).items()}
    return in_layers(plan_deploy(desired, live), project)
