"""Handlers of the full case (source = "src")."""


def index() -> dict:
    return {}


def models() -> list:
    return []


def put_item(item_id: int, body: dict) -> dict:
    return body


def tag(item_id: int, tag: str) -> dict:
    return {}
