"""The local target's commands: deploy (foreground or detached), status, destroy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from flash_pipeline.cli.common import confirm, echo_err, load
from flash_pipeline.errors import ConfigError

if TYPE_CHECKING:
    from flash_pipeline.targets.local.control import Paths


def deploy(config: str, detach: bool, timeout: float | None, fmt: str) -> int:
    from flash_pipeline import report
    from flash_pipeline.builder.output import build as build_project
    from flash_pipeline.targets.local.control import paths
    from flash_pipeline.targets.local.deploy import deploy_local

    project = load(config, "nothing was deployed")
    try:
        result = build_project(project)
    except ConfigError as exc:
        exc.consequence = "nothing was deployed"
        raise
    # SIGTERM and SIGHUP (a closed terminal) during the deploy act as Ctrl-C: what it started is stopped.
    _signals_interrupt()
    outcome = deploy_local(project, result, detach=detach, timeout=timeout, echo=echo_err)
    interrupted = True
    try:  # from here on, a foreground run ends in finish(), however it ends
        if fmt == "json":
            entry = report.app_json(project.name, config, "local", report.local_deploy_json(outcome))
            click.echo(report.json_document("deploy", [entry]))
        else:
            click.echo(report.local_deploy_text(outcome, detach=detach))
        if not detach:
            _wait_for_stop_signal()
        interrupted = False
    finally:
        if not detach:
            finish(paths(project), outcome.started_supervisor, outcome.supervisor_pid, interrupted=interrupted)
    return 0


def finish(where: Paths, started: bool, pid: int, *, interrupted: bool) -> None:
    """The end of a foreground run: stop the supervisor it started (Ctrl-C: within about a second);
    leave one it only attached to (a --detach deploy's) serving, and say so."""
    from flash_pipeline.targets.local import control, process
    from flash_pipeline.targets.local.deploy import STOP_GRACE

    if not started:
        click.echo(
            f"flash: detached from the local deployment it attached to (supervisor pid {pid}); it keeps serving "
            "(`flash destroy --target local` stops it)",
            err=True,
        )
        return
    click.echo("flash: stopping local endpoints ...", err=True)
    process.stop(
        where, control.read_state(where) or {"pid": pid, "pgid": pid}, wait=STOP_GRACE if interrupted else 30.0
    )
    click.echo("flash: stopped; no worker is left running", err=True)


def _signals_interrupt() -> None:
    import signal

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def _wait_for_stop_signal() -> None:
    """Block until Ctrl-C, SIGTERM or SIGHUP; each ends in KeyboardInterrupt (exit 130, as the table says)."""
    import signal
    import threading

    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stopped.set())
    while not stopped.wait(0.5):
        pass
    raise KeyboardInterrupt


def destroy(config: str, yes: bool, app: str | None = None) -> int:
    """Stop every local endpoint of the app (`app`: several configs, so the line names it)."""
    from flash_pipeline.targets.local.deploy import local_destroy

    project = load(config, "nothing was destroyed")
    confirm(yes, f"Stop every local endpoint of {project.name}?")
    keys = local_destroy(project)
    click.echo(
        f"flash: stopped {', '.join(keys)} on the local target"
        if keys
        else f"flash: nothing of {project.name} was running on the local target"
        if app
        else "flash: nothing was running on the local target"
    )
    return 0
