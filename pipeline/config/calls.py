"""The `calls` graph: which endpoints of an app call which. Validated here (every callee is an
endpoint of the config, none calls itself, no cycle), and ordered into deploy layers: callees
before their callers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from flash_pipeline.config.envvars import references
from flash_pipeline.config.model import Project
from flash_pipeline.config.schema import did_you_mean
from flash_pipeline.config.settings import endpoint_keys
from flash_pipeline.config.source import Source
from flash_pipeline.errors import Diagnostic


def calls_rules(problem: Any, src: Source) -> Iterator[Diagnostic]:
    """Unknown callees (with a did-you-mean), self-calls, and every cycle, named by its path."""
    keys = endpoint_keys(src.data)
    graph: dict[str, list[str]] = {}
    for key in keys:
        calls = src.data["endpoints"][key].get("calls")
        if not isinstance(calls, list):
            continue
        for index, callee in enumerate(calls):
            if not isinstance(callee, str):
                continue  # the schema reports it
            where = ("endpoints", key, "calls", index)
            if callee == key:
                yield problem(
                    where, f"endpoint {key!r} calls itself", "a handler calls its own endpoint's code directly"
                )
            elif callee not in keys:
                guess = did_you_mean(callee, keys)
                yield problem(
                    where,
                    f"no endpoint {callee!r} to call",
                    guess or f"calls lists endpoint keys of this config: {', '.join(keys)}",
                )
            else:
                graph.setdefault(key, []).append(callee)
    for cycle in _cycles(graph):
        first = cycle[0]
        index = src.data["endpoints"][first]["calls"].index(cycle[1])
        path = " -> ".join(cycle)
        yield problem(
            ("endpoints", first, "calls", index),
            f"endpoints call each other in a cycle: {path}",
            "a callee is deployed before its callers, so the calls must not loop; remove one",
        )


def _cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each elementary cycle once, starting at its smallest key (deterministic messages)."""
    found: set[tuple[str, ...]] = set()

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt == start:
                found.add(tuple(path))
            elif nxt > start and nxt not in path:
                walk(start, nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return [[*cycle, cycle[0]] for cycle in sorted(found)]


def layers(calls: Mapping[str, Sequence[str]], keys: Sequence[str]) -> list[list[str]]:
    """Deploy order: endpoints that call nothing first, then those whose callees are all placed.
    Assumes a validated (acyclic) graph."""
    placed: set[str] = set()
    order: list[list[str]] = []
    remaining = list(keys)
    while remaining:
        layer = [k for k in remaining if all(c in placed for c in calls.get(k, ()))]
        if not layer:
            raise ValueError("calls form a cycle")  # validation refuses these first
        order.append(layer)
        placed.update(layer)
        remaining = [k for k in remaining if k not in placed]
    return order


def require_call_key(project: Project, environ: Mapping[str, str]) -> list[Diagnostic]:
    """What a RunPod deploy of `calls` needs, refused before anything is sent: a caller must
    authenticate to its callees ([app] call_key), and a ${VAR} call key must be set."""
    callers = [e for e in project.endpoints if e.calls]
    if not callers:
        return []
    if project.call_key:
        loc = project.call_key_loc or callers[0].loc
        unset = [name for name in references(project.call_key) if name not in environ]
        what, hint = "is not set in the deploying environment", "export {}=… before deploying"
        return [
            Diagnostic(loc.file, loc.line, loc.col, "app.call_key", f"${{{n}}} {what}", hint.format(n)) for n in unset
        ]
    found = []
    for endpoint in callers:
        loc = endpoint.loc_of("calls")
        path = "mothership" if endpoint.generated else f"endpoints.{endpoint.key}.calls"
        message = "calling other endpoints on RunPod needs [app] call_key (RunPod LB URLs require a key)"
        if endpoint.generated:
            message = "the mothership calls every endpoint: on RunPod that needs [app] call_key (RunPod LB URLs require a key)"
        hint = (
            'add call_key = "{{ RUNPOD_SECRET_flash_calls }}" to [app]: a RunPod secret holding a key '
            "restricted to this app's endpoints"
        )
        found.append(Diagnostic(loc.file, loc.line, loc.col, path, message, hint))
    return found
