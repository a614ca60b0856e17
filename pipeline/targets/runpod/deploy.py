"""Deploy to RunPod: survey the account, plan against what is provably ours, apply in parallel.

Identity is exact name plus owner markers (flash_pipeline.targets.runpod.ownership); a name another owner holds is
refused before any write. Where several endpoints of ours share a name, one rule picks the
survivor (flash_pipeline.targets.runpod.survivors); the others, and a replace's old endpoint, are
deleted at the end, once no endpoint of the app still calls them. Each endpoint converges in its
own thread (flash_pipeline.targets.runpod.converge), layer by layer; each layer's creates are followed
by a listing that removes any duplicate this run made before a caller is wired to it (a
backstop: the deploy lease already serialises runs). Orphans are deleted only with prune.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from flash_pipeline.config.envvars import resolve_env
from flash_pipeline.config.model import Cpu, Project
from flash_pipeline.errors import ConflictError, Exit, HealthError
from flash_pipeline.targets.cancel import Cancel, in_threads
from flash_pipeline.targets.plan import Action, in_layers, plan_deploy
from flash_pipeline.targets.runpod.backend import Backend
from flash_pipeline.targets.runpod.bodies import (
    EndpointBody,
    LiveEndpoint,
    comparable,
    desired_body,
    family,
    health_url,
)
from flash_pipeline.targets.runpod.converge import Context, Outcome, converge
from flash_pipeline.targets.runpod.ownership import Claims, claim, markers, owner_of
from flash_pipeline.targets.runpod.survivors import Retiring, backstop, prefer, retire
from flash_pipeline.targets.runpod.wiring import rewired, waits_on, wiring

DEFAULT_LB_TEMPLATE = "https://{endpoint_id}.api.runpod.ai"
DEFAULT_LEASE_WAIT = 600.0  # seconds a deploy waits for another deploy of the same app to finish


@dataclass(frozen=True)
class DeployOptions:
    """How to deploy, as the CLI's options say (built once; the same for every config)."""

    build: bool = True  # build the images (else CI pushed them: --no-build)
    push: bool = False
    prune: bool = False  # delete endpoints of ours the config no longer has
    rollback: bool = True  # re-apply the previous spec of an update that fails its gate
    timeout: float | None = None  # seconds a health gate waits (None: each endpoint's health.timeout)
    lease_wait: float = DEFAULT_LEASE_WAIT  # seconds to wait while another deploy of the app runs
    builder: str = "auto"
    insecure: bool = False  # the registry speaks plain HTTP
    registry_check: bool = True  # ask the registry whether every flash-built tag is there
    allow_unavailable: bool = False  # deploy where the catalog shows no stock
    max_floor: float | None = None  # USD per hour the app's idle floor may reach


@dataclass
class Survey:
    """One listing of the account, sorted by ownership, and the plan against it."""

    claims: Claims
    actions: list[Action]
    bodies: dict[str, EndpointBody]


def owner_markers(project: Project) -> Callable[[str], dict[str, str]]:
    return lambda key: markers(project.name, project.environment, key)


def desired_bodies(
    project: Project, images: Mapping[str, str], environ: Mapping[str, str], urls: Mapping[str, str] | None = None
) -> dict[str, EndpointBody]:
    """Each endpoint's CreateEndpointRequest; `urls` are the callees' URLs known so far."""
    owner = owner_markers(project)
    known = urls or {}
    return {
        e.key: desired_body(
            e, images[e.key], resolve_env(e, environ) | wiring(project, e, images[e.key], known, environ), owner(e.key)
        )
        for e in project.endpoints
    }


def families(project: Project) -> dict[str, str]:
    """Each endpoint's compute family as the config asks for it."""
    return {e.key: "cpu" if isinstance(e.compute, Cpu) else "gpu" for e in project.endpoints}


