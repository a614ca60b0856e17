"""Handlers for the worker's edge cases (tests/runtime/test_edges.py): blank query values,
non-finite floats in answers, and `(value, status)` answers as the OpenAPI document shows them."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from typed.handlers import Receipt


class Problem(BaseModel):
    detail: str


@dataclass
class Reading:
    value: float
    unit: str = "C"


class Measured(BaseModel):
    value: float


async def search(q: str, page: int = 1) -> dict:
    return {"q": q, "page": page}


async def non_finite() -> dict:
    return {"inf": math.inf, "minus_inf": -math.inf, "nan": math.nan, "nested": [1.5, [math.nan]], "ok": 2.5}


def non_finite_pair() -> tuple[list[float], Literal[201]]:
    return [math.inf, 1.0], 201


def non_finite_dataclass() -> Reading:
    return Reading(math.nan)


async def non_finite_model() -> Measured:
    return Measured(value=math.inf)


async def non_finite_float() -> float:
    return math.nan


async def non_finite_stream() -> AsyncIterator[dict]:
    yield {"value": math.nan}
    yield {"value": 1.0}


async def created(customer: str) -> tuple[Receipt, Literal[201]]:
    return Receipt(customer=customer, total_qty=0), 201


async def found_or_not(name: str) -> Receipt | tuple[Problem, Literal[404]]:
    if name == "ada":
        return Receipt(customer=name, total_qty=1)
    return Problem(detail=f"no order for {name}"), 404


async def any_status(code: int) -> tuple[dict, int]:
    return {"code": code}, code


def bare_tuple() -> tuple:
    return {"accepted": True}, 202


def data_tuple() -> tuple[int, str]:
    return 3, "three"
