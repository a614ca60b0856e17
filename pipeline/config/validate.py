"""Validate a parsed config: JSON Schema first, then the cross-field rules; build the Project.

Every rule runs even when others failed (each guards its own types), so one run reports every
problem. Rules that read endpoint values see them after the [defaults] merge, and point at
whichever table the value actually came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.config.model import Cpu, Endpoint, FileResult, Gpu, Loc, Project, Route, Workers, runpod_name
from pipeline.config.schema import key_path, schema_diagnostics, show
from pipeline.config.source import KeyPath, Source, load
from pipeline.errors import ConfigError, Diagnostic

RESERVED_PATHS = {"/ping": "the health check", "/execute": "RunPod's queue API, which LB endpoints do not have"}
RESERVED_ENV = {
    "PORT": "RunPod assigns it to the worker",
    "PORT_HEALTH": "RunPod assigns it to the worker",
    "RUNPOD_API_KEY": "the deploy key must never reach an endpoint; use {{ RUNPOD_SECRET_name }}",
    "FLASH_APP": "flash sets it to mark the endpoints it owns",
    "FLASH_ENV": "flash sets it to mark the endpoints it owns",
    "FLASH_ENDPOINT": "flash sets it to mark the endpoints it owns",
}
_CPU_ID = re.compile(r"(cpu[35][cg])-(\d+)-(\d+)")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET = re.compile(r"\{\{\s*RUNPOD_SECRET_[A-Za-z0-9_-]+\s*\}\}")
DEFAULT_WORKERS = (0, 3)  # RunPod's console default range
_COMPUTE_KEYS = {"gpu": ("cpu",), "cpu": ("gpu", "gpu_count")}

# A merged endpoint setting: its value and the key path it was written at.
Setting = tuple[Any, KeyPath]


def validate_file(path: Path, display: str | None = None, environment: str | None = None) -> Project:
    """Load and validate one config file; raise ConfigError with every problem."""
    return validate_source(load(path, display), environment)


def validate_source(src: Source, environment: str | None = None) -> Project:
    """Validate a parsed config (every environment's overlay too); the Project of one environment."""
    diagnostics = schema_diagnostics(src) + list(_cross_field(src))
    if environment is not None and environment not in environment_names(src.data):
        known = ", ".join(environment_names(src.data)) or "none are declared"
        diagnostics.append(
            Diagnostic(
                src.display,
                1,
                1,
                "environments",
                f"no environment {environment!r}",
                f"environments: {known}; add [environments.{environment}]",
            )
        )
    if diagnostics:
        raise ConfigError(sorted(set(diagnostics)))
    return _project(src, environment)


def effective_settings(data: dict[str, Any], key: str, environment: str | None = None) -> dict[str, Setting]:
    """An endpoint's settings after merging its layers (see layers()): later wins, env merges per key."""
    merged: dict[str, Setting] = {}
    env: dict[str, Setting] = {}
    for table, origin in layers(data, key, environment):
        for compute, displaced in _COMPUTE_KEYS.items():
            if compute in table:  # choosing gpu or cpu replaces an earlier layer's compute choice
                for other in displaced:
                    merged.pop(other, None)
        merged.update({k: (v, (*origin, k)) for k, v in table.items() if k not in ("env", "routes")})
        if isinstance(table.get("env"), dict):
            env.update({name: (value, (*origin, "env", name)) for name, value in table["env"].items()})
    if env:
        merged["env"] = (env, ("endpoints", key, "env"))
    return merged


def layers(data: dict[str, Any], key: str, environment: str | None) -> list[tuple[dict[str, Any], KeyPath]]:
    """[defaults], the endpoint, then the environment's defaults and endpoint overlays, in that order."""
    found: list[tuple[dict[str, Any], KeyPath]] = [
        (_table(data, "defaults"), ("defaults",)),
        (_table(data, "endpoints", key), ("endpoints", key)),
    ]
    if environment is not None:
        overlay = _table(data, "environments", environment)
        found.append((_table(overlay, "defaults"), ("environments", environment, "defaults")))
        found.append((_table(overlay, "endpoints", key), ("environments", environment, "endpoints", key)))
    return found


def _table(data: Any, *path: str) -> dict[str, Any]:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def environment_names(data: dict[str, Any]) -> list[str]:
    return [name for name, value in _table(data, "environments").items() if isinstance(value, dict)]


def _endpoint_keys(data: dict[str, Any]) -> list[str]:
    endpoints = data.get("endpoints")
    if not isinstance(endpoints, dict):
        return []
    return [k for k, v in endpoints.items() if isinstance(v, dict)]


def _cross_field(src: Source) -> Iterator[Diagnostic]:
    def problem(path: KeyPath, message: str, hint: str, *, key: bool = False) -> Diagnostic:
        line, col = src.loc(path, key=key)
        return Diagnostic(src.display, line, col, key_path(path), message, hint)

    for environment in [None, *environment_names(src.data)]:
        yield from _endpoint_rules(problem, src, environment)
    yield from _name_rules(problem, src)
    for environment in environment_names(src.data):
        for key in _table(src.data, "environments", environment, "endpoints"):
            if key not in _endpoint_keys(src.data):
                where = ("environments", environment, "endpoints", key)
                yield problem(
                    where,
                    f"no endpoint {key!r} in [endpoints] to overlay",
                    "overlay an endpoint the config declares",
                    key=True,
                )


def _name_rules(problem: Any, src: Source) -> Iterator[Diagnostic]:
    """No two (environment, endpoint) pairs of one config may map to one RunPod name.

    `{app}-{env}-{key}` can equal `{app}-{key2}` (key2 = "staging-api" and environment
    "staging"), and two environments can collide the same way; the deploy of one would then
    take the other's endpoint for its own.
    """
    app = _table(src.data, "app").get("name")
    if not isinstance(app, str):
        return
    claimed: dict[str, tuple[str | None, str]] = {}
    for environment in [None, *environment_names(src.data)]:
        for key in _endpoint_keys(src.data):
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
    for key in _endpoint_keys(src.data):
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
                "choose another path; flash serves /ping itself",
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


def _loc(src: Source, path: KeyPath) -> Loc:
    line, col = src.loc(path)
    return Loc(src.display, line, col)


def _project(src: Source, environment: str | None) -> Project:
    app = src.data["app"]
    endpoints = tuple(_endpoint(src, app["name"], key, environment) for key in _endpoint_keys(src.data))
    return Project(
        name=app["name"],
        config_path=src.path.resolve(),
        python=app.get("python", "3.11"),
        registry=app.get("registry"),
        source=app.get("source", "."),
        endpoints=endpoints,
        environment=environment,
        environments=tuple(environment_names(src.data)),
        source_loc=_loc(src, ("app", "source")) if "source" in app else None,
    )


def _endpoint(src: Source, app: str, key: str, environment: str | None) -> Endpoint:
    settings = effective_settings(src.data, key, environment)
    values = {k: v for k, (v, _) in settings.items()}
    locs = {f"env.{name}": _loc(src, where) for name, (_, where) in values.get("env", {}).items()}
    if "init" in settings:
        locs["init"] = _loc(src, settings["init"][1])
    routes = tuple(_route(src, key, rk, handler) for rk, handler in src.data["endpoints"][key]["routes"].items())
    gpu = values.get("gpu")
    compute: Gpu | Cpu
    if gpu:
        compute = Gpu(pools=tuple([gpu] if isinstance(gpu, str) else gpu), count=int(values.get("gpu_count", 1)))
    else:
        flavor, vcpu, ram = values["cpu"].split("-")
        compute = Cpu(flavor=flavor, vcpu=int(vcpu), memory_gb=int(ram))
    # JSON Schema counts 4.0 as an integer; the model (and RunPod) want real ints.
    for name in ("gpu_count", "scaler_value", "idle_timeout", "timeout", "disk"):
        if name in values:
            values[name] = int(values[name])
    workers = [int(n) for n in values.get("workers", DEFAULT_WORKERS)]
    env = {name: value for name, (value, _) in values.get("env", {}).items()}
    return Endpoint(
        key=key,
        name=runpod_name(app, environment, key),
        compute=compute,
        workers=Workers(min=workers[0], max=workers[1]),
        routes=routes,
        loc=_loc(src, ("endpoints", key)),
        scaler_value=values.get("scaler_value", 4),
        idle_timeout=values.get("idle_timeout", 5),
        timeout=values.get("timeout", 600),
        datacenters=tuple(values.get("datacenters", ())),
        flashboot=values.get("flashboot", True),
        disk=values.get("disk", 50 if gpu else 20),
        network_volumes=tuple(values.get("network_volumes", ())),
        dependencies=tuple(values.get("dependencies", ())),
        image=values.get("image"),
        base_image=values.get("base_image"),
        init=values.get("init"),
        env=tuple(sorted(env.items())),
        health_timeout=int(values.get("health", {}).get("timeout", 600)),
        locs=tuple(sorted(locs.items())),
    )


def _route(src: Source, key: str, route_key: str, handler: str) -> Route:
    method, path = route_key.split(" ", 1)
    module, function = handler.split(":")
    return Route(method, path, module, function, _loc(src, ("endpoints", key, "routes", route_key)))


def check_file(path: Path, display: str | None = None, environment: str | None = None) -> FileResult:
    """Validate one file into a FileResult (never raises ConfigError)."""
    shown = display if display is not None else str(path)
    try:
        return FileResult(shown, validate_file(path, shown, environment))
    except ConfigError as exc:
        return FileResult(shown, None, tuple(exc.diagnostics))
