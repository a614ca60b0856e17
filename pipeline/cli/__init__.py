"""The `flash` command: options in, stage calls out; the one error boundary and exit codes.

Heavy modules (jsonschema, jinja2, sanic, requests) are imported inside the commands so that
`flash --help` and `flash validate` start in a few tens of milliseconds.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from flash_pipeline import __version__
from flash_pipeline.cli import tools
from flash_pipeline.cli.common import (
    CONFIGS,
    DEPLOY_TARGET,
    ENVIRONMENT,
    TARGET,
    config_paths,
    echo_err,
    environment,
    load,
    one_config,
    pick_target,
    runpod_provider,
)
from flash_pipeline.errors import ConfigError, Exit, FlashError, Interrupted, UsageError

FORMATS = click.Choice(["text", "json", "github"])


BUILDER = click.option(
    "--builder",
    type=click.Choice(["auto", "docker", "podman", "buildah"]),
    envvar="FLASH_BUILDER",
    default="auto",
    show_default=True,
    help="Image builder for --push: auto takes docker (when its engine answers), then podman, then buildah.",
)
MAX_FLOOR = click.option(
    "--max-floor",
    type=click.FloatRange(min=0),
    metavar="USD",
    help="runpod: refuse a change that raises the app's idle cost floor above USD per hour (or [app] max_floor).",
)
ALLOW_UNAVAILABLE = click.option(
    "--allow-unavailable",
    is_flag=True,
    help="runpod: deploy even where the catalog shows no stock (or no host with the CUDA asked for).",
)
LOCK_TIMEOUT = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    metavar="S",
    default=600,
    show_default=True,
    help="runpod: seconds to wait while another deploy (or destroy) of the same app and environment runs.",
)


def text_or_json(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--format text|json` (json: the versioned document), as the commands that print one take it."""
    return click.option(
        "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help=help
    )


INSECURE = click.option(
    "--insecure-registry", is_flag=True, help="The registry speaks plain HTTP (a local or air-gapped registry)."
)


