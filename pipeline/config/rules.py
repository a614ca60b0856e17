"""The cross-field rules JSON Schema cannot say: compute choices, CPU ids, worker ranges, routes,
reserved paths and env names, ${VAR} and secret templates, names that collide across environments.

Every rule runs even when others failed (each guards its own types), so one run reports every
problem. Rules see endpoint values after the [defaults] merge, and point at whichever table the
value actually came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flash_pipeline.config.calls import calls_rules
from flash_pipeline.config.model import runpod_name
from flash_pipeline.config.schema import key_path, show
from flash_pipeline.config.settings import (
    MOTHERSHIP,
    Setting,
    effective_settings,
    endpoint_keys,
    environment_names,
    mothership_settings,
    table,
)
from flash_pipeline.config.source import KeyPath, Source
from flash_pipeline.errors import Diagnostic

RESERVED_PATHS = {
    "/ping": "the health check",
    "/manifest": "the endpoint's manifest (service discovery)",
    "/openapi.json": "the endpoint's OpenAPI document",
    "/execute": "RunPod's queue API, which LB endpoints do not have",
}
RESERVED_ENV = {
    "PORT": "RunPod assigns it to the worker",
    "PORT_HEALTH": "RunPod assigns it to the worker",
    "RUNPOD_API_KEY": "the deploy key must never reach an endpoint; use {{ RUNPOD_SECRET_name }}",
    "FLASH_APP": "flash sets it to mark the endpoints it owns",
    "FLASH_ENV": "flash sets it to mark the endpoints it owns",
    "FLASH_ENDPOINT": "flash sets it to mark the endpoints it owns",
    "FLASH_BUILD": "flash sets it to the build hash that /manifest reports",
    "FLASH_ENDPOINTS": "flash sets it to the URLs of the endpoints this one calls",
    "FLASH_CALL_KEY": "flash sets it from [app] call_key",
}
_CPU_ID = re.compile(r"(cpu[35][cg])-(\d+)-(\d+)")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET = re.compile(r"\{\{\s*RUNPOD_SECRET_[A-Za-z0-9_-]+\s*\}\}")


def cross_field(src: Source) -> Iterator[Diagnostic]:
    def problem(path: KeyPath, message: str, hint: str, *, key: bool = False) -> Diagnostic:
        line, col = src.loc(path, key=key)
        return Diagnostic(src.display, line, col, key_path(path), message, hint)

    for environment in [None, *environment_names(src.data)]:
        yield from _endpoint_rules(problem, src, environment)
    yield from _name_rules(problem, src)
    yield from calls_rules(problem, src)
    yield from _mothership_rules(problem, src)
    for environment in environment_names(src.data):
        for key in table(src.data, "environments", environment, "endpoints"):
            if key not in endpoint_keys(src.data):
                where = ("environments", environment, "endpoints", key)
                yield problem(
                    where,
                    f"no endpoint {key!r} in [endpoints] to overlay",
                    "overlay an endpoint the config declares",
                    key=True,
                )


def _mothership_rules(problem: Any, src: Source) -> Iterator[Diagnostic]:
    """The generated endpoint's key is its own, and its settings follow the endpoint rules."""
    if mothership_settings(src.data, None) is None:
        for environment in environment_names(src.data):
            if MOTHERSHIP in table(src.data, "environments", environment):
                yield problem(
                    ("environments", environment, MOTHERSHIP),
                    "no [mothership] to overlay",
                    "add a [mothership] table (it may be empty) to deploy one",
                    key=True,
                )
        return
    if MOTHERSHIP in endpoint_keys(src.data):
        yield problem(
            ("endpoints", MOTHERSHIP),
            "endpoint key 'mothership' is taken by the [mothership] flash generates",
            "rename this endpoint",
            key=True,
        )
    overlays: list[str | None] = [None, *environment_names(src.data)]
    for overlay in overlays:
        settings = mothership_settings(src.data, overlay) or {}
        yield from _worker_rules(problem, settings)
        if "cpu" in settings and isinstance(settings["cpu"][0], str):
            yield from _cpu_id_rules(problem, settings["cpu"])


