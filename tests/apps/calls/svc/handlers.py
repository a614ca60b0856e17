"""`api` calls `inference` through flash_runtime.endpoint; `inference` reports what reached it."""

from __future__ import annotations

from sanic import Request

from flash_runtime import CallError, endpoint


def predict(request: Request) -> dict:
    values = (request.json or {}).get("values", [])
    return {
        "doubled": [2 * v for v in values],
        "request_id": request.headers.get("x-request-id"),
        "authorization": request.headers.get("authorization"),
    }


async def ask(body: dict) -> dict:
    answer = await endpoint("inference").post("/predict", json={"values": body["values"]})
    return {"via": "async", **answer}


def ask_sync(body: dict) -> dict:
    answer = endpoint("inference").sync.post("/predict", json={"values": body["values"]})
    return {"via": "sync", **answer}


async def ask_missing(body: dict) -> tuple:
    try:
        await endpoint("billing").get("/x")
    except LookupError as exc:
        return {"error": str(exc)}, 400
    except CallError as exc:  # pragma: no cover - not reached: billing is not in calls
        return {"error": str(exc)}, 502
    return {}, 200
