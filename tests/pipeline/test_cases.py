"""Data-driven config cases: each tests/cases/{valid,invalid}/NAME.toml has NAME.out, the exact report."""

from __future__ import annotations

from pathlib import Path

import pytest

CASES = Path(__file__).resolve().parent.parent / "cases"
VALID = sorted((CASES / "valid").glob("*.toml"))
INVALID = sorted((CASES / "invalid").glob("*.toml"))


def test_there_are_enough_cases() -> None:
    assert len(INVALID) >= 30
    assert VALID


@pytest.mark.parametrize("case", VALID + INVALID, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_case_report_is_exact(case: Path, flash) -> None:
    expected = case.with_suffix(".out").read_text(encoding="utf-8")
    result = flash("validate", case.name, cwd=case.parent)
    assert result.out == expected
    assert result.code == (0 if case.parent.name == "valid" else 2)
    assert result.err == ""
