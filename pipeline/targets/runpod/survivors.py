"""Which endpoint of a name survives, and when the others go.

Where several endpoints of ours share a name (a replace's old and new endpoint, or duplicates two
runs made), one rule picks the survivor everywhere (the plan, the backstop, the wiring): the oldest
of those whose compute family is the one the config asks for, else the oldest. The others are
retired at the end of a deploy, and only once no endpoint of this app (callers that rolled back
or were not deployed, and the mothership, included) still names their URL in FLASH_ENDPOINTS;
one still called is kept, and the report says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from flash_pipeline.config.model import Project
from flash_pipeline.errors import FlashError
from flash_pipeline.targets.runpod.bodies import LiveEndpoint, family, health_url
from flash_pipeline.targets.runpod.converge import Context, Outcome
from flash_pipeline.targets.runpod.ownership import MARKER_ENDPOINT, Claims, claim, created_order


def survivor(items: Sequence[LiveEndpoint], wanted: str | None) -> LiveEndpoint:
    """The endpoint of a name that stays: the oldest of the wanted family, else the oldest."""
    ordered = sorted(items, key=created_order)
    return next((e for e in ordered if wanted is not None and family(e) == wanted), ordered[0])


def prefer(claims: Claims, families: Mapping[str, str]) -> Claims:
    """The claims with each key's survivor first (Claims.live() takes the first)."""
    for key, items in claims.ours.items():
        if len(items) > 1:
            keep = survivor(items, families.get(key))
            claims.ours[key] = [keep, *(e for e in sorted(items, key=created_order) if e is not keep)]
    return claims


@dataclass
class Retiring:
    """An endpoint of ours that is to go once nothing that stays calls it."""

    key: str
    name: str
    endpoint_id: str
    outcome: Outcome
    why: str  # "replaced" (a replace's old endpoint), "duplicate", or "orphan" (pruned)


def _named(item: LiveEndpoint) -> set[str]:
    """The URLs an endpoint's FLASH_ENDPOINTS names."""
    try:
        found = json.loads((item.get("env") or {}).get("FLASH_ENDPOINTS") or "{}")
    except ValueError:
        return set()
    return {str(u).rstrip("/") for u in (found.values() if isinstance(found, dict) else [])}


def callers_first(items: Sequence[LiveEndpoint], template: str) -> list[LiveEndpoint]:
    """Endpoints in an order that deletes every caller before its callees (destroy): one stopped
    half-way never leaves an endpoint calling a deleted one. A cycle is broken in listing order."""
    left = list(items)
    ordered: list[LiveEndpoint] = []
    while left:
        called = {u for e in left for u in _named(e)}
        free = [e for e in left if health_url(e, template)[0].rstrip("/") not in called]
        for item in free or left[:1]:
            ordered.append(item)
            left.remove(item)
    return ordered


