"""The GitHub Action's step: run one flash command, print its report, expose outputs.

Inputs arrive as FLASH_COMMAND, FLASH_CONFIG (a path or a glob, for every command), FLASH_TARGET,
FLASH_ENV (read by flash itself) and FLASH_ARGS (split as a shell would: `--health-timeout '60'`).
Whatever flash's exit code, the report is printed and the outputs are written before this step
exits with that same code. Runs as is outside GitHub too (the tests do): without GITHUB_OUTPUT
or GITHUB_STEP_SUMMARY nothing is written.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

COMMANDS = ("validate", "plan", "deploy", "destroy")
GONE = ("deleted", "orphaned", "failed", "pending")  # no live endpoint behind these ids


def _append(variable: str, text: str) -> None:
    target = os.environ.get(variable)
    if target:
        with Path(target).open("a", encoding="utf-8") as handle:
            handle.write(text)


def _flash(words: list[str]) -> subprocess.CompletedProcess[str]:
    """flash with stdout captured (the report, printed by the caller) and stderr passed through.

    A cancelled workflow (SIGINT or SIGTERM to this step, or to its process group) is handed to
    flash once, as a Ctrl-C: flash stops at a safe point, releases its lease and prints its report,
    which is printed here with the outputs written as on any other exit. flash runs in a session of
    its own so that a signal to the group reaches it only through here (twice would make it exit at
    once, without its report); subprocess.run would instead kill it 0.25 s after a SIGINT."""
    try:
        child = subprocess.Popen(["flash", *words], stdout=subprocess.PIPE, text=True, start_new_session=True)
    except FileNotFoundError:
        print("flash action: the flash command is not installed (the step before installs it)", file=sys.stderr)
        return subprocess.CompletedProcess(["flash", *words], 127, "")

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stdout, _ = child.communicate()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return subprocess.CompletedProcess(["flash", *words], child.returncode, stdout)


def endpoints_output(report: str) -> str:
    """`endpoints=` for $GITHUB_OUTPUT: the live endpoints a `deploy --format json` report names
    (version 1: {"apps": [{"app", "endpoints": {key: {...}}}]}; on a failed deploy too), keyed by
    endpoint, or "app/endpoint" when several configs were deployed (as action.yml documents);
    `{}` when there is no report (flash stopped before deploying)."""
    try:
        apps = [a for a in json.loads(report).get("apps") or [] if isinstance(a, dict)]
    except (ValueError, AttributeError):
        apps = []
    live = {
        (f"{app.get('app')}/{key}" if len(apps) > 1 else key): {"url": item.get("url"), "id": item.get("id")}
        for app in apps
        for key, item in (app.get("endpoints") or {}).items()
        if isinstance(item, dict) and item.get("id") and item.get("action") not in GONE
    }
    return "endpoints=" + json.dumps(live, separators=(",", ":")) + "\n"


def main() -> int:
    command = os.environ.get("FLASH_COMMAND") or "validate"
    config = os.environ.get("FLASH_CONFIG") or "flash.toml"
    target = os.environ.get("FLASH_TARGET") or "runpod"
    try:
        extra = shlex.split(os.environ.get("FLASH_ARGS") or "")
    except ValueError as exc:
        print(f"flash action: the args input cannot be split as a shell would: {exc}", file=sys.stderr)
        return 2
    if command not in COMMANDS:
        print(f"flash action: unknown command '{command}' (validate, plan, deploy or destroy)", file=sys.stderr)
        return 2
    configs = ["-c", config]  # a glob is expanded by flash, the same way for every command
    if command == "validate":
        # GITHUB_ACTIONS=true makes flash add ::error annotations to its text report.
        done = _flash(["validate", *configs, *extra])
        print(done.stdout, end="")
        return done.returncode
    if command == "plan":
        done = _flash(["plan", *configs, "--target", target, "--format", "markdown", "--detailed-exitcode", *extra])
        print(done.stdout, end="")
        _append("GITHUB_STEP_SUMMARY", done.stdout)
        if done.returncode in (0, 10):
            _append("GITHUB_OUTPUT", f"changes={'true' if done.returncode == 10 else 'false'}\n")
            return 0
        return done.returncode
    if command == "deploy":
        done = _flash(["deploy", *configs, "--target", target, "--detach", "--format", "json", *extra])
        print(done.stdout, end="")
        _append("GITHUB_OUTPUT", endpoints_output(done.stdout))
        return done.returncode
    done = _flash(["destroy", *configs, "--target", target, "--yes", *extra])
    print(done.stdout, end="")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
