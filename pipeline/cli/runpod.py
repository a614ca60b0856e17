"""The RunPod target's commands: deploy (several configs at once), destroy."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from flash_pipeline.cli.common import confirm, echo_err, environment, load, runpod_provider
from flash_pipeline.errors import Interrupted


def destroy(config: str, yes: bool) -> int:
    """Only endpoints that are provably this app's (exact name and owner markers) are deleted."""
    from flash_pipeline import report
    from flash_pipeline.targets.cancel import Cancel, run_interruptible

    provider = runpod_provider()
    project = load(config, "nothing was destroyed")
    doomed, spared = provider.destroy_targets(project)
    for name, endpoint_id in spared:
        click.echo(
            f"flash: left {name} ({endpoint_id}): it has no flash owner markers; deploy adopts it, or delete it in the RunPod console",
            err=True,
        )
    running = provider.lease_holders(project)
    if not doomed and not running:
        click.echo("flash: nothing to delete on RunPod")
        return 0
    if doomed:
        click.echo(report.destroy_list(project.name, doomed))
    if running:  # destroy lists again under the lease: what that deploy makes goes too
        click.echo(
            f"flash: a deploy of {project.name} is running ({running}); destroy waits for it, then deletes what it made"
        )
    confirm(yes, f"Delete these {len(doomed)} RunPod endpoint(s)?" if doomed else "Delete what that deploy makes?")
    cancel = Cancel()
    try:
        deleted = run_interruptible(lambda: provider.destroy(project, doomed, cancel, echo_err), cancel)
    except Interrupted:
        provider.release_all()
        click.echo("flash: destroy interrupted: list what is left with `flash status`; run destroy again to finish")
        raise
    click.echo("flash: deleted " + ", ".join(f"{name} ({endpoint_id})" for name, endpoint_id in deleted) + " on RunPod")
    return 0


def deploy(configs: tuple[str, ...], options: dict[str, Any], lock_timeout: float, fmt: str) -> int:
    """Build (unless --no-build), provision and gate every config's endpoints, all configs at once."""
    from flash_pipeline import report
    from flash_pipeline.config.many import expand, load_all
    from flash_pipeline.targets.cancel import Cancel, run_interruptible
    from flash_pipeline.targets.runpod.apply import deploy_configs

    provider = runpod_provider()
    projects = load_all(expand(configs), environment(), "nothing was deployed")
    progress = report.Progress(lambda text: click.echo(text, err=True, nl=False), tty=sys.stderr.isatty())
    options = {**options, "lease_wait": lock_timeout}
    cancel, journal = Cancel(), []  # type: ignore[var-annotated]
    try:
        results = run_interruptible(
            lambda: deploy_configs(
                projects, provider, options, progress, os.environ, journal, cancel, report.runpod_summary_markdown
            ),
            cancel,
        )
    except Interrupted:
        provider.release_all()
        click.echo(report.interrupted_text([(p.name, outcomes) for p, outcomes in journal]))
        raise
    if fmt == "json":
        click.echo(report.runpod_deploys_json([(p.name, outcomes) for p, outcomes, _ in results]))
    else:
        click.echo("\n\n".join(report.runpod_deploy_text(outcomes) for _, outcomes, _ in results if outcomes))
    errors = [error for _, _, error in results if error is not None]
    if errors:
        raise max(errors, key=lambda e: e.exit_code)  # the most serious failure decides the exit code
    return 0
