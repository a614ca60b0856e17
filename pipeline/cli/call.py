"""`flash call`: one request to a deployed endpoint, found by its key, riding out a cold start
(`flash call ENDPOINT WS /path`: a WebSocket session, in callws.py).

The URL comes from the local supervisor or from RunPod (exact name and owner markers). On RunPod
the request carries the API key, which is never printed. Cold starts are retried with the policy
the runtime client uses (connection failures, 502/503/504, "no workers available"), within its
deadline; nothing is retried once the endpoint may have handled the request.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flash_pipeline.config.model import Project
from flash_pipeline.errors import ApiError, UsageError

if TYPE_CHECKING:  # requests loads only when a call is sent
    import requests

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "WS")


def request_parts(words: tuple[str, ...], data: str | None) -> tuple[str, str]:
    """(METHOD, /path) from `[METHOD] PATH`: GET by default, POST when a body is given."""
    if len(words) == 2 and words[0].upper() in METHODS:
        method, path = words[0].upper(), words[1]
    elif len(words) == 1:
        method, path = ("POST" if data is not None else "GET"), words[0]
    else:
        raise UsageError(
            f"expected [METHOD] PATH, got {' '.join(words)!r}", "e.g. flash call api POST /predict -d '{}'"
        )
    return method, path if path.startswith("/") else "/" + path


def body_of(data: str | None) -> bytes | None:
    """-d JSON, or -d @file (its bytes as they are)."""
    if data is None:
        return None
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as exc:
            raise UsageError(
                f"cannot read {data[1:]}: {exc.strerror or exc}", "give -d @FILE an existing file"
            ) from None
    try:
        json.loads(data)
    except ValueError as exc:
        raise UsageError(f"-d is not valid JSON: {exc}", "quote it for your shell, or pass -d @file.json") from None
    return data.encode()


def headers_of(values: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"-H {value!r} is not 'Name: value'", "e.g. -H 'X-Request-ID: abc'")
        found[name.strip()] = text.strip()
    return found


def endpoint_url(project: Project, key: str, target: str) -> tuple[str, dict[str, str]]:
    """The endpoint's URL on the target, and the headers its data plane needs."""
    keys = [e.key for e in project.endpoints]
    if key not in keys:
        raise UsageError(f"no endpoint {key!r} in {project.name}", f"choose one of: {', '.join(keys)}")
    if target == "local":
        from flash_pipeline.targets.local.deploy import local_status

        answer = local_status(project)
        info = answer.get("endpoints", {}).get(key) if answer else None
        if not info:
            raise UsageError(f"{key} is not running locally", "deploy it first: flash deploy --target local --detach")
        return info["url"], {}
    from flash_pipeline.cli.common import runpod_provider

    provider = runpod_provider()
    url = provider.url_of(project, key)
    if url is None:
        name = next(e.name for e in project.endpoints if e.key == key)
        raise ApiError("call", f"{name} is not deployed on RunPod", hint="deploy it first: flash deploy")
    return url, provider.data_plane_headers()


def send(
    method: str,
    url: str,
    body: bytes | None,
    headers: Mapping[str, str],
    *,
    deadline: float,
    echo: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> requests.Response:
    """The response, after riding out a cold start; ApiError when none came within the deadline."""
    import requests

    from flash_runtime.backoff import Backoff

    policy, rng, start, attempt = Backoff(deadline=deadline), random.Random(), clock(), 0
    sent = {"Content-Type": "application/json", **headers} if body is not None else dict(headers)
    while True:
        try:
            answer = requests.request(method, url, data=body, headers=sent, timeout=(10, deadline))
            status, detail = answer.status_code, _json(answer)
        except requests.ConnectionError:
            answer, status, detail = None, None, None
        except requests.Timeout:  # sent, maybe handled: never sent twice
            raise ApiError("call", f"no answer from {url} within {deadline:.0f}s") from None
        reason = _cannot_start(status, detail)
        if reason:  # the local balancer knows its workers cannot start: waiting would not help
            raise ApiError("call", reason, hint="fix the error in the worker output (`flash logs`), then deploy again")
        wait = policy.delay(attempt, rng)
        if (
            answer is not None and not policy.retryable(status, detail, answer.headers)
        ) or clock() - start + wait > deadline:
            if answer is None:
                raise ApiError("call", f"could not connect to {url} within {deadline:.0f}s")
            if attempt:
                echo(f"flash: waited {clock() - start:.1f}s for a cold start")
            return answer
        if attempt == 0:
            echo(f"flash: {url} is starting (HTTP {status})" if status else f"flash: {url} is not reachable yet")
        sleep(wait)
        attempt += 1


def _cannot_start(status: int | None, detail: Any) -> str | None:
    """The reason in a 503 that says the endpoint cannot start (the local balancer's verdict)."""
    if status != 503 or not isinstance(detail, dict):
        return None
    error = detail.get("error")
    return error if isinstance(error, str) and " cannot start: " in error else None


def _json(answer: requests.Response) -> Any:  # the JSON boundary
    try:
        return answer.json()
    except ValueError:
        return None


def show(answer: requests.Response, include: bool) -> str:
    """The body (pretty JSON on a terminal); with include, the status line and headers first."""
    lines = []
    if include:
        lines.append(f"HTTP {answer.status_code} {answer.reason}")
        lines.extend(f"{name}: {value}" for name, value in answer.headers.items())
        lines.append("")
    decoded = _json(answer)
    if decoded is not None and sys.stdout.isatty():
        lines.append(json.dumps(decoded, indent=2))
    else:
        lines.append(answer.text)
    return "\n".join(lines)


def call(project: Project, key: str, words: tuple[str, ...], options: Mapping[str, Any]) -> int:
    method, path = request_parts(words, options["data"])
    if method == "WS":
        from flash_pipeline.cli.callws import call_websocket

        return call_websocket(project, key, path, options)
    body, headers = body_of(options["data"]), headers_of(options["header"])
    url, auth = endpoint_url(project, key, options["target"])
    echo = lambda line: click.echo(line, err=True)  # noqa: E731 - progress goes to stderr
    answer = send(method, url + path, body, {**headers, **auth}, deadline=options["timeout"], echo=echo)
    click.echo(show(answer, options["include"]))
    return 0 if 200 <= answer.status_code < 300 else 4
