"""One exit-code table: the README's equals flash_pipeline.errors.Exit, every command is in the
README's commands table, and every code a command lists is in the table."""

from __future__ import annotations

import re
from pathlib import Path

from flash_pipeline.cli import cli
from flash_pipeline.errors import (
    ApiError,
    BuildError,
    ConfigError,
    ConflictError,
    Exit,
    FlashError,
    HealthError,
    Interrupted,
    UsageError,
)

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def _rows(section: str) -> list[list[str]]:
    rows = [line.strip().strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:] if not set(row[0]) <= {"-", " "}]


def test_the_readme_table_is_the_enum() -> None:
    table = {int(code): meaning for code, meaning in _rows(_section("Exit codes"))}
    assert set(table) == {int(member) for member in Exit}
    for member in Exit:  # the enum's comments and the README say the same thing
        source = Path(__file__).resolve().parents[2] / "pipeline" / "errors.py"
        comment = re.search(rf"    {member.name} = {int(member)}  # (.+)", source.read_text())
        assert comment, member
        assert table[int(member)].replace("`", "") == comment.group(1).replace("`", ""), member


def test_every_command_is_listed_with_codes_from_the_table() -> None:
    listed = {}
    for row in _rows(_section("Commands")):
        name = re.match(r"`flash (\w+)", row[0])
        assert name, row[0]
        listed[name.group(1)] = {int(code) for code in re.findall(r"(?<![\w.-])(\d{1,3})(?![\w.-])", row[-1])}
    assert set(listed) == set(cli.commands)
    codes = {int(member) for member in Exit}
    for command, used in listed.items():
        assert used and used <= codes, (command, used - codes)


def test_each_error_leaf_carries_its_code_from_the_table() -> None:
    assert FlashError.exit_code == Exit.BUG
    assert (ConfigError.exit_code, UsageError.exit_code) == (Exit.INVALID, Exit.INVALID)
    assert BuildError.exit_code == Exit.BUILD
    assert (ApiError.exit_code, ConflictError.exit_code) == (Exit.API, Exit.API)
    assert HealthError.exit_code == Exit.UNHEALTHY
    assert Interrupted.exit_code == Exit.INTERRUPTED
