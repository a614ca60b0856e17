"""HTTP handlers of the data-api endpoint."""

from __future__ import annotations


def process(body: dict) -> dict:
    """POST /process {"text": "..."} -> word and character counts."""
    text = str(body.get("text", ""))
    return {"words": len(text.split()), "chars": len(text), "upper": text.upper()}
