def load() -> None:
    return None
