"""`flash validate --fix` and `--diff` against golden files: before, after, untouched comments."""

from __future__ import annotations

import shutil
from pathlib import Path

CASE = Path(__file__).resolve().parents[1] / "cases" / "fix"


def test_diff_shows_the_fixes_and_writes_nothing(tmp_path: Path, flash) -> None:
    shutil.copy(CASE / "before.toml", tmp_path / "flash.toml")
    shown = flash("validate", "--diff", cwd=tmp_path)
    assert shown.code == 2
    assert shown.out == (CASE / "diff.out").read_text()
    assert (tmp_path / "flash.toml").read_text() == (CASE / "before.toml").read_text()


def test_fix_applies_the_safe_fixes_in_place_and_reports_what_is_left(tmp_path: Path, flash) -> None:
    shutil.copy(CASE / "before.toml", tmp_path / "flash.toml")
    fixed = flash("validate", "--fix", cwd=tmp_path)
    assert (fixed.code, fixed.out, fixed.err) == (2, (CASE / "fix.out").read_text(), (CASE / "fix.err").read_text())
    after = (tmp_path / "flash.toml").read_text()
    assert after == (CASE / "after.toml").read_text()
    # Every comment and blank line is where it was: only the fixed tokens changed.
    before = (CASE / "before.toml").read_text()
    comments = [line.partition("#")[2] for line in before.splitlines()]
    assert comments == [line.partition("#")[2] for line in after.splitlines()]
    again = flash("validate", "--fix", cwd=tmp_path)  # nothing more to fix: the file stays as it is
    assert (tmp_path / "flash.toml").read_text() == after and again.err == ""


def test_a_file_without_safe_fixes_is_left_alone(tmp_path: Path, flash) -> None:
    text = (CASE / "after.toml").read_text().replace("idle_timeout = 5", "timeout_idle = 5")  # not a typo of either
    (tmp_path / "flash.toml").write_text(text)
    result = flash("validate", "--fix", cwd=tmp_path)
    assert result.code == 2 and 'unknown key "timeout_idle"' in result.out
    assert "timeout_idle" in (tmp_path / "flash.toml").read_text()  # a guess is never written
