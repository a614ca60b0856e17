"""JSON in and out of the worker: one decoder for every route kind, one encoder for every answer.

Request bodies: UTF-8, a leading byte order mark ignored (RFC 8259 allows it), on dict, keyword,
batched and model routes alike. What cannot be decoded raises BadJson with the reason users see in
the 400: where the syntax breaks, that it is not UTF-8, that it is nested too deeply, or that a
number has more digits than Python converts (sys.get_int_max_str_digits(), 4300 by default: a
longer one would cost quadratic time to convert).

Answers: always valid JSON. A non-finite float (inf, -inf, nan), which JSON cannot express, is
written as null, as pydantic writes it for models and JavaScript's JSON.stringify does.

The fast C parser and encoder (ujson, which Sanic installs) run first; the standard library only
runs for what they refuse, so the common request pays nothing for this.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

try:  # Sanic installs ujson on CPython/Linux; it parses bodies about twice as fast
    from ujson import dumps as _ujson_dumps
    from ujson import loads as fast_loads

    _fast_dumps: Callable[[Any], str] = partial(_ujson_dumps, escape_forward_slashes=False, allow_nan=False)
except ImportError:  # pragma: no cover - other platforms
    from json import loads as fast_loads

    _fast_dumps = partial(json.dumps, separators=(",", ":"), allow_nan=False)

BOM = b"\xef\xbb\xbf"
NESTED = "request body is not accepted: its JSON is nested too deeply"


class BadJson(ValueError):
    """A request body that is not JSON the worker accepts; str() is the reason users see."""


def loads(raw: bytes) -> Any:
    """A request body decoded (BadJson with the reason if it cannot be)."""
    try:
        return fast_loads(raw)
    except ValueError:  # ujson refuses a few documents the standard parser reads (a BOM, ints past 64 bits)
        return standard_loads(raw)


def standard_loads(raw: bytes) -> Any:
    """The standard parser's reading of raw, its refusal turned into BadJson with the reason."""
    skip = len(BOM) if raw.startswith(BOM) else 0
    try:
        text = str(raw[skip:], "utf-8")  # UTF-16/32 refused like anywhere else
    except UnicodeDecodeError as exc:
        raise BadJson(f"request body is not valid JSON (not UTF-8 at byte {skip + exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadJson(f"request body is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise BadJson(NESTED) from None
    except ValueError as exc:  # int(): more digits than the interpreter converts
        if "digits" not in str(exc):
            raise BadJson(f"request body is not valid JSON ({exc})") from None
        limit = sys.get_int_max_str_digits()
        raise BadJson(f"request body is not accepted: a number has more than {limit} digits") from None


def dumps(value: Any) -> str:
    """value as JSON text; non-finite floats as null; TypeError if it is not JSON at all."""
    try:
        return _fast_dumps(value)
    except (OverflowError, UnicodeEncodeError):  # nan/inf, a lone surrogate, very deep nesting
        pass
    try:
        return json.dumps(finite(value), separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise TypeError("nested too deeply") from None
    except ValueError as exc:
        raise TypeError(str(exc)) from None


def finite(value: Any) -> Any:
    """value with every non-finite float replaced by None (lists, tuples and dicts walked)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value
