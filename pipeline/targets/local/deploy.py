"""The deploy stage for the local target: provision, gate every endpoint on /ping, report."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipeline.build.output import BuildResult
from pipeline.config.model import Project
from pipeline.errors import ApiError, HealthError
from pipeline.targets.cancel import Cancel
from pipeline.targets.gate import Backoff, GateResult, describe, wait_healthy
from pipeline.targets.local import control as local
from pipeline.targets.plan import Action, in_layers, plan_deploy

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


STOP_GRACE = 1.0  # seconds the supervisor gets to stop its workers after Ctrl-C; then its group is killed


def deploy_local(
    project: Project,
    result: BuildResult,
    *,
    detach: bool,
    timeout: float | None,
    echo: Callable[[str], None],
    environ: Mapping[str, str] | None = None,
    cancel: Cancel | None = None,
) -> LocalDeploy:
    """Run every endpoint locally and wait until each answers /ping 200; HealthError if one does not.

    An endpoint that already serves gets its new build beside the old workers (the supervisor
    switches once the new ones answer /ping 200): a build that cannot start leaves the old ones
    serving. Ctrl-C (KeyboardInterrupt) at any moment stops what this deploy started, within
    about a second, and nothing else: a supervisor it only attached to keeps serving.
    """
    where = local.paths(project)
    local.check_dependencies(project)
    cancel = cancel if cancel is not None else Cancel()
    started, pid, answer = False, 0, None
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
        wanted = {key: _wanted(info) for key, info in answer["endpoints"].items()}
        gates = gate_all(project, where, wanted, timeout, echo, cancel)
    except BaseException:  # Ctrl-C, SIGTERM/SIGHUP or a failure mid-deploy: what this deploy started must not linger
        cancel.set()
        with _no_interrupts():
            if started:
                local.stop(where, {"pid": pid, "pgid": pid}, wait=STOP_GRACE)
            elif answer is not None:
                abandon(where, answer)
        raise
    urls = {key: info["url"] for key, info in answer["endpoints"].items()}
    changes: dict[str, str] = answer["changes"]
    deployed = tuple(
        Deployed(e.key, urls[e.key], changes.get(e.key, "created"), gates[e.key]) for e in project.endpoints
    )
    failed = [d for d in deployed if not d.gate.healthy]
    if failed:
        _remember_failures(where, failed)
        # A new build still starting when its gate gave up (a hanging init hook): drop it, the old one serves.
        abandon(where, {"changes": {}, "endpoints": {d.key: answer["endpoints"][d.key] for d in failed}})
        # Nothing was running before this deploy: leave nothing running after it, unless a detached
        # deploy has healthy endpoints to keep (status then shows why the others cannot start).
        if started and (not detach or len(failed) == len(deployed)):
            local.stop(where, {"pid": pid, "pgid": pid})
        first = failed[0]
        hint = _failure_hint(first.gate, detach, where)
        detail = first.gate.reason if first.gate.reason.startswith("cannot start") else ""
        raise HealthError(first.key, first.gate.waited, first.gate.last_status, hint, detail)
    (where.state_dir / FAILURES).unlink(missing_ok=True)
    return LocalDeploy(deployed, pid, started)


FAILURES = "last-failures.json"  # why endpoints could not start, kept for `flash status` after the supervisor stopped


def _remember_failures(where: local.Paths, failed: list[Deployed]) -> None:
    import json

    def entry(gate: GateResult) -> dict[str, Any]:
        verdict, _, output = (gate.reason or f"/ping {gate.last_status}").partition("; its last output:")
        lines = [line.removeprefix("    ") for line in output.splitlines() if line]
        return {"reason": verdict.removeprefix("cannot start: "), "output": lines}

    try:
        (where.state_dir / FAILURES).write_text(json.dumps({d.key: entry(d.gate) for d in failed}))
    except OSError:
        pass


def last_failures(project: Project) -> dict[str, Any]:
    """The endpoints the last local deploy could not start, and why (kept after it stopped them)."""
    import json

    try:
        found: dict[str, Any] = json.loads((local.paths(project).state_dir / FAILURES).read_text())
    except (OSError, ValueError):
        return {}
    return found


def _wanted(info: Mapping[str, Any]) -> str:
    """The revision this deploy asked for: the one rolling out, else the one serving."""
    rollout = info.get("rollout")
    return str(rollout["revision"] if rollout else info["revision"])


def abandon(where: local.Paths, answer: Mapping[str, Any]) -> None:
    """Drop what an apply started in a supervisor this command did not start: new endpoints, new builds."""
    changes = answer.get("changes", {})
    rollouts = [k for k, info in answer["endpoints"].items() if info.get("rollout")]
    created = [k for k, change in changes.items() if change == "created"]
    try:
        local.send(where, {"cmd": "abandon", "rollouts": rollouts, "created": created}, timeout=2)
    except ApiError:
        pass


@contextmanager
def _no_interrupts() -> Iterator[None]:
    """A second Ctrl-C must not cut the cleanup of the first short (it is bounded: about a second)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def gate_all(
    project: Project,
    where: local.Paths,
    wanted: Mapping[str, str],
    timeout: float | None,
    echo: Callable[[str], None],
    cancel: Cancel,
    keys: Collection[str] | None = None,
) -> dict[str, GateResult]:
    """Wait until each endpoint serves the revision this deploy asked for (/ping 200), cannot
    start, or times out. Runs in daemon threads: Ctrl-C in the calling thread is never held up."""

    def look(key: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] | None = local.send(where, {"cmd": "status"}, timeout=5)["endpoints"].get(key)
        except ApiError:
            return None
        return found

    def gate(key: str, limit: float) -> GateResult:
        last: list[Any] = [None]
        seen: dict[str, Any] = {}

        def probe() -> int | str:
            info = seen["info"] = look(key)
            if info is None:
                return "the supervisor does not answer"
            if info["revision"] != wanted[key]:
                return 204  # the new build's workers start beside the serving ones
            return local.ping(info["url"])

        def failure() -> str | None:
            """The supervisor's verdict that the build cannot start (crash loop, failed init): stop waiting."""
            info = seen.get("info")
            if not info:
                return None
            kept = info.get("last_failure")
            if info["revision"] != wanted[key]:
                if kept and kept.get("revision") == wanted[key]:
                    return _cannot_start(kept, kept=True)
                if not info.get("rollout") or info["rollout"]["revision"] != wanted[key]:
                    return "cannot start: replaced by another deploy meanwhile"
                return None
            return _cannot_start(info["failure"]) if info.get("failure") else None

        def on_probe(status: int | str, waited: float) -> None:
            if status != last[0]:
                last[0] = status
                echo(f"{key}: /ping {describe(status)} after {waited:.1f}s")

        return wait_healthy(
            probe,
            timeout=limit,
            clock=time.monotonic,
            sleep=cancel.sleep,
            backoff=LOCAL_BACKOFF,
            rng=random.Random(),
            on_probe=on_probe,
            failed=failure,
        )

    chosen = [e for e in project.endpoints if keys is None or e.key in keys]
    limits = {e.key: timeout if timeout is not None else e.health_timeout for e in chosen}
    results: dict[str, GateResult] = {}
    errors: list[BaseException] = []

    def run(key: str) -> None:
        try:
            results[key] = gate(key, limits[key])
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(key,), daemon=True) for key in limits]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.05)  # short joins: a signal reaches this thread at once
    if errors:
        raise errors[0]
    return results


def _cannot_start(found: Mapping[str, Any], *, kept: bool = False) -> str:
    output = "".join(f"\n    {line}" for line in found.get("output", [])[-8:])
    verdict = f"cannot start: {found['reason']}" + ("; the previous workers keep serving" if kept else "")
    return verdict + (f"; its last output:{output}" if output else "")


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
    (where.state_dir / FAILURES).unlink(missing_ok=True)
    return keys


def local_plan(project: Project, environ: Mapping[str, str] | None = None) -> list[Action]:
    """What `flash deploy --target local` would change, from an in-memory build; changes nothing."""
    from pipeline.build.output import content_hashes
    from pipeline.config.envvars import resolve_env
    from pipeline.targets.local.balancer import EndpointSpec

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
