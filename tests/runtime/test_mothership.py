"""The mothership against real HTTP endpoints on loopback: routing, the call key, streaming, waiting
for a cold start, retries, and what is never retried."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from flash_runtime.calls import Backoff
from flash_runtime.mothership import Mothership

APP = {"app": "shop", "environment": None, "endpoints": {"inference": ["POST /predict"], "api": ["GET /items"]}}
QUICK = Backoff(deadline=1.0, initial=0.01, factor=2.0, cap=0.1)


class Upstream:
    """One endpoint: /ping and /manifest, plus `handler` for everything else; records requests."""

    def __init__(self, handler: Callable[[web.Request], Any], *, ping: int = 200, build: str = "b1") -> None:
        self.handler, self.ping, self.build = handler, ping, build
        self.seen: list[dict[str, Any]] = []

    async def serve(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/ping":
            return web.Response(status=self.ping)
        if request.path == "/manifest":
            return web.json_response({"build": self.build})
        self.seen.append({"path": request.path_qs, "headers": dict(request.headers), "body": await request.read()})
        return await self.handler(request)


async def _start(app: web.Application | web.Server) -> tuple[web.BaseRunner, str]:
    runner: web.BaseRunner = web.AppRunner(app) if isinstance(app, web.Application) else web.ServerRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def ships() -> AsyncIterator[Callable[..., Any]]:
    """make(upstreams, **Mothership options) -> the URL of a mothership routing to them."""
    runners: list[web.BaseRunner] = []

    async def make(upstreams: dict[str, Upstream | str], **kw: Any) -> str:
        urls = {}
        for name, upstream in upstreams.items():
            if isinstance(upstream, str):
                urls[name] = upstream
                continue
            runner, urls[name] = await _start(web.Server(upstream.serve))
            runners.append(runner)
        ship = Mothership(APP, urls, "calls-key", build="m1", policy=kw.pop("policy", QUICK), **kw)
        runner, url = await _start(ship.web_app())
        runners.append(runner)
        return url

    try:
        yield make
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def on_loop(test: Callable[..., Any]) -> Callable[..., None]:
    """Run an async test body on a fresh event loop, with a mothership factory as its first argument."""

    @functools.wraps(test)
    def run(*args: Any, **kw: Any) -> None:
        async def body() -> None:
            async with ships() as make:
                await test(make, *args, **kw)

        asyncio.run(body())

    run.__signature__ = inspect.signature(
        test
    ).replace(  # type: ignore[attr-defined]
        parameters=list(inspect.signature(test).parameters.values())[1:]
    )
    return run


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"path": request.path_qs})


@on_loop
async def test_routes_to_the_endpoint_with_the_call_key_and_a_request_id(mothership) -> None:
    inference = Upstream(_echo)
    url = await mothership({"inference": inference, "api": Upstream(_echo)})
    async with aiohttp.ClientSession() as client:
        async with client.post(
            url + "/inference/predict?x=1", json={"v": 1}, headers={"Authorization": "Bearer users-own-key"}
        ) as answer:
            assert (answer.status, await answer.json()) == (200, {"path": "/predict?x=1"})
        async with client.get(url + "/inference/predict", headers={"X-Request-ID": "trace-7"}) as answer:
            assert answer.status == 200
    first, second = inference.seen
    assert first["headers"]["Authorization"] == "Bearer calls-key"  # the client's own key never travels on
    assert len(first["headers"]["X-Request-ID"]) == 32
    assert json.loads(first["body"]) == {"v": 1}
    assert second["headers"]["X-Request-ID"] == "trace-7"


@on_loop
async def test_unknown_endpoint_is_a_404_naming_the_known_ones(mothership) -> None:
    url = await mothership({"inference": Upstream(_echo), "api": Upstream(_echo)})
    async with aiohttp.ClientSession() as client:
        async with client.get(url + "/billing/x", headers={"X-Request-ID": "r-1"}) as answer:
            assert (answer.status, answer.headers["X-Request-ID"]) == (404, "r-1")
            assert await answer.json() == {
                "error": "no endpoint 'billing' in app 'shop'",
                "request_id": "r-1",
                "endpoints": ["api", "inference"],
            }
        async with client.get(url + "/", headers={"X-Request-ID": "r-2"}) as answer:  # JSON, not plain text
            assert answer.status == 404
            assert await answer.json() == {
                "error": "app 'shop'",
                "request_id": "r-2",
                "endpoints": ["api", "inference"],
            }
        async with client.options(url + "/manifest", headers={"X-Request-ID": "r-3"}) as answer:
            assert (answer.status, answer.headers["Allow"]) == (405, "GET, HEAD")
            assert await answer.json() == {"error": "OPTIONS is not allowed on /manifest", "request_id": "r-3"}


@on_loop
async def test_manifest_lists_every_endpoint_with_its_state(mothership) -> None:
    url = await mothership({"inference": Upstream(_echo, build="i9"), "api": Upstream(_echo, ping=204)})
    async with aiohttp.ClientSession() as client, client.get(url + "/manifest") as answer:
        body = await answer.json()
    assert {k: v for k, v in body.items() if k != "endpoints"} == {
        "app": "shop", "environment": None, "endpoint": "mothership", "build": "m1",
    }  # fmt: skip
    inference, api = body["endpoints"]["inference"], body["endpoints"]["api"]
    assert (inference["routes"], inference["build"], inference["ping"]) == (["POST /predict"], "i9", 200)
    assert (api["routes"], api["build"], api["ping"]) == (["GET /items"], None, 204)


@on_loop
async def test_an_endpoint_not_ready_within_the_deadline_gets_503_with_retry_after(mothership) -> None:
    cold = Upstream(_echo, ping=204)
    url = await mothership({"inference": cold, "api": Upstream(_echo)})
    async with aiohttp.ClientSession() as client, client.post(url + "/inference/predict", json={}) as answer:
        assert answer.status == 503
        assert answer.headers["Retry-After"] == "10"
        assert (await answer.json())["error"].startswith("inference is not ready after ")
    assert cold.seen == []  # never forwarded to an endpoint that is not ready


@on_loop
async def test_a_cold_start_is_waited_for(mothership) -> None:
    warming = Upstream(_echo, ping=204)

    async def warm_up(_seconds: float) -> None:
        warming.ping = 200  # the worker finished loading while the mothership waited
        await asyncio.sleep(0)

    url = await mothership({"inference": warming, "api": Upstream(_echo)}, sleep=warm_up)
    async with aiohttp.ClientSession() as client, client.post(url + "/inference/predict", json={}) as answer:
        assert answer.status == 200


@on_loop
async def test_no_workers_available_is_retried_and_a_dropped_connection_is_not(mothership) -> None:
    answers = [web.json_response({"error": "no workers available"}, status=503), web.json_response({"ok": True})]

    async def flaky(_request: web.Request) -> web.Response:
        return answers.pop(0)

    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()  # received, maybe handled: must not be sent again
        return web.Response()

    retried, dropped = Upstream(flaky), Upstream(drop)
    url = await mothership({"inference": retried, "api": dropped})
    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/inference/predict", json={"n": 1}) as answer:
            assert (answer.status, await answer.json()) == (200, {"ok": True})
        async with client.post(url + "/api/items", json={"n": 1}) as answer:
            assert answer.status == 502
            assert (await answer.json())["error"] == "the upstream closed the connection (ServerDisconnectedError)"
    assert len(retried.seen) == 2 and len(dropped.seen) == 1


@on_loop
async def test_an_unreachable_endpoint_is_a_503_after_the_deadline(mothership, free_port) -> None:
    url = await mothership({"inference": f"http://127.0.0.1:{free_port()}", "api": Upstream(_echo)})
    async with aiohttp.ClientSession() as client, client.get(url + "/inference/x") as answer:
        assert answer.status == 503 and answer.headers["Retry-After"] == "10"


@on_loop
async def test_answers_stream_through(mothership) -> None:
    release = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await answer.prepare(request)
        await answer.write(b"data: first\n\n")
        await release.wait()  # the second event only after the client saw the first
        await answer.write(b"data: second\n\n")
        await answer.write_eof()
        return answer

    url = await mothership({"inference": Upstream(events), "api": Upstream(_echo)})
    async with aiohttp.ClientSession() as client, client.get(url + "/inference/stream") as answer:
        assert answer.headers["Content-Type"] == "text/event-stream"
        assert await answer.content.readline() == b"data: first\n"
        release.set()
        assert (await answer.content.read()).strip() == b"data: second"


@on_loop
async def test_a_balancers_marked_503_is_retried_and_an_apps_own_is_not(mothership) -> None:
    marked = web.json_response({"error": "no worker of inference became ready"}, status=503)
    marked.headers["X-Flash-No-Worker"] = "1"  # the local balancer's own: the request never reached a handler
    answers = [marked, web.json_response({"ok": True})]

    async def balancer(_request: web.Request) -> web.Response:
        return answers.pop(0)

    async def busy(_request: web.Request) -> web.Response:
        return web.json_response({"error": "the app is busy"}, status=503)

    retried, app = Upstream(balancer), Upstream(busy)
    url = await mothership({"inference": retried, "api": app})
    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/inference/predict", json={}) as answer:
            assert (answer.status, await answer.json()) == (200, {"ok": True})
        async with client.post(url + "/api/items", json={}) as answer:
            assert (answer.status, await answer.json()) == (503, {"error": "the app is busy"})
            assert "X-Flash-No-Worker" not in answer.headers
    assert (len(retried.seen), len(app.seen)) == (2, 1)
