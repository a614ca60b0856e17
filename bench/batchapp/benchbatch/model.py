"""A small MLP whose batched call is cheap per item: 64 -> 2048 -> 2048 -> 16. numpy on the CPU, or
torch on CUDA with FLASH_BENCH_BACKEND=torch (the GPU variant). Weights are fixed (seeded)."""

from __future__ import annotations

import itertools
import os

LAYERS = (64, 2048, 2048, 16)
_weights: list = []
_backend = os.environ.get("FLASH_BENCH_BACKEND", "numpy")


def load() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((a, b), dtype=np.float32) / np.sqrt(a) for a, b in itertools.pairwise(LAYERS)]
    if _backend == "torch":
        import torch

        weights = [torch.from_numpy(w).cuda() for w in weights]
    _weights.extend(weights)


def _forward(rows: list[list[float]]) -> list[list[float]]:
    if _backend == "torch":
        import torch

        x = torch.tensor(rows, dtype=torch.float32, device="cuda")
        for w in _weights[:-1]:
            x = torch.relu(x @ w)
        return (x @ _weights[-1]).cpu().tolist()
    import numpy as np

    x = np.asarray(rows, dtype=np.float32)
    for w in _weights[:-1]:
        x = np.maximum(x @ w, 0)
    return (x @ _weights[-1]).tolist()


def predict_one(x: list[float]) -> list[float]:
    return _forward([x])[0]


def predict_batch(items: list[list[float]]) -> list[list[float]]:
    return _forward(items)
