"""Dynamic batching: the same MLP behind a batched route and a plain one, loaded with wrk at
concurrency 1, 8 and 32 in alternating rounds. CPU (numpy) by default; `--gpu` runs the torch/CUDA
variant (skipped, with a line saying so, where CUDA is missing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BIN, REPO, median_load, table, wrk
from worker import server

BODY = json.dumps([round(0.01 * i, 2) for i in range(64)])
MAX_WAIT_MS = 5


def one_batch_ms(src: Path, backend: str, threads: str, size: int = 32, repeats: int = 50) -> float:
    """One batched forward pass, timed in a process of its own (the compute a p99 may add)."""
    code = (
        "import time, json, statistics; from benchbatch import model; model.load();"
        f"rows = [json.loads({BODY!r})] * {size}; model.predict_batch(rows); t = [];\n"
        f"for _ in range({repeats}):\n s = time.perf_counter(); model.predict_batch(rows); t.append(time.perf_counter() - s)\n"
        "print(statistics.median(t) * 1000)"
    )
    env = {**os.environ, "FLASH_BENCH_BACKEND": backend, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
    return float(
        subprocess.run(
            [sys.executable, "-c", code], cwd=src, env=env, check=True, capture_output=True, text=True
        ).stdout
    )


def main(rounds: int = 3, seconds: int = 5, gpu: bool = False) -> None:
    backend = "torch" if gpu else "numpy"
    if gpu:
        try:
            import torch
        except ImportError:
            print("## batching, GPU: skipped (torch is not installed)")
            return
        if not torch.cuda.is_available():
            print("## batching, GPU: skipped (no CUDA device)")
            return
    cores = str(os.cpu_count() or 1)
    # Each route in a worker of its own, with its best BLAS setting: unbatched calls run eight at
    # once from the handler pool, so one BLAS thread each (more would oversubscribe the cores);
    # one batch runs at a time, so its one matrix product may use every core.
    setups = {"/single": "1", "/batched": cores}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copytree(REPO / "bench" / "batchapp", folder, dirs_exist_ok=True)
        subprocess.run([str(BIN / "flash"), "build", "-c", str(folder / "flash.toml")], check=True, capture_output=True)
        src = folder / ".flash" / "build" / "model" / "src"
        batch_ms = one_batch_ms(src, backend, cores)
        runs: dict[tuple[int, str], list] = {}
        for _ in range(rounds):
            for route, threads in setups.items():
                os.environ.update(FLASH_BENCH_BACKEND=backend, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
                with server([sys.executable, "../flash_worker.py"], src) as (url, _):
                    time.sleep(0.5)
                    for connections in (1, 8, 32):
                        wrk(url + route, seconds=1, body=BODY, connections=connections)
                        load = wrk(url + route, seconds=seconds, body=BODY, connections=connections)
                        runs.setdefault((connections, route), []).append(load)
    rows = []
    for connections in (1, 8, 32):
        single = median_load(runs[(connections, "/single")])
        batched = median_load(runs[(connections, "/batched")])
        for name, m in (("unbatched", single), (f"batched (max_size 32, max_wait_ms {MAX_WAIT_MS})", batched)):
            rows.append((connections, name, m.rps, m.p50_ms, m.p99_ms, f"{m.rps / single.rps:.2f}x"))
    print(
        f"## batching, {'GPU (torch)' if gpu else 'CPU (numpy)'}: POST a 64-float row to a 64-2048-2048-16 MLP ({rounds} alternating rounds of {seconds}s, wrk -t1, medians; BLAS threads: unbatched 1, batched {cores})\n"
    )
    print(table(["clients", "route", "req/s", "p50 ms", "p99 ms", "vs unbatched"], rows))
    print(f"\none batch of 32, compute alone: {batch_ms:.2f} ms (median of 50)")
    c32 = median_load(runs[(32, "/batched")])
    print(
        f"p99 bound at 32 clients (max_wait_ms + 2x one batch): {MAX_WAIT_MS + 2 * batch_ms:.1f} ms; measured {c32.p99_ms:.1f} ms"
    )
    c1 = (median_load(runs[(1, "/batched")]).p50_ms, median_load(runs[(1, "/single")]).p50_ms)
    print(f"at 1 client the batched route costs {c1[0] - c1[1]:.2f} ms more at the median (bound: {MAX_WAIT_MS} ms)")


if __name__ == "__main__":
    main(gpu="--gpu" in sys.argv)
