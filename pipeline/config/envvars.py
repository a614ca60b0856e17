"""${VAR} references in endpoint env: resolved from the deploying environment at deploy time.

Resolved values are secrets as far as flash is concerned: they go to the endpoint (or the local
supervisor's memory) and nowhere else; nothing here prints or writes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from flash_pipeline.config.model import Endpoint
from flash_pipeline.errors import ConfigError, Diagnostic

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def references(value: str) -> list[str]:
    return _REFERENCE.findall(value)


def resolve_env(endpoint: Endpoint, environ: Mapping[str, str]) -> dict[str, str]:
    """The endpoint's env with every ${VAR} replaced; ConfigError naming every missing variable."""
    missing = sorted({(key, name) for key, value in endpoint.env for name in references(value) if name not in environ})
    if missing:
        raise ConfigError([_missing(endpoint, key, name) for key, name in missing], "nothing was deployed")
    return {key: resolve_value(value, environ) for key, value in endpoint.env}


def resolve_value(value: str, environ: Mapping[str, str]) -> str:
    """One value with its ${VAR} references replaced (callers check that every one is set)."""
    return _REFERENCE.sub(lambda m: environ[m.group(1)], value)


def _missing(endpoint: Endpoint, key: str, name: str) -> Diagnostic:
    loc = endpoint.loc_of(f"env.{key}")  # the variable's own line, not the table's
    return Diagnostic(
        loc.file,
        loc.line,
        loc.col,
        f"endpoints.{endpoint.key}.env.{key}",
        f"${{{name}}} is not set in the deploying environment",
        f"export {name}=… before deploying",
    )


def callees_env(endpoint: Endpoint, urls: Mapping[str, str]) -> dict[str, str]:
    """The one builder of FLASH_ENDPOINTS (both targets): for a caller, {callee key: URL} as JSON,
    "" while a callee's URL is not known yet (flash_runtime.calls reads it); {} for an endpoint that
    calls none."""
    if not endpoint.calls:
        return {}
    return {"FLASH_ENDPOINTS": json.dumps({key: urls.get(key, "") for key in endpoint.calls}, sort_keys=True)}


BUILD = "FLASH_BUILD"
BUILD_HASH = 12  # hex digits of the content hash in an image's tag, and so in FLASH_BUILD


def build_hash(digest: str) -> str:
    """The build's short hash: the tag flash gives its image, what /manifest reports."""
    return digest[:BUILD_HASH]


def build_env(build: str | None) -> dict[str, str]:
    """The one builder of FLASH_BUILD (both targets): the hash the worker's /manifest reports, so a
    gate tells this release's workers from the previous one's; {} for the user's own image."""
    return {BUILD: build} if build else {}
