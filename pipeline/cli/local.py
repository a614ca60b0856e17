"""The local target's commands: deploy (foreground or detached), status, destroy."""

from __future__ import annotations

import click

from flash_pipeline.cli.common import echo_err, load
from flash_pipeline.errors import ConfigError


def deploy(config: str, detach: bool, timeout: float | None, fmt: str) -> int:
    from flash_pipeline import report
    from flash_pipeline.builder.output import build as build_project
    from flash_pipeline.targets.local import LocalProvider

    provider = LocalProvider()
    project = load(config, "nothing was deployed")
    try:
        result = build_project(project)
    except ConfigError as exc:
        exc.consequence = "nothing was deployed"
        raise
    # SIGTERM and SIGHUP (a closed terminal) during the deploy act as Ctrl-C: what it started is stopped.
    _signals_interrupt()
    outcome = provider.apply(project, result, detach=detach, timeout=timeout, echo=echo_err)
    click.echo(report.local_deploy_json(outcome) if fmt == "json" else report.local_deploy_text(outcome, detach=detach))
    if detach:
        return 0
    try:
        _wait_for_stop_signal()
    finally:
        click.echo("flash: stopping local endpoints ...", err=True)
        provider.destroy(project)
        click.echo("flash: stopped; no worker is left running", err=True)
    return 0


def _signals_interrupt() -> None:
    import signal

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def _wait_for_stop_signal() -> None:
    """Block until Ctrl-C (KeyboardInterrupt, exit 130), SIGTERM or SIGHUP (a clean exit 0)."""
    import signal
    import threading

    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stopped.set())
    while not stopped.wait(0.5):
        pass
