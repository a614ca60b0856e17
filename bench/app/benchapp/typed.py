"""Typed-body benchmark handlers: a pydantic model body and a keyword body (bench/worker_io.py)."""

from pydantic import BaseModel


class Item(BaseModel):
    name: str
    values: list[int]


async def model(item: Item) -> Item:
    return item


async def keyword(name: str, values: list[int], flag: bool = False) -> dict:
    return {"name": name, "values": values, "flag": flag}
