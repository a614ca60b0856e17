"""A stand-in model: `load` is the endpoint's init hook, run once per worker."""

from __future__ import annotations

import os
import time

WEIGHTS: dict[str, float] = {}


def load() -> None:
    """Pretend to load weights; /ping answers 204 until this returns."""
    time.sleep(float(os.environ.get("EXAMPLE_LOAD_SECONDS", "0.2")))
    WEIGHTS.update({"bias": 0.5, "scale": 2.0})


def predict(values: list[float]) -> list[float]:
    return [WEIGHTS["scale"] * v + WEIGHTS["bias"] for v in values]
