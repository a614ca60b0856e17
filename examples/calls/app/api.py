"""The `api` endpoint: validates, then calls `inference` with flash_runtime.endpoint (retries cold starts)."""

from flash_runtime import CallError, endpoint


async def classify(body: dict) -> tuple:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return {"error": "send {\"text\": \"...\"}"}, 422
    try:
        result = await endpoint("inference").post("/score", json={"text": text})
    except CallError as exc:
        return {"error": f"inference failed: HTTP {exc.status}"}, 502
    return {"label": "long" if result["score"] > 4 else "short", **result}, 200
