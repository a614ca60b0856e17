"""The deploy lease: one deploy (or destroy) of an app and environment at a time on an account.

RunPod offers no lock, and its documents do not promise that template names are unique, so a
lease is proved, not assumed: a run that sees no live lease creates a template named
`flash-lease <app> [<env>]` carrying its holder token and when it took it, then lists the
templates of that name. Alone, it holds the lease. Beside others, the earliest (taken, id) keeps
its template and looks again until it is alone; the others delete theirs (by id) and wait. Any
two runs list after both created, so at most one ever sees itself alone. Where the API does
refuse a second template of one name, the create fails and the run waits the same way.

The holder renews it while it works (an expiry time in the template's env); a run that crashed
leaves a lease that expires after LEASE_TTL seconds, after which the next run breaks it (by id).
`flash unlock` deletes it at once. A holder checks its template is still there (by id, with its
holder token) before every write: a lease broken by unlock or expiry stops the deploy's writes
with LeaseLost. A lease is deleted only by id and only while it names its holder. A lease
template is never run (its image is a placeholder) and holds no secret.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from flash_pipeline.errors import ApiError, FlashError, Interrupted
from flash_pipeline.targets.cancel import Cancel
from flash_pipeline.targets.runpod.backend import Template
from flash_runtime.backoff import Backoff

LEASE_TTL = 120.0  # seconds a lease lives without being renewed
RENEW_EVERY = 30.0
POLL = Backoff(initial=1.0, factor=1.5, cap=5.0, jitter=0.0)  # between looks at a lease someone else holds
HOLDER = "FLASH_LEASE_HOLDER"
EXPIRES = "FLASH_LEASE_EXPIRES"
TAKEN = "FLASH_LEASE_TAKEN"


class LeaseLost(ApiError):
    """The deploy lease was deleted (`flash unlock`) or broken as expired while this run held it."""


class TemplateStore(Protocol):
    def templates(self) -> list[Template]: ...

    def template(self, template_id: str) -> Template | None: ...

    def create_template(self, name: str, env: Mapping[str, str]) -> str: ...

    def update_template(self, template_id: str, env: Mapping[str, str]) -> None: ...

    def delete_template(self, template_id: str, name: str) -> None: ...


def lease_name(app: str, environment: str | None) -> str:
    return f"flash-lease {app}" + (f" {environment}" if environment else "")


def holder_id(environ: Mapping[str, str]) -> str:
    """Who holds a lease, for the message another run shows; a random token makes it unique."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    run = f" run {environ['GITHUB_RUN_ID']}" if environ.get("GITHUB_RUN_ID") else ""
    return f"{user}@{socket.gethostname()} pid {os.getpid()}{run} [{uuid.uuid4().hex[:8]}]"


@dataclass
class Lease:
    store: TemplateStore
    name: str
    template_id: str
    holder: str
    now: Callable[[], float]
    stop: threading.Event = field(default_factory=threading.Event)
    taken: float = 0.0
    lost: str = ""  # why the lease is no longer this run's ("" while it is)

    def env(self) -> dict[str, str]:
        return {HOLDER: self.holder, EXPIRES: str(int(self.now() + LEASE_TTL)), TAKEN: repr(self.taken)}

    def keep_renewed(self) -> None:
        """Renew in a daemon thread until released (a renewal that fails is retried next time)."""

        def renew() -> None:
            while not self.stop.wait(RENEW_EVERY):  # a period, not a backoff: the lease must outlive its TTL
                try:
                    if self.verify():
                        self.store.update_template(self.template_id, self.env())
                except FlashError:
                    pass  # the lease expires later than a missed renewal matters

        threading.Thread(target=renew, daemon=True).start()

    def verify(self) -> bool:
        """Is the lease still ours (our template, by id, naming us)? Records why not in `lost`."""
        if self.lost:
            return False
        found = self.store.template(self.template_id)
        if found is None or dict(found.get("env") or {}).get(HOLDER) != self.holder:
            self.lost = (
                f"the deploy lease {self.name!r} was removed while this deploy held it "
                "(`flash unlock`, or broken as expired by another run)"
            )
        return not self.lost

    def guard(self) -> None:
        """Before a write: LeaseLost once the lease is not ours any more (the write is not made)."""
        if not self.verify():
            raise LeaseLost(
                "deploy lease",
                f"{self.lost}: stopped writing, as another deploy may be running",
                hint="check `flash status`, then deploy again",
            )

    def release(self) -> None:
        """Delete our template, by id and only while it names us (never another run's lease)."""
        self.stop.set()
        try:
            found = self.store.template(self.template_id)
            if found is not None and dict(found.get("env") or {}).get(HOLDER) == self.holder:
                self.store.delete_template(self.template_id, self.name)
        except FlashError:
            pass  # it expires on its own; never fail a finished deploy over it


