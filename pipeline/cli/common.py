"""What every command shares: the selected environment, loading a config, confirmation, stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from flash_pipeline.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from flash_pipeline.config.model import Project
    from flash_pipeline.targets.runpod.provider import RunpodProvider


TARGETS = click.Choice(["runpod", "local"])
# -c is the same option in every command that reads configs: repeatable, files and globs (`**`
# included, expanded by flash); config_paths() resolves it, one_config() where a command acts on one app.
CONFIGS = click.option(
    "-c",
    "--config",
    "configs",
    multiple=True,
    metavar="FILE|GLOB",
    help="Config file or glob (repeatable). Default: flash.toml.",
)
_TARGET_HELP = (
    "Default: the local deployment of this config when one runs and no RunPod key is configured, "
    "else runpod (or set FLASH_TARGET)."
)
# --target, or FLASH_TARGET; unset, pick_target() follows the user.
TARGET = click.option("--target", type=TARGETS, envvar="FLASH_TARGET", default=None, help=_TARGET_HELP)
DEPLOY_TARGET = click.option(
    "--target", type=TARGETS, envvar="FLASH_TARGET", default=None, help="Where to deploy. " + _TARGET_HELP
)


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


def config_paths(patterns: Sequence[str]) -> list[str]:
    """The config paths -c names, globs expanded in a stable order (flash.toml when none is given);
    a glob that matches nothing stays, to be reported as a missing file."""
    from flash_pipeline.config.many import expand

    return expand(patterns) or ["flash.toml"]


def one_config(patterns: Sequence[str], what: str = "") -> str:
    """The one config of a command that acts on one app; several are a usage error naming them."""
    names = config_paths(patterns)
    if len(names) > 1:
        what = what or f"flash {click.get_current_context().info_name}"
        raise UsageError(
            f"{what} acts on one app, but -c names {len(names)} configs: {', '.join(names)}",
            "pass one -c (a file, or a glob that matches one config)",
        )
    return names[0]


def pick_target(target: str | None, config: str) -> str:
    """The target a command without --target (and FLASH_TARGET) means: the local deployment of this
    config when one runs and no RunPod key is configured; else RunPod, as before, with a hint
    naming --target local when a local deployment runs."""
    if target is not None:
        return target
    if not _local_running(config):
        return "runpod"
    if not _runpod_credentials():
        return "local"
    echo_err(
        "flash: a local deployment of this config is running; pass --target local (or set FLASH_TARGET=local) for it"
    )
    return "runpod"


def _local_running(config: str) -> bool:
    from flash_pipeline.errors import FlashError

    try:
        from flash_pipeline.config.validate import validate_file
        from flash_pipeline.targets.local import control

        project = validate_file(Path(config), config, environment())
        return control.read_state(control.paths(project)) is not None
    except FlashError:
        return False


def _runpod_credentials() -> bool:
    import os

    from flash_pipeline.errors import ApiError
    from flash_pipeline.targets.runpod.api import api_key

    try:
        api_key(os.environ, Path.home())
    except ApiError:
        return False
    return True


def runpod_provider() -> RunpodProvider:
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
