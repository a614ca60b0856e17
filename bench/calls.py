"""The overhead of a cross-endpoint call through flash_runtime.endpoint() against a direct aiohttp call to
the same endpoint, from one event loop (as in a handler): examples/calls on the local target, its
`inference` endpoint called through its balancer, blocks of calls alternating between the two."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time

import aiohttp
from common import REPO, table

from flash_runtime.calls import close, endpoint

CONFIG = str(REPO / "examples" / "calls" / "flash.toml")
FLASH = [sys.executable, "-m", "flash_pipeline"]


async def measure(url: str, rounds: int, block: int) -> dict[str, list[float]]:
    env = {"FLASH_ENDPOINTS": json.dumps({"inference": url})}
    client = endpoint("inference", environ=env)
    samples: dict[str, list[float]] = {"flash_runtime.endpoint()": [], "direct aiohttp call": []}
    async with aiohttp.ClientSession() as session:

        async def direct() -> object:
            async with session.post(url + "/score", json={"text": "a b c"}) as answer:
                return await answer.json()

        async def through() -> object:
            return await client.post("/score", json={"text": "a b c"})

        for _ in range(20):  # warm both pools
            await direct()
            await through()
        for _ in range(rounds):
            for name, call in (("flash_runtime.endpoint()", through), ("direct aiohttp call", direct)):
                for _ in range(block):
                    started = time.perf_counter()
                    await call()
                    samples[name].append((time.perf_counter() - started) * 1000)
    await close()
    return samples


def main(rounds: int = 10, block: int = 200) -> None:
    subprocess.run([*FLASH, "deploy", "-c", CONFIG, "--target", "local", "--detach"], check=True, capture_output=True)
    try:
        status = subprocess.run(
            [*FLASH, "status", "-c", CONFIG, "--target", "local", "--format", "json"],
            check=True,
            capture_output=True,
            text=True,
        )
        url = json.loads(status.stdout)["apps"][0]["endpoints"]["inference"]["url"]
        samples = asyncio.run(measure(url, rounds, block))
    finally:
        subprocess.run([*FLASH, "destroy", "-c", CONFIG, "--target", "local", "--yes"], capture_output=True)
    rows = []
    for name, values in samples.items():
        ordered = sorted(values)
        rows.append((name, f"{statistics.median(ordered):.3f}", f"{ordered[int(len(ordered) * 0.99)]:.3f}"))
    overhead = statistics.median(samples["flash_runtime.endpoint()"]) - statistics.median(
        samples["direct aiohttp call"]
    )
    print(f"## one cross-endpoint call, local target ({rounds} alternating blocks of {block} calls)\n")
    print(table(["call", "median ms", "p99 ms"], rows))
    print(f"\nclient overhead (median difference): {overhead:.3f} ms")


if __name__ == "__main__":
    main()
