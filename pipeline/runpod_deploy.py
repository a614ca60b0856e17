"""Deploy to RunPod: plan against live state found by name, apply in parallel, gate, roll back.

A failed gate after an update re-applies the previous values of the changed fields and waits
for health again (unless rollback is off); a failed create is left for inspection and reported.
Orphans (`{app}-…` endpoints the config no longer has) are deleted only with prune.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pipeline.envvars import resolve_env
from pipeline.errors import FlashError, HealthError
from pipeline.health import Backoff, GateResult, describe, wait_healthy
from pipeline.model import Endpoint, Project
from pipeline.plan import Action, plan_deploy
from pipeline.providers.backend import Backend
from pipeline.providers.runpod_rest import comparable, desired_body, health_url, sparse_patch

PARALLEL_WRITES = 8  # control-plane writes at once; gates (mostly waiting) are not bounded by it
MAX_THREADS = 64
DEFAULT_LB_TEMPLATE = "https://{endpoint_id}.api.runpod.ai"


@dataclass
class Outcome:
    key: str
    name: str
    action: str
    endpoint_id: str = ""
    url: str = ""
    gate: GateResult | None = None
    note: str = ""
    error: str = ""
    changed: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Context:
    backend: Backend
    lb_template: str
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    echo: Callable[[str], None]
    backoff: Backoff = field(default_factory=Backoff)
    writes: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(PARALLEL_WRITES))


def live_endpoints(project: Project, backend: Backend) -> dict[str, dict[str, Any]]:
    """This app's endpoints on RunPod, by endpoint key (RunPod name minus the app prefix)."""
    prefix = project.prefix
    return {e["name"][len(prefix) :]: e for e in backend.list() if project.owns(str(e.get("name", "")))}


def desired_bodies(
    project: Project, images: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    return {e.key: desired_body(e, images[e.key], resolve_env(e, environ)) for e in project.endpoints}


def plan_runpod(
    project: Project, backend: Backend, images: Mapping[str, str], environ: Mapping[str, str]
) -> list[Action]:
    """Pure diff of normalised desired and live specs (one list call)."""
    desired = {k: comparable(b) for k, b in desired_bodies(project, images, environ).items()}
    live = {k: comparable(e) for k, e in live_endpoints(project, backend).items()}
    return plan_deploy(desired, live)


def deploy_runpod(
    project: Project,
    ctx: Context,
    images: Mapping[str, str],
    environ: Mapping[str, str],
    *,
    prune: bool,
    rollback: bool,
    timeout: float | None,
) -> list[Outcome]:
    """Apply the plan; raise HealthError (after any rollback) if an endpoint is not healthy."""
    bodies = desired_bodies(project, images, environ)
    live = live_endpoints(project, ctx.backend)
    actions = plan_deploy({k: comparable(b) for k, b in bodies.items()}, {k: comparable(e) for k, e in live.items()})
    by_key = {e.key: e for e in project.endpoints}
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_THREADS, len(actions)))) as pool:
        futures = [
            pool.submit(_converge, ctx, by_key[a.key], a, bodies[a.key], live.get(a.key), rollback, timeout)
            for a in actions
            if a.kind != "orphan"
        ]
        outcomes = [f.result() for f in futures]
    for action in (a for a in actions if a.kind == "orphan"):
        outcomes.append(_orphan(ctx, project, action.key, live[action.key], prune))
    failed = [o for o in outcomes if o.error]
    if failed:
        raise DeployFailed(outcomes)
    return outcomes


