"""The mothership's own hop, before and after, in one run: one mothership process per version (flash
at BEFORE, from `git archive`, and this checkout) in front of the same stand-in endpoint (an aiohttp
echo server on uvloop), so the difference to calling the endpoint directly is the mothership
process alone (on the local target, bench/relay.py, each hop also crosses a balancer).

usage: python bench/relay_hop.py [BEFORE]   (default: the commit before the relay, 39f8806)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

from common import REPO, Load, free_port, table, wait_http, wrk
from worker import BODY

BEFORE = "39f8806"
ENDPOINT = """
import asyncio, os, uvloop
from aiohttp import web

async def handle(request):
    if request.path == "/ping":
        return web.json_response({"status": "ready"})
    if request.path == "/manifest":
        return web.json_response({"build": "bench"})
    return web.json_response(await request.json())

async def main():
    runner = web.ServerRunner(web.Server(handle))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["PORT"])).start()
    await asyncio.Event().wait()

uvloop.run(main())
"""
SHIP = (
    'from flash_runtime.mothership import main\nmain({"app": "bench", "environment": None, "endpoints": {"ep": []}})\n'
)


def main(before: str = BEFORE, rounds: int = 5, seconds: int = 3) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", before, "runtime"], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        endpoint = free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", ENDPOINT], env={**os.environ, "PORT": str(endpoint)}))
        urls = {"endpoint called directly": f"http://127.0.0.1:{endpoint}/echo"}
        for name, path in ((f"mothership at {before}", tmp), ("mothership now", str(REPO))):
            port = free_port()
            env = {**os.environ, "PYTHONPATH": path, "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "WARNING",
                   "FLASH_ENDPOINTS": json.dumps({"ep": f"http://127.0.0.1:{endpoint}"})}  # fmt: skip
            procs.append(subprocess.Popen([sys.executable, "-c", SHIP], env=env))
            urls[name] = f"http://127.0.0.1:{port}/ep/echo"
        try:
            wait_http(f"http://127.0.0.1:{endpoint}/ping")
            for url in urls.values():
                wait_http(url.rsplit("/", 2)[0] + "/ping" if "/ep/" in url else url.rsplit("/", 1)[0] + "/ping")
            for connections in (1, 32):
                runs: dict[str, list[Load]] = {name: [] for name in urls}
                for _ in range(rounds):
                    for name, url in urls.items():
                        runs[name].append(wrk(url, seconds=seconds, body=BODY, connections=connections))
                rps = {n: statistics.median(x.rps for x in loads) for n, loads in runs.items()}
                p50 = {n: statistics.median(x.p50_ms for x in loads) for n, loads in runs.items()}
                direct = "endpoint called directly"
                rows = [(n, rps[n], f"{p50[n]:.3f}", f"{p50[n] - p50[direct]:+.3f}", f"{rps[n] / rps[direct]:.2f}x")
                        for n in urls]  # fmt: skip
                print(f"\n## the mothership process alone: POST /echo, wrk -t1 -c{connections} "
                      f"({rounds} alternating rounds of {seconds}s, medians)\n")  # fmt: skip
                print(table(["path", "req/s", "p50 ms", "added p50 ms", "vs direct"], rows))
        finally:
            for proc in procs:
                proc.kill()


if __name__ == "__main__":
    main(*sys.argv[1:2])
