"""The local supervisor's process: started in its own session (so Ctrl-C reaches only the CLI),
and stopped with every worker, by its process group, leaving nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from flash_pipeline.errors import ApiError
from flash_pipeline.targets.local.control import Paths, send
from flash_pipeline.targets.local.messages import ALREADY_RUNNING, Process


def start_supervisor(where: Paths, *, detach: bool) -> subprocess.Popen[bytes]:
    """Spawn the supervisor in its own session; wait until its socket answers."""
    where.state_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "RUNPOD_API_KEY"}
    # Detached, the supervisor writes its log itself (rotated, so a load test cannot fill the disk)
    # and only a crash's traceback arrives through this file; attached, its output is the
    # terminal's, and it ends with its CLI, however the CLI ends.
    output = open(where.log, "ab") if detach else None  # noqa: SIM115 - handed to the child
    mode = ["--log", str(where.log)] if detach else ["--attached"]
    proc = subprocess.Popen(
        # -P: the app's folder (the working directory) never goes on sys.path, so a user's
        # `pipeline.py` or `flash_pipeline/` cannot stand in for flash's own modules.
        [
            sys.executable,
            "-P",
            "-m",
            "flash_pipeline.targets.local.supervisor",
            str(where.state_dir),
            str(where.socket),
            *mode,
        ],
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        env=env,
        start_new_session=True,
    )
    if output:
        output.close()
    try:
        _wait_started(proc, where)
    except BaseException:  # Ctrl-C while it starts, or it never answered: it must not linger
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return proc


def _wait_started(proc: subprocess.Popen[bytes], where: Paths) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() == ALREADY_RUNNING:
            raise ApiError(
                "local supervisor",
                "another local supervisor already runs for this folder",
                hint="`flash status --target local` shows it; deploy again to update it",
            )
        if proc.poll() is not None:
            raise ApiError(
                "local supervisor",
                f"the local supervisor exited at start (code {proc.returncode})",
                hint=f"see {where.log}",
            )
        try:
            send(where, {"cmd": "status"}, timeout=2)
            return
        except ApiError:  # a poll, not a retry: the socket answers once the child has bound it
            time.sleep(0.05)
    raise ApiError("local supervisor", "the local supervisor did not start within 20s")


def stop(where: Paths, state: Process, *, wait: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """Stop the supervisor and every worker; escalate to SIGKILL of its process group if needed.

    `state` must come from the supervisor itself (read_state) or from starting it: its pid is
    then known to be the supervisor's, never a stranger's that reused a recorded number.
    """
    pid, pgid = state["pid"], state["pgid"]
    try:
        send(where, {"cmd": "stop"}, timeout=5)
    except ApiError:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while _alive(pid) and time.monotonic() < deadline:  # a poll: no event tells us a non-child exited
        sleep(0.05)
    # Stragglers: while any member of the group lives, the kernel never hands its id to a new
    # process, so whatever this reaches is ours.
    _signal_group(pgid, signal.SIGKILL)
    _wait_group_gone(pgid, sleep)
    where.state_file.unlink(missing_ok=True)
    where.socket.unlink(missing_ok=True)


def _wait_group_gone(pgid: int, sleep: Callable[[float], None], limit: float = 10.0) -> None:
    """Until no live process is left in the group (SIGKILL is delivered, not yet acted on, when
    killpg returns): whoever runs next sees nothing of it. Linux: read from /proc; else no wait."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and _group_members(pgid):  # a poll: /proc is the only witness
        sleep(0.02)


def _group_members(pgid: int) -> bool:
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid:
            return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child of ours counts as gone
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass
