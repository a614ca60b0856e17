"""What every command shares: the selected environment, loading a config, confirmation, stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flash_pipeline.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from flash_pipeline.config.model import Project


TARGETS = click.Choice(["runpod", "local"])
CONFIG = click.option("-c", "--config", default="flash.toml", show_default=True, help="Config file.")


def _remember_environment(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta["flash.environment"] = value or None  # read by load(): one option, every command


ENVIRONMENT = click.option(
    "--env",
    envvar="FLASH_ENV",
    default=None,
    expose_value=False,
    callback=_remember_environment,
    help="Select an [environments.<name>] overlay (or set FLASH_ENV).",
)


def environment() -> str | None:
    value: str | None = click.get_current_context().meta.get("flash.environment")
    return value


def echo_err(line: str) -> None:
    click.echo(line, err=True)


def runpod_provider() -> Any:
    """The RunPod provider; credentials are checked here, before any build work."""
    from flash_pipeline.targets.runpod.provider import RunpodProvider

    return RunpodProvider.from_environment()


def load(config: str, consequence: str) -> Project:
    """Validate the config, or raise ConfigError saying what did not happen."""
    from flash_pipeline.config.validate import validate_file

    try:
        return validate_file(Path(config), config, environment())
    except ConfigError as exc:
        exc.consequence = consequence
        raise


def confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("refusing to destroy without confirmation: stdin is not a terminal", "pass --yes")
    click.confirm(question, abort=True)


def write_atomically(path: Path, text: str) -> None:
    """Write a whole file or nothing: an interrupted write leaves the old file, never half a new one."""
    import os
    import tempfile

    from flash_pipeline.errors import BuildError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        raise BuildError(f"cannot write {path}: {exc.strerror or exc}", "check the folder's permissions") from None
