"""Init hooks for the worker tests: a slow one (204 window) and a failing one (503)."""

import os
import time


def slow_init() -> None:
    time.sleep(float(os.environ.get("INIT_SECONDS", "0")))


def failing_init() -> None:
    raise RuntimeError("model weights missing")
