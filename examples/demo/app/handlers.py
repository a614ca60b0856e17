"""HTTP handlers of the inference-api endpoint."""

from __future__ import annotations

import os

from app import model

ITEMS = {1: {"id": 1, "name": "first"}, 2: {"id": 2, "name": "second"}}


def predict(body: dict) -> dict:
    """POST /predict {"values": [1, 2]} -> {"predictions": [...], "model": ...}."""
    values = body.get("values")
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
        return {"error": "send {\"values\": [numbers]}"}, 400
    return {"predictions": model.predict(values), "model": os.environ.get("MODEL", "")}


def health() -> dict:
    """GET /health: an application-level check (RunPod's /ping is served by flash)."""
    return {"status": "ok", "loaded": bool(model.WEIGHTS)}


def get_item(item_id: int, verbose: bool = False) -> dict:
    """GET /items/{item_id}?verbose=true"""
    item = ITEMS.get(item_id)
    if item is None:
        return {"error": f"no item {item_id}"}, 404
    return {**item, "verbose": verbose} if verbose else item
