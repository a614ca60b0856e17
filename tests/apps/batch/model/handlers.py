"""Batched handlers that record each call's inputs (GET /calls), so tests see how batches formed."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

CALLS: list[dict] = []


@dataclass
class Text:
    text: str
    n: int


async def embed(items: list[Text]) -> list[dict]:
    CALLS.append({"route": "embed", "items": [item.n for item in items]})
    await asyncio.sleep(0.01)  # the model's forward pass
    return [{"n": item.n, "length": len(item.text), "batch": len(items)} for item in items]


def embed_sync(items: list[int]) -> list[dict]:
    CALLS.append({"route": "embed_sync", "items": list(items)})
    time.sleep(0.01)
    return [{"square": item * item} for item in items]


def fails(items: list[dict]) -> list[dict]:
    CALLS.append({"route": "fails", "items": [item["n"] for item in items]})
    if any(item.get("boom") for item in items):
        raise RuntimeError("the model ran out of memory")
    return [{"ok": item["n"]} for item in items]


async def short(items: list[dict]) -> list[dict]:
    CALLS.append({"route": "short", "items": [item["n"] for item in items]})
    return [{"ok": True} for _ in items[1:]]


async def slow(items: list[dict]) -> list[dict]:
    CALLS.append({"route": "slow", "items": [item["n"] for item in items]})
    await asyncio.sleep(1.0)
    return [{"done": item["n"]} for item in items]


def calls() -> list[dict]:
    return CALLS


def reset() -> dict:
    CALLS.clear()
    return {}
