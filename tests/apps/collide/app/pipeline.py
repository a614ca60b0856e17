"""The user's own `pipeline` module (flash's CLI package once had this name)."""

from flash_runtime import Binary  # flash's client, by its distinctive name

assert Binary is not None


async def classify(body: dict) -> dict:
    text = body["text"]
    return {"label": "long" if len(text) > 5 else "short", "module": __name__}
