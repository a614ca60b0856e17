"""A stand-in worker for the relay tests: a real process on $HOST:$PORT, any method, any status.

Run as a script (the balancer starts it as a build's `flash_worker.py`; the mothership tests start
it themselves). What happens to handlers ("ran", "cancelled") is appended to the file $EVENTS, one
line each, so a test can wait for it even after this process died.

- `/ping`: 200.
- `/echo?status=N`: the request as JSON (method, raw path, headers in order, body length and
  sha256), answered with status N and two repeated headers (`X-Out`, `Set-Cookie`).
- `/status/N`: status N, a body only where HTTP allows one.
- `/app-503`: the app's own 503 (never retried by a relay).
- `/die`: records "ran /die?...", then the process exits before answering (mid-request).
- `/stream-die`: one chunk of a stream, then the process exits (mid-stream).
- `/slow`, `/stream-forever`: never end; record "cancelled ..." when the connection goes.
- `/upload`: reads the body as it comes; answers its length and sha256.
- `/download?n=N`: N bytes, streamed in 64 KiB chunks (chunked).
- `/sleep?s=S`, `/stream-slow?s=S`: an answer after S seconds; a stream of S one-second events.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

from aiohttp import web

EVENTS = os.environ.get("EVENTS", os.devnull)
WORKER_ID = os.environ.get("RUNPOD_POD_ID")
_NO_BODY = {204, 304}


def record(line: str) -> None:
    with open(EVENTS, "a") as out:
        out.write(line + "\n")


async def handle(request: web.BaseRequest) -> web.StreamResponse:
    path = request.path
    if path == "/ping":
        return web.json_response({"status": "ready"})
    if path == "/echo":
        body = await request.read()
        described = {
            "method": request.method,
            "path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        status = int(request.query.get("status", "200"))
        out = [("X-Out", "a"), ("X-Out", "b"), ("Set-Cookie", "one=1"), ("Set-Cookie", "two=2")]
        if status in _NO_BODY or request.method == "HEAD":
            return web.Response(status=status, headers=out)
        return web.json_response(described, status=status, headers=out)
    if path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        if status in _NO_BODY:
            return web.Response(status=status)
        return web.json_response({"status": status}, status=status)
    if path == "/app-503":
        record(f"ran {request.raw_path}")
        return web.json_response({"error": "the app is busy"}, status=503)
    if path == "/die":
        await request.read()
        record(f"ran {request.raw_path}")
        os._exit(1)
    if path in ("/slow", "/stream-forever"):
        record(f"started {request.raw_path}")
        try:
            if path == "/stream-forever":
                answer = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await answer.prepare(request)
                await answer.write(b"data: first\n\n")
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            record(f"cancelled {request.raw_path}")
            raise
    if path == "/stream-die":
        answer = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await answer.prepare(request)
        await answer.write(b"data: first\n\n")
        await asyncio.sleep(0.05)  # the chunk leaves before the process does
        record(f"ran {request.raw_path}")
        os._exit(1)
    if path == "/upload":
        digest, length = hashlib.sha256(), 0
        while chunk := await request.content.readany():
            digest.update(chunk)
            length += len(chunk)
        return web.json_response({"length": length, "sha256": digest.hexdigest()})
    if path == "/download":
        size = int(request.query["n"])
        answer = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await answer.prepare(request)
        block = b"x" * 65536
        while size > 0:
            await answer.write(block[: min(size, len(block))])
            size -= len(block)
        await answer.write_eof()
        return answer
    if path == "/sleep":
        record("started /sleep")
        await asyncio.sleep(float(request.query["s"]))
        record("done /sleep")
        return web.json_response({"slept": float(request.query["s"])})
    if path == "/stream-slow":
        answer = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await answer.prepare(request)
        record("started /stream-slow")
        for n in range(int(request.query["s"])):
            await answer.write(f"data: {n}\n\n".encode())
            await asyncio.sleep(1)
        await answer.write_eof()
        record("done /stream-slow")
        return answer
    return web.json_response({"error": "no such route"}, status=404)


async def named(request: web.BaseRequest) -> web.StreamResponse:
    """Every answer names the worker (RUNPOD_POD_ID), as flash's workers and RunPod's do."""
    answer = await handle(request)
    if WORKER_ID and not answer.prepared:
        answer.headers["X-Runpod-Worker-Id"] = WORKER_ID
    return answer


async def main() -> None:
    server = web.Server(named, handler_cancellation=True, access_log=None)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"]), reuse_address=True)
    await site.start()
    print(f"listening on {os.environ['PORT']}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
