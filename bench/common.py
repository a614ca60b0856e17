"""Shared bits of the benchmarks: timing child processes and printing tables."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_once(cmd: Sequence[str], cwd: Path | None = None) -> tuple[float, float, int]:
    """Run cmd once: (wall seconds, peak RSS in MB, exit code), measured with wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss / 1024, proc.returncode


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-markdown table, so output can be pasted into BENCHMARKS.md as is."""
    cells = [[str(c) for c in headers]] + [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, want: int | None = None) -> None:
    """Wait until url answers (with status want, if given)."""
    import http.client

    deadline = time.monotonic() + timeout
    host, _, rest = url.removeprefix("http://").partition("/")
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(host, timeout=2)
            conn.request("GET", "/" + rest)
            status = conn.getresponse().status
            conn.close()
            if want is None or status == want:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float


def wrk(url: str, *, seconds: int = 5, connections: int = 32, body: str | None = None) -> Load:
    """Load url with wrk (one thread: the other core is the server's); requests/s and latency."""
    import re
    import shutil
    import tempfile

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if body is not None:
            script.write(
                f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
            )
    cmd[1:1] = ["-s", script.name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    Path(script.name).unlink()

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses:\n{out}")
    return Load(rps, latency("50%"), latency("99%"))


def median_load(loads: Sequence[Load]) -> Load:
    """The median of each measure over rounds of the same load."""
    return Load(
        statistics.median(r.rps for r in loads),
        statistics.median(r.p50_ms for r in loads),
        statistics.median(r.p99_ms for r in loads),
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
