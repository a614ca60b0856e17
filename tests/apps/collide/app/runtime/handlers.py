from runtime import MARK


async def tag() -> dict:
    return {"tag": MARK}
