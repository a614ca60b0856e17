"""The JSON Schema itself: valid draft 2020-12, documented, and its extensions well-formed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator

from flash_pipeline.config.schema import load_schema
from flash_pipeline.resources import resource_path


def _subschemas(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key not in ("examples", "default", "enum", "const", "x-hints", "x-messages"):
                yield from _subschemas(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _subschemas(item, f"{path}/{index}")


def test_schema_passes_check_schema_and_has_an_id() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/flash.schema.json")


def test_every_property_has_a_description_and_examples() -> None:
    missing = []
    for path, node in _subschemas(load_schema()):
        for name, prop in node.get("properties", {}).items() if isinstance(node.get("properties"), dict) else ():
            if "description" not in prop or not prop.get("examples"):
                missing.append(f"{path}/properties/{name}")
    assert missing == []


def test_every_hint_and_message_names_a_keyword_of_its_own_schema() -> None:
    # Real keyword: one the draft 2020-12 meta-schemas define; present beside the hint, so it can fire.
    known = set().union(*(vocab.get("properties", {}) for vocab in _vocabularies()))
    wrong = []
    for path, node in _subschemas(load_schema()):
        for extension in ("x-hints", "x-messages"):
            for keyword in node.get(extension, {}):
                if keyword not in known or keyword not in node:
                    wrong.append(f"{path}/{extension}/{keyword}")
    assert wrong == []


def _vocabularies() -> list[dict[str, Any]]:
    registry = Draft202012Validator.META_SCHEMA
    resolver = Draft202012Validator(registry)._resolver
    return [resolver.lookup(ref["$ref"]).contents for ref in registry["allOf"]]


def test_schema_file_is_the_shipped_one() -> None:
    on_disk = json.loads(resource_path("schemas", "flash.schema.json").read_text(encoding="utf-8"))
    assert on_disk == load_schema()