def retire(ctx: Context, project: Project, retiring: Sequence[Retiring]) -> None:
    """Delete what is to go, callers before their callees, except what an endpoint that stays still
    calls (a caller that rolled back or was not deployed, the mothership, a kept endpoint): that is
    kept, and the report says why. An interrupted run never leaves a caller naming a deleted callee."""
    if not retiring:
        return
    try:
        listed = ctx.backend.list()
    except FlashError as exc:
        for item in retiring:
            _kept(item, f"could not check its callers ({exc})")
        return
    keys = [e.key for e in project.endpoints]
    claims = claim(project.name, project.environment, keys, listed)
    ours = {str(e["id"]): e for items in (*claims.ours.values(), *claims.orphans.values()) for e in items}
    url = {i: health_url(e, ctx.lb_template)[0] for i, e in ours.items()}
    calls = {i: _named(e) for i, e in ours.items()}
    going = {r.endpoint_id for r in retiring if r.endpoint_id in ours}
    kept: dict[str, list[str]] = {}
    while True:  # what stays (kept ones too) keeps its callees
        staying = (set(ours) - going) | set(kept)
        more = {
            g: sorted({str((ours[x].get("env") or {}).get(MARKER_ENDPOINT, x)) for x in staying if url[g] in calls[x]})
            for g in going - set(kept)
        }
        more = {g: callers for g, callers in more.items() if callers}
        if not more:
            break
        kept.update(more)
    doomed = going - set(kept)
    failed: dict[str, str] = {}
    while doomed:
        free = [d for d in sorted(doomed) if not any(url[d] in calls[o] for o in doomed if o != d)]
        victim = (free or sorted(doomed))[0]
        doomed.discard(victim)
        item = next(r for r in retiring if r.endpoint_id == victim)
        try:
            ctx.write(partial(ctx.backend.delete, victim, item.name))
        except FlashError as exc:
            failed[victim] = str(exc)
    for item in retiring:
        if item.endpoint_id in kept:
            callers = kept[item.endpoint_id]
            orphans = [c for c in callers if c in claims.orphans]  # never rewired: only --prune frees it
            fix = f"`--prune` deletes {', '.join(orphans)} (not in the config), then it" if orphans else ""
            _kept(item, f"{', '.join(callers)} still call{'s' if len(callers) == 1 else ''} it", fix)
        elif item.endpoint_id in failed:
            _failed(item, failed[item.endpoint_id])
        else:
            _deleted(item)


def _deleted(item: Retiring) -> None:
    outcome = item.outcome
    if item.why == "replaced":
        outcome.retire = ""
        outcome.note = f"{item.name} now runs as {outcome.endpoint_id}; the old endpoint {item.endpoint_id} was deleted"
    elif item.why == "orphan":
        if outcome.action == "pending":
            outcome.action = "deleted"
    else:
        done = f"deleted the duplicate {item.endpoint_id} of {item.name}"
        outcome.note = f"{outcome.note}; {done}" if outcome.note else done


def _failed(item: Retiring, why: str) -> None:
    if item.why == "orphan":
        item.outcome.action = "failed"
        item.outcome.error = f"{item.key}: {why}"
    else:
        _kept(item, f"its delete failed ({why})")


def _kept(item: Retiring, why: str, fix: str = "") -> None:
    outcome = item.outcome
    fix = fix or "deploy again once they are rewired to delete it"
    if item.why == "orphan":
        if outcome.action != "failed":
            outcome.action = "orphaned"
        outcome.note = f"the endpoint {item.endpoint_id} is kept: {why}; {fix}"
        return
    what = "old endpoint" if item.why == "replaced" else "duplicate"
    kept = f"the {what} {item.endpoint_id} is kept: {why}; {fix}"
    if item.why == "replaced":
        outcome.note = f"{item.name} now runs as {outcome.endpoint_id}; {kept}"
    else:
        outcome.note = f"{outcome.note}; {kept}" if outcome.note else kept


def backstop(ctx: Context, project: Project, outcomes: Sequence[Outcome], families: Mapping[str, str]) -> None:
    """List again after creating: where this run's create and another endpoint of ours share a name,
    the survivor (the same rule a concurrent run applies) stays; if it is not ours, ours is deleted
    and the outcome names the survivor's id and URL, before any caller is wired to either."""
    made = [o for o in outcomes if o.action == "created" and o.endpoint_id]
    if not made:
        return
    try:
        listed = ctx.backend.list()
    except FlashError:
        return  # the next deploy repairs what this one could not check
    ours = claim(project.name, project.environment, [o.key for o in outcomes], listed).ours
    for outcome in made:
        items = ours.get(outcome.key, [])
        if len(items) < 2:
            continue
        keep = survivor(items, families.get(outcome.key))
        if str(keep["id"]) == outcome.endpoint_id:
            continue
        mine = outcome.endpoint_id
        try:
            ctx.write(partial(ctx.backend.delete, mine, outcome.name))
        except FlashError:
            continue
        outcome.endpoint_id = str(keep["id"])
        outcome.url = health_url(keep, ctx.lb_template)[0]
        outcome.note = f"another deploy created {outcome.name} at the same time: kept the older {outcome.endpoint_id}, deleted {mine}"
