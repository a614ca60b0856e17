"""The commands for living with a deployed app: openapi, call, logs, import (registered by the
switchboard in __init__.py; their bodies live in modules of their own, imported when run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flash_pipeline.cli.common import (
    CONFIGS,
    ENVIRONMENT,
    TARGET,
    echo_err,
    load,
    one_config,
    pick_target,
    runpod_provider,
)
from flash_pipeline.errors import UsageError


@click.group()
def cli() -> None:
    """Holds the commands until __init__.py adds them to the real group."""


@cli.command()
@CONFIGS
@ENVIRONMENT
@click.option("--endpoint", "key", help="One endpoint's document (default: each built endpoint's, by key).")
def openapi(configs: tuple[str, ...], key: str | None) -> int:
    """Print the OpenAPI 3.1 document the workers serve at /openapi.json (imports the handlers)."""
    from flash_pipeline.cli.openapi import openapi_documents

    click.echo(openapi_documents(load(one_config(configs), "no document was made"), key))
    return 0


@cli.command()
@click.argument("endpoint")
@click.argument("request", nargs=-1, required=True, metavar="[METHOD|WS] PATH")
@CONFIGS
@ENVIRONMENT
@TARGET
@click.option(
    "-d",
    "--data",
    help="JSON body, or @FILE (sent as is). Makes the default method POST. With WS: the messages, one a line.",
)
@click.option("-H", "--header", multiple=True, help="'Name: value' (repeatable).")
@click.option("-i", "--include", is_flag=True, help="Print the status line and headers too.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="S",
    help="Seconds to wait for the answer to this one request, a cold start included.",
)
def call(configs: tuple[str, ...], endpoint: str, request: tuple[str, ...], **options: Any) -> int:
    """Send one request to a deployed endpoint by its key; exit 0 for 2xx, 4 otherwise.

    WS PATH opens a WebSocket: each line of stdin (or -d) is sent as a message and what arrives is
    printed until the endpoint closes it (exit 0 for close code 1000, 4 otherwise) or Ctrl-C."""
    from flash_pipeline.cli.call import call as call_endpoint

    config = one_config(configs)
    options["target"] = pick_target(options["target"], config)
    return call_endpoint(load(config, "nothing was sent"), endpoint, request, options)


@cli.command()
@click.argument("endpoint", required=False)
@CONFIGS
@ENVIRONMENT
@TARGET
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--since", help="Only lines newer than this: 30s, 10m, 2h, 1d.")
def logs(configs: tuple[str, ...], endpoint: str | None, target: str | None, follow: bool, since: str | None) -> int:
    """The workers' output, newest last, each line prefixed with its endpoint and worker."""
    from flash_pipeline.cli.logs import local_logs, parse_since, runpod_logs

    config = one_config(configs)
    target = pick_target(target, config)
    project = load(config, "")
    if endpoint is not None and endpoint not in [e.key for e in project.endpoints]:
        raise UsageError(f"no endpoint {endpoint!r} in {project.name}", "flash status lists them")
    cutoff = parse_since(since)
    if target == "local":
        local_logs(project, endpoint, cutoff, follow, click.echo)
    else:
        runpod_logs(project, endpoint, cutoff, follow, runpod_provider(), click.echo, note=echo_err)
    return 0


@cli.command(name="import")
@click.argument("directory", default=".", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Default: DIRECTORY/flash.toml.")
@click.option(
    "--rewrite",
    is_flag=True,
    help="Remove the runpod-flash lines of what was imported (only if every file stays whole; else nothing).",
)
@click.option(
    "--queue-workers",
    is_flag=True,
    help="Make each queue-based worker (@Endpoint on a function, @remote) an endpoint with POST /<function>.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing flash.toml.")
def import_(directory: Path, out: Path | None, rewrite: bool, queue_workers: bool, force: bool) -> int:
    """Write flash.toml from a runpod-flash project (read by AST, never imported)."""
    from flash_pipeline.cli.importing import import_project

    return import_project(directory, out, rewrite=rewrite, force=force, queue_workers=queue_workers)
