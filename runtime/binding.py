"""Argument binding: which request part feeds which handler parameter, decided once per route.

For POST/PUT/PATCH (the README's table has examples):
- one parameter besides path parameters: it receives the whole JSON body (a `bytes` one: the raw
  body, any content type);
- a `bytes` or `Upload` parameter among several: multipart/form-data, file parts by name, the
  other parameters from its fields (or from a JSON object's keys);
- a parameter taking the whole body (dict, Any, unannotated, a pydantic model, dataclass or
  TypedDict): the first such gets the body, the others come from the query string;
- otherwise (keyword bodies, runpod-flash's convention): a JSON object's top-level keys by name.
Path parameters by name; query values by name, converted by annotation; a parameter annotated with
the request type gets the request itself. Typed bodies are validated by flash_runtime.shapes.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flash_runtime.parts import Upload
from flash_runtime.shapes import NotJson, Problem, ShapeError, checker, is_model, is_shaped, model_from_json, to_shape

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
_WHOLE = (dict, Mapping, Any, typing.Any, object)  # among several parameters, these take the whole JSON body


class BindError(Exception):
    """The request does not fit the handler's parameters (answered with 422)."""

    def __init__(self, message: str, problems: list[Problem] | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.problems = problems or []
        self.status = status


@dataclass(frozen=True)
class Param:
    name: str
    source: str  # "path" | "body" | "model" | "field" | "raw" | "file" | "query" | "request"
    annotation: Any
    default: Any  # MISSING when required
    many: bool = False  # list[...] query parameter: every value
    target: Any = None  # the annotation without Optional / list[...]: decided once, used per request


@dataclass(frozen=True)
class Binding:
    params: tuple[Param, ...]
    wants_body: bool  # a JSON body is decoded for it ("body" or "field" parameters)
    extra: bool = False  # **kwargs: unexpected keys of a keyword body go there instead of a 422

    @functools.cached_property
    def fields(self) -> frozenset[str]:
        return frozenset(p.name for p in self.params if p.source == "field")

    @property
    def keyword(self) -> bool:
        return bool(self.fields)

    @functools.cached_property
    def multipart(self) -> bool:
        """Form fields and files may feed it (a multipart/form-data request is parsed for it)."""
        return any(p.source in ("field", "file") for p in self.params)


def plan(func: Callable[..., Any], method: str, path_params: Sequence[str], request_type: type) -> Binding:
    """Decide, once, where each parameter of func comes from."""
    scope = getattr(inspect.unwrap(func), "__globals__", {})
    signature = inspect.signature(func).parameters.values()
    fixed: dict[str, Param] = {}
    free: list[Param] = []  # neither path nor request: body, fields, files or query
    for p in signature:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = resolve_annotation(p.annotation, scope)
        default = MISSING if p.default is p.empty else p.default
        plain = _unwrap_optional(annotation)
        if annotation is request_type or (isinstance(annotation, type) and issubclass(annotation, request_type)):
            fixed[p.name] = Param(p.name, "request", annotation, default)
        elif p.name in path_params:
            fixed[p.name] = Param(p.name, "path", annotation, default, target=plain)
        else:
            free.append(Param(p.name, "query", annotation, default, target=plain))
    extra = any(p.kind is p.VAR_KEYWORD for p in signature)
    chosen = _sources(free, extra) if method in BODY_METHODS else [_query(p) for p in free]
    by_name = {**fixed, **{p.name: p for p in chosen}}
    params = tuple(by_name[p.name] for p in signature if p.name in by_name)
    return Binding(params, any(p.source in ("body", "field") for p in params), extra)


def plan_batch(func: Callable[..., Any]) -> Binding:
    """A batched handler takes a list: each request's body is bound as the one parameter of its item
    type (`list[Order]`: each body an Order; `list[bytes]`: each raw body)."""
    scope = getattr(inspect.unwrap(func), "__globals__", {})
    first = next(iter(inspect.signature(func).parameters.values()), None)
    if first is None:
        raise TypeError(f"batched handler {func.__name__} takes no parameter: it must take a list of inputs")
    annotation = resolve_annotation(first.annotation, scope)
    item = (typing.get_args(annotation) or (Any,))[0] if typing.get_origin(annotation) is list else Any
    plain = _unwrap_optional(item)
    return Binding(tuple(_sources([Param(first.name, "query", item, MISSING, target=plain)], False)), True)


def _sources(free: list[Param], extra: bool) -> list[Param]:
    """Where each non-path parameter of a body method comes from (the rules in the docstring)."""
    files = [p for p in free if p.target is bytes or p.target is Upload]
    if len(free) == 1 and not extra:
        only = free[0]
        return [_as(only, "raw" if only.target is bytes else "body", _body_target(only.target))]
    if files:
        return [_as(p, "file" if p in files else "field") for p in free]
    whole = next((p for p in free if _takes_whole(p.annotation)), None)
    if whole is not None:
        return [_as(p, "body", _body_target(p.target)) if p is whole else _query(p) for p in free]
    return [_as(p, "field") for p in free]


def _as(p: Param, source: str, target: Any = None) -> Param:
    if source == "body" and is_model(target):
        source = "model"  # pydantic validates the raw JSON itself, faster than decoding it first
    return Param(p.name, source, p.annotation, p.default, target=p.target if target is None else target)


def _query(p: Param) -> Param:
    many = typing.get_origin(p.target) in (list, tuple, set)
    target = (typing.get_args(p.target) or (str,))[0] if many else p.target
    return Param(p.name, "query", p.annotation, p.default, many, target)


def _body_target(plain: Any) -> Any:
    return plain if is_shaped(plain) else typing.get_origin(plain) or plain


def _takes_whole(annotation: Any) -> bool:
    plain = _unwrap_optional(annotation)
    return (
        annotation is inspect.Parameter.empty
        or plain in _WHOLE
        or typing.get_origin(plain) in (dict, Mapping)
        or is_shaped(plain)
    )


def bind(
    binding: Binding,
    path_args: Mapping[str, str],
    query: Mapping[str, list[str]],
    body: Any,
    request: Any,
    form: tuple[Mapping[str, list[str]], Mapping[str, list[Upload]]] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for the handler; BindError says which argument is missing or wrong.
    `body` is the decoded JSON body (MISSING without one); `form` the fields and files of a
    multipart request."""
    kwargs: dict[str, Any] = {}
    problems: list[Problem] = []
    if binding.keyword and form is None:
        if body is not MISSING and not isinstance(body, dict):
            raise BindError("expected a JSON object as the request body (its keys are the arguments)")
        _unexpected(binding, body if isinstance(body, dict) else {}, kwargs, problems)
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
        elif p.source == "model":
            if not request.body:
                if p.default is MISSING:
                    raise BindError(f"missing JSON body (for argument '{p.name}')")
                continue
            kwargs[p.name] = _model(p.name, request.body, p.target)
        elif p.source == "raw":
            kwargs[p.name] = request.body or b""
        elif p.source == "file":
            _file(p, form, request, kwargs, problems)
        elif p.source == "field":
            _field(p, body, form, query, kwargs, problems)
        elif p.name in query:
            values = query[p.name]
            if p.many:
                kwargs[p.name] = [convert(p.name, v, p.target) for v in values]
            else:
                kwargs[p.name] = convert(p.name, values[-1], p.target)
        elif p.default is MISSING:
            raise BindError(f"missing query parameter '{p.name}'")
    if problems:
        raise BindError("the request does not fit the handler's arguments", problems)
    return kwargs


def _unexpected(binding: Binding, body: Mapping[str, Any], kwargs: dict[str, Any], problems: list[Problem]) -> None:
    """Keys no argument takes: into **kwargs when the handler has one, else a problem each."""
    unknown = sorted(body.keys() - binding.fields)
    if binding.extra:
        kwargs.update({key: body[key] for key in unknown})
    else:
        problems.extend({"path": key, "message": "unexpected field"} for key in unknown)


def _field(
    p: Param,
    body: Any,
    form: tuple[Mapping[str, list[str]], Mapping[str, list[Upload]]] | None,
    query: Mapping[str, list[str]],
    kwargs: dict[str, Any],
    problems: list[Problem],
) -> None:
    """One keyword-body argument: a JSON key (converted by annotation), a form field, else the query."""
    if form is None and isinstance(body, dict) and p.name in body:
        kwargs[p.name] = checker(p.target)(body[p.name], p.name, problems)
        return
    strings = form[0] if form is not None else query
    if p.name in strings:
        try:
            kwargs[p.name] = convert(p.name, strings[p.name][-1], p.target)
        except BindError as exc:
            problems.append({"path": p.name, "message": str(exc)})
    elif p.default is MISSING:
        problems.append({"path": p.name, "message": "field required"})


def _file(
    p: Param,
    form: tuple[Mapping[str, list[str]], Mapping[str, list[Upload]]] | None,
    request: Any,
    kwargs: dict[str, Any],
    problems: list[Problem],
) -> None:
    uploads = form[1].get(p.name) if form is not None else None
    if not uploads:
        if p.default is MISSING:
            problems.append({"path": p.name, "message": "file part required (multipart/form-data)"})
        return
    kwargs[p.name] = uploads[0] if p.target is Upload else uploads[0].body


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


def _model(name: str, raw: bytes, target: Any) -> Any:
    try:
        return model_from_json(raw, target)
    except NotJson:
        raise BindError("request body is not valid JSON", status=400) from None
    except ShapeError as exc:
        raise BindError(f"argument '{name}': the request body does not fit {target.__name__}", exc.problems) from None


def check_body(name: str, body: Any, target: Any) -> Any:
    """The decoded JSON body, if it has the annotated container/scalar type (typed ones validated)."""
    if is_shaped(target):
        try:
            return to_shape(body, target)
        except ShapeError as exc:
            raise BindError(
                f"argument '{name}': the request body does not fit {target.__name__}", exc.problems
            ) from None
    accepted = _BODY_TYPES.get(target)
    if accepted is not None and not isinstance(body, accepted[0]):
        raise BindError(f"argument '{name}': expected {accepted[1]} as the request body")
    return body


def resolve_annotation(annotation: Any, scope: dict[str, Any]) -> Any:
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
