"""`flash build`: one config's build contexts (and images, with --push)."""

from __future__ import annotations

from pathlib import Path

import click

from flash_pipeline.cli.common import load
from flash_pipeline.errors import ConfigError


def build_one(config: str, out: Path | None, push: bool, builder: str, insecure_registry: bool) -> int:
    import time

    from flash_pipeline import report
    from flash_pipeline.builder.output import build as build_project

    project = load(config, "nothing was built")
    started = time.perf_counter()
    try:
        result = build_project(project, out)
    except ConfigError as exc:
        exc.consequence = "nothing was built"
        raise
    click.echo(report.build_text(result, time.perf_counter() - started))
    if push:
        from flash_pipeline.builder.images import push as push_images

        pushed = push_images(result, project.registry, click.echo, builder=builder, insecure=insecure_registry)
        click.echo(report.push_text(result, pushed))
    return 0
