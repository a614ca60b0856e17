"""Handlers for the body_keys tests: one parameter each, as runpod-flash users write them."""

from __future__ import annotations


async def compute(numbers: list[float]) -> dict:
    """Sum of squares."""
    return {"sum_of_squares": sum(x * x for x in numbers)}


def process(data: dict) -> dict:
    return {"result": data}


def whole(data: dict) -> dict:
    return {"whole": data}


def upload(file: bytes, label: str = "x") -> dict:
    return {"size": len(file), "label": label}


def count(limit: int = 3) -> dict:
    return {"limit": limit}
