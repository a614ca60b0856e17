"""Handlers the valid cases name: `flash validate` checks that they exist."""


def index() -> dict:
    return {}


def predict(body: dict) -> dict:
    return body


def delete(item_id: int) -> None:
    return None


async def chat(ws, room: str) -> None:
    async for message in ws:
        await ws.send(f"{room}: {message}")
