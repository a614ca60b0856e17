"""An endpoint's settings after merging its layers: [defaults], the endpoint, then an environment's
defaults and endpoint overlays. Rules and the model both read endpoints through this."""

from __future__ import annotations

from typing import Any

from flash_pipeline.config.source import KeyPath

_COMPUTE_KEYS = {"gpu": ("cpu",), "cpu": ("gpu", "gpu_count")}

# A merged endpoint setting: its value and the key path it was written at.
Setting = tuple[Any, KeyPath]


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
        (table(data, "defaults"), ("defaults",)),
        (table(data, "endpoints", key), ("endpoints", key)),
    ]
    if environment is not None:
        overlay = table(data, "environments", environment)
        found.append((table(overlay, "defaults"), ("environments", environment, "defaults")))
        found.append((table(overlay, "endpoints", key), ("environments", environment, "endpoints", key)))
    return found


MOTHERSHIP = "mothership"  # the key of the generated endpoint ([mothership]); no endpoint may take it


def mothership_settings(data: dict[str, Any], environment: str | None) -> dict[str, Setting] | None:
    """[mothership] merged with its environment overlay; None when the config has no [mothership].
    Of [defaults] it takes only datacenters: it should run where the endpoints it routes to run."""
    if not isinstance(data.get(MOTHERSHIP), dict):
        return None
    found: list[tuple[dict[str, Any], KeyPath]] = []
    defaults = table(data, "defaults")
    if "datacenters" in defaults:
        found.append(({"datacenters": defaults["datacenters"]}, ("defaults",)))
    found.append((table(data, MOTHERSHIP), (MOTHERSHIP,)))
    if environment is not None:
        found.append((table(data, "environments", environment, MOTHERSHIP), ("environments", environment, MOTHERSHIP)))
    merged: dict[str, Setting] = {}
    for layer, origin in found:
        merged.update({k: (v, (*origin, k)) for k, v in layer.items()})
    return merged


def table(data: Any, *path: str) -> dict[str, Any]:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def environment_names(data: dict[str, Any]) -> list[str]:
    return [name for name, value in table(data, "environments").items() if isinstance(value, dict)]


def endpoint_keys(data: dict[str, Any]) -> list[str]:
    endpoints = data.get("endpoints")
    if not isinstance(endpoints, dict):
        return []
    return [k for k, v in endpoints.items() if isinstance(v, dict)]
