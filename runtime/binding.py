"""Argument binding: which request part feeds which handler parameter, decided once per route.

Path parameters by name; the JSON body (POST/PUT/PATCH) to the first other parameter; query
values to parameters of the same name, converted by annotation; a parameter annotated with the
request type gets the request itself.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
MISSING: Any = object()
_BODY_TYPES: dict[Any, tuple[type | tuple[type, ...], str]] = {
    dict: (dict, "a JSON object"),
    list: (list, "a JSON array"),
    str: (str, "a JSON string"),
    int: (int, "a JSON number"),
    float: ((int, float), "a JSON number"),
}


class BindError(Exception):
    """The request does not fit the handler's parameters (answered with 422)."""


@dataclass(frozen=True)
class Param:
    name: str
    source: str  # "path" | "body" | "query" | "request"
    annotation: Any
    default: Any  # MISSING when required
    many: bool = False  # list[...] query parameter: every value
    target: Any = None  # the annotation without Optional / list[...]: decided once, used per request


@dataclass(frozen=True)
class Binding:
    params: tuple[Param, ...]
    wants_body: bool


def plan(func: Callable[..., Any], method: str, path_params: Sequence[str], request_type: type) -> Binding:
    """Decide, once, where each parameter of func comes from."""
    scope = getattr(inspect.unwrap(func), "__globals__", {})
    params: list[Param] = []
    body_taken = method not in BODY_METHODS
    for p in inspect.signature(func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = _resolve(p.annotation, scope)
        default = MISSING if p.default is p.empty else p.default
        plain = _unwrap_optional(annotation)
        if annotation is request_type or (isinstance(annotation, type) and issubclass(annotation, request_type)):
            params.append(Param(p.name, "request", annotation, default))
        elif p.name in path_params:
            params.append(Param(p.name, "path", annotation, default, target=plain))
        elif not body_taken:
            body_taken = True
            params.append(Param(p.name, "body", annotation, default, target=typing.get_origin(plain) or plain))
        else:
            many = typing.get_origin(plain) in (list, tuple, set)
            target = (typing.get_args(plain) or (str,))[0] if many else plain
            params.append(Param(p.name, "query", annotation, default, many, target))
    return Binding(tuple(params), any(p.source == "body" for p in params))


def bind(
    binding: Binding, path_args: Mapping[str, str], query: Mapping[str, list[str]], body: Any, request: Any
) -> dict[str, Any]:
    """Keyword arguments for the handler; BindError says which argument is missing or wrong."""
    kwargs: dict[str, Any] = {}
    for p in binding.params:
        if p.source == "request":
            kwargs[p.name] = request
        elif p.source == "path":
            kwargs[p.name] = convert(p.name, path_args[p.name], p.target)
        elif p.source == "body":
            if body is MISSING:
                if p.default is MISSING:
                    raise BindError(f"missing JSON body (for argument '{p.name}')")
                continue
            kwargs[p.name] = check_body(p.name, body, p.target)
        elif p.name in query:
            values = query[p.name]
            if p.many:
                kwargs[p.name] = [convert(p.name, v, p.target) for v in values]
            else:
                kwargs[p.name] = convert(p.name, values[-1], p.target)
        elif p.default is MISSING:
            raise BindError(f"missing query parameter '{p.name}'")
    return kwargs


def convert(name: str, raw: str, target: Any) -> Any:
    """A path or query string converted to the parameter's (unwrapped) annotated type."""
    try:
        if target is bool:
            lowered = raw.lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError
            return lowered in _TRUE
        if target in (int, float):
            return target(raw)
    except ValueError:
        raise BindError(f"argument '{name}': expected {target.__name__}, got {raw!r}") from None
    return raw


def check_body(name: str, body: Any, target: Any) -> Any:
    """The decoded JSON body, if it has the annotated container/scalar type."""
    accepted = _BODY_TYPES.get(target)
    if accepted is not None and not isinstance(body, accepted[0]):
        raise BindError(f"argument '{name}': expected {accepted[1]} as the request body")
    return body


def _resolve(annotation: Any, scope: dict[str, Any]) -> Any:
    """A string annotation (`from __future__ import annotations`) evaluated in the handler's module.

    Per parameter: one name only imported under TYPE_CHECKING leaves that parameter unconverted,
    not the whole handler (typing.get_type_hints would fail for all of them).
    """
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, scope, {})  # the handler's own annotation, in its own module
    except Exception:
        return annotation


def _unwrap_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation
