"""Handlers exercising every binding and result rule of the worker contract."""

from __future__ import annotations

import asyncio
import os
import time

from typing import TYPE_CHECKING

from sanic import Request
from sanic.response import text

if TYPE_CHECKING:
    from decimal import Decimal  # never imported at run time: its annotation cannot be resolved


def hello(name: str = "world") -> dict:
    return {"message": f"{os.environ.get('GREETING', 'hello')}, {name}"}


def echo(body: dict) -> dict:
    return {"echo": body}


def put_item(item_id: int, body: dict, dry_run: bool = False) -> dict:
    return {"item_id": item_id, "body": body, "dry_run": dry_run}


def get_tag(item_id: int, tag: str) -> dict:
    return {"item_id": item_id, "tag": tag}


def search(q: str, limit: int = 10, tags: list[str] | None = None, score: float = 0.5) -> dict:
    return {"q": q, "limit": limit, "tags": tags or [], "score": score}


def typed(values: list) -> dict:
    return {"count": len(values)}


def raw(request: Request) -> dict:
    return {"method": request.method, "agent": request.headers.get("x-test", "")}


def created(body: dict) -> tuple:
    return {"created": body.get("name")}, 201


def response() -> object:
    return text("plain text", status=202, headers={"X-Custom": "yes"})


async def stream(count: int = 3):
    for index in range(count):
        await asyncio.sleep(0.01)
        yield {"index": index}
    yield "done"


def boom() -> dict:
    raise ValueError("secret internal detail")


def slow(seconds: float = 1.0) -> dict:
    time.sleep(seconds)  # a blocking handler: must not block /ping
    return {"slept": seconds}


async def slow_async(seconds: float = 1.0) -> dict:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


async def async_hello() -> dict:
    await asyncio.sleep(0)
    return {"async": True}


def delete_item(item_id: int) -> None:
    return None


def not_json() -> object:
    return {1, 2}


def pair() -> tuple:
    return 3, 4  # data, not (value, status): 4 is no HTTP status


def flagged() -> tuple:
    return "x", True  # a bool is no status either


async def stream_fails():
    yield {"index": 0}
    raise RuntimeError("secret stream detail")


def partly_typed(limit: int, price: Decimal | None = None) -> dict:
    return {"limit": limit, "price": price}