def _order(template: Mapping[str, Any]) -> tuple[float, str]:
    """Which of several simultaneous takers wins: the earliest take, then the smaller id."""
    taken = _number(dict(template.get("env") or {}).get(TAKEN))
    return (taken if taken is not None else 0.0, str(template.get("id")))


def acquire(
    store: TemplateStore,
    name: str,
    holder: str,
    *,
    wait: float,
    cancel: Cancel,
    echo: Callable[[str], None],
    now: Callable[[], float] = time.time,
    clock: Callable[[], float] = time.monotonic,
    poll: Backoff = POLL,
) -> Lease:
    """Take the lease, waiting up to `wait` seconds for another holder; ApiError if it stays held.
    Interrupted (or failing) before it is held, it leaves no template of its own behind."""
    try:
        return _acquire(store, name, holder, wait=wait, cancel=cancel, echo=echo, now=now, clock=clock, poll=poll)
    except (FlashError, Interrupted):
        abandon(store, name, holder)
        raise


def abandon(store: TemplateStore, name: str, holder: str) -> None:
    """Delete every lease template of this name that names `holder` (by id): a run that stops while
    taking the lease (Ctrl-C as its create goes out, a failure) leaves none behind, even one whose
    id it never learnt. Failures are swallowed: such a lease expires on its own."""
    try:
        for current in store.templates():
            if current.get("name") == name and dict(current.get("env") or {}).get(HOLDER) == holder:
                store.delete_template(str(current["id"]), name)
    except FlashError:
        pass


def _acquire(
    store: TemplateStore,
    name: str,
    holder: str,
    *,
    wait: float,
    cancel: Cancel,
    echo: Callable[[str], None],
    now: Callable[[], float],
    clock: Callable[[], float],
    poll: Backoff,
) -> Lease:
    started = clock()
    told = False
    failures_left = 3
    delays = poll.delays()
    lease = Lease(store, name, "", holder, now)
    while True:
        cancel.check()
        others = []
        mine = None
        for current in (t for t in store.templates() if t.get("name") == name):
            env = dict(current.get("env") or {})
            expires = _number(env.get(EXPIRES))
            if env.get(HOLDER) == holder:
                mine = current  # ours (a create whose answer was lost counts too)
            elif expires is not None and expires < now():
                echo(f"flash: breaking a stale deploy lease of {env.get(HOLDER, 'an unknown holder')} (expired)")
                store.delete_template(str(current["id"]), name)  # by id: a fresh lease has a new id
            else:
                others.append(current)
        if others:  # a create that failed was a clash with them: only failures with nobody else count
            failures_left = 3
        if mine is None and not others:
            lease.taken = now()
            try:
                store.create_template(name, lease.env())
            except ApiError as exc:
                if exc.status in (401, 403) or failures_left == 0:
                    raise  # not a name clash after all: the API refused the lease itself
                failures_left -= 1  # a clash with a lease just taken, or a lost answer: look again
            continue  # prove it: list again
        if mine is not None and not others:
            lease.template_id, lease.taken = str(mine["id"]), _order(mine)[0]
            lease.keep_renewed()
            return lease
        if mine is not None and min([mine, *others], key=_order) is not mine:
            store.delete_template(str(mine["id"]), name)  # a run that took it earlier wins
        holding = min(others, key=_order)
        who = dict(holding.get("env") or {}).get(HOLDER, "unknown holder")
        if clock() - started >= wait:
            if mine is not None:
                store.delete_template(str(mine["id"]), name)
            raise ApiError(
                "deploy lease",
                f"another deploy holds the lease {name!r}: {who}",
                hint="wait for it to finish (it expires 2 minutes after its holder stops), "
                "or run `flash unlock` if you are sure no deploy is running",
            )
        if not told:
            echo(f"flash: waiting for another deploy to finish ({who})")
            told = True
        cancel.sleep(min(next(delays), max(0.01, wait - (clock() - started))))  # never sleep past the deadline


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def holders(store: TemplateStore, name: str, now: Callable[[], float] = time.time) -> str:
    """The holders of unexpired leases of this name, or ""."""
    found = [dict(t.get("env") or {}) for t in store.templates() if t.get("name") == name]
    live = [env for env in found if (_number(env.get(EXPIRES)) or 0.0) >= now()]
    return ", ".join(str(env.get(HOLDER, "unknown holder")) for env in live)


def unlock(store: TemplateStore, name: str) -> str | None:
    """Delete every lease of this name (by id) whoever holds it; the holder(s) named, or None if none."""
    found = [t for t in store.templates() if t.get("name") == name]
    if not found:
        return None
    for current in found:
        store.delete_template(str(current["id"]), name)
    return ", ".join(str(dict(t.get("env") or {}).get(HOLDER, "unknown holder")) for t in found)