def _name_rules(problem: Any, src: Source) -> Iterator[Diagnostic]:
    """No two (environment, endpoint) pairs of one config may map to one RunPod name.

    `{app}-{env}-{key}` can equal `{app}-{key2}` (key2 = "staging-api" and environment
    "staging"), and two environments can collide the same way; the deploy of one would then
    take the other's endpoint for its own.
    """
    app = table(src.data, "app").get("name")
    if not isinstance(app, str):
        return
    claimed: dict[str, tuple[str | None, str]] = {}
    for environment in [None, *environment_names(src.data)]:
        for key in endpoint_keys(src.data):
            name = runpod_name(app, environment, key)
            other = claimed.setdefault(name, (environment, key))
            if other == (environment, key):
                continue
            first, second = sorted([other, (environment, key)], key=lambda pair: (pair[0] is not None, pair))
            blame = second[1] if second[0] is None else first[1]
            mine = "the default environment" if second[0] is None else f"environment {second[0]!r}"
            theirs = "the default environment" if first[0] is None else f"environment {first[0]!r}"
            yield problem(
                ("endpoints", blame),
                f"RunPod name {name!r} of endpoint {second[1]!r} in {mine} is also the name of endpoint {first[1]!r} in {theirs}",
                "endpoint keys must not start with an environment name and a hyphen: rename the endpoint or the environment",
                key=True,
            )


def _endpoint_rules(problem: Any, src: Source, environment: str | None) -> Iterator[Diagnostic]:
    for key in endpoint_keys(src.data):
        settings = effective_settings(src.data, key, environment)
        yield from _compute_rules(problem, key, settings)
        yield from _worker_rules(problem, settings)
        yield from _route_rules(problem, key, src.data["endpoints"][key].get("routes"))
        yield from _env_rules(problem, settings)


def _compute_rules(problem: Any, key: str, settings: dict[str, Setting]) -> Iterator[Diagnostic]:
    gpu, cpu = settings.get("gpu"), settings.get("cpu")
    if gpu and cpu:
        yield problem(
            cpu[1], "gpu and cpu are both set", "an endpoint runs on a GPU pool or a CPU flavor: keep one", key=True
        )
    elif not gpu and not cpu:
        yield problem(
            ("endpoints", key), "exactly one of gpu or cpu is required", 'add gpu = "ADA_24" or cpu = "cpu3c-2-4"'
        )
    if cpu and "gpu_count" in settings and not gpu:
        yield problem(
            settings["gpu_count"][1], "gpu_count applies to GPU endpoints only", "remove gpu_count or use gpu", key=True
        )
    if cpu and isinstance(cpu[0], str):
        yield from _cpu_id_rules(problem, cpu)


def _cpu_id_rules(problem: Any, cpu: Setting) -> Iterator[Diagnostic]:
    match = _CPU_ID.fullmatch(cpu[0])
    if not match:
        return  # the schema pattern already reported it
    flavor, vcpu, ram = match.group(1), int(match.group(2)), int(match.group(3))
    if vcpu < 2 or vcpu & (vcpu - 1):
        yield problem(
            cpu[1],
            f"{vcpu} vCPUs is not a power of two >= 2",
            f"use {flavor}-2-…, {flavor}-4-…, {flavor}-8-… or {flavor}-16-…",
        )
        return
    expected = vcpu * (2 if flavor.endswith("c") else 4)
    if ram != expected:
        kind = "2 GB (compute-optimised, c)" if flavor.endswith("c") else "4 GB (general-purpose, g)"
        yield problem(
            cpu[1],
            f"{flavor} with {vcpu} vCPUs has {expected} GB of RAM, not {ram}",
            f"use {flavor}-{vcpu}-{expected}; {flavor} gives {kind} per vCPU",
        )