def survey(project: Project, backend: Backend, images: Mapping[str, str], environ: Mapping[str, str]) -> Survey:
    """The plan: what to create, update, adopt, replace or keep, what conflicts and what is orphaned."""
    listed = backend.list()
    claims = prefer(
        claim(project.name, project.environment, [e.key for e in project.endpoints], listed), families(project)
    )
    live = claims.live()
    template = lb_template(environ)
    urls = {key: health_url(found, template)[0] for key, found in live.items()}  # ids never change on update
    bodies = desired_bodies(project, images, environ, urls)
    desired = {k: comparable(b) for k, b in bodies.items()}
    diffs = plan_deploy(desired, {k: comparable(v) for k, v in live.items()})
    actions = in_layers([classify(d, bodies, live, claims) for d in diffs if d.kind != "orphan"], project)
    for key, items in claims.orphans.items():
        actions.append(Action("orphan", key, duplicates=tuple(str(e["id"]) for e in items[1:])))
    return Survey(claims, actions, bodies)


def classify(
    diff: Action, bodies: Mapping[str, EndpointBody], live: Mapping[str, LiveEndpoint], claims: Claims
) -> Action:
    """A plain diff made RunPod-specific: a name another owner holds is a conflict, a compute-family
    change a replace, an exact name without markers an adoption."""
    key = diff.key
    extra = tuple(str(e["id"]) for e in claims.duplicates().get(key, [])[1:])
    if diff.kind == "create" and key in claims.foreign:
        found, owner = claims.foreign[key]
        note = f"{bodies[key]['name']} ({found['id']}) belongs to {owner.describe()}"
        return Action("conflict", key, note=note)
    if diff.kind in ("update", "keep") and family(bodies[key]) != family(live[key]) and key in claims.unmarked:
        note = f"{bodies[key]['name']} ({live[key]['id']}) has no flash owner markers, and a {family(live[key]).upper()} endpoint can only be replaced"
        return Action("conflict", key, note=note + ": delete it in the RunPod console, or keep its compute")
    if diff.kind in ("update", "keep") and family(bodies[key]) != family(live[key]):
        note = f"{family(live[key]).upper()} -> {family(bodies[key]).upper()}: RunPod cannot change it in place"
        return Action("replace", key, diff.changes, note=note, duplicates=extra)
    if diff.kind in ("update", "keep") and key in claims.unmarked and key not in claims.ours:
        return Action("adopt", key, diff.changes, note="no flash markers yet", duplicates=extra)
    return Action(diff.kind, key, diff.changes, duplicates=extra)


def refuse_conflicts(project: Project, actions: list[Action]) -> None:
    conflicts = [a for a in actions if a.kind == "conflict"]
    if conflicts:
        raise ConflictError(
            "; ".join(f"{project.name}: endpoint {a.key!r}: {a.note}" for a in conflicts) + "; nothing was changed",
            "flash never touches another app's endpoint: rename this endpoint or [app] name, "
            "or remove that endpoint with the app that owns it",
        )


