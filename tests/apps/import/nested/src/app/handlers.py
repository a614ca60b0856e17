from .endpoints import api


@api.post("/echo")
async def echo(message: str) -> dict:
    return {"echo": message}
