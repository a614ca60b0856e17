"""One endpoint brought to its desired spec on RunPod: create, update, adopt or replace; gate; roll back.

Every step records what happened in the endpoint's Outcome as soon as it happens, so an
interrupted deploy can report exactly what was created or changed. Every write first checks the
Cancel; every wait sleeps on it. Failures stay with their endpoint: one endpoint's error never
hides another's.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from flash_pipeline.config.envvars import BUILD
from flash_pipeline.config.model import Endpoint
from flash_pipeline.errors import FlashError
from flash_pipeline.targets.cancel import Cancel
from flash_pipeline.targets.gate import GATE, GateResult, describe, wait_healthy
from flash_pipeline.targets.plan import Action
from flash_pipeline.targets.runpod.backend import Backend, WorkerSummary
from flash_pipeline.targets.runpod.bodies import (
    Comparable,
    EndpointBody,
    LiveEndpoint,
    Patch,
    api_form,
    health_url,
    sparse_patch,
)
from flash_pipeline.targets.runpod.catalog import Catalog
from flash_runtime.backoff import Backoff

T = TypeVar("T")
PARALLEL_WRITES = 8  # control-plane writes at once; gates (mostly waiting) are not bounded by it


@dataclass
class Outcome:
    """What happened to one endpoint; `action` is what was done (created, updated, ... or pending)."""

    key: str
    name: str
    action: str = "pending"
    endpoint_id: str = ""
    url: str = ""
    gate: GateResult | None = None
    note: str = ""
    error: str = ""
    changed: tuple[str, ...] = ()
    rolled_back: bool = False
    retire: str = ""  # a replace's old endpoint, deleted once nothing calls it (survivors.retire)
    sending: Patch = field(default_factory=Patch)  # the patch of an update in flight ("updating")

    @property
    def healthy(self) -> bool | None:
        return None if self.gate is None else self.gate.healthy


@dataclass(frozen=True)
class Context:
    backend: Backend
    lb_template: str
    clock: Callable[[], float]
    cancel: Cancel
    echo: Callable[[str], None]
    owner: Callable[[str], dict[str, str]]  # endpoint key -> owner markers
    backoff: Backoff = GATE
    writes: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(PARALLEL_WRITES))
    catalog: Catalog | None = None  # stock for a failed gate's diagnosis
    guard: Callable[[], None] = lambda: None  # raises once the deploy lease is not ours any more
    started: Callable[[list[Outcome]], None] = lambda outcomes: None  # the outcomes, once planned (Ctrl-C reports)

    def write(self, call: Callable[[], T]) -> T:
        """One control-plane write: never started once the run is cancelled or its lease is lost."""
        with self.writes:
            self.cancel.check()
            self.guard()
            return call()


def converge(
    ctx: Context,
    endpoint: Endpoint,
    action: Action,
    body: EndpointBody,
    live: LiveEndpoint | None,
    outcome: Outcome,
    *,
    rollback: bool,
    timeout: float | None,
    known: Callable[[set[str]], LiveEndpoint | None],
) -> None:
    """Apply one planned action and gate it; the result lands in outcome (never raises FlashError)."""
    limit = timeout if timeout is not None else float(endpoint.health_timeout)
    outcome.changed = tuple(c.field for c in action.changes)
    before = live  # what a rollback restores
    try:
        if action.kind == "replace":
            assert live is not None
            _replace(ctx, endpoint, body, live, outcome, limit, known)
            return
        if action.kind == "create":
            outcome.action = "creating"  # an interrupted run looks it up before reporting
            live = ctx.write(lambda: ctx.backend.create(body, lambda: known(set())))
            outcome.action = "created"
        elif action.kind in ("update", "adopt"):
            assert live is not None
            fields = list(outcome.changed) + (
                ["env"] if action.kind == "adopt" and "env" not in outcome.changed else []
            )
            patch = sparse_patch(body, fields)
            endpoint_id = str(live["id"])

            def send() -> Any:  # in flight from here: an interrupted run looks it up before reporting
                outcome.action, outcome.endpoint_id, outcome.sending = "updating", endpoint_id, patch
                return ctx.backend.update(endpoint_id, patch, endpoint.name)

            live = ctx.write(send) or live
            outcome.action = "adopted" if action.kind == "adopt" else "updated"
        else:
            outcome.action = "unchanged"
        assert live is not None
        outcome.endpoint_id = str(live["id"])
        outcome.url, health = health_url(live, ctx.lb_template, endpoint.health_path)
        ctx.cancel.check()  # interrupted while the write was in flight: report what it did, gate nothing
        # Every gate waits for a rollout in progress first, unchanged endpoints too (a re-run
        # after a cancelled deploy must not pass on the old release's workers).
        outcome.gate = gate_after_change(ctx, endpoint, outcome.endpoint_id, health, limit, build_in(body))
        if not outcome.gate.healthy:
            _unhealthy(ctx, endpoint, action, outcome, before, health, limit, rollback)
    except FlashError as exc:
        outcome.error = f"{endpoint.key}: {exc}"
        if outcome.action in ("pending", "creating", "updating"):
            outcome.action = "failed"


def _unhealthy(
    ctx: Context,
    endpoint: Endpoint,
    action: Action,
    outcome: Outcome,
    before: LiveEndpoint | None,
    health: str,
    limit: float,
    rollback: bool,
) -> None:
    gate = outcome.gate
    assert gate is not None
    why = f"not healthy after {gate.waited:.0f}s (last /ping: {gate.last_status})"
    outcome.error = f"{endpoint.key}: {why}{_workers(ctx, endpoint, outcome.endpoint_id)}"
    if action.kind in ("update", "adopt") and action.changes and rollback and before is not None:
        _roll_back(ctx, endpoint, outcome, api_form(before), health, limit)
    elif action.kind == "create":
        outcome.note = (
            f"the new endpoint {outcome.endpoint_id} is left for inspection; "
            "fix it and deploy again, or remove it with `flash destroy`"
        )
    elif action.kind in ("update", "adopt") and action.changes:
        outcome.note = "rollback is off: the endpoint keeps the new, unhealthy spec"
    else:
        outcome.note = "nothing was changed: the endpoint was unhealthy already"


def _roll_back(
    ctx: Context, endpoint: Endpoint, outcome: Outcome, previous: Comparable, health: str, limit: float
) -> None:
    """Re-apply the previous values of the changed fields, in the form the API accepts, and gate again."""
    ctx.echo(f"{endpoint.key}: rolling back {', '.join(outcome.changed)}")
    fields = list(outcome.changed)
    env = cast(dict[str, str], previous.get("env") or {})
    previous = {**previous, "env": {**env, **ctx.owner(endpoint.key)}}  # stays ours
    patch = sparse_patch(previous, fields)
    done = outcome.action

    def send() -> Any:  # in flight from here: an interrupted run looks it up before reporting
        outcome.action, outcome.sending = "rolling back", patch
        return ctx.backend.update(outcome.endpoint_id, patch, endpoint.name)

    try:
        ctx.write(send)
    except FlashError as exc:
        outcome.action = done
        outcome.note = f"the rollback failed too ({exc}): the endpoint keeps the new, unhealthy spec"
        return
    outcome.action = "rolled back"
    outcome.rolled_back = True
    again = gate_after_change(ctx, endpoint, outcome.endpoint_id, health, limit, build_in(previous))
    outcome.note = (
        "rolled back to the previous spec, which is healthy"
        if again.healthy
        else "rolled back, but the previous spec is not healthy either"
    )


def _replace(
    ctx: Context,
    endpoint: Endpoint,
    body: EndpointBody,
    old: LiveEndpoint,
    outcome: Outcome,
    limit: float,
    known: Callable[[set[str]], LiveEndpoint | None],
) -> None:
    """A compute-family change: create the new endpoint and gate it; the old one is deleted at the
    end of the deploy, once no caller names it (survivors.retire).

    If the new one fails its gate it is deleted and the old one kept, untouched.
    """
    old_id = str(old["id"])
    outcome.note = f"replacing {old_id}"
    outcome.retire = old_id
    outcome.action = "creating"
    new = ctx.write(lambda: ctx.backend.create(body, lambda: known({old_id})))
    outcome.action = "replacing"
    outcome.endpoint_id = str(new["id"])
    outcome.url, health = health_url(new, ctx.lb_template, endpoint.health_path)
    try:
        outcome.gate = gate_after_change(ctx, endpoint, outcome.endpoint_id, health, limit, build_in(body))
    except BaseException:  # Ctrl-C or a failure while gating: the old endpoint still serves, alone
        _drop_replacement(ctx, endpoint, outcome, old, outcome.endpoint_id)
        raise
    if outcome.gate.healthy:
        outcome.action = "replaced"
        outcome.note = f"{endpoint.name} now runs as {outcome.endpoint_id}; the old endpoint {old_id} goes once its callers are rewired"
        return
    outcome.retire = ""
    gate = outcome.gate
    outcome.error = (
        f"{endpoint.key}: the replacement was not healthy after {gate.waited:.0f}s (last /ping: {gate.last_status})"
        + _workers(ctx, endpoint, outcome.endpoint_id)
    )
    _drop_replacement(ctx, endpoint, outcome, old, outcome.endpoint_id)


def _drop_replacement(ctx: Context, endpoint: Endpoint, outcome: Outcome, old: LiveEndpoint, new_id: str) -> None:
    """Delete a replacement that will not serve, so one endpoint of the name is left: the old one.
    This undoes the run's own create, so it goes ahead after Ctrl-C too (never once the lease is
    lost); where the delete fails, the report says the duplicate is kept and the next deploy
    removes it."""
    old_id = str(old["id"])
    outcome.retire = ""
    outcome.rolled_back = True
    outcome.endpoint_id, outcome.url = old_id, health_url(old, ctx.lb_template)[0]
    try:
        with ctx.writes:
            ctx.guard()
            ctx.backend.delete(new_id, endpoint.name)
    except FlashError as exc:
        outcome.action = "failed"
        outcome.note = (
            f"the replacement {new_id} could not be deleted ({exc}): the duplicate {new_id} is kept; "
            f"the old endpoint {old_id} still serves, and the next deploy removes the duplicate"
        )
        return
    outcome.action = "rolled back"
    outcome.note = f"the replacement {new_id} was deleted; the old endpoint {old_id} is kept as it was"


def _workers(ctx: Context, endpoint: Endpoint, endpoint_id: str) -> str:
    """Why the gate failed, as far as the API tells: the worker summary and a failing worker's last lines."""
    try:
        summary = ctx.backend.workers(endpoint_id, endpoint.name)
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
    text += _why(ctx, endpoint, endpoint_id, summary)
    return text


