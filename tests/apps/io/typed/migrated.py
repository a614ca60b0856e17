"""runpod-flash's load-balancer example handlers, as written there (only the decorators differ:
flash.toml names the routes). tests/runtime/test_io.py sends them the requests runpod-flash's
examples send, and expects the same answers."""

from __future__ import annotations


async def process(input_data: dict) -> dict:
    """Process input data on a load-balanced CPU endpoint."""
    return {"status": "success", "echo": input_data}


async def health() -> dict:
    """Health check for the load-balanced endpoint."""
    return {"status": "healthy"}


async def generate_text(prompt: str, max_tokens: int = 100, temperature: float = 0.8) -> dict:
    """A keyword handler: the JSON body's keys are its arguments."""
    return {"text": prompt[:max_tokens], "max_tokens": max_tokens, "temperature": temperature}


async def transcribe(audio: bytes) -> dict:
    """An upload: the raw request body."""
    return {"bytes": len(audio)}
