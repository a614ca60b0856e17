"""Status reports (both targets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flash_pipeline.targets.gate import describe

if TYPE_CHECKING:
    from flash_pipeline.config.model import Project
    from flash_pipeline.targets.local.messages import EndpointStatus, Remembered, Reply
    from flash_pipeline.targets.runpod.rows import StatusRow


def local_status_text(
    project: Project,
    answer: Reply | None,
    failures: Mapping[str, Remembered] | None = None,
    *,
    named: bool = False,
) -> str:
    """One line per endpoint (and a failed start's reason); `named` (several configs): under a line naming the app."""
    running = answer.get("endpoints", {}) if answer else {}
    width = max(len(e.key) for e in project.endpoints)
    lines = [f"status of {project.name} on the local target:"] if named else []
    for e in project.endpoints:
        info = running.get(e.key)
        if info is None:
            why = (failures or {}).get(e.key)
            lines.append(f"{e.key.ljust(width)}  not running" + (f" (the last deploy: {why['reason']})" if why else ""))
            continue
        states = [w["state"] for w in info["workers"]]
        summary = (
            ", ".join(f"{states.count(s)} {s}" for s in ("ready", "starting", "unhealthy", "stopping") if s in states)
            or "no workers (scaled to zero)"
        )
        ping = "200 ready" if info["ready"] else ("204 initializing" if "starting" in states else "no ready worker")
        lines.append(f"{e.key.ljust(width)}  {info['url']}  workers: {summary}  /ping: {ping}")
        if info["failure"]:
            lines.append(f"{' ' * width}  cannot start: {info['failure']['reason']}")
        if info["rollout"]:
            lines.append(f"{' ' * width}  a new build is starting beside the serving workers")
        if info["last_failure"]:
            lines.append(
                f"{' ' * width}  the last build could not start: {info['last_failure']['reason']}; "
                "the previous workers keep serving"
            )
        if info["monitor_error"]:
            lines.append(f"{' ' * width}  supervisor error (retrying): {info['monitor_error']}")
    lines.append(
        f"flash: local supervisor pid {answer['pid']}" if answer else "flash: nothing is running on the local target"
    )
    return "\n".join(lines)


def _without_spec(info: EndpointStatus | None, failure: Remembered | None) -> dict[str, object] | None:
    if info is None:  # not running: why the last deploy could not start it, when known
        return None if failure is None else {"running": False, "last_failure": failure}
    return {k: v for k, v in info.items() if k != "spec"}


def local_status_json(
    project: Project, answer: Reply | None, failures: Mapping[str, Remembered] | None = None
) -> dict[str, Any]:
    """One app's fields in the status document (report/document.py)."""
    running = answer.get("endpoints", {}) if answer else {}
    failures = failures or {}
    return {
        "running": answer is not None,
        # "spec" holds an env digest for plans: never printed (a digest of a short secret is the secret)
        "endpoints": {e.key: _without_spec(running.get(e.key), failures.get(e.key)) for e in project.endpoints},
    }


def runpod_status_text(rows: Sequence[StatusRow], app: str | None = None) -> str:
    """One line per endpoint; with `app` (several configs) under a line naming the app."""
    lines = [f"status of {app} on RunPod:"] if app else []
    for row in rows:
        if row["id"] is None:
            owner = f" (the name {row['name']} belongs to {row['owner']})" if row.get("owner") else ""
            lines.append(f"{row['endpoint']}  not deployed{owner}")
            continue
        workers = row["workers"]
        summary = ", ".join(
            f"{workers.get(k, 0)} {k}"
            for k in ("idle", "running", "initializing", "throttled", "unhealthy")
            if workers.get(k)
        )
        line = f"{row['endpoint']}  {row['id']}  {row['url']}  workers: {summary or 'none'}  /ping: {describe(row['ping'])}"
        if row.get("duplicates"):
            line += f"  (duplicates: {', '.join(row['duplicates'])}; deploy deletes them)"
        if row.get("adopt"):
            line += "  (no flash owner markers yet; deploy adopts it)"
        lines.append(line)
        if row.get("warning"):
            lines.append(f"  warning: {row['warning']}")
        if "workers_by_state" in row:
            from flash_pipeline.targets.runpod.diagnose import diagnosis_lines

            lines.extend(f"  {text}" for text in diagnosis_lines(row))
    return "\n".join(lines)


def runpod_status_json(rows: Sequence[StatusRow]) -> dict[str, Any]:
    """One app's fields in the status document (report/document.py): its endpoints by key, as on
    the local target."""
    return {"endpoints": {row["endpoint"]: {k: v for k, v in row.items() if k != "endpoint"} for row in rows}}
