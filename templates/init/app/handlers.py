"""Route handlers: plain functions; flash binds path, query and JSON body arguments."""


def hello(name: str = "world") -> dict[str, str]:
    """GET /hello?name=you"""
    return {"message": f"hello, {name}"}


def echo(body: dict) -> dict:
    """POST /echo with a JSON body: answers with the same body."""
    return {"echo": body}
