"""JSON Schema checks of a parsed config, translated into readable diagnostics.

jsonschema's own messages ("'x' does not match '^[a-z]…$'") are written for schema authors;
each keyword gets a sentence for config authors here, with the schema's `x-hints` as the hint
and `x-messages` overriding the sentence where the contract fixes the wording.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING, Any

from flash_pipeline.errors import Diagnostic
from flash_pipeline.resources import resource_path

if TYPE_CHECKING:
    from jsonschema import ValidationError

    from flash_pipeline.config.source import KeyPath, Source

_TYPE_NAMES = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a table",
}


@cache
def load_schema() -> dict[str, Any]:
    """The flash.toml JSON Schema shipped with the package."""
    with resource_path("schemas", "flash.schema.json").open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


@cache
def _validator() -> Any:  # a jsonschema Draft202012Validator (its stubs type it as a variable)
    """Built once per process. Imported here, on the validate path only (jsonschema costs ~45 ms to
    import); no format checker: the schema uses no `format`."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema())


def schema_diagnostics(src: Source) -> list[Diagnostic]:
    """Every schema violation in src, one diagnostic each."""
    errors = list(_validator().iter_errors(src.data))
    # A value of the wrong type also fails its enum/pattern; the type error alone says it best.
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    found: list[Diagnostic] = []
    for error in errors:
        if error.validator == "type" or tuple(error.absolute_path) not in mistyped:
            found.extend(_translate(error, src))
    return sorted(set(found))


def key_path(path: KeyPath) -> str:
    """Render a key path the way a user would write it: endpoints.api.routes."GET /x"."""
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
            continue
        text = part if part and all(c.isalnum() or c in "_-" for c in part) else json.dumps(part)
        parts.append(("." if parts else "") + text)
    return "".join(parts)