class DeployFailed(HealthError):
    """One or more endpoints did not become healthy; carries every outcome for the report."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        first = next(o for o in outcomes if o.error)
        gate = first.gate
        super().__init__(first.key, gate.waited if gate else 0.0, gate.last_status if gate else "none", first.note)
        self.args = (first.error,)
        # Unhealthy endpoints exit 5; failures of the API alone exit 4.
        self.exit_code = 5 if any(o.error and o.gate is not None for o in outcomes) else 4


def _converge(
    ctx: Context,
    endpoint: Endpoint,
    action: Action,
    body: dict[str, Any],
    live: dict[str, Any] | None,
    rollback: bool,
    timeout: float | None,
) -> Outcome:
    limit = timeout if timeout is not None else float(endpoint.health_timeout)
    outcome = Outcome(endpoint.key, endpoint.name, action.kind, changed=tuple(c.field for c in action.changes))
    previous = live  # what a rollback re-applies
    try:
        with ctx.writes:
            if action.kind == "create":
                live = ctx.backend.create(body)
            elif action.kind == "update":
                assert live is not None
                live = ctx.backend.update(live["id"], sparse_patch(body, list(outcome.changed)), endpoint.name) or live
        assert live is not None
        outcome.endpoint_id = str(live["id"])
        base, health = health_url(live, ctx.lb_template)
        outcome.url = base
        if action.kind == "keep":
            outcome.gate = _gate(ctx, endpoint.key, health, limit)
        else:
            outcome.gate = _gate_after_change(ctx, endpoint, outcome.endpoint_id, health, limit)
    except FlashError as exc:
        outcome.error = str(exc)
        return outcome
    if outcome.gate.healthy:
        return outcome
    gate = outcome.gate
    why = f"not healthy after {gate.waited:.0f}s (last /ping: {gate.last_status})"
    outcome.error = f"{endpoint.key}: {why}{_workers(ctx, endpoint, outcome.endpoint_id)}"
    if action.kind == "update" and rollback and previous is not None:
        _roll_back(ctx, endpoint, outcome, previous, limit)
    elif action.kind == "create":
        outcome.note = f"the new endpoint {outcome.endpoint_id} is left for inspection; remove it with `flash destroy` or a later `--prune`"
    else:
        outcome.note = "rollback is off: the endpoint keeps the new, unhealthy spec"
    return outcome


def _workers(ctx: Context, endpoint: Endpoint, endpoint_id: str) -> str:
    """Why the gate failed, as far as the API tells: the worker summary."""
    try:
        summary = ctx.backend.worker_summary(endpoint_id, endpoint.name)
    except FlashError:
        return ""
    counts = ", ".join(
        f"{summary[k]} {k}" for k in ("initializing", "throttled", "unhealthy", "idle", "running") if summary.get(k)
    )
    text = f"; workers: {counts}" if counts else ""
    if summary.get("logs"):
        text += f"\n  last log lines of worker {summary['worker']}:" + "".join(
            f"\n    {line}" for line in summary["logs"]
        )
    return text


def _roll_back(ctx: Context, endpoint: Endpoint, outcome: Outcome, previous: dict[str, Any], limit: float) -> None:
    ctx.echo(f"{endpoint.key}: rolling back {', '.join(outcome.changed)}")
    ctx.backend.update(outcome.endpoint_id, sparse_patch(previous, list(outcome.changed)), endpoint.name)
    _, health = health_url(previous, ctx.lb_template)
    again = _gate_after_change(ctx, endpoint, outcome.endpoint_id, health, limit)
    outcome.action = "rolled back"
    outcome.note = (
        "rolled back to the previous spec, which is healthy"
        if again.healthy
        else "rolled back, but the previous spec is not healthy either"
    )


def _gate_after_change(ctx: Context, endpoint: Endpoint, endpoint_id: str, health: str, limit: float) -> GateResult:
    """Wait for the rollout to finish (old workers must not pass the gate), then for /ping 200."""
    start = ctx.clock()
    delays = ctx.backoff.delays(random.Random())
    while ctx.backend.rollout(endpoint_id, endpoint.name).get("inProgress"):
        if ctx.clock() - start >= limit:
            return GateResult(False, ctx.clock() - start, "rollout still in progress", 0, reason="timed out")
        ctx.sleep(next(delays))
    rest = max(0.0, limit - (ctx.clock() - start))
    result = _gate(ctx, endpoint.key, health, rest)
    return GateResult(
        result.healthy, ctx.clock() - start, result.last_status, result.probes, result.cold_start, result.reason
    )


def _gate(ctx: Context, key: str, health: str, limit: float) -> GateResult:
    last: list[Any] = [None]

    def progress(status: int | str, waited: float) -> None:
        if status != last[0]:
            last[0] = status
            ctx.echo(f"{key}: /ping {describe(status)} after {waited:.1f}s")

    probe = ctx.backend.client.probe
    return wait_healthy(
        lambda: probe(health), timeout=limit, clock=ctx.clock, sleep=ctx.sleep, backoff=ctx.backoff, on_probe=progress
    )


def _orphan(ctx: Context, project: Project, key: str, live: dict[str, Any], prune: bool) -> Outcome:
    outcome = Outcome(key, project.prefix + key, "orphan", str(live.get("id", "")))
    if prune:
        try:
            ctx.backend.delete(outcome.endpoint_id, outcome.name)
            outcome.action = "deleted"
        except FlashError as exc:
            outcome.error = str(exc)
    else:
        outcome.note = "not in the config; `--prune` deletes it"
    return outcome


def default_context(backend: Backend, environ: Mapping[str, str], echo: Callable[[str], None]) -> Context:
    return Context(
        backend, environ.get("RUNPOD_LB_URL_TEMPLATE", DEFAULT_LB_TEMPLATE), time.monotonic, time.sleep, echo
    )
