"""The local target, CLI side: where a folder's supervisor lives, and the one conversation with it
over its unix socket (status, apply, abandon, stop: messages.py types them); /ping of a balancer.

specs.py says what the supervisor should run; process.py starts and stops its process. The
supervisor (supervisor.py) runs in its own session so Ctrl-C in the terminal reaches only the CLI,
which then stops it cleanly; `--detach` leaves it running in the background.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import os
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flash_pipeline.config.model import Project
from flash_pipeline.errors import ApiError, BuildError
from flash_pipeline.targets.local.messages import STATE_FILE, Address, Reply, Request, SpecBody, State


@dataclass(frozen=True)
class Paths:
    state_dir: Path
    socket: Path
    log: Path

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE


def paths(project: Project) -> Paths:
    state_dir = (
        project.root / ".flash" / (f"local-{project.environment}" if project.environment else "local")
    ).resolve()
    # The control socket lives in a private runtime folder, named after the state folder: short
    # (socket paths are limited to ~108 bytes), never pre-creatable by another user, and still
    # found after `.flash/` was removed under a running supervisor.
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:20]
    return Paths(state_dir, runtime_dir() / f"{digest}.sock", state_dir / "supervisor.log")


def runtime_dir() -> Path:
    """$XDG_RUNTIME_DIR/flash, else <tmp>/flash-<uid>: made 0700, used only if ours and private."""
    candidates = [Path(base) / "flash"] if (base := os.environ.get("XDG_RUNTIME_DIR")) else []
    candidates.append(Path(tempfile.gettempdir()) / f"flash-{os.getuid()}")
    for folder in candidates:
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            info = folder.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700:
            return folder
    raise ApiError(
        "local supervisor",
        f"no private folder for the control socket: {candidates[-1]} is not a 0700 folder of this user",
        hint=f"remove {candidates[-1]}, or set XDG_RUNTIME_DIR to a private folder",
    )


def read_state(where: Paths) -> State | None:
    """The running supervisor's facts (pid, endpoints), from the supervisor itself; None if none answers.

    Asking the socket, not trusting a pid in a file: a pid can be reused by an unrelated process.
    """
    try:
        answer = send(where, {"cmd": "status"}, timeout=5)
    except ApiError:
        return None
    endpoints: dict[str, Address] = {
        k: {"url": v["url"], "port": v["port"]} for k, v in answer.get("endpoints", {}).items()
    }
    pid = answer.get("pid", 0)
    return {"pid": pid, "pgid": answer.get("pgid", pid), "endpoints": endpoints}


@contextmanager
def deploy_lock(where: Paths) -> Iterator[None]:
    """Serialise deploys of one folder: the second waits, then updates the first one's supervisor."""
    try:
        where.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(where.state_dir / "deploy.lock", "a")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise BuildError(
            f"cannot write {exc.filename or where.state_dir}: {exc.strerror or exc}",
            "flash keeps the local target's state there: move what is in the way",
        ) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def send(where: Paths, request: Request, timeout: float = 60.0) -> Reply:
    """One command to the supervisor; ApiError if it does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(where.socket))
            conn.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer: Reply = json.loads(data)  # the JSON boundary: the supervisor answers a Reply
    except (OSError, ValueError) as exc:
        raise ApiError(
            "local supervisor",
            f"the local supervisor does not answer ({exc})",
            hint="run `flash destroy --target local --yes`, then deploy again",
        ) from None
    if not answer.get("ok"):
        if "port_taken" in answer:
            raise PortTaken("local supervisor", str(answer.get("error")))
        raise ApiError("local supervisor", str(answer.get("error")))
    return answer


class PortTaken(ApiError):
    """A port another process bound between choosing it here and binding it in the supervisor."""


def apply(
    where: Paths, make: Callable[[Mapping[str, Address]], list[SpecBody]], attempts: int = 3
) -> tuple[list[SpecBody], Reply]:
    """Hand the running supervisor the specs make(what runs now) gives, and its answer. A port
    another process took between choosing it here and binding it there is chosen again."""
    for attempt in range(1, attempts + 1):
        state = read_state(where)
        specs = make(state["endpoints"] if state else {})
        try:
            return specs, send(where, {"cmd": "apply", "endpoints": specs})
        except PortTaken:  # the supervisor stopped what that apply created: choose again (probing skips it now)
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def ping(url: str, timeout: float = 5.0) -> int | str:
    """GET {url}/ping: the status code, or why there was none."""
    host_port = url.removeprefix("http://")
    conn = http.client.HTTPConnection(host_port, timeout=timeout)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"connection error ({exc.strerror or type(exc).__name__})"
    finally:
        conn.close()
