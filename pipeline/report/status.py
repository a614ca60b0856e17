"""Status reports (both targets)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flash_pipeline.targets.gate import describe

if TYPE_CHECKING:
    from flash_pipeline.config.model import Project


def local_status_text(project: Project, answer: dict[str, Any] | None) -> str:
    running = (answer or {}).get("endpoints", {})
    width = max(len(e.key) for e in project.endpoints)
    lines = []
    for e in project.endpoints:
        info = running.get(e.key)
        if info is None:
            lines.append(f"{e.key.ljust(width)}  not running")
            continue
        states = [w["state"] for w in info["workers"]]
        summary = (
            ", ".join(f"{states.count(s)} {s}" for s in ("ready", "starting", "unhealthy", "stopping") if s in states)
            or "no workers (scaled to zero)"
        )
        ping = "200 ready" if info["ready"] else ("204 initializing" if "starting" in states else "no ready worker")
        lines.append(f"{e.key.ljust(width)}  {info['url']}  workers: {summary}  /ping: {ping}")
        if info.get("failure"):
            lines.append(f"{' ' * width}  cannot start: {info['failure']['reason']}")
        if info.get("monitor_error"):
            lines.append(f"{' ' * width}  supervisor error (retrying): {info['monitor_error']}")
    lines.append(
        f"flash: local supervisor pid {answer['pid']}" if answer else "flash: nothing is running on the local target"
    )
    return "\n".join(lines)


def _without_spec(info: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if info is None else {k: v for k, v in info.items() if k != "spec"}


def local_status_json(project: Project, answer: dict[str, Any] | None) -> str:
    running = (answer or {}).get("endpoints", {})
    return json.dumps(
        {
            "target": "local",
            "running": answer is not None,
            # "spec" holds an env digest for plans: never printed (a digest of a short secret is the secret)
            "endpoints": {e.key: _without_spec(running.get(e.key)) for e in project.endpoints},
        },
        indent=2,
    )


def runpod_status_text(rows: Sequence[dict[str, Any]]) -> str:
    lines = []
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
    return "\n".join(lines)


def runpod_status_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps({"target": "runpod", "endpoints": list(rows)}, indent=2)
