"""The `inference` endpoint: a stand-in model scoring words."""


def score(body: dict) -> dict:
    words = str(body.get("text", "")).split()
    return {"score": round(sum(len(w) for w in words) / max(1, len(words)), 2), "words": len(words)}
