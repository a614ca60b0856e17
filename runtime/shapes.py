"""Typed request bodies and answers: pydantic v2 models, dataclasses and TypedDicts.

pydantic is never imported here: a model is recognised by its `model_validate` (duck typing), so
the runtime depends on pydantic only when the user's code does. Dataclasses and TypedDicts are
checked here, every problem collected with its field path, the way pydantic reports them.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

from flash_runtime.jsoncodec import BOM, NESTED, BadJson, standard_loads

Problem = dict[str, str]  # {"path": "items.0.qty", "message": "..."}
_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
}


class ShapeError(Exception):
    """A body that does not fit its declared type: every problem, with its field path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p['path'] or 'body'}: {p['message']}" for p in problems))


def is_model(target: Any) -> bool:
    return isinstance(target, type) and callable(getattr(target, "model_validate", None))


def is_typed_dict(target: Any) -> bool:
    return isinstance(target, type) and issubclass(target, dict) and hasattr(target, "__required_keys__")


def is_shaped(target: Any) -> bool:
    """A type whose instances are built from a JSON object: a model, a dataclass or a TypedDict."""
    return is_model(target) or is_typed_dict(target) or (isinstance(target, type) and dataclasses.is_dataclass(target))


class NotJson(ValueError):
    """The raw body given to a model is not JSON the worker accepts; str() is the reason."""


def model_from_json(raw: bytes, model: Any) -> Any:
    """A pydantic model straight from the raw body (pydantic parses in Rust: no decode-then-validate).
    A leading BOM is ignored, as on every other route kind (flash_runtime.jsoncodec)."""
    try:
        return model.model_validate_json(raw)
    except ValueError as exc:
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise
        found = errors()
        invalid = next((e for e in found if e.get("type") == "json_invalid"), None)
        if invalid is None:
            raise ShapeError([_pydantic_problem(e) for e in found]) from None
    if raw.startswith(BOM):
        return model_from_json(raw[len(BOM) :], model)
    raise NotJson(_json_reason(raw, str(invalid.get("msg", "")))) from None


def _json_reason(raw: bytes, pydantic_message: str) -> str:
    """Why pydantic refused raw: the standard parser's reason (the same words as every route kind's),
    else pydantic's own (its parser is stricter: it stops at 200 levels of nesting)."""
    try:
        standard_loads(raw)
    except BadJson as exc:
        return str(exc)
    if "recursion limit" in pydantic_message:
        return NESTED
    return f"request body is not valid JSON ({pydantic_message.removeprefix('Invalid JSON: ')})"


def _pydantic_problem(error: Mapping[str, Any]) -> Problem:
    return {"path": ".".join(str(p) for p in error.get("loc", ())), "message": str(error.get("msg", ""))}