def show(value: Any) -> str:
    """A value as it would appear in TOML, shortened for one line."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _closest(word: str, choices: list[str]) -> str | None:
    """The choice close to word when no other comes near it (a fix must be certain), else None."""
    lowered = {c.lower(): c for c in choices}
    scores = sorted(((difflib.SequenceMatcher(None, word.lower(), c).ratio(), c) for c in lowered), reverse=True)
    if not scores or scores[0][0] < 0.8:  # a typo, not a different word ("timeout_idle" is not "timeout")
        return None
    if len(scores) > 1 and scores[1][0] >= 0.6 and scores[0][0] - scores[1][0] < 0.1:
        return None  # two keys are about as close: which one was meant is a guess
    return lowered[scores[0][1]]


def did_you_mean(word: str, choices: list[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"did you mean {show(lowered[close[0]])}?" if close else ""


def _diag(src: Source, path: KeyPath, message: str, hint: str, *, key: bool = False) -> Diagnostic:
    line, col = src.loc(path, key=key)
    return Diagnostic(src.display, line, col, key_path(path), message, hint)


def _translate(error: ValidationError, src: Source) -> Iterator[Diagnostic]:
    path: KeyPath = tuple(error.absolute_path)
    keyword = str(error.validator)
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    hint = schema.get("x-hints", {}).get(keyword, "")
    fixed = schema.get("x-messages", {}).get(keyword)
    value = error.instance
    if "propertyNames" in error.relative_schema_path:
        # The instance is the offending key itself: point at the key, not the table.
        title = schema.get("title", "key")
        yield _diag(src, path + (value,), fixed or f"{show(value)} is not a valid {title}", hint, key=True)
    elif keyword in ("additionalProperties", "unevaluatedProperties"):
        yield from _unknown_keys(src, path, value, schema, hint)
    elif keyword == "required":
        for name in error.validator_value:
            if isinstance(value, dict) and name not in value:
                what = f"[{name}] table" if not path else f"key {show(name)}"
                yield _diag(src, path, f"missing required {what}", hint or f"add {name} = …")
    elif keyword in ("anyOf", "oneOf"):
        yield from _alternatives(error, src, path)
    else:
        found = _diag(
            src, path, fixed or _sentence(keyword, error, schema, value), hint or _auto_hint(keyword, error, value)
        )
        yield replace(found, fix=_enum_fix(keyword, schema, value, path))


def _enum_fix(keyword: str, schema: dict[str, Any], value: Any, path: KeyPath) -> tuple[str, KeyPath, Any] | None:
    """A value outside an enum is fixed when the intent is certain: the only allowed value (a
    refused scaler_type), or the one allowed value that differs only in case ("ada_24")."""
    if keyword != "enum" or not isinstance(value, str):
        return None
    allowed = [v for v in schema.get("enum", []) if isinstance(v, str)]
    same = [v for v in allowed if v.lower() == value.lower()]
    choice = same[0] if len(same) == 1 else allowed[0] if len(allowed) == 1 else None
    return ("set", path, choice) if choice is not None else None


def _sentence(keyword: str, error: ValidationError, schema: dict[str, Any], value: Any) -> str:
    title = schema.get("title")
    limit = error.validator_value
    if keyword == "type":
        wanted = limit if isinstance(limit, list) else [limit]
        return f"expected {' or '.join(_TYPE_NAMES.get(str(t), str(t)) for t in wanted)}, got {_describe(value)}"
    if keyword in ("enum", "const", "pattern"):
        return f"{show(value)} is not a valid {title}" if title else f"{show(value)} is not allowed here"
    if keyword in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"must be between {low} and {high} (got {show(value)})"
        return f"must be at {'least' if keyword == 'minimum' else 'most'} {limit} (got {show(value)})"
    if keyword in ("minItems", "maxItems"):
        if schema.get("minItems") == schema.get("maxItems"):
            return f"expected {limit} items, got {len(value)}"
        return f"expected at {'least' if keyword == 'minItems' else 'most'} {limit} item(s), got {len(value)}"
    if keyword == "uniqueItems":
        dupes = sorted({show(v) for i, v in enumerate(value) if v in value[:i]})
        return f"lists {', '.join(dupes)} more than once"
    if keyword in ("minProperties", "minLength"):
        return "must not be empty"
    return error.message


def _auto_hint(keyword: str, error: ValidationError, value: Any) -> str:
    if keyword in ("enum", "const") and isinstance(value, str):
        choices = error.validator_value if keyword == "enum" else [error.validator_value]
        return did_you_mean(value, [str(c) for c in choices]) or "allowed: " + ", ".join(map(show, choices))
    if keyword == "uniqueItems":
        return "remove the repeated items"
    return ""


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (" + show(value) + ")"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({show(value)})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__} ({value})"


def _allowed_keys(schema: dict[str, Any]) -> list[str]:
    keys = list(schema.get("properties", {}))
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        keys += _allowed_keys(load_schema()["$defs"][ref.rsplit("/", 1)[1]])
    return keys


def _unknown_keys(src: Source, path: KeyPath, value: Any, schema: dict[str, Any], hint: str) -> Iterator[Diagnostic]:
    allowed = _allowed_keys(schema)
    for name in value if isinstance(value, dict) else ():
        if name in allowed:
            continue
        guess = did_you_mean(name, allowed)
        found = _diag(
            src,
            path + (name,),
            f"unknown key {show(name)}",
            guess or hint or "allowed keys: " + ", ".join(allowed),
            key=True,
        )
        closest = _closest(name, allowed)
        # A rename is safe only when exactly one key is close and the table does not have it yet.
        if closest is not None and isinstance(value, dict) and closest not in value:
            found = replace(found, fix=("rename", path + (name,), closest))
        yield found


def _alternatives(error: ValidationError, src: Source, path: KeyPath) -> Iterator[Diagnostic]:
    # A branch whose type matched explains the problem; if none matched, name the expected types.
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    mistyped = {
        b for b, subs in branches.items() if any(s.validator == "type" and tuple(s.absolute_path) == path for s in subs)
    }
    relevant = [sub for b, subs in branches.items() if b not in mistyped for sub in subs]
    if relevant:
        for sub in relevant:
            yield from _translate(sub, src)
        return
    schema = error.schema if isinstance(error.schema, dict) else {}
    types: list[str] = []
    for branch in error.validator_value:
        if "$ref" in branch:
            branch = load_schema()["$defs"][branch["$ref"].rsplit("/", 1)[1]]
        name = _TYPE_NAMES.get(branch.get("type", ""), "")
        if name and name not in types:
            types.append(name)
    title = schema.get("title", "value")
    yield _diag(
        src,
        path,
        f"expected {' or '.join(types)}, got {_describe(error.instance)}",
        f"see the {title} examples in flash.toml.example",
    )
