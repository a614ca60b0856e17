"""The deploy stage for the local target: provision, gate every endpoint on /ping, report."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flash_pipeline.builder.output import BuildResult
from flash_pipeline.config.model import Project
from flash_pipeline.errors import BuildError, HealthError
from flash_pipeline.files import write_atomically
from flash_pipeline.targets.cancel import Cancel
from flash_pipeline.targets.gate import GateResult
from flash_pipeline.targets.local import control as local
from flash_pipeline.targets.local import process, specs
from flash_pipeline.targets.local.gates import abandon, gate_all, no_interrupts, wanted_revision
from flash_pipeline.targets.local.messages import Remembered, Reply
from flash_pipeline.targets.plan import Action, in_layers, plan_deploy


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
    specs.check_dependencies(project)
    cancel = cancel if cancel is not None else Cancel()
    started, pid, answer = False, 0, None
    try:
        with local.deploy_lock(where):  # a concurrent deploy of this folder waits, then updates in place
            env = environ if environ is not None else os.environ
            state = local.read_state(where)
            if state is None:
                pid, started = process.start_supervisor(where, detach=detach).pid, True
            else:
                pid = int(state["pid"])
            env = environ if environ is not None else os.environ
            _, answer = local.apply(where, lambda running: specs.specs(project, result, env, running))
        wanted = {key: wanted_revision(info) for key, info in answer["endpoints"].items()}
        gates = gate_all(project, where, wanted, timeout, echo, cancel)
    except BaseException:  # Ctrl-C, SIGTERM/SIGHUP or a failure mid-deploy: what this deploy started must not linger
        cancel.set()
        with no_interrupts():
            if started:
                process.stop(where, {"pid": pid, "pgid": pid}, wait=STOP_GRACE)
            elif answer is not None:
                abandon(where, answer.get("endpoints", {}), answer.get("changes"))
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
        abandon(where, {d.key: answer["endpoints"][d.key] for d in failed})
        # Nothing was running before this deploy: leave nothing running after it, unless a detached
        # deploy has healthy endpoints to keep (status then shows why the others cannot start).
        if started and (not detach or len(failed) == len(deployed)):
            process.stop(where, {"pid": pid, "pgid": pid})
        first = failed[0]
        hint = _failure_hint(first.gate, detach, where)
        detail = first.gate.reason if first.gate.reason.startswith("cannot start") else ""
        raise HealthError(first.key, first.gate.waited, first.gate.last_status, hint, detail)
    (where.state_dir / FAILURES).unlink(missing_ok=True)
    return LocalDeploy(deployed, pid, started)


FAILURES = "last-failures.json"  # why endpoints could not start, kept for `flash status` after the supervisor stopped


def _remember_failures(where: local.Paths, failed: list[Deployed]) -> None:
    import json

    def entry(gate: GateResult) -> Remembered:
        verdict, _, output = (gate.reason or f"/ping {gate.last_status}").partition("; its last output:")
        lines = [line.removeprefix("    ") for line in output.splitlines() if line]
        return {"reason": verdict.removeprefix("cannot start: "), "output": lines}

    try:
        write_atomically(where.state_dir / FAILURES, json.dumps({d.key: entry(d.gate) for d in failed}))
    except BuildError:  # only `flash status` reads it: the deploy's own error says more
        pass


def last_failures(project: Project) -> dict[str, Remembered]:
    """The endpoints the last local deploy could not start, and why (kept after it stopped them)."""
    import json

    try:
        found: dict[str, Remembered] = json.loads((local.paths(project).state_dir / FAILURES).read_text())
    except (OSError, ValueError):
        return {}
    return found


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


def local_status(project: Project) -> Reply | None:
    """The supervisor's view of every endpoint, or None if nothing runs locally."""
    where = local.paths(project)
    if local.read_state(where) is None:
        return None
    return local.send(where, {"cmd": "status"}, timeout=10)


def local_destroy(project: Project) -> list[str]:
    """Stop every local endpoint; the keys that were running."""
    where = local.paths(project)
    state = local.read_state(where)
    if state is None:
        return []
    keys = sorted(state.get("endpoints", {}))
    process.stop(where, state)
    (where.state_dir / FAILURES).unlink(missing_ok=True)
    return keys


def local_plan(project: Project, environ: Mapping[str, str] | None = None) -> list[Action]:
    """What `flash deploy --target local` would change, from an in-memory build; changes nothing."""
    from flash_pipeline.builder.output import content_hashes
    from flash_pipeline.config.envvars import callees_env, resolve_env
    from flash_pipeline.targets.local.balancer import EndpointSpec

    hashes = content_hashes(project)
    env_source = environ if environ is not None else os.environ
    answer = local_status(project)
    running = answer.get("endpoints", {}) if answer else {}
    urls = {key: info["url"] for key, info in running.items()}
    desired = {}
    for e in project.endpoints:
        if e.key not in hashes:
            continue  # prebuilt images do not run locally; deploy says so
        env = resolve_env(e, env_source) | callees_env(e, urls)
        desired[e.key] = EndpointSpec.from_dict(specs.spec_body(e, hashes[e.key], env)).comparable()
    live = {key: info["spec"] for key, info in running.items()}
    return in_layers(plan_deploy(desired, live), project)
