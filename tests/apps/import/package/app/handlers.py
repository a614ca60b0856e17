from app.endpoints import embedder


@embedder.post("/embed")
def embed(text: str, normalize: bool = True) -> dict:
    return {"length": len(text), "normalize": normalize}