def to_shape(value: Any, target: Any) -> Any:
    """value (decoded JSON) as an instance of target; ShapeError with every problem."""
    if is_model(target):
        try:
            return target.model_validate(value)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError with .errors()
            errors = getattr(exc, "errors", None)
            if not callable(errors):
                raise
            raise ShapeError(
                [
                    {"path": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
                    for e in errors()
                ]
            ) from None
    problems: list[Problem] = []
    result = convert_value(value, target, "", problems)
    if problems:
        raise ShapeError(problems)
    return result


def convert_value(value: Any, target: Any, path: str, problems: list[Problem]) -> Any:
    """One decoded JSON value checked against one annotation; problems appended, a best-effort value
    returned (an annotation it cannot check passes the value as it is)."""
    origin, args = typing.get_origin(target), typing.get_args(target)
    if target is Any or target is typing.Any or target is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            trial: list[Problem] = []
            converted = convert_value(value, option, path, trial)
            if not trial:
                return converted
        return convert_value(value, options[0], path, problems) if len(options) == 1 else _wrong(target, path, problems)
    if origin is typing.Literal:
        return value if value in args else _problem(path, f"must be one of {list(args)!r}", problems)
    if isinstance(target, type) and dataclasses.is_dataclass(target):
        return _fields(value, target, path, problems, lambda data: target(**data))
    if is_typed_dict(target):
        return _fields(value, target, path, problems, dict)
    if is_model(target):
        try:
            return to_shape(value, target)
        except ShapeError as exc:
            problems.extend({"path": _join(path, p["path"]), "message": p["message"]} for p in exc.problems)
            return None
    if origin in (list, tuple, set, frozenset) or target in (list, tuple, set, frozenset):
        if not isinstance(value, list):
            return _problem(path, "must be an array", problems)
        item = args[0] if args else Any
        return [convert_value(v, item, _join(path, str(i)), problems) for i, v in enumerate(value)]
    if origin in (dict, Mapping) or target in (dict, Mapping):
        if not isinstance(value, dict):
            return _problem(path, "must be an object", problems)
        item = args[1] if len(args) == 2 else Any
        return {k: convert_value(v, item, _join(path, str(k)), problems) for k, v in value.items()}
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        return _float(value, path, problems)
    if target in _JSON_NAMES:
        if isinstance(value, target) and not (target is int and isinstance(value, bool)):
            return value
        return _wrong(target, path, problems)
    return value  # an annotation flash cannot check: passed as decoded


Checker = typing.Callable[[Any, str, list[Problem]], Any]


@functools.lru_cache(maxsize=1024)
def checker(target: Any) -> Checker:
    """convert_value for one annotation, specialised once: the common JSON types skip the general
    walk (a keyword body checks every argument of every request)."""
    if target in (str, bool, dict, list):
        return lambda v, path, found: v if type(v) is target else _wrong(target, path, found)
    if target is int:
        return lambda v, path, found: v if type(v) is int else _wrong(int, path, found)
    if target is float:
        return lambda v, path, found: (
            v if type(v) is float else _float(v, path, found) if type(v) is int else _wrong(float, path, found)
        )
    if typing.get_origin(target) is list and len(typing.get_args(target)) == 1:
        item = checker(typing.get_args(target)[0])
        return lambda v, path, found: (
            [item(x, _join(path, str(i)), found) for i, x in enumerate(v)]
            if type(v) is list
            else _problem(path, "must be an array", found)
        )
    return lambda v, path, found: convert_value(v, target, path, found)


def _float(value: int, path: str, problems: list[Problem]) -> float | None:
    """An integer where a float is wanted, converted; one past float's range is a problem, not an error."""
    try:
        return float(value)
    except OverflowError:
        problems.append({"path": path, "message": "must be a number within a float's range"})
        return None


def _fields(value: Any, target: Any, path: str, problems: list[Problem], build: Any) -> Any:
    if not isinstance(value, dict):
        return _problem(path, "must be an object", problems)
    hints = typing.get_type_hints(target)
    if dataclasses.is_dataclass(target):
        required = {f.name for f in dataclasses.fields(target) if _required(f)}
        known = {f.name for f in dataclasses.fields(target) if f.init}
    else:
        required, known = set(target.__required_keys__), set(hints)
    data: dict[str, Any] = {}
    for name in sorted(required - set(value)):
        problems.append({"path": _join(path, name), "message": "field required"})
    for name, item in value.items():
        if name not in known:
            problems.append({"path": _join(path, name), "message": "unexpected field"})
            continue
        data[name] = convert_value(item, hints.get(name, Any), _join(path, name), problems)
    return None if problems else build(data)


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.init and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _wrong(target: Any, path: str, problems: list[Problem]) -> None:
    wanted = _JSON_NAMES.get(target, getattr(target, "__name__", str(target)))
    return _problem(path, f"must be {wanted}", problems)


def _problem(path: str, message: str, problems: list[Problem]) -> None:
    problems.append({"path": path, "message": message})
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path and name else path or name


def to_json(result: Any) -> Any:
    """A handler's answer made JSON-ready: models dumped, dataclasses as dicts; anything else as is."""
    if isinstance(result, (list, tuple)):
        return [to_json(item) for item in result]
    dump = getattr(result, "model_dump", None)
    if callable(dump) and not isinstance(result, type):
        return dump(mode="json")
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return result