class _OutputClosed(Exception):
    """The reader of flash's output went away (`flash logs | head`); not an OSError, so click's own
    handling (exit 1, the table's code for a bug) never sees it."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _OutputClosed() from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flash")
@click.option("-v", "--verbose", is_flag=True, help="Log what flash does (to stderr).")
def cli(verbose: bool) -> None:
    """Build and deploy RunPod load-balanced endpoints from flash.toml.

    Start with `flash init`, check with `flash validate`. RunPod's deprecated
    runpod-flash also installs a `flash` script: uninstall it or use `python -P -m flash_pipeline`.
    """
    if verbose:  # logging costs start-up time; only load it when asked to talk
        import logging

        logging.basicConfig(level=logging.DEBUG, format="flash: %(message)s")


@cli.command()
@click.argument("files", nargs=-1, metavar="[FILE|GLOB]...", type=click.Path(dir_okay=True, path_type=str))
@CONFIGS
@click.option(
    "--format",
    "fmt",
    type=FORMATS,
    default=None,
    help="Output format. Default: text (plus annotations in GitHub Actions).",
)
@ENVIRONMENT
@click.option("--fix", is_flag=True, help="Apply the fixes that are safe (comments and layout kept), then report.")
@click.option("--diff", is_flag=True, help="With --fix: show the fixes as a diff; write nothing.")
def validate(files: tuple[str, ...], configs: tuple[str, ...], fmt: str | None, fix: bool, diff: bool) -> int:
    """Check config files; report every problem with file:line:col. FILE|GLOB... is the same as -c
    (pre-commit passes the staged files so)."""
    from flash_pipeline import report
    from flash_pipeline.builder.handlers import with_sources
    from flash_pipeline.config.validate import check_file

    names = config_paths([*configs, *files])
    results = [with_sources(check_file(Path(name), name, environment())) for name in names]
    unfixed = diff and any(r.diagnostics for r in results)  # --diff writes nothing: the files still fail
    if fix or diff:
        from flash_pipeline.cli.fix import fix_files

        results = fix_files(results, write=not diff)
    if fmt == "json":
        click.echo(report.validation_json(results))
    elif fmt == "github":
        click.echo(report.validation_github(results) or report.summary(results))
    else:
        in_actions = fmt is None and os.environ.get("GITHUB_ACTIONS") == "true"
        click.echo(report.validation_text(results, annotations=in_actions))
    return Exit.INVALID if unfixed or any(r.diagnostics for r in results) else Exit.OK


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def init(directory: Path, force: bool) -> int:
    """Write flash.toml and a runnable example app into DIRECTORY."""
    from flash_pipeline.config.scaffold import scaffold

    written = scaffold(directory, force=force)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: flash validate -c {directory / 'flash.toml'}")
    return 0


@cli.command()
@CONFIGS
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder. Default: .flash/build next to the config.",
)
@click.option("--push", is_flag=True, help="Build and push each endpoint's image to app.registry (linux/amd64).")
@BUILDER
@INSECURE
@ENVIRONMENT
def build(configs: tuple[str, ...], out: Path | None, push: bool, builder: str, insecure_registry: bool) -> int:
    """Render workers, Dockerfiles and manifest.json for every endpoint. Several -c (or globs): each app in turn."""
    from flash_pipeline.cli.build import build_one
    from flash_pipeline.cli.many import run_each

    names = config_paths(configs)
    if out is not None and len(names) > 1:
        raise UsageError(
            f"-o names one output folder, but -c names {len(names)} configs: {', '.join(names)}",
            "leave -o out (each config builds into .flash/build next to it), or pass one -c",
        )
    return run_each(
        names, "nothing was built", lambda config, _: build_one(config, out, push, builder, insecure_registry)
    )


@cli.command()
@CONFIGS
@DEPLOY_TARGET
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option("--detach", is_flag=True, help="local: return once healthy; keep serving in the background.")
@click.option("--prune", is_flag=True, help="runpod: delete {app}-… endpoints the config no longer has.")
@click.option("--no-rollback", is_flag=True, help="runpod: leave a failed update as it is.")
@click.option("--no-build", is_flag=True, help="runpod: the images were built and pushed already (e.g. by CI).")
@click.option("--push", is_flag=True, help="runpod: build and push the images first (linux/amd64).")
@BUILDER
@INSECURE
@click.option(
    "--no-registry-check",
    is_flag=True,
    envvar="FLASH_NO_REGISTRY_CHECK",
    help="runpod: do not ask the registry whether the images are there (for registries flash cannot query).",
)
@click.option(
    "--health-timeout",
    type=click.FloatRange(min=0),
    metavar="S",
    help="Seconds each endpoint may take to answer /ping 200 (default: its health.timeout).",
)
@click.option("--timeout", "old_timeout", type=click.FloatRange(min=0), hidden=True)  # deprecated: --health-timeout
@LOCK_TIMEOUT
@text_or_json("json: the versioned document of docs/commands.md (with --dry-run: the plan's).")
@MAX_FLOOR
@ALLOW_UNAVAILABLE
@ENVIRONMENT
def deploy(
    configs: tuple[str, ...],
    target: str | None,
    dry_run: bool,
    detach: bool,
    prune: bool,
    no_rollback: bool,
    no_build: bool,
    push: bool,
    builder: str,
    insecure_registry: bool,
    no_registry_check: bool,
    health_timeout: float | None,
    old_timeout: float | None,
    lock_timeout: float,
    fmt: str,
    max_floor: float | None,
    allow_unavailable: bool,
) -> int:
    """Build, provision every endpoint, wait for /ping 200, print the URLs. Several -c: all, in parallel."""
    from flash_pipeline.cli.plan import plan as run_plan

    if old_timeout is not None:
        echo_err(
            "flash: deploy --timeout is deprecated; it is now --health-timeout "
            "(`--timeout` is `flash call`'s limit on one request)"
        )
        health_timeout = old_timeout if health_timeout is None else health_timeout
    names = config_paths(configs)
    target = pick_target(target, names[0])
    if dry_run:
        return run_plan(names, target, fmt, False, max_floor=max_floor, allow_unavailable=allow_unavailable)
    if target == "local":
        from flash_pipeline.cli import local as local_cli

        return local_cli.deploy(one_config(names, "the local target"), detach, health_timeout, fmt)
    from flash_pipeline.cli import runpod as runpod_cli
    from flash_pipeline.targets.runpod.deploy import DeployOptions

    options = DeployOptions(
        build=not no_build,
        push=push,
        prune=prune,
        rollback=not no_rollback,
        timeout=health_timeout,
        lease_wait=lock_timeout,
        builder=builder,
        insecure=insecure_registry,
        registry_check=not no_registry_check,
        allow_unavailable=allow_unavailable,
        max_floor=max_floor,
    )
    return runpod_cli.deploy(names, options, fmt)


@cli.command()
@CONFIGS
@TARGET
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="json: the versioned document of docs/commands.md.",
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 10 when there are changes, 0 when none.")
@MAX_FLOOR
@ALLOW_UNAVAILABLE
@ENVIRONMENT
def plan(
    configs: tuple[str, ...],
    target: str | None,
    fmt: str,
    detailed_exitcode: bool,
    max_floor: float | None,
    allow_unavailable: bool,
) -> int:
    """What deploy would create, update, keep or orphan, and what it costs; changes nothing. Several -c (or globs): all, in parallel."""
    from flash_pipeline.cli.plan import plan as run_plan

    names = config_paths(configs)
    target = pick_target(target, names[0])
    return run_plan(names, target, fmt, detailed_exitcode, max_floor=max_floor, allow_unavailable=allow_unavailable)


@cli.command()
@CONFIGS
@TARGET
@text_or_json("json: the versioned document of docs/commands.md.")
@ENVIRONMENT
def status(configs: tuple[str, ...], target: str | None, fmt: str) -> int:
    """Each endpoint's id, URL, workers and /ping. Several -c (or globs): each app in turn."""
    from flash_pipeline.cli.status import status as show

    return show(configs, target, fmt)


