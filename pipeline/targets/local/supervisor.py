"""The local target's supervisor process: hosts every endpoint, obeys the CLI over a unix socket.

Run as `python -m flash_pipeline.targets.local.supervisor STATE_DIR SOCKET [--attached]`. Commands are
JSON lines: {"cmd": "apply", "endpoints": [...]}, {"cmd": "status"}, {"cmd": "stop"}, and
{"cmd": "abandon", "rollouts": [keys], "created": [keys]} (an interrupted deploy's new workers). Resolved env
values arrive over the socket and live in memory only: nothing secret is written under .flash/.

One supervisor per state folder (an exclusive lock it holds while it lives). SIGTERM, SIGINT and
SIGHUP stop every worker before it exits; `--attached` (a foreground deploy) also stops it when
the CLI that started it is gone, however it died. If `.flash/` is removed under it, it writes its
state file again, so status and destroy still find it (the socket lives in a private runtime
folder, not under .flash/).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from flash_pipeline.errors import BuildError
from flash_pipeline.files import write_atomically
from flash_pipeline.targets.local.balancer import Endpoint, EndpointSpec
from flash_pipeline.targets.local.messages import ALREADY_RUNNING, STATE_FILE, EndpointStatus, Reply, Request, StateFile

OUTPUT = logging.getLogger("flash.local")  # worker output and supervisor events, one line each
LOG_BYTES, LOG_BACKUPS = 10 * 1024 * 1024, 2  # a detached supervisor's log: at most ~30 MB on disk
LOCK_FILE = "supervisor.lock"


class RateLimited(logging.Filter):
    """One record per message template per interval: an error repeated a million times (accept()
    out of file descriptors under a burst) costs one log line every `interval` seconds."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self.last: dict[tuple[str, Any], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == OUTPUT.name:
            return True  # worker output and supervisor events: every line
        key, now = (record.name, record.msg), time.monotonic()
        if now - self.last.get(key, -self.interval) < self.interval:
            return False
        if len(self.last) > 1000:
            self.last.clear()
        self.last[key] = now
        return True


class _PortInUse(Exception):
    """A new endpoint's port was taken between the CLI's probe and the balancer's bind."""

    def __init__(self, port: int) -> None:
        self.port = port
        super().__init__(f"port {port} is taken")


