"""Run the benchmarks (all, or those named) and print their tables. Not tests: nothing asserts a time."""

from __future__ import annotations

import importlib
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCHMARKS = [
    "startup",
    "validate_scale",
    "build",
    "worker",
    "local_lb",
    "relay",
    "relay_hop",
    "deploy",
    "websocket",
    "dev_reload",
]


def main(names: list[str]) -> None:
    print(
        f"# flash benchmarks, {time.strftime('%Y-%m-%d')}, {platform.machine()}, {platform.python_version()}, "
        f"{__import__('os').cpu_count()} cores\n"
    )
    for name in names or BENCHMARKS:
        importlib.import_module(name).main()
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
