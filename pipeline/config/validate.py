"""Validate a parsed config: JSON Schema (schema.py) first, then the cross-field rules (rules.py),
every problem at once; then build the Project the later stages consume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flash_pipeline.config.model import Batch, Cpu, Endpoint, FileResult, Gpu, Loc, Project, Route, Workers, runpod_name
from flash_pipeline.config.rules import cross_field
from flash_pipeline.config.schema import schema_diagnostics
from flash_pipeline.config.settings import (
    MOTHERSHIP,
    Setting,
    effective_settings,
    endpoint_keys,
    environment_names,
    mothership_settings,
)
from flash_pipeline.config.source import KeyPath, Source, load
from flash_pipeline.errors import ConfigError, Diagnostic

DEFAULT_WORKERS = (0, 3)  # RunPod's console default range
MOTHERSHIP_CPU = "cpu3c-2-4"  # routing and probing only: the smallest CPU worker does
MOTHERSHIP_WORKERS = (0, 1)


def validate_file(path: Path, display: str | None = None, environment: str | None = None) -> Project:
    """Load and validate one config file; raise ConfigError with every problem."""
    return validate_source(load(path, display), environment)


def validate_source(src: Source, environment: str | None = None) -> Project:
    """Validate a parsed config (every environment's overlay too); the Project of one environment."""
    diagnostics = schema_diagnostics(src) + list(cross_field(src))
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


def _loc(src: Source, path: KeyPath) -> Loc:
    line, col = src.loc(path)
    return Loc(src.display, line, col)


def _project(src: Source, environment: str | None) -> Project:
    app = src.data["app"]
    endpoints = tuple(_endpoint(src, app["name"], key, environment) for key in endpoint_keys(src.data))
    warnings = tuple(_batch_warnings(endpoints))
    settings = mothership_settings(src.data, environment)
    if settings is not None:  # deployed last: it calls every endpoint
        endpoints += (_mothership(src, app["name"], environment, settings, tuple(e.key for e in endpoints)),)
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
        call_key=app.get("call_key"),
        call_key_loc=_loc(src, ("app", "call_key")) if "call_key" in app else None,
        warnings=warnings,
    )


def _endpoint(src: Source, app: str, key: str, environment: str | None) -> Endpoint:
    settings = effective_settings(src.data, key, environment)
    values = {k: v for k, (v, _) in settings.items()}
    locs = {f"env.{name}": _loc(src, where) for name, (_, where) in values.get("env", {}).items()}
    if "calls" in src.data["endpoints"][key]:
        locs["calls"] = _loc(src, ("endpoints", key, "calls"))
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
        calls=tuple(src.data["endpoints"][key].get("calls", ())),
    )


def _batch_warnings(endpoints: tuple[Endpoint, ...]) -> list[Diagnostic]:
    """A batch can only be as large as the requests RunPod sends one worker at once (scaler_value)."""
    found = []
    for endpoint in endpoints:
        for route in endpoint.routes:
            if route.batch and endpoint.scaler_value < route.batch.max_size:
                found.append(
                    Diagnostic(
                        route.loc.file,
                        route.loc.line,
                        route.loc.col,
                        f'endpoints.{endpoint.key}.routes."{route.method} {route.path}"',
                        f"batches of up to {route.batch.max_size} need that many requests at once per worker, "
                        f"but scaler_value is {endpoint.scaler_value}",
                        f"set scaler_value = {route.batch.max_size} (or more) on this endpoint",
                    )
                )
    return found


def _mothership(
    src: Source, app: str, environment: str | None, settings: dict[str, Setting], keys: tuple[str, ...]
) -> Endpoint:
    values = {k: v for k, (v, _) in settings.items()}
    flavor, vcpu, ram = values.get("cpu", MOTHERSHIP_CPU).split("-")
    workers = [int(n) for n in values.get("workers", MOTHERSHIP_WORKERS)]
    return Endpoint(
        key=MOTHERSHIP,
        name=runpod_name(app, environment, MOTHERSHIP),
        compute=Cpu(flavor=flavor, vcpu=int(vcpu), memory_gb=int(ram)),
        workers=Workers(min=workers[0], max=workers[1]),
        routes=(),
        loc=_loc(src, (MOTHERSHIP,)),
        idle_timeout=int(values.get("idle_timeout", 5)),
        datacenters=tuple(values.get("datacenters", ())),
        health_timeout=int(values.get("health", {}).get("timeout", 600)),
        calls=keys,
        generated=True,
    )


def _route(src: Source, key: str, route_key: str, value: str | dict[str, Any]) -> Route:
    method, path = route_key.split(" ", 1)
    handler = value if isinstance(value, str) else value["handler"]
    module, function = handler.split(":")
    where = ("endpoints", key, "routes", route_key) + (() if isinstance(value, str) else ("handler",))
    options = value.get("batch") if isinstance(value, dict) else None
    batch = Batch(**{k: int(v) for k, v in options.items()}) if options else None
    return Route(method, path, module, function, _loc(src, where), batch)


def check_file(path: Path, display: str | None = None, environment: str | None = None) -> FileResult:
    """Validate one file into a FileResult (never raises ConfigError)."""
    shown = display if display is not None else str(path)
    try:
        return FileResult(shown, validate_file(path, shown, environment))
    except ConfigError as exc:
        return FileResult(shown, None, tuple(exc.diagnostics))
