def x() -> dict:
    return {}
