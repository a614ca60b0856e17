"""GET /openapi.json: an OpenAPI 3.1 document of a worker's routes, made from the same bindings
that serve them (so the document cannot drift from what the worker accepts).

Request bodies come from pydantic's JSON Schema where a model is used (`model_json_schema`, found
by duck typing: pydantic stays optional), otherwise from the annotations.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from flash_runtime.binding import MISSING, Binding, Param, resolve_annotation
from flash_runtime.parts import Binary, Upload
from flash_runtime.shapes import is_model, is_typed_dict

Route = tuple[str, str, Callable[..., Any], Binding]  # method, "/path/{param}", handler, its binding
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}
_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "request_id": {"type": "string"},
    },
    "required": ["error"],
}


def document(title: str, version: str, routes: Sequence[Route]) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, Any] = {}
    for index, (method, path, func, binding) in enumerate(routes):
        operation = _operation(func, binding, components, index)
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }


def _operation(func: Callable[..., Any], binding: Binding, components: dict[str, Any], index: int) -> dict[str, Any]:
    doc = inspect.getdoc(func) or ""
    operation: dict[str, Any] = {"operationId": f"{func.__name__}_{index}"}
    if doc:
        operation["summary"] = doc.splitlines()[0]
    parameters = [_parameter(p, components) for p in binding.params if p.source in ("path", "query")]
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(binding, components)
    if body:
        operation["requestBody"] = body
    answer = _response(func, components)
    operation["responses"] = {
        "200": answer,
        "422": {"description": "the request does not fit the handler's arguments", "content": _error_content()},
        "500": {"description": "the handler failed", "content": _error_content()},
    }
    return operation


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _parameter(p: Param, components: dict[str, Any]) -> dict[str, Any]:
    schema = schema_of(p.annotation, components)
    out: dict[str, Any] = {"name": p.name, "in": p.source, "required": p.source == "path" or p.default is MISSING}
    if p.default is not MISSING and _plain(p.default):
        schema = {**schema, "default": p.default}
    out["schema"] = schema
    return out


def _request_body(binding: Binding, components: dict[str, Any]) -> dict[str, Any] | None:
    params = binding.params
    whole = next((p for p in params if p.source in ("body", "model")), None)
    if whole is not None:
        shape = schema_of(whole.target, components)
        return {"required": whole.default is MISSING, "content": {"application/json": {"schema": shape}}}
    if any(p.source == "raw" for p in params):
        return {"required": True, "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
    fields = [p for p in params if p.source in ("field", "file")]
    if not fields:
        return None
    properties = {p.name: _field_schema(p, components) for p in fields}
    required = [p.name for p in fields if p.default is MISSING]
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if not binding.extra:
        schema["additionalProperties"] = False
    media = "multipart/form-data" if any(p.source == "file" for p in fields) else "application/json"
    return {"required": bool(required), "content": {media: {"schema": schema}}}


def _field_schema(p: Param, components: dict[str, Any]) -> dict[str, Any]:
    schema = schema_of(p.annotation, components)
    if p.default is not MISSING and _plain(p.default):
        schema = {**schema, "default": p.default}
    return schema


def _response(func: Callable[..., Any], components: dict[str, Any]) -> dict[str, Any]:
    scope = getattr(inspect.unwrap(func), "__globals__", {})
    returned = resolve_annotation(inspect.signature(func).return_annotation, scope)
    origin = typing.get_origin(returned) or returned
    if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func) or origin in (Iterator, AsyncIterator):
        return {"description": "server-sent events", "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    if returned in (bytes, Binary):
        return {
            "description": "raw bytes",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    if returned is inspect.Signature.empty:
        return {"description": "the handler's JSON answer", "content": {"application/json": {"schema": {}}}}
    schema = schema_of(returned, components)
    return {"description": "the handler's JSON answer", "content": {"application/json": {"schema": schema}}}


def schema_of(annotation: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of an annotation; named types (models, dataclasses, TypedDicts) land in
    components and are referenced."""
    if annotation is inspect.Parameter.empty or annotation in (Any, typing.Any, object) or isinstance(annotation, str):
        return {}
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    if annotation in (bytes, Upload):
        return {"type": "string", "format": "binary"}
    if annotation is type(None):
        return {"type": "null"}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema_of(a, components) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
        return {"type": "array", "items": schema_of(args[0], components) if args else {}}
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        values = schema_of(args[1], components) if len(args) == 2 else {}
        return {"type": "object", "additionalProperties": values} if values else {"type": "object"}
    if is_model(annotation):
        return _model(annotation, components)
    if is_typed_dict(annotation) or (isinstance(annotation, type) and dataclasses.is_dataclass(annotation)):
        return _record(annotation, components)
    return {}


def _model(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _record(kind: Any, components: dict[str, Any]) -> dict[str, Any]:
    """A dataclass or TypedDict: its fields, with the required ones listed."""
    name = kind.__name__
    if name not in components:
        components[name] = {}  # placed first: a recursive reference finds it
        hints = typing.get_type_hints(kind)
        if dataclasses.is_dataclass(kind):
            fields = [f for f in dataclasses.fields(kind) if f.init]
            required = [
                f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            names = [f.name for f in fields]
        else:
            names, required = list(hints), sorted(kind.__required_keys__)
        properties = {n: schema_of(hints.get(n, Any), components) for n in names}
        components[name] = {"title": name, "type": "object", "properties": properties, "required": required}
    return {"$ref": f"#/components/schemas/{name}"}


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))