@cli.command()
@CONFIGS
@TARGET
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@LOCK_TIMEOUT
@ENVIRONMENT
def destroy(configs: tuple[str, ...], target: str | None, yes: bool, lock_timeout: float) -> int:
    """Delete the app's endpoints, listing each one (stop them, on the local target). Several -c (or globs): each app in turn."""
    from flash_pipeline.cli.many import run_each

    return run_each(
        configs,
        "nothing was destroyed",
        lambda config, app: _destroy(config, pick_target(target, config), yes, app, lock_timeout),
    )


def _destroy(config: str, target: str, yes: bool, app: str | None, lock_timeout: float) -> int:
    if target == "runpod":
        from flash_pipeline.cli import runpod as runpod_cli

        return runpod_cli.destroy(config, yes, app, lock_timeout)
    from flash_pipeline.cli import local as local_cli

    return local_cli.destroy(config, yes, app)


@cli.command()
@CONFIGS
@ENVIRONMENT
def dev(configs: tuple[str, ...]) -> int:
    """Run the app locally in the foreground; reload an endpoint when its files, settings or env change."""
    from flash_pipeline.cli.dev import dev as run_dev

    return run_dev(one_config(configs))


@cli.command()
@CONFIGS
@ENVIRONMENT
def unlock(configs: tuple[str, ...]) -> int:
    """Break the deploy lease of this app (after a deploy that crashed or was killed). Several -c (or globs): each app in turn."""
    from flash_pipeline.cli.many import run_each

    def one(config: str, app: str | None) -> int:
        project = load(config, "")
        holder = runpod_provider().unlock(project)
        of = f" of {app}" if app else ""
        click.echo(
            f"flash: removed the deploy lease{of} held by {holder}" if holder else f"flash: no deploy lease{of} is held"
        )
        return 0

    return run_each(configs, "", one)


@cli.command()
def schema() -> int:
    """Print the JSON Schema of flash.toml (for editor completion)."""
    from flash_pipeline.resources import resource_path

    click.echo(resource_path("schemas", "flash.schema.json").read_text(encoding="utf-8"), nl=False)
    return 0


def _print_error(exc: FlashError) -> None:
    from flash_pipeline import report

    if isinstance(exc, ConfigError):
        click.echo(report.config_error_text(exc.diagnostics, exc.consequence), err=True)
    else:
        click.echo(report.error_text(str(exc), getattr(exc, "hint", "")), err=True)


for _command in tools.cli.commands.values():
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `flash` script: run the command, map the outcome to an exit code."""
    import signal
    import threading

    # SIGTERM is Ctrl-C for every command (exit 130, as the table says), not only for those that
    # install their own handler (deploy, destroy); the previous handler comes back at the end.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code = cli.main(args=argv, prog_name="flash", standalone_mode=False)
    except Interrupted:
        click.echo("flash: interrupted", err=True)
        code = Exit.INTERRUPTED
    except FlashError as exc:
        _print_error(exc)
        code = exc.exit_code
    except click.exceptions.Abort:
        click.echo("flash: interrupted", err=True)
        code = Exit.INTERRUPTED
    except KeyboardInterrupt:
        click.echo("\nflash: interrupted", err=True)
        code = Exit.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except _OutputClosed:  # stopped from outside, as by SIGPIPE: quietly, and nothing more is written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = Exit.INTERRUPTED
    except Exception:  # a bug: show everything needed to report it
        traceback.print_exc()
        click.echo("flash: internal error (a bug in flash); please report it with the traceback above", err=True)
        code = Exit.BUG
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(int(code) if isinstance(code, int) else Exit.OK)


def _terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
