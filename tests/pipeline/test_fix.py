"""`flash validate --fix` and `--diff` against golden files: before, after, untouched comments."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import assume, given
from hypothesis import strategies as st

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


HEADER_TYPO = """\
[app]
name = "fixme"

[endpoints.api]
cpu = "cpu3c-2-4"

# the routes
[endpoints.api.route]
"GET /hello" = "app.h:hello"  # hello
"""


def test_a_table_header_typo_is_renamed_and_reported_only_once_applied(tmp_path: Path, flash) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "h.py").write_text("def hello() -> dict:\n    return {}\n")
    (tmp_path / "flash.toml").write_text(HEADER_TYPO)
    shown = flash("validate", "--fix", "--diff", cwd=tmp_path)
    assert (shown.code, shown.out) == (
        2,  # nothing was written: the file on disk still fails
        "--- a/flash.toml\n+++ b/flash.toml\n@@ -5,5 +5,5 @@\n"
        ' cpu = "cpu3c-2-4"\n \n # the routes\n-[endpoints.api.route]\n+[endpoints.api.routes]\n'
        ' "GET /hello" = "app.h:hello"  # hello\n'
        "flash: flash.toml is valid (1 endpoint, 1 route)\n",  # what would remain after the fixes: nothing
    )
    assert (tmp_path / "flash.toml").read_text() == HEADER_TYPO
    fixed = flash("validate", "--fix", cwd=tmp_path)
    assert (fixed.code, fixed.err) == (0, "fixed flash.toml:8:16: renamed route to routes\n")
    assert (tmp_path / "flash.toml").read_text() == HEADER_TYPO.replace(".route]", ".routes]")


def test_a_fix_that_does_not_show_in_the_result_is_never_reported() -> None:
    from flash_pipeline.config.fix import apply
    from flash_pipeline.errors import Diagnostic

    taken = Diagnostic("f", 1, 1, "a.b", "unknown key", fix=("rename", ("a", "b"), "c"))
    fixed = apply("[a]\nb = 1\nc = 2\n", [taken])  # the new name is taken: renaming would lose a value
    assert (fixed.applied, fixed.skipped) == ((), (taken,))
    header = Diagnostic("f", 1, 1, "a.b", "unknown key", fix=("rename", ("a", "b"), "c"))
    fixed = apply('[a.b]\nx = 1\n\n[a.b."sub.table"]\ny = 2\n', [header])
    assert fixed.text == '[a.c]\nx = 1\n\n[a.c."sub.table"]\ny = 2\n' and fixed.applied == (header,)


_SEGMENTS = st.from_regex(r"[a-z][a-z0-9_-]{0,6}|\"[a-z .#]{1,6}\"", fullmatch=True)


@given(
    parents=st.lists(_SEGMENTS, min_size=0, max_size=2),
    old=_SEGMENTS,
    new=st.from_regex(r"[a-z][a-z0-9_]{0,6}|[a-z]{1,3} [a-z]{1,3}", fullmatch=True),
)
def test_a_header_rename_moves_exactly_that_table_whatever_its_quoting(parents: list[str], old: str, new: str) -> None:
    import tomllib

    from flash_pipeline.config.fix import apply
    from flash_pipeline.errors import Diagnostic

    def bare(segment: str) -> str:
        return segment.strip('"')

    path = tuple(bare(p) for p in [*parents, old])
    assume(bare(old) != new and len(set(path)) == len(path))
    header = ".".join([*parents, old])
    text = f"[{header}]\nx = 1\n\n[{header}.child]\ny = 2\n\n[other]\nz = 3\n"
    fix = Diagnostic("f", 1, 1, ".".join(path), "unknown key", fix=("rename", path, new))
    fixed = apply(text, [fix])
    assert fixed.applied == (fix,), fixed.text
    before, after = tomllib.loads(text), tomllib.loads(fixed.text)
    for part in path[:-1]:
        before, after = before[part], after[part]
    assert after[new] == before[path[-1]] and path[-1] not in after
