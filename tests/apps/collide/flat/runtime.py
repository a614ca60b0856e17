"""A handler module named like flash's old worker package."""


async def where() -> dict:
    return {"module": __name__, "file": __file__.rsplit("/", 1)[-1]}