def deploy_runpod(
    project: Project, ctx: Context, images: Mapping[str, str], environ: Mapping[str, str], options: DeployOptions
) -> list[Outcome]:
    """Apply the plan; each endpoint's outcome. The outcomes fill in as work happens, and are handed
    to `ctx.started` as soon as they are planned (an interrupted run reports them). DeployFailed if
    any endpoint failed."""
    plan = survey(project, ctx.backend, images, environ)
    refuse_conflicts(project, plan.actions)
    by_key = {e.key: e for e in project.endpoints}
    live = plan.claims.live()
    outcomes = [Outcome(a.key, by_key[a.key].name if a.key in by_key else "") for a in plan.actions]
    ctx.started(outcomes)
    work = [(a, o) for a, o in zip(plan.actions, outcomes, strict=True) if a.kind != "orphan"]

    def known(exclude: set[str], key: str) -> LiveEndpoint | None:
        """After an ambiguous create: ours by exact name and markers, not one we knew before."""
        fresh = claim(project.name, project.environment, by_key, ctx.backend.list()).ours.get(key, [])
        return next((e for e in fresh if str(e["id"]) not in exclude and str(e["id"]) not in before), None)

    before = {str(e["id"]) for items in plan.claims.ours.values() for e in items}
    bodies = dict(plan.bodies)

    retiring = [Retiring(a.key, by_key[a.key].name, extra, o, "duplicate") for a, o in work for extra in a.duplicates]

    def one(item: tuple[Action, Outcome]) -> None:
        action, outcome = item
        converge(
            ctx,
            by_key[action.key],
            action,
            bodies[action.key],
            live.get(action.key),
            outcome,
            rollback=options.rollback,
            timeout=options.timeout,
            known=lambda exclude: known(exclude, action.key),
        )

    # Layer by layer: callees created and gated before their callers, whose env then names the
    # callees' URLs as deployed. A caller of an endpoint that failed is not touched at all.
    for layer in sorted({a.layer for a, _ in work}):
        results = {o.key: o for _, o in work}
        ready = []
        for action, outcome in (item for item in work if item[0].layer == layer):
            failed = [o.key for o in results.values() if o.error]
            callee = waits_on(by_key[action.key], failed)
            if callee is not None:
                _blocked(outcome, callee)
                continue
            urls = {o.key: o.url for o in results.values() if o.url}
            bodies[action.key] = rewired(bodies[action.key], by_key[action.key], urls)
            if bodies[action.key] != plan.bodies[action.key]:  # a callee was created or replaced
                action = _replanned(action, bodies, live, plan.claims)
            ready.append((action, outcome))
        in_threads(one, ready)
        backstop(ctx, project, [o for a, o in ready], families(project))  # before any caller is wired
    for action, outcome in zip(plan.actions, outcomes, strict=True):
        if action.kind == "orphan":
            items = plan.claims.orphans[action.key]
            _orphan(items, outcome, options.prune)
            retiring += [
                Retiring(action.key, outcome.name, str(e["id"]), outcome, "orphan") for e in items if options.prune
            ]
    retiring += [Retiring(o.key, o.name, o.retire, o, "replaced") for _, o in work if o.retire]
    retire(ctx, project, retiring)
    if any(o.error for o in outcomes):
        raise DeployFailed(outcomes)
    return outcomes


class DeployFailed(HealthError):
    """One or more endpoints failed; carries every outcome so the report shows each one's error."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        failed = [o for o in outcomes if o.error]
        first = failed[0]
        gate = first.gate
        super().__init__(first.key, gate.waited if gate else 0.0, gate.last_status if gate else "none")
        self.args = ("\n".join(o.error for o in failed),)
        self.hint = "; ".join(f"{o.key}: {o.note}" for o in failed if o.note)
        # Unhealthy endpoints exit 5; failures of the API alone exit 4.
        self.exit_code = Exit.UNHEALTHY if any(o.error and o.gate is not None for o in failed) else Exit.API


def _blocked(outcome: Outcome, callee: str) -> None:
    outcome.action = "not deployed"
    outcome.error = f"{outcome.key}: not deployed: it calls {callee}, which is not healthy"
    outcome.note = f"deploy again once {callee} is healthy"


def _replanned(
    action: Action, bodies: Mapping[str, EndpointBody], live: Mapping[str, LiveEndpoint], claims: Claims
) -> Action:
    """The action again, now that the body names a callee's new URL."""
    key = action.key
    current = {key: comparable(live[key])} if key in live else {}
    diff = plan_deploy({key: comparable(bodies[key])}, current)[0]
    return replace(classify(diff, bodies, live, claims), layer=action.layer, after=action.after)


def _orphan(items: list[LiveEndpoint], outcome: Outcome, prune: bool) -> None:
    """An endpoint of ours no longer in the config: with prune it is retired (survivors.retire)."""
    assert all(owner_of(item) is not None for item in items)  # claim() put only marked endpoints here
    outcome.name = str(items[0].get("name", ""))
    outcome.endpoint_id = ", ".join(str(e["id"]) for e in items)
    if not prune:
        outcome.action = "orphaned"
        outcome.note = "not in the config; `--prune` deletes it"


def lb_template(environ: Mapping[str, str]) -> str:
    """How an endpoint's URL is made from its id (RUNPOD_LB_URL_TEMPLATE points it elsewhere)."""
    return environ.get("RUNPOD_LB_URL_TEMPLATE", DEFAULT_LB_TEMPLATE)


def default_context(
    backend: Backend,
    project: Project,
    environ: Mapping[str, str],
    echo: Callable[[str], None],
    cancel: Cancel,
    guard: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
    started: Callable[[list[Outcome]], None] = lambda outcomes: None,
) -> Context:
    owner = owner_markers(project)
    return Context(backend, lb_template(environ), clock, cancel, echo, owner, guard=guard, started=started)
