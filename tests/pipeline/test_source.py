"""Key paths map back to the line and column a user wrote them at."""

from __future__ import annotations

from pathlib import Path

import pytest

from flash_pipeline.config.source import load, parse
from flash_pipeline.errors import ConfigError

TEXT = '''# comment
[app]
name = "demo"   # trailing comment
notes = """
[endpoints.fake]
not = "a table"
"""

[endpoints.api]
gpu = [
  "ADA_24",   # first
  "AMPERE_24",
]
env = { A = "x", "B C" = 'y', nested = { deep = 1 } }
health.timeout = 5

[endpoints.api.routes]
"GET /items/{id}" = "app.h:get"
'GET /raw' = "app.h:raw"
'''


def positions(text: str = TEXT) -> tuple[object, object]:
    src = parse(text, Path("f.toml"), "f.toml")
    return src.locator.keys, src.locator.values


@pytest.mark.parametrize(
    ("path", "key", "expected"),
    [
        (("app", "name"), False, (3, 8)),
        (("app", "name"), True, (3, 1)),
        (("endpoints", "api"), False, (9, 1)),
        (("endpoints", "api", "gpu", 1), False, (12, 3)),
        (("endpoints", "api", "env", "B C"), True, (14, 18)),
        (("endpoints", "api", "env", "B C"), False, (14, 26)),
        (("endpoints", "api", "env", "nested", "deep"), False, (14, 49)),
        (("endpoints", "api", "health", "timeout"), False, (15, 18)),
        (("endpoints", "api", "routes", "GET /items/{id}"), True, (18, 1)),
        (("endpoints", "api", "routes", "GET /raw"), False, (19, 14)),
    ],
)
def test_positions(path: tuple[str | int, ...], key: bool, expected: tuple[int, int]) -> None:
    src = parse(TEXT, Path("f.toml"), "f.toml")
    assert src.loc(path, key=key) == expected


def test_a_table_header_inside_a_multiline_string_is_not_a_table() -> None:
    _, values = positions()
    assert ("endpoints", "fake") not in values  # type: ignore[operator]


def test_unknown_path_falls_back_to_nearest_ancestor() -> None:
    src = parse(TEXT, Path("f.toml"), "f.toml")
    assert src.loc(("endpoints", "api", "workers")) == (9, 1)
    assert src.loc(("nothing",)) == (1, 1)


def test_syntax_error_position(tmp_path: Path) -> None:
    path = tmp_path / "flash.toml"
    path.write_text("[app]\nname = demo\n")
    with pytest.raises(ConfigError) as info:
        load(path, "flash.toml")
    (diag,) = info.value.diagnostics
    assert (diag.line, diag.col, diag.message, diag.hint) == (
        2,
        8,
        "TOML syntax: Invalid value",
        'strings need quotes, e.g. name = "demo"',
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\xff\xfe", "is not UTF-8 text"), (None, "is a folder, not a file")],
)
def test_unreadable_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "flash.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load(path, "flash.toml")
    assert info.value.diagnostics[0].message == message
