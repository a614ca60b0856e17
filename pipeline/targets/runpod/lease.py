"""The deploy lease: one deploy (or destroy) of an app and environment at a time on an account.

RunPod offers no lock, but template names are unique on an account, so creating a template
named `flash-lease <app> [<env>]` is an atomic test-and-set. The holder renews it while it works
(an expiry time in the template's env); a run that crashed leaves a lease that expires after
LEASE_TTL seconds, after which the next run breaks it. `flash unlock` deletes it at once.
A lease template is never run (its image is a placeholder) and holds no secret.
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

from flash_pipeline.errors import ApiError, FlashError
from flash_pipeline.targets.cancel import Cancel

LEASE_TTL = 120.0  # seconds a lease lives without being renewed
RENEW_EVERY = 30.0
POLL = (1.0, 1.5, 5.0)  # first delay, factor, cap: seconds between looks at a lease someone else holds
HOLDER = "FLASH_LEASE_HOLDER"
EXPIRES = "FLASH_LEASE_EXPIRES"


class TemplateStore(Protocol):
    def templates(self) -> list[dict[str, Any]]: ...

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

    def env(self) -> dict[str, str]:
        return {HOLDER: self.holder, EXPIRES: str(int(self.now() + LEASE_TTL))}

    def keep_renewed(self) -> None:
        """Renew in a daemon thread until released (a renewal that fails is retried next time)."""

        def renew() -> None:
            while not self.stop.wait(RENEW_EVERY):
                try:
                    self.store.update_template(self.template_id, self.env())
                except FlashError:
                    pass  # the lease expires later than a missed renewal matters

        threading.Thread(target=renew, daemon=True).start()

    def release(self) -> None:
        self.stop.set()
        try:
            self.store.delete_template(self.template_id, self.name)
        except FlashError:
            pass  # it expires on its own; never fail a finished deploy over it


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
) -> Lease:
    """Take the lease, waiting up to `wait` seconds for another holder; ApiError if it stays held."""
    started = clock()
    told = False
    retries_left = 3
    delay = POLL[0]
    while True:
        cancel.check()
        lease = Lease(store, name, "", holder, now)
        try:
            lease.template_id = store.create_template(name, lease.env())
            lease.keep_renewed()
            return lease
        except ApiError as exc:
            if exc.status in (401, 403):
                raise
            failure = exc
        current = _find(store, name)
        if current is None:
            if retries_left == 0:
                raise failure  # not a name clash after all: the API refused the lease itself
            retries_left -= 1  # released between our create and our look, or the create was lost
            cancel.sleep(1.0)
            continue
        env = dict(current.get("env") or {})
        if env.get(HOLDER) == holder:  # our own create went through after all
            lease.template_id = str(current["id"])
            lease.keep_renewed()
            return lease
        expires = _number(env.get(EXPIRES))
        if expires is not None and expires < now():
            echo(f"flash: breaking a stale deploy lease of {env.get(HOLDER, 'an unknown holder')} (expired)")
            store.delete_template(str(current["id"]), name)  # by id: a fresh lease has a new id
            continue
        if clock() - started >= wait:
            raise ApiError(
                "deploy lease",
                f"another deploy holds the lease {name!r}: {env.get(HOLDER, 'unknown holder')}",
                hint="wait for it to finish (it expires 2 minutes after its holder stops), "
                "or run `flash unlock` if you are sure no deploy is running",
            )
        if not told:
            echo(f"flash: waiting for another deploy to finish ({env.get(HOLDER, 'unknown holder')})")
            told = True
        cancel.sleep(min(delay, max(0.1, wait - (clock() - started))))  # never sleep past the deadline
        delay = min(POLL[2], delay * POLL[1])


def _find(store: TemplateStore, name: str) -> dict[str, Any] | None:
    return next((t for t in store.templates() if t.get("name") == name), None)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def unlock(store: TemplateStore, name: str) -> str | None:
    """Delete the lease whoever holds it; the holder it named, or None if there was none."""
    current = _find(store, name)
    if current is None:
        return None
    holder = str(dict(current.get("env") or {}).get(HOLDER, "unknown holder"))
    store.delete_template(str(current["id"]), name)
    return holder
