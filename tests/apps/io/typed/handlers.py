"""Handlers as users of FastAPI and runpod-flash write them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypedDict

from pydantic import BaseModel, Field

from flash_runtime import Binary, Upload


class Line(BaseModel):
    sku: str
    qty: int = Field(gt=0)


class Order(BaseModel):
    customer: str
    items: list[Line]


class Receipt(BaseModel):
    customer: str
    total_qty: int


@dataclass
class Point:
    x: float
    y: float
    label: str = "origin"
    tags: list[str] = field(default_factory=list)


class Query(TypedDict):
    text: str
    limit: int


async def model_body(order: Order) -> Receipt:
    return Receipt(customer=order.customer, total_qty=sum(line.qty for line in order.items))


def model_body_sync(order: Order) -> Receipt:
    return Receipt(customer=order.customer, total_qty=sum(line.qty for line in order.items))


async def dataclass_body(point: Point) -> dict:
    return {"type": type(point).__name__, "sum": point.x + point.y, "label": point.label, "tags": point.tags}


def dataclass_body_sync(point: Point) -> Point:
    return Point(point.y, point.x, point.label, point.tags)


async def typeddict_body(query: Query) -> dict:
    return {"text": query["text"].upper(), "limit": query["limit"]}


async def generate(prompt: str, max_tokens: int = 128, temperature: float = 0.7, stream: bool = False) -> dict:
    return {"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, "stream": stream}


def generate_sync(prompt: str, max_tokens: int = 128, temperature: float = 0.7) -> dict:
    return {"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature}


async def with_extra(prompt: str, n: int = 1, **options: object) -> dict:
    return {"prompt": prompt, "n": n, "options": options}


async def raw_bytes(audio: bytes) -> dict:
    return {"size": len(audio), "head": audio[:4].hex()}


def raw_bytes_sync(audio: bytes) -> dict:
    return {"size": len(audio), "head": audio[:4].hex()}


async def upload(audio: bytes, meta: Upload, language: str = "en", speed: float = 1.0) -> dict:
    return {
        "audio": len(audio),
        "meta": [meta.filename, meta.content_type, meta.body.decode()],
        "language": language,
        "speed": speed,
    }


def upload_sync(audio: bytes, language: str = "en") -> dict:
    return {"audio": len(audio), "language": language}


async def plain_dict(data: dict) -> dict:
    return {"echo": data}


async def model_answer() -> Receipt:
    return Receipt(customer="ada", total_qty=3)


def dataclass_answer() -> list[Point]:
    return [Point(1, 2), Point(3, 4, "b", ["t"])]


async def bytes_answer() -> bytes:
    return b"\x00\x01binary"


async def png() -> Binary:
    return Binary(b"\x89PNG\r\n", "image/png")


def count_sync(n: int = 3) -> Iterator[dict]:
    for i in range(n):
        yield {"i": i}


async def get_item(item_id: int, verbose: bool = False) -> dict:
    return {"item_id": item_id, "verbose": verbose}


async def with_list(name: str, values: list[int], flag: bool = False) -> dict:
    """A list argument is a key of a keyword body, not the whole body."""
    return {"name": name, "values": values, "flag": flag}
