"""Which RunPod endpoints are provably this app's own: exact name and owner markers.

One function maps (app, environment, endpoint key) to a RunPod name, and every endpoint flash
creates carries owner markers in its env. A name prefix proves nothing (app `shop` must never
touch `shop-admin-api`), so flash acts only where the name is exactly what the config gives and
the markers say this app and environment. An exact name without markers (made by hand, or by an
older flash) is adopted on deploy; one with another owner's markers is a conflict, refused
before any write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from flash_pipeline.config.model import runpod_name

if TYPE_CHECKING:
    from flash_pipeline.targets.runpod.bodies import LiveEndpoint

MARKER_APP = "FLASH_APP"
MARKER_ENV = "FLASH_ENV"
MARKER_ENDPOINT = "FLASH_ENDPOINT"
MARKERS = frozenset({MARKER_APP, MARKER_ENV, MARKER_ENDPOINT})


def markers(app: str, environment: str | None, key: str) -> dict[str, str]:
    """The owner markers flash puts in an endpoint's env (no FLASH_ENV for the default environment)."""
    found = {MARKER_APP: app, MARKER_ENDPOINT: key}
    if environment:
        found[MARKER_ENV] = environment
    return found


@dataclass(frozen=True)
class Owner:
    app: str
    environment: str | None
    key: str

    def describe(self) -> str:
        where = f" (environment {self.environment!r})" if self.environment else ""
        return f"app {self.app!r}{where}, endpoint {self.key!r}"


def owner_of(live: Mapping[str, Any]) -> Owner | None:
    """The owner a live endpoint's markers name, or None if it carries no flash markers."""
    env = live.get("env") or {}
    app, key = env.get(MARKER_APP), env.get(MARKER_ENDPOINT)
    if not app or not key:
        return None
    return Owner(str(app), env.get(MARKER_ENV) or None, str(key))


def created_order(live: Mapping[str, Any]) -> tuple[str, str]:
    """Oldest first: creation time, then id (both runs of a race sort duplicates the same way)."""
    return (str(live.get("createdAt") or ""), str(live.get("id") or ""))


@dataclass
class Claims:
    """A listing of the account, sorted by what this app and environment may do with each endpoint."""

    ours: dict[str, list[LiveEndpoint]] = field(default_factory=dict)  # key -> oldest first
    unmarked: dict[str, LiveEndpoint] = field(default_factory=dict)  # key -> exact name, no markers
    foreign: dict[str, tuple[LiveEndpoint, Owner]] = field(default_factory=dict)  # key -> another owner's
    orphans: dict[str, list[LiveEndpoint]] = field(default_factory=dict)  # ours by markers, not in the config

    def live(self) -> dict[str, LiveEndpoint]:
        """The endpoint each config key maps to (the oldest of our own, else an adoptable one)."""
        found = {key: items[0] for key, items in self.ours.items()}
        for key, item in self.unmarked.items():
            found.setdefault(key, item)
        return found

    def duplicates(self) -> dict[str, list[LiveEndpoint]]:
        """Keys with more than one endpoint of ours (the oldest first): all but the oldest are extra."""
        every = {**self.ours, **self.orphans}
        return {key: items for key, items in every.items() if len(items) > 1}


def claim(app: str, environment: str | None, keys: Iterable[str], listed: Iterable[Mapping[str, Any]]) -> Claims:
    """Sort the account's endpoints by ownership; only exact names and matching markers count."""
    wanted = {runpod_name(app, environment, key): key for key in keys}
    claims = Claims()
    for item in sorted((cast("LiveEndpoint", dict(e)) for e in listed), key=created_order):
        name, owner = str(item.get("name", "")), owner_of(item)
        mine = owner is not None and (owner.app, owner.environment) == (app, environment)
        if mine and owner is not None and name == runpod_name(app, environment, owner.key):
            target = claims.ours if owner.key in wanted.values() and name in wanted else claims.orphans
            target.setdefault(owner.key, []).append(item)
        elif name in wanted:
            key = wanted[name]
            if owner is None:
                claims.unmarked.setdefault(key, item)
            elif not mine or owner.key != key:
                claims.foreign.setdefault(key, (item, owner))
    return claims
