"""`flash status`: each app's endpoints on its target, as text or the versioned JSON document."""

from __future__ import annotations

from typing import Any

import click

from flash_pipeline.cli.common import load, pick_target, runpod_provider
from flash_pipeline.errors import FlashError


def status(configs: tuple[str, ...], target: str | None, fmt: str) -> int:
    from flash_pipeline import report
    from flash_pipeline.cli.many import run_each

    texts: list[str] = []
    apps: list[dict[str, Any]] = []  # the JSON document's entries, a failed app's included

    def one(config: str, app: str | None) -> int:
        project = load(config, "")
        where = pick_target(target, config)
        try:
            if where == "runpod":
                rows = runpod_provider().status(project)
                fields, text = report.runpod_status_json(rows), report.runpod_status_text(rows, app)
            else:
                from flash_pipeline.targets.local.deploy import last_failures, local_status

                answer, failures = local_status(project), last_failures(project)
                fields = report.local_status_json(project, answer, failures)
                text = report.local_status_text(project, answer, failures, named=app is not None)
        except FlashError as exc:
            unknown: dict[str, Any] = {"endpoints": {}} | ({"running": None} if where == "local" else {})
            apps.append(report.app_json(project.name, config, where, unknown, error=exc))
            raise
        apps.append(report.app_json(project.name, config, where, fields))
        texts.append(text)
        return 0

    try:
        return run_each(configs, "", one)
    finally:  # what was found is printed, a failure's error then follows on stderr
        if fmt == "json" and apps:
            click.echo(report.json_document("status", apps))
        elif fmt != "json" and texts:
            click.echo("\n\n".join(texts))
