"""Benchmark handlers: a JSON echo (sync and async) and a blocking route."""

import time


def echo(body: dict) -> dict:
    return body


async def echo_async(body: dict) -> dict:
    return body


def slow(seconds: float = 0.5) -> dict:
    time.sleep(seconds)
    return {"slept": seconds}
