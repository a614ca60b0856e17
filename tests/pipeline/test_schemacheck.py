"""flash's small schema evaluator agrees with jsonschema (the reference) on the flash schema."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from pipeline.schema import load_schema
from pipeline.schemacheck import SUPPORTED, Evaluator

EXAMPLE = tomllib.loads((Path(__file__).resolve().parents[2] / "flash.toml.example").read_text())
REFERENCE = Draft202012Validator(load_schema())
OURS = Evaluator(load_schema())

values = st.recursive(
    st.one_of(
        st.integers(-3, 5000),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.sampled_from(["ADA_24", "cpu3c-4-8", "EU-RO-1", "REQUEST_COUNT", "3.11", "GET /x", "a.b:c", "", "Bad Name"]),
        st.text(max_size=6),
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["gpu", "cpu", "routes", "x", "env", "timeout", "GET /a", "A"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)


def _keys(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _keys(value, (*prefix, key))
    return found


def _summary(errors: Any) -> Counter[tuple[tuple[Any, ...], str]]:
    return Counter((tuple(e.absolute_path), e.validator) for e in errors)


def test_the_schema_uses_only_keywords_the_evaluator_knows() -> None:
    used: set[str] = set()

    def walk(schema: Any) -> None:
        if not isinstance(schema, dict):
            return
        used.update(k for k in schema if not k.startswith("x-"))
        for keyword in ("properties", "$defs"):
            for sub in schema.get(keyword, {}).values():
                walk(sub)
        for keyword in ("items", "additionalProperties", "unevaluatedProperties", "propertyNames"):
            walk(schema.get(keyword))
        for keyword in ("prefixItems", "anyOf"):
            for sub in schema.get(keyword, []):
                walk(sub)

    walk(load_schema())
    assert used <= SUPPORTED
    assert {"anyOf", "unevaluatedProperties", "prefixItems", "propertyNames"} <= used  # the walk reaches nested schemas


@settings(max_examples=2000, deadline=None)
@given(st.data())
def test_same_errors_as_jsonschema(data: st.DataObject) -> None:
    config = _copy(EXAMPLE)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_keys(config)))
        node = config
        for key in path[:-1]:
            node = node[key]
        if data.draw(st.booleans()):
            node[path[-1]] = data.draw(values)
        else:
            node.pop(path[-1])
        if not _keys(config):
            break
    assert _summary(OURS.iter_errors(config)) == _summary(REFERENCE.iter_errors(config))


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node
