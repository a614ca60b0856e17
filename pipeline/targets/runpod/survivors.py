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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pipeline.config.model import Project
from pipeline.errors import FlashError, Interrupted
from pipeline.targets.runpod.converge import Context, Outcome
from pipeline.targets.runpod.ownership import Claims, claim, created_order
from pipeline.targets.runpod.rest import family, health_url


def survivor(items: Sequence[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
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
    """An endpoint of ours that is to go once nothing calls it."""

    key: str
    name: str
    endpoint_id: str
    outcome: Outcome
    why: str  # "replaced" or "duplicate"


def called_urls(listed: Iterable[Mapping[str, Any]], project: Project, *, orphans: bool = True) -> dict[str, list[str]]:
    """URL -> the endpoints of this app and environment (orphans too, unless told) whose FLASH_ENDPOINTS name it."""
    keys = [e.key for e in project.endpoints]
    claims = claim(project.name, project.environment, keys, listed)
    callers: dict[str, list[str]] = {}
    for key, items in [*claims.ours.items(), *(claims.orphans.items() if orphans else ())]:
        for item in items:
            try:
                named = json.loads((item.get("env") or {}).get("FLASH_ENDPOINTS") or "{}")
            except ValueError:
                continue
            for url in named.values() if isinstance(named, dict) else []:
                callers.setdefault(str(url).rstrip("/"), []).append(key)
    return callers


def prune_order(orphans: Mapping[str, Sequence[Mapping[str, Any]]], lb_template: str) -> list[str]:
    """Orphan keys, callers before their callees: an interrupted prune never leaves an endpoint
    calling one already deleted (the mothership, which calls every endpoint, goes first)."""
    urls = {key: {health_url(e, lb_template)[0] for e in items} for key, items in orphans.items()}
    calls: dict[str, set[str]] = {}
    for key, items in orphans.items():
        named: set[str] = set()
        for item in items:
            try:
                found = json.loads((item.get("env") or {}).get("FLASH_ENDPOINTS") or "{}")
            except ValueError:
                continue
            named |= {str(u).rstrip("/") for u in (found.values() if isinstance(found, dict) else [])}
        calls[key] = named
    remaining, ordered = list(orphans), []
    while remaining:
        free = [k for k in remaining if not any(urls[k] & calls[o] for o in remaining if o != k)]
        pick = (free or remaining)[0]
        ordered.append(pick)
        remaining.remove(pick)
    return ordered


def configured_callers(ctx: Context, project: Project) -> dict[str, list[str]]:
    """URL -> the endpoints in the config that call it, as the account shows now (for prune)."""
    return called_urls(ctx.backend.list(), project, orphans=False)


def retire(ctx: Context, project: Project, retiring: Sequence[Retiring]) -> None:
    """Delete each retiring endpoint that no endpoint of this app calls any more; keep and explain the rest."""
    if not retiring:
        return
    try:
        listed = ctx.backend.list()
    except FlashError as exc:
        if isinstance(exc, Interrupted):
            raise
        for item in retiring:
            _kept(item, f"could not check its callers ({exc})")
        return
    live = {str(e.get("id")): e for e in listed}
    callers = called_urls(listed, project)
    for item in retiring:
        found = live.get(item.endpoint_id)
        if found is None:
            _deleted(item)
            continue
        still = sorted(set(callers.get(health_url(found, ctx.lb_template)[0], [])))
        if still:
            _kept(item, f"{', '.join(still)} still call{'s' if len(still) == 1 else ''} it")
            continue
        try:
            ctx.write(partial(ctx.backend.delete, item.endpoint_id, item.name))
        except FlashError as exc:
            if isinstance(exc, Interrupted):
                raise
            _kept(item, f"its delete failed ({exc})")
            continue
        _deleted(item)


def _deleted(item: Retiring) -> None:
    outcome = item.outcome
    if item.why == "replaced":
        outcome.retire = ""
        outcome.note = f"{item.name} now runs as {outcome.endpoint_id}; the old endpoint {item.endpoint_id} was deleted"
    else:
        done = f"deleted the duplicate {item.endpoint_id} of {item.name}"
        outcome.note = f"{outcome.note}; {done}" if outcome.note else done


def _kept(item: Retiring, why: str) -> None:
    outcome = item.outcome
    what = "old endpoint" if item.why == "replaced" else "duplicate"
    kept = f"the {what} {item.endpoint_id} is kept: {why}; deploy again once they are rewired to delete it"
    outcome.note = f"{outcome.note}; {kept}" if outcome.note and item.why != "replaced" else kept
    if item.why == "replaced":
        outcome.note = f"{item.name} now runs as {outcome.endpoint_id}; {kept}"


def backstop(ctx: Context, project: Project, outcomes: Sequence[Outcome], families: Mapping[str, str]) -> None:
    """List again after creating: where this run's create and another endpoint of ours share a name,
    the survivor (the same rule a concurrent run applies) stays; if it is not ours, ours is deleted
    and the outcome names the survivor's id and URL, before any caller is wired to either."""
    made = [o for o in outcomes if o.action == "created" and o.endpoint_id]
    if not made:
        return
    try:
        listed = ctx.backend.list()
    except FlashError as exc:
        if isinstance(exc, Interrupted):
            raise
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
        except FlashError as exc:
            if isinstance(exc, Interrupted):
                raise
            continue
        outcome.endpoint_id = str(keep["id"])
        outcome.url = health_url(keep, ctx.lb_template)[0]
        outcome.note = f"another deploy created {outcome.name} at the same time: kept the older {outcome.endpoint_id}, deleted {mine}"
