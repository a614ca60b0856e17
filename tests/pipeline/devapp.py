"""A small app and a `flash dev` driven as a real subprocess, shared by the dev tests and the bench."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

FLASH = [sys.executable, "-m", "flash_pipeline"]

CONFIG = """\
[app]
name = "dev-test"

[defaults]
cpu = "cpu3c-2-4"

[endpoints.api]
workers = [1, 1]

[endpoints.api.routes]
"GET /hello" = "app.handlers:hello"

[endpoints.other]
workers = [1, 1]
env = { WORD = "one" }

[endpoints.other.routes]
"GET /word" = "app.others:word"
"""

HANDLERS = """\
from app.helper import VERSION


def hello() -> dict:
    return {"version": VERSION}
"""

OTHERS = """\
import os


def word() -> dict:
    return {"word": os.environ.get("WORD")}
"""

SLOW_INIT = """\
import os
import time
from pathlib import Path


def slow() -> None:
    Path(os.environ["MARKERS"], "init-started").touch()
    time.sleep(20)
    Path(os.environ["MARKERS"], "init-finished").touch()


def failing() -> None:
    raise RuntimeError("model weights missing")
"""


def write_app(root: Path, version: int = 1) -> Path:
    (root / "app").mkdir(parents=True, exist_ok=True)
    (root / "flash.toml").write_text(CONFIG)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "handlers.py").write_text(HANDLERS)
    (root / "app" / "helper.py").write_text(f"VERSION = {version}\n")
    (root / "app" / "others.py").write_text(OTHERS)
    (root / "app" / "lifecycle.py").write_text(SLOW_INIT)
    return root


def save(path: Path, text: str) -> None:
    """As an editor saves: the whole file, replaced at once."""
    temporary = path.with_name(f".{path.name}.swp")
    temporary.write_text(text)
    temporary.replace(path)


class Dev:
    """`flash dev` (or any long-running flash command) in a subprocess; its output read as it comes."""

    def __init__(self, root: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*FLASH, *(args or ("dev",))],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, pattern: str, *, count: int = 1, timeout: float = 60.0) -> str:
        """The count-th line matching the regex pattern, once it has been printed."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [line for line in self.lines if regex.search(line)]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                assert left > 0 and (self.proc.poll() is None or self.reader.is_alive()), (
                    f"no line matching {pattern!r} (x{count}); output so far:\n" + "\n".join(self.lines)
                )
                self.changed.wait(min(left, 0.5))

    def count(self, pattern: str) -> int:
        with self.changed:
            return sum(1 for line in self.lines if re.search(pattern, line))

    def interrupt(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def output(self) -> str:
        with self.changed:
            return "\n".join(self.lines)


def processes_of(app: Path) -> list[int]:
    """Pids of any supervisor or worker still running for this app (by command line and cwd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if (b"flash_pipeline.targets.local.supervisor" in cmdline and str(app).encode() in cmdline) or (
            b"flash_worker.py" in cmdline and cwd.startswith(str(app))
        ):
            found.append(int(entry.name))
    return found
