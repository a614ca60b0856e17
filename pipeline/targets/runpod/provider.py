"""The RunPod target: plan, apply, status, destroy over REST v2, or GraphQL with FLASH_API=graphql."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from flash_pipeline.builder.output import BuildResult, content_hashes
from flash_pipeline.builder.render import image_ref
from flash_pipeline.config.model import Project
from flash_pipeline.errors import ApiError, BuildError, FlashError, UsageError
from flash_pipeline.targets.cancel import Cancel
from flash_pipeline.targets.plan import Action, plan_deploy
from flash_pipeline.targets.runpod.api import Client
from flash_pipeline.targets.runpod.backend import Backend, api_of, open_backend
from flash_pipeline.targets.runpod.bodies import EndpointBody, LiveEndpoint, comparable, health_url
from flash_pipeline.targets.runpod.catalog import Catalog
from flash_pipeline.targets.runpod.converge import Outcome
from flash_pipeline.targets.runpod.deploy import (
    DEFAULT_LEASE_WAIT,
    DeployOptions,
    default_context,
    deploy_runpod,
    desired_bodies,
    families,
    lb_template,
    survey,
)
from flash_pipeline.targets.runpod.diagnose import diagnosis
from flash_pipeline.targets.runpod.lease import POLL, Lease, abandon, acquire, holder_id, holders, lease_name, unlock
from flash_pipeline.targets.runpod.ownership import claim
from flash_pipeline.targets.runpod.rows import StatusRow
from flash_pipeline.targets.runpod.survivors import callers_first, prefer

RELEASE_WAIT = 15.0  # seconds a finished run waits for its lease's release (two calls: read, delete)
ABANDON_WAIT = 5.0  # the same after Ctrl-C (list, delete): the run's writes have stopped already


class RunpodProvider:
    name = "runpod"

    def __init__(self, client: Client, environ: Mapping[str, str], *, graphql: bool = False) -> None:
        self.client = client
        self.environ = environ
        self.backend: Backend = open_backend(client, "graphql" if graphql else "rest")
        self.held: list[Lease] = []  # leases taken, for release_all() after an interruption
        self.taking: list[tuple[str, str]] = []  # (lease name, holder) of every lease this run took or began to take
        self.catalog = Catalog(client)  # prices and stock, read at most once per run
        self.applying: list[tuple[Project, list[Outcome]]] = []  # outcomes as planned: Ctrl-C reports them
        self.lease_poll = POLL  # the backoff between looks at another run's lease
        self.clock: Callable[[], float] = time.monotonic  # what health gates measure their timeout on

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RunpodProvider:
        """Credentials are checked here, before any build work."""
        env = os.environ if environ is None else environ
        api = api_of(env)
        return cls(Client.from_environment(env), env, graphql=api == "graphql")

    def images(self, project: Project, result: BuildResult | None) -> dict[str, str]:
        """Each endpoint's image: its own `image`, else the build's {registry}/{app}-{endpoint}:{hash}."""
        if any(not e.image for e in project.endpoints) and not project.registry:
            raise BuildError(
                "app.registry is not set: RunPod can only run images pushed to a registry",
                'add registry = "ghcr.io/your-org" to [app], or set image on every endpoint',
            )
        if result is not None:
            return {e.key: e.image for e in result.endpoints}
        hashes = content_hashes(project)  # --no-build: the same tags, computed without writing
        return {e.key: e.image or image_ref(project, e, hashes[e.key]) for e in project.endpoints}

    def plan(self, project: Project, images: Mapping[str, str]) -> list[Action]:
        bodies_plan = survey(project, self.backend, images, self.environ)
        self.refuse_key_in_env(bodies_plan.bodies)
        return bodies_plan.actions

    def refuse_key_in_env(self, bodies: Mapping[str, EndpointBody]) -> None:
        """The deploy key must never reach an endpoint, whichever variable carried it there."""
        for key, body in bodies.items():
            for name, value in body["env"].items():
                if self.client.redact(str(value)) != str(value):
                    raise UsageError(
                        f"endpoint {key!r}: env {name} would ship the RunPod API key to the endpoint",
                        "give the endpoint its own key through {{ RUNPOD_SECRET_name }}",
                    )

    def lease(self, project: Project, cancel: Cancel, echo: Callable[[str], None], wait: float) -> Lease:
        """Serialise deploys and destroys of one app and environment across machines."""
        name = lease_name(project.name, project.environment)
        holder = holder_id(self.environ)
        self.taking.append((name, holder))  # before the first call: release_all() finds a lease half taken
        held = acquire(self.backend, name, holder, wait=wait, cancel=cancel, echo=echo, poll=self.lease_poll)
        self.held.append(held)
        return held

    def apply(
        self,
        project: Project,
        images: Mapping[str, str],
        options: DeployOptions,
        *,
        echo: Callable[[str], None],
        cancel: Cancel,
    ) -> list[Outcome]:
        """Deploy under the app's lease; each endpoint's outcome (`outcomes_of` shows them while the
        work goes on, for the report of an interrupted run)."""
        self.client.on_wait = echo
        self.refuse_key_in_env(desired_bodies(project, images, self.environ))
        held = self.lease(project, cancel, echo, options.lease_wait)

        def started(outcomes: list[Outcome]) -> None:
            self.applying.append((project, outcomes))

        ctx = default_context(self.backend, project, self.environ, echo, cancel, held.guard, self.clock, started)
        ctx = replace(ctx, catalog=self.catalog)
        try:
            return deploy_runpod(project, ctx, images, self.environ, options)
        finally:
            _release(held)

    def outcomes_of(self, project: Project) -> list[Outcome]:
        """The outcomes of this run's deploy of `project` so far ([] before its plan was made)."""
        return next((outcomes for p, outcomes in self.applying if p is project), [])

    def status(self, project: Project) -> list[StatusRow]:
        keys = [e.key for e in project.endpoints]
        claims = prefer(claim(project.name, project.environment, keys, self.backend.list()), families(project))
        live = claims.live()  # where a name has several endpoints, the survivor deploy keeps
        template = lb_template(self.environ)
        rows: list[StatusRow] = []
        for endpoint in project.endpoints:
            found = live.get(endpoint.key)
            row: StatusRow = {"endpoint": endpoint.key, "name": endpoint.name, "id": None}
            if endpoint.key in claims.foreign and found is None:
                row["owner"] = claims.foreign[endpoint.key][1].describe()
            if found is None:
                rows.append(row)
                continue
            base, health = health_url(found, template, endpoint.health_path)
            try:
                summary = self.backend.workers(str(found["id"]), endpoint.name)
            except FlashError:
                summary = {}  # workers are detail: status still answers
            extra = [str(e["id"]) for e in claims.ours.get(endpoint.key, [])[1:]]
            row |= {"id": found["id"], "url": base, "workers": summary, "ping": self.client.probe(health)}
            row |= {"duplicates": extra, "adopt": endpoint.key not in claims.ours}
            live_max = (found.get("workers") or {}).get("max")
            row = {**row, **diagnosis(self.client, self.catalog, str(found["id"]), endpoint.name, found, summary)}
            row["max_workers_zero"] = live_max == 0 and endpoint.workers.max > 0
            if live_max == 0 and endpoint.workers.max > 0:  # RunPod's doing after 7 days without requests
                row["warning"] = (
                    f"RunPod lowered max workers to 0 (it does so after 7 days without requests), so no request "
                    f"can be served; `flash deploy` restores {endpoint.workers.max}"
                )
            rows.append(row)
        return rows

    def url_of(self, project: Project, key: str) -> str | None:
        """The URL of one endpoint of ours (by exact name and markers, or adoptable), or None."""
        found = claim(project.name, project.environment, [e.key for e in project.endpoints], self.backend.list())
        live = prefer(found, families(project)).live().get(key)  # the survivor deploy keeps and wires
        if live is None:
            return None
        template = lb_template(self.environ)
        return health_url(live, template)[0]

    def data_plane_headers(self) -> dict[str, str]:
        """What a request to an endpoint's URL carries: the API key (RunPod LB URLs require one)."""
        return self.client.auth_headers()

    def destroy_targets(self, project: Project) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(name, id) of every endpoint destroy deletes (ours by name and markers, orphans included),
        and of exact-name endpoints without markers, which it leaves alone."""
        keys = [e.key for e in project.endpoints]
        claims = claim(project.name, project.environment, keys, self.backend.list())
        items = [e for found in (*claims.ours.values(), *claims.orphans.values()) for e in found]
        doomed = [(str(e["name"]), str(e["id"])) for e in callers_first(items, lb_template(self.environ))]
        spared = [(str(e["name"]), str(e["id"])) for e in claims.unmarked.values()]
        return doomed, spared

    def destroy(
        self,
        project: Project,
        targets: list[tuple[str, str]],
        cancel: Cancel,
        echo: Callable[[str], None],
        lease_wait: float = DEFAULT_LEASE_WAIT,
    ) -> list[tuple[str, str]]:
        """Delete every endpoint of ours, as listed again under the lease (a deploy that held it may
        have made more than `targets`, the list shown before; waited for up to `lease_wait` seconds),
        then verify by listing again."""
        held = self.lease(project, cancel, echo, lease_wait)
        try:
            doomed, _ = self.destroy_targets(project)  # under the lease: nothing changes it now
            for name, endpoint_id in doomed:
                cancel.check()
                held.guard()
                self.backend.delete(endpoint_id, name)
            left = {str(e.get("id")) for e in self.backend.list()} & {i for _, i in doomed}
        finally:
            _release(held)
        if left:
            raise ApiError(
                "destroy", f"still present after delete: {', '.join(sorted(left))}", hint="run `flash destroy` again"
            )
        return doomed

    def lease_holders(self, project: Project) -> str:
        """Who holds the deploy lease of this app and environment now ("" when nobody does)."""
        return holders(self.backend, lease_name(project.name, project.environment))

    def unlock(self, project: Project) -> str | None:
        return unlock(self.backend, lease_name(project.name, project.environment))

    def release_all(self) -> None:
        """After Ctrl-C: look up every create that was in flight (so the report says whether it was
        made), then release every lease this run took, whatever its thread is doing (≤ ABANDON_WAIT each)."""
        try:
            settle_interrupted(self.backend, self.applying, lb_template(self.environ))
        except FlashError:
            pass  # the report then says the create was in flight; `flash status` tells
        for held in self.held:
            held.stop.set()  # no renewal after this
        # By holder: a lease whose create was answered as Ctrl-C came goes too. All at once, so
        # several configs' leases take ABANDON_WAIT in all, not each.
        _bounded(*(functools.partial(abandon, self.backend, name, holder) for name, holder in self.taking))


def _release(held: Lease) -> None:
    _bounded(held.release, wait=RELEASE_WAIT)


def _bounded(*work: Callable[[], None], wait: float = ABANDON_WAIT) -> None:
    """Run each work in a daemon thread, waiting at most `wait` seconds for them all: a run must
    exit promptly (an unreleased lease expires by itself), but a lease left for an API that
    answers in over a second holds up the next run for minutes."""
    threads = [threading.Thread(target=w, daemon=True) for w in work]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + wait
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def settle_interrupted(backend: Backend, applying: list[tuple[Project, list[Outcome]]], template: str) -> None:
    """Outcomes whose create or update was in flight when the run stopped: made (applied) or not,
    as the account shows."""
    in_flight = ("creating", "updating", "rolling back")
    pending = [(p, o) for p, outcomes in applying for o in outcomes if o.action in in_flight]
    deleting = [
        o for _, outcomes in applying for o in outcomes if o.retire or (o.action == "pending" and o.endpoint_id)
    ]
    if not pending and not deleting:
        return
    listed = backend.list()
    _settle_deletes(listed, deleting)
    for project, outcome in pending:
        if outcome.action in ("updating", "rolling back"):
            _settle_update(listed, outcome)
            continue
        keys = [e.key for e in project.endpoints]
        ours = claim(project.name, project.environment, keys, listed).ours.get(outcome.key, [])
        made = [e for e in ours if str(e["id"]) != outcome.retire]
        if made:
            outcome.action = "replacing" if outcome.retire else "created"
            outcome.endpoint_id = str(made[-1]["id"])
            outcome.url = health_url(made[-1], template)[0]
            outcome.note = "made, but flash was interrupted before its health gate"
        else:
            outcome.action = "pending"
            outcome.note = "its create was in flight when flash stopped, and is not on the account"


def _settle_update(listed: list[LiveEndpoint], outcome: Outcome) -> None:
    """An update (or a rollback) in flight when the run stopped: applied when the live endpoint
    already has what its patch sent (applying it again would change nothing)."""
    found = next((e for e in listed if str(e.get("id")) == outcome.endpoint_id), None)
    applied = found is not None and all(
        d.kind == "keep"
        for d in plan_deploy({outcome.key: comparable({**found, **outcome.sending})}, {outcome.key: comparable(found)})
    )
    if outcome.action == "rolling back":  # the new spec was applied; its rollback was in flight
        outcome.action = "rolled back" if applied else "updated"
        outcome.note = (
            f"its rollback was in flight when flash stopped, and is {'' if applied else 'not '}on the account"
        )
    elif applied:
        outcome.action = "updated"
        outcome.note = "its update was in flight when flash stopped, and is on the account"
    else:
        outcome.action = "pending"
        outcome.note = "its update was in flight when flash stopped, and is not on the account"


def _settle_deletes(listed: list[LiveEndpoint], outcomes: list[Outcome]) -> None:
    """Deletes that were in flight when the run stopped (a replace's old endpoint, a pruned
    orphan): gone from the account is deleted, whatever the report thought."""
    live = {str(e.get("id")) for e in listed}
    for outcome in outcomes:
        if outcome.retire and outcome.retire not in live:
            old, outcome.retire = outcome.retire, ""
            outcome.note = f"{outcome.name} now runs as {outcome.endpoint_id}; the old endpoint {old} was deleted"
        elif outcome.action == "pending" and outcome.endpoint_id and not set(outcome.endpoint_id.split(", ")) & live:
            outcome.action = "deleted"
