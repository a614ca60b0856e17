"""Any input gives a clean report (exit 0 or 2), never a traceback."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flash_pipeline.config.source import parse
from flash_pipeline.config.validate import validate_source
from flash_pipeline.errors import ConfigError

EXAMPLE_TEXT = (Path(__file__).resolve().parents[2] / "flash.toml.example").read_text(encoding="utf-8")
EXAMPLE_LINES = EXAMPLE_TEXT.splitlines()

# Values that exercise every type branch of the schema and rules.
scalars = st.one_of(
    st.integers(-5, 5000),
    st.booleans(),
    st.sampled_from(["", "ADA_24", "cpu3c-4-8", "cpu3g-3-12", "${X", "{{ y }}", "GET /ping", "a:b", "x\ny", '"', "\\"]),
    st.text(max_size=12),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _check(text: str) -> None:
    try:
        src = parse(text, Path("flash.toml"), "flash.toml")
        validate_source(src)
    except ConfigError as exc:
        assert exc.diagnostics, "a ConfigError always says why"
        for diag in exc.diagnostics:
            assert diag.message and diag.line >= 1 and diag.col >= 1


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    _check(text)


@settings(max_examples=1500, deadline=None)
@given(
    st.integers(0, len(EXAMPLE_LINES) - 1),
    st.sampled_from(["delete", "duplicate", "truncate", "garble"]),
    st.text(max_size=10),
)
def test_mutated_example_lines_never_crash(index: int, how: str, noise: str) -> None:
    lines = list(EXAMPLE_LINES)
    if how == "delete":
        del lines[index]
    elif how == "duplicate":
        lines.insert(index, lines[index])
    elif how == "truncate":
        lines[index] = lines[index][: len(noise)]
    else:
        lines[index] = lines[index][: len(noise)] + noise + lines[index][len(noise) * 2 :]
    _check("\n".join(lines))


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_mutated_example_values_never_crash(data: st.DataObject) -> None:
    config = tomllib.loads(EXAMPLE_TEXT)
    paths = list(_paths(config))
    path = data.draw(st.sampled_from(paths))
    value = data.draw(toml_values)
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    _check(_dump(config))


def _paths(node: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    return found


def _dump(node: dict[str, object]) -> str:
    # A tiny TOML writer: every table inline, so any value shape can be written.
    return "\n".join(f"{_key(k)} = {_value(v)}" for k, v in node.items())


def _key(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _key(value).encode("ascii", "backslashreplace").decode().replace("\\x", "\\u00")
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
