"""What never enters a build context: secrets, VCS data, caches; plus .gitignore and .flashignore.

A small gitignore matcher (comments, `!` negation, `/` anchoring, trailing `/` for folders,
`*`, `?`, `**`) is enough for these files and keeps flash free of another dependency.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Never shipped, whatever the ignore files say (a `!` rule cannot bring these back).
ALWAYS_EXCLUDED = (
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_ed25519*",
    "id_ecdsa*",
    ".git/",
    ".hg/",
    ".svn/",
    ".flash/",
    "__pycache__/",
    "*.pyc",
    ".venv/",
    "venv/",
    "env/",
    ".tox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".runpod/",
    ".DS_Store",
)
IGNORE_FILES = (".gitignore", ".flashignore")


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    negate: bool
    dir_only: bool


def compile_rule(line: str) -> Rule | None:
    """One gitignore line as a Rule, or None for blanks and comments."""
    line = line.rstrip("\n").rstrip()
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    line = line[1:] if negate else line
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    anchored = "/" in line
    line = line.lstrip("/")
    regex = _glob_to_regex(line)
    prefix = "" if anchored else "(?:.*/)?"
    return Rule(re.compile(f"^{prefix}{regex}$"), negate, dir_only)


def _glob_to_regex(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def _rules(lines: list[str]) -> list[Rule]:
    return [rule for rule in map(compile_rule, lines) if rule is not None]


ALWAYS = _rules(list(ALWAYS_EXCLUDED))


def _ignored(rel: str, is_dir: bool, rules: list[Rule]) -> bool:
    verdict = False
    for rule in rules:
        if rule.dir_only and not is_dir:
            continue
        if rule.pattern.match(rel):
            verdict = not rule.negate
    return verdict


def included_files(root: Path, skip: tuple[Path, ...] = ()) -> Iterator[Path]:
    """Files under root that may enter a build context, in sorted order, as paths relative to root."""
    rules: list[Rule] = []
    for name in IGNORE_FILES:
        ignore_file = root / name
        if ignore_file.is_file():
            rules += _rules(ignore_file.read_text(encoding="utf-8", errors="replace").splitlines())
    skipped = {p.resolve() for p in skip}
    yield from _walk(root, root, rules, skipped)


def _walk(root: Path, folder: Path, rules: list[Rule], skipped: set[Path]) -> Iterator[Path]:
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        rel = entry.relative_to(root).as_posix()
        is_dir = entry.is_dir() and not entry.is_symlink()
        if _ignored(rel, is_dir, ALWAYS) or _ignored(rel, is_dir, rules) or entry.resolve() in skipped:
            continue
        if is_dir:
            yield from _walk(root, entry, rules, skipped)
        elif entry.is_file() and not entry.is_symlink():
            yield entry.relative_to(root)
