"""Handlers the valid cases name: `flash validate` checks that they exist."""


def index() -> dict:
    return {}


def predict(body: dict) -> dict:
    return body


def delete(item_id: int) -> None:
    return None
