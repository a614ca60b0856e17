"""A small evaluator for the JSON Schema keywords flash.schema.json uses.

Why not jsonschema at run time: importing it and building a 2020-12 validator costs ~100 ms,
most of `flash validate`'s budget. The schema file stays the single source of truth (editors
and tests use it with jsonschema); tests check this evaluator reports the same errors as
jsonschema on thousands of generated configs, and that the schema uses no other keyword.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

SUPPORTED = frozenset(
    {
        "$schema", "$id", "$comment", "$defs", "$ref", "title", "description", "examples", "default",
        "type", "enum", "const", "pattern", "minLength", "minimum", "maximum",
        "properties", "required", "additionalProperties", "unevaluatedProperties", "propertyNames", "minProperties",
        "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "anyOf",
    }
)  # fmt: skip
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


@dataclass
class SchemaError:
    """One failed keyword, shaped like jsonschema's ValidationError where schema.py reads it."""

    validator: str
    validator_value: Any
    instance: Any
    schema: dict[str, Any]
    absolute_path: tuple[str | int, ...]
    relative_schema_path: tuple[str | int, ...]
    message: str = ""
    context: list[SchemaError] = field(default_factory=list)


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


class Evaluator:
    """Checks instances against one root schema (local $refs only)."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def iter_errors(self, instance: Any) -> Iterator[SchemaError]:
        yield from self._check(instance, self.root, (), ())

    def _resolve(self, ref: str) -> dict[str, Any]:
        node: Any = self.root
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node  # type: ignore[no-any-return]

    def _check(
        self, value: Any, schema: dict[str, Any], path: tuple[str | int, ...], spath: tuple[str | int, ...]
    ) -> Iterator[SchemaError]:
        def error(keyword: str, message: str = "", context: list[SchemaError] | None = None) -> SchemaError:
            return SchemaError(keyword, schema[keyword], value, schema, path, (*spath, keyword), message, context or [])

        if "$ref" in schema:
            yield from self._check(value, self._resolve(schema["$ref"]), path, (*spath, "$ref"))
        if "type" in schema and not _is_type(value, schema["type"]):
            yield error("type", f"{value!r} is not of type {schema['type']!r}")
        if "enum" in schema and not any(_equal(value, option) for option in schema["enum"]):
            yield error("enum", f"{value!r} is not one of {schema['enum']!r}")
        if "const" in schema and not _equal(value, schema["const"]):
            yield error("const")
        if "anyOf" in schema:
            branches = [list(self._check(value, sub, path, (i,))) for i, sub in enumerate(schema["anyOf"])]
            if all(branches):
                yield error("anyOf", "not valid under any of the given schemas", [e for b in branches for e in b])
        if isinstance(value, str):
            yield from self._string(value, schema, error)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                yield error("minimum")
            if "maximum" in schema and value > schema["maximum"]:
                yield error("maximum")
        elif isinstance(value, list):
            yield from self._array(value, schema, path, spath, error)
        elif isinstance(value, dict):
            yield from self._object(value, schema, path, spath, error)

    @staticmethod
    def _string(value: str, schema: dict[str, Any], error: Any) -> Iterator[SchemaError]:
        if "pattern" in schema and not _regex(schema["pattern"]).search(value):
            yield error("pattern", f"{value!r} does not match {schema['pattern']!r}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield error("minLength")

    def _array(
        self,
        value: list[Any],
        schema: dict[str, Any],
        path: tuple[str | int, ...],
        spath: tuple[str | int, ...],
        error: Any,
    ) -> Iterator[SchemaError]:
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield error("minItems")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield error("maxItems")
        if schema.get("uniqueItems") and any(_equal(a, b) for i, a in enumerate(value) for b in value[:i]):
            yield error("uniqueItems")
        prefix = schema.get("prefixItems", [])
        for index, item in enumerate(value):
            if index < len(prefix):
                yield from self._check(item, prefix[index], (*path, index), (*spath, "prefixItems", index))
            elif "items" in schema:
                yield from self._check(item, schema["items"], (*path, index), (*spath, "items"))

    def _object(
        self,
        value: dict[str, Any],
        schema: dict[str, Any],
        path: tuple[str | int, ...],
        spath: tuple[str | int, ...],
        error: Any,
    ) -> Iterator[SchemaError]:
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            yield error("minProperties")
        for name in schema.get("required", ()):
            if name not in value:  # one error per missing key, as jsonschema reports them
                yield error("required", f"{name!r} is a required property")
        names: dict[str, Any] = schema.get("propertyNames", {})
        for name in value if names else ():
            for sub in self._check(name, names, path, (*spath, "propertyNames")):
                sub.absolute_path = path  # like jsonschema: the object's path, the name as instance
                yield sub
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                yield from self._check(item, properties[name], (*path, name), (*spath, "properties", name))
        extra = [name for name in value if name not in properties]
        additional = schema.get("additionalProperties")
        if additional is False and extra:
            yield error("additionalProperties")
        elif isinstance(additional, dict):
            for name in extra:
                yield from self._check(value[name], additional, (*path, name), (*spath, "additionalProperties"))
        if schema.get("unevaluatedProperties") is False and [n for n in extra if n not in self._evaluated(schema)]:
            yield error("unevaluatedProperties")

    def _evaluated(self, schema: dict[str, Any]) -> set[str]:
        names = set(schema.get("properties", {}))
        if "$ref" in schema:
            names |= self._evaluated(self._resolve(schema["$ref"]))
        return names


def _is_type(value: Any, wanted: str | list[str]) -> bool:
    for name in [wanted] if isinstance(wanted, str) else wanted:
        if isinstance(value, _TYPES[name]) and not (isinstance(value, bool) and name in ("integer", "number")):
            return True
        if name == "integer" and isinstance(value, float) and value.is_integer():
            return True
    return False


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)