class Supervisor:
    def __init__(self, state_dir: Path, socket_path: Path, *, attached: bool = False) -> None:
        self.state_dir = state_dir
        self.socket_path = socket_path
        self.attached = attached
        self.endpoints: dict[str, Endpoint] = {}
        self.done = asyncio.Event()
        # What an apply that failed part-way had already changed (removed, updated): the CLI applies
        # again (a port taken meanwhile), and that apply's report must still say so, not "unchanged".
        self.unreported: dict[str, str] = {}

    @staticmethod
    def echo(line: str) -> None:
        OUTPUT.info(line)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self.done.set)
        self.socket_path.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(self._control, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)  # only this user may drive the supervisor (its folder is 0700 too)
        self._write_state()
        watcher = asyncio.create_task(self._watch())
        try:
            await self.done.wait()
        finally:
            watcher.cancel()
            server.close()
            await asyncio.gather(*(e.stop() for e in self.endpoints.values()), return_exceptions=True)
            self.socket_path.unlink(missing_ok=True)
            (self.state_dir / STATE_FILE).unlink(missing_ok=True)
            self.echo("supervisor | stopped every worker")

    async def _watch(self) -> None:
        """Stop with an attached CLI that is gone; keep the state file there while we live."""
        parent = os.getppid()
        while True:  # a poll, not a retry: no event says the parent died or the file was removed
            await asyncio.sleep(0.5)
            if self.attached and os.getppid() != parent:
                self.echo("supervisor | the deploy that started it is gone; stopping")
                self.done.set()
                return
            if not (self.state_dir / STATE_FILE).exists():
                try:
                    self._write_state()
                except BuildError:  # the folder is unwritable now: try again on the next look
                    pass

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            request: Request = json.loads(line)  # the JSON boundary: control.send sends a Request
            answer = await self._handle(request)
        except Exception as exc:  # the CLI shows this; the supervisor keeps serving
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()
        writer.close()

    async def _handle(self, request: Request) -> Reply:
        if "cmd" not in request:  # answered as unknown, like any other command flash does not send
            return {"ok": False, "error": "unknown command None"}
        if request["cmd"] == "apply":
            try:
                changes = await self._apply([EndpointSpec.from_dict(e) for e in request["endpoints"]])
            except _PortInUse as exc:  # the CLI picks another free port and applies again
                return {"ok": False, "error": f"port {exc.port} is taken", "port_taken": exc.port}
            self._write_state()
            return {"ok": True, "changes": changes, "endpoints": self._status()}
        if request["cmd"] == "status":
            return {"ok": True, "pid": os.getpid(), "pgid": os.getpgid(0), "endpoints": self._status()}
        if request["cmd"] == "stop":
            self.done.set()
            return {"ok": True}
        if request["cmd"] == "abandon":  # an interrupted deploy: drop what it started, keep what served before
            for key in request["rollouts"]:
                if key in self.endpoints:
                    await self.endpoints[key].abandon("the deploy that started it was interrupted")
            for key in request["created"]:
                if key in self.endpoints:
                    await self.endpoints.pop(key).stop()
            self._write_state()
            return {"ok": True, "endpoints": self._status()}
        return {"ok": False, "error": f"unknown command {request.get('cmd')!r}"}

    async def _apply(self, specs: list[EndpointSpec]) -> dict[str, str]:
        """Apply the specs; the report says what changed since the last apply that succeeded. An
        apply that fails stops what it created (a port taken meanwhile: the CLI chooses another and
        applies again, and those endpoints are then reported created, not unchanged)."""
        changes: dict[str, str] = {}
        made: list[str] = []
        wanted = {s.key: s for s in specs}
        try:
            for key in [k for k in self.endpoints if k not in wanted]:
                await self.endpoints.pop(key).stop()
                changes[key] = "removed"
            for key, spec in wanted.items():
                if key in self.endpoints:
                    changed = await self.endpoints[key].replace_spec(spec)
                    changes[key] = "updated" if changed else "unchanged"
                else:
                    endpoint = Endpoint(spec, self.echo)
                    try:
                        await endpoint.start()
                    except BaseException as exc:
                        await endpoint.stop()
                        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
                            raise _PortInUse(spec.port) from exc
                        raise
                    self.endpoints[key] = endpoint
                    made.append(key)
                    changes[key] = "created"
        except BaseException:
            for key in made:
                await self.endpoints.pop(key).stop()
            self.unreported |= {k: v for k, v in changes.items() if v in ("removed", "updated")}
            raise
        earlier, self.unreported = self.unreported, {}
        return {**{k: v for k, v in earlier.items() if k not in changes}, **changes} | {
            k: earlier[k] for k, v in changes.items() if v == "unchanged" and k in earlier
        }

    def _status(self) -> dict[str, EndpointStatus]:
        return {key: endpoint.status() for key, endpoint in self.endpoints.items()}

    def _write_state(self) -> None:
        """Non-secret facts for `flash status/destroy`: pid, socket, ports. Atomic replace."""
        state: StateFile = {
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "socket": str(self.socket_path),
            "endpoints": {
                k: {"url": f"http://127.0.0.1:{e.spec.port}", "port": e.spec.port} for k, e in self.endpoints.items()
            },
        }
        write_atomically(self.state_dir / STATE_FILE, json.dumps(state, indent=2))


def _configure_logging(path: Path | None) -> None:
    """One handler for everything. Detached: a rotated file (a load test cannot fill the disk);
    attached: the terminal. Library warnings (asyncio, aiohttp) are rate-limited; worker output is not."""
    from logging.handlers import RotatingFileHandler

    handler: logging.Handler = (
        RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
        if path
        else logging.StreamHandler(sys.stdout)
    )
    handler.setFormatter(_Format(stamped=path is not None))
    handler.addFilter(RateLimited())
    OUTPUT.setLevel(logging.INFO)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


class _Format(logging.Formatter):
    """`endpoint-N | line` for worker output; in the detached log each line starts with its UTC
    time (`flash logs --since` reads it)."""

    def __init__(self, stamped: bool = False) -> None:
        super().__init__()
        self.stamped = stamped

    def format(self, record: logging.LogRecord) -> str:
        text = (
            record.getMessage()
            if record.name == OUTPUT.name
            else f"supervisor | {record.name}: {super().format(record)}"
        )
        if not self.stamped:
            return text
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z {text}"


def main(argv: list[str]) -> None:
    state_dir, socket_path = Path(argv[0]), Path(argv[1])
    state_dir.mkdir(parents=True, exist_ok=True)
    _configure_logging(Path(argv[argv.index("--log") + 1]) if "--log" in argv else None)
    lock = open(state_dir / LOCK_FILE, "a")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        OUTPUT.error(f"supervisor | another supervisor already runs for {state_dir}")
        raise SystemExit(ALREADY_RUNNING) from None
    supervisor = Supervisor(state_dir, socket_path, attached="--attached" in argv[2:])
    try:
        import uvloop  # installed with Sanic on Linux: about a third more requests through the balancer
    except ImportError:  # pragma: no cover - other platforms
        asyncio.run(supervisor.run())
    else:
        uvloop.run(supervisor.run())


if __name__ == "__main__":
    main(sys.argv[1:])