def _worker_rules(problem: Any, settings: dict[str, Setting]) -> Iterator[Diagnostic]:
    workers = settings.get("workers")
    if not workers or not isinstance(workers[0], list) or len(workers[0]) != 2:
        return
    low, high = workers[0]
    if type(low) is int and type(high) is int and low > high:
        yield problem(
            workers[1], f"min ({low}) is greater than max ({high})", "lower the first number or raise the second"
        )


def _batch_rules(problem: Any, where: KeyPath, method: str, params: list[str], value: Any) -> Iterator[Diagnostic]:
    """A batched route gathers request bodies: a body method, and no path parameters to tell apart."""
    if not isinstance(value, dict) or not isinstance(value.get("batch"), dict):
        return
    if method not in ("POST", "PUT", "PATCH"):
        yield problem(
            (*where, "batch"),
            f"a {method} route cannot be batched",
            "batching gathers request bodies: use POST, PUT or PATCH",
        )
    elif params:
        yield problem(
            (*where, "batch"),
            "a batched route takes no path parameters",
            "put the values in the request body, which is what a batch gathers",
        )


def _route_rules(problem: Any, key: str, routes: Any) -> Iterator[Diagnostic]:
    if not isinstance(routes, dict):
        return
    seen: dict[tuple[str, str], str] = {}
    for route_key in routes:
        parsed = parse_route_key(route_key)
        if parsed is None:
            continue  # malformed: reported by the schema
        method, path = parsed
        where = ("endpoints", key, "routes", route_key)
        if path in RESERVED_PATHS:
            yield problem(
                where,
                f"{path} is reserved for {RESERVED_PATHS[path]}",
                "choose another path; flash serves /ping, /manifest and /openapi.json itself",
                key=True,
            )
        params = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
        for name in sorted({p for p in params if params.count(p) > 1}):
            yield problem(
                where,
                f"path parameter {{{name}}} appears more than once",
                "give each path parameter its own name",
                key=True,
            )
        yield from _batch_rules(problem, where, method, params, routes[route_key])
        shape = (method, re.sub(r"\{[^}]*\}", "{}", path))
        if shape in seen:
            yield problem(
                where,
                f"{show(route_key)} matches the same requests as {show(seen[shape])}",
                "remove one of the two routes",
                key=True,
            )
        else:
            seen[shape] = route_key


def parse_route_key(route_key: str) -> tuple[str, str] | None:
    """Split "METHOD /path" into its parts, or None if it is not of that form."""
    method, _, path = route_key.partition(" ")
    return (method, path) if method and path.startswith("/") and " " not in path else None


def _env_rules(problem: Any, settings: dict[str, Setting]) -> Iterator[Diagnostic]:
    env = settings.get("env")
    for name, (value, where) in (env[0] if env else {}).items():
        if name in RESERVED_ENV:
            yield problem(where, f"{name} cannot be set in env", RESERVED_ENV[name], key=True)
        if isinstance(value, str):
            yield from _template_rules(problem, where, value)


def _template_rules(problem: Any, where: KeyPath, value: str) -> Iterator[Diagnostic]:
    if "${RUNPOD_API_KEY}" in value:
        yield problem(
            where,
            "${RUNPOD_API_KEY} would ship the deploy key to the endpoint",
            "give the endpoint its own key through {{ RUNPOD_SECRET_name }}",
        )
    for match in re.finditer(r"\$\{", value):
        rest = value[match.end() :]
        close = rest.find("}")
        if close < 0:
            yield problem(
                where, f"{show(value)} has an unclosed ${{", "write ${NAME} to read NAME from the deploying environment"
            )
        elif not _VAR_NAME.fullmatch(rest[:close]):
            yield problem(
                where,
                f"{show('${' + rest[:close] + '}')} is not a valid variable reference",
                "variable names use letters, digits and underscores, e.g. ${GITHUB_SHA}",
            )
    for match in re.finditer(r"\{\{.*?(\}\}|$)", value):
        if not _SECRET.fullmatch(match.group(0)):
            yield problem(
                where,
                f"{show(match.group(0))} is not a RunPod secret reference",
                "write {{ RUNPOD_SECRET_name }}; no other {{ }} templates are supported",
            )
