"""The RunPod target's commands: deploy (several configs at once), destroy."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from flash_pipeline.cli.common import confirm, echo_err, environment, load, runpod_provider
from flash_pipeline.errors import Interrupted

if TYPE_CHECKING:
    from flash_pipeline.targets.runpod.deploy import DeployOptions


def destroy(config: str, yes: bool, app: str | None = None, lock_timeout: float = 600.0) -> int:
    """Only endpoints that are provably this app's (exact name and owner markers) are deleted.
    `app`: several configs are destroyed in turn, so the lines name the app. `lock_timeout`: how
    long to wait for a running deploy's lease (as deploy's --lock-timeout)."""
    from flash_pipeline import report
    from flash_pipeline.targets.cancel import Cancel, run_interruptible

    project = load(config, "nothing was destroyed")  # the config first: it needs no key to be wrong
    provider = runpod_provider()
    doomed, spared = provider.destroy_targets(project)
    for name, endpoint_id in spared:
        click.echo(
            f"flash: left {name} ({endpoint_id}): it has no flash owner markers; deploy adopts it, or delete it in the RunPod console",
            err=True,
        )
    running = provider.lease_holders(project)
    if not doomed and not running:
        click.echo(f"flash: nothing of {app} to delete on RunPod" if app else "flash: nothing to delete on RunPod")
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
        deleted = run_interruptible(
            lambda: provider.destroy(project, doomed, cancel, echo_err, lease_wait=lock_timeout), cancel
        )
    except Interrupted:
        provider.release_all()
        what = f"destroy of {app}" if app else "destroy"
        click.echo(f"flash: {what} interrupted: list what is left with `flash status`; run destroy again to finish")
        raise
    click.echo("flash: deleted " + ", ".join(f"{name} ({endpoint_id})" for name, endpoint_id in deleted) + " on RunPod")
    return 0


def deploy(names: Sequence[str], options: DeployOptions, fmt: str) -> int:
    """Build (unless --no-build), provision and gate every config's endpoints, all configs at once."""
    from flash_pipeline import report
    from flash_pipeline.config.many import load_all
    from flash_pipeline.report.github import write_github_outputs
    from flash_pipeline.targets.cancel import Cancel, run_interruptible
    from flash_pipeline.targets.runpod.apply import DeployResult, deploy_configs

    projects = load_all(names, environment(), "nothing was deployed")  # then the key, before any build
    provider = runpod_provider()
    progress = report.Progress(lambda text: click.echo(text, err=True, nl=False), tty=sys.stderr.isatty())
    several = len(projects) > 1

    def done(result: DeployResult) -> None:  # each config's GitHub outputs as soon as it is finished
        name, outcomes = result.project.name, result.outcomes
        summary = report.runpod_summary_markdown(name, outcomes)
        write_github_outputs(outcomes, os.environ, summary, name if several else None)

    cancel = Cancel()
    try:
        results = run_interruptible(lambda: deploy_configs(projects, provider, options, progress, cancel, done), cancel)
    except Interrupted as stopped:
        provider.release_all()
        text = report.interrupted_text([(p.name, provider.outcomes_of(p)) for p in projects])
        if fmt != "json":
            click.echo(text)
            raise
        echo_err(text)  # for the person watching; stdout stays one JSON document (the Action reads it)
        why = Interrupted("flash was interrupted; each endpoint's row says how far it got")
        apps = [
            report.app_json(p.name, names[i], "runpod", report.runpod_deploy_json(provider.outcomes_of(p)), error=why)
            for i, p in enumerate(projects)
        ]
        click.echo(report.json_document("deploy", apps))
        raise stopped
    if fmt == "json":
        apps = [
            report.app_json(
                r.project.name,
                names[i],
                "runpod",
                report.runpod_deploy_json(r.outcomes),
                error=r.error,
                ok=not any(x.error for x in r.outcomes),
            )
            for i, r in enumerate(results)
        ]
        click.echo(report.json_document("deploy", apps))
    else:
        blocks = [
            report.runpod_deploy_text(r.outcomes, r.project.name if several else None) for r in results if r.outcomes
        ]
        click.echo("\n\n".join(blocks))
    errors = [(r.project.name, r.error) for r in results if r.error is not None]
    if errors and not several:
        raise errors[0][1]
    for app, error in errors:  # each app's failure, naming it
        echo_err(report.app_error_text(app, error))
    return max((error.exit_code for _, error in errors), default=0)  # the most serious failure decides