def _why(ctx: Context, endpoint: Endpoint, endpoint_id: str, summary: WorkerSummary) -> str:
    """The diagnosis `flash status` gives (old-release workers, stock now, spend), one line each."""
    from flash_pipeline.targets.runpod.bodies import desired_body
    from flash_pipeline.targets.runpod.diagnose import diagnosis, diagnosis_lines

    body = desired_body(endpoint, "", {}, {})  # what the endpoint asks for: pools, data centers, CUDA
    found = diagnosis(ctx.backend.client, ctx.catalog, endpoint_id, endpoint.name, body, summary)
    return "".join(f"\n  {line}" for line in diagnosis_lines(found))


def build_in(body: Mapping[str, Any]) -> str | None:
    """The build a release's workers must report on /manifest (None: a prebuilt image, or an
    endpoint deployed before flash set FLASH_BUILD, gated on /ping alone)."""
    value = (body.get("env") or {}).get(BUILD)
    return str(value) if value else None


def gate_after_change(
    ctx: Context, endpoint: Endpoint, endpoint_id: str, health: str, limit: float, build: str | None = None
) -> GateResult:
    """Wait for any rollout in progress (old workers must not pass the gate), then for /ping 200
    from a worker whose /manifest reports this release's build."""
    start = ctx.clock()
    delays = ctx.backoff.delays(random.Random())
    while ctx.backend.rollout(endpoint_id, endpoint.name).get("inProgress"):
        if ctx.clock() - start >= limit:
            return GateResult(False, ctx.clock() - start, "rollout still in progress", 0, reason="timed out")
        ctx.cancel.sleep(next(delays))
    rest = max(0.0, limit - (ctx.clock() - start))
    result = gate(ctx, endpoint.key, health, rest, build)
    return GateResult(
        result.healthy, ctx.clock() - start, result.last_status, result.probes, result.cold_start, result.reason
    )


def gate(ctx: Context, key: str, health: str, limit: float, build: str | None = None) -> GateResult:
    last: list[int | str | None] = [None]

    def progress(status: int | str, waited: float) -> None:
        if status != last[0]:
            last[0] = status
            ctx.echo(f"{key}: /ping {describe(status)} after {waited:.1f}s")

    client = ctx.backend.client

    def probe() -> int | str:
        status = client.probe(health)
        if status != 200 or build is None:
            return status
        # /ping 200 may come from a worker of the previous release: only the build tells them apart.
        serving = client.probe_build(health.removesuffix("/ping") + "/manifest")
        return 200 if serving == build else f"200, but /manifest reports build {serving or 'none'}, not {build}"

    return wait_healthy(
        probe,
        timeout=limit,
        clock=ctx.clock,
        sleep=ctx.cancel.sleep,
        backoff=ctx.backoff,
        on_probe=progress,
    )
