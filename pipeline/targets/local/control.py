"""The local target, CLI side: start or reuse the supervisor, hand it the endpoints, gate, stop.

The supervisor (supervisor.py) runs in its own session so Ctrl-C in the terminal reaches
only the CLI, which then stops it cleanly; `--detach` leaves it running in the background.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import importlib.metadata
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flash_pipeline.builder.output import BuildResult
from flash_pipeline.config.envvars import callees_env, resolve_env
from flash_pipeline.config.model import Endpoint, Project
from flash_pipeline.errors import ApiError, BuildError
from flash_pipeline.targets.local.messages import Address, Process, Reply, Request, SpecBody, State

FIRST_PORT = 8080
ALREADY_RUNNING = 75  # the supervisor's exit code when another one holds the folder
_REQUIREMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Paths:
    state_dir: Path
    socket: Path
    log: Path

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"


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
        raise ApiError("local supervisor", str(answer.get("error")))
    return answer


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
        except ApiError as exc:
            if "address already in use" not in str(exc) or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def check_dependencies(project: Project) -> None:
    """Each endpoint's dependencies must be installed here: local workers use this Python."""
    for endpoint in project.endpoints:
        for requirement in endpoint.dependencies:
            match = _REQUIREMENT_NAME.match(requirement)
            if not match:
                continue
            try:
                importlib.metadata.distribution(match.group(0))
            except importlib.metadata.PackageNotFoundError:
                raise BuildError(
                    f"endpoint {endpoint.key} needs {match.group(0)}, which is not installed for the local target",
                    f"pip install '{requirement}' (local workers run with {sys.executable})",
                ) from None


def specs(
    project: Project,
    result: BuildResult,
    environ: Mapping[str, str],
    previous: Mapping[str, Address],
    avoid: Collection[int] = (),
) -> list[SpecBody]:
    """What the supervisor should run; ports stay those of the previous deploy when there was one.
    avoid: ports found taken since they were probed."""
    taken: set[int] = set(avoid)
    out: list[SpecBody] = []
    ports: dict[str, int] = {}
    built = {e.key: e for e in result.endpoints}
    for endpoint in project.endpoints:
        entry = built[endpoint.key]
        if entry.path is None:
            raise BuildError(
                f"endpoint {endpoint.key} sets image = {endpoint.image!r}; the local target runs only built endpoints",
                "remove image to run it locally",
            )
        known = previous.get(endpoint.key)
        port = (known["port"] if known else 0) or _next_free(taken)
        taken.add(port)
        ports[endpoint.key] = port
        env = resolve_env(endpoint, environ)  # callee URLs join it below, once every port is known
        digest = entry.digest or ""  # set for every built endpoint
        out.append(spec_body(endpoint, digest, env, build_dir=str(entry.path), port=port, source=project.source_dir))
    urls = {key: f"http://127.0.0.1:{port}" for key, port in ports.items()}
    for spec, endpoint in zip(out, project.endpoints, strict=True):
        # Locally no call key is needed: the balancers take no Authorization, as RunPod's do.
        spec["env"] = {**spec["env"], **callees_env(endpoint, urls)}
    return out


def spec_body(
    endpoint: Endpoint,
    digest: str,
    env: dict[str, str],
    *,
    build_dir: str = "",
    port: int = 0,
    source: Path | None = None,
) -> SpecBody:
    """The one builder of what the supervisor runs for an endpoint (a deploy), or compares (a plan:
    no build folder, no port)."""
    return {
        "key": endpoint.key,
        "name": endpoint.name,
        "build_dir": build_dir,
        "digest": digest,
        "env": env,
        "workers_min": endpoint.workers.min,
        "workers_max": endpoint.workers.max,
        "scaler_value": endpoint.scaler_value,
        "idle_timeout": endpoint.idle_timeout,
        "port": port,
        "source_dir": _shown(source) if source is not None else "",
        "timeout": min(endpoint.timeout, 330),  # the relay's and the drain's bound, as the worker's
    }


def _shown(folder: Path) -> str:
    """A folder as the user sees it: relative to where they run flash when below it, else absolute."""
    relative = os.path.relpath(folder)
    return folder.as_posix() if relative.startswith("..") else relative


def _next_free(taken: set[int]) -> int:
    port = FIRST_PORT
    while port in taken or not _port_free(port):
        port += 1
    return port


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the balancer binds: TIME_WAIT is free
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
