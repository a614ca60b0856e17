"""What enters a build context: what git would ship, minus secrets, VCS data and caches.

Inside a git work tree the file set is git's own (`git ls-files --cached --others
--exclude-standard`), which applies repository-root, nested and `info/exclude` rules exactly,
wherever `app.source` sits in the repository. Outside one, `.gitignore` files at every level are
matched with pathspec (a well-kept gitignore implementation). Either way `.flashignore` files at
every level add rules, and ALWAYS_EXCLUDED wins over everything (a `!` rule cannot bring back a
credential file).
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathspec

# Never shipped, whatever the ignore files say or git tracks.
ALWAYS_EXCLUDED = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".git-credentials",
    ".aws/",
    ".ssh/",
    ".gnupg/",
    ".kube/",
    ".azure/",
    ".config/gcloud/",
    ".docker/config.json",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_ed25519*",
    "id_ecdsa*",
    "id_dsa*",
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
GIT_IGNORE, FLASH_IGNORE = ".gitignore", ".flashignore"
# A folder holding this file with this signature is a cache or build output (bford.info/cachedir):
# flash tags its own output folders so that `build -o dist` never hashes dist into the next build.
CACHE_TAG, CACHE_SIGNATURE = "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55"
Specs = list[tuple[str, "pathspec.GitIgnoreSpec"]]  # (folder relative to the root, with "/" or "", its rules)


@cache
def _always() -> pathspec.GitIgnoreSpec:
    return _spec(ALWAYS_EXCLUDED)


def _spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    import pathspec  # ~20 ms: only when a build or check reads files

    return pathspec.GitIgnoreSpec.from_lines(lines)


def always_excluded(rel: str) -> bool:
    """Whether a path (relative, posix; folders with a trailing "/") is one that never ships."""
    if not _suspect().search(rel):
        return False  # no component could start a match: pathspec (~20 ms to load) is not needed
    return _always().match_file(rel)


@cache
def _suspect() -> re.Pattern[str]:
    """A path can match an ALWAYS_EXCLUDED pattern only if one of its components matches that
    pattern's first component (every pattern matches at any depth). This one regex over those
    first components is a superset test; pathspec still decides every path it lets through."""
    firsts = {pattern.strip("/").split("/")[0] for pattern in ALWAYS_EXCLUDED}
    alternatives = "|".join(fnmatch.translate(first).removeprefix("(?s:").removesuffix(")\\Z") for first in firsts)
    return re.compile(rf"(?:^|/)(?:{alternatives})(?:/|$)")


def included_files(root: Path, skip: tuple[Path, ...] = (), *, git: bool = True) -> Iterator[Path]:
    """Files under root that may enter a build context, in sorted order, as paths relative to root.

    `git=False` for folders that are not the user's (flash's own runtime package, which may sit
    in a git-ignored virtualenv inside the user's repository).
    """
    skipped = _relative_prefixes(root, skip)
    tracked = _git_files(root) if git else None
    if tracked is None:
        yield from _walk(root, "", [], skipped)
        return
    specs: dict[str, Specs] = {}
    tagged: dict[str, bool] = {}
    for rel in sorted(tracked):
        parent = rel.rpartition("/")[0]
        if _in_tagged(root, parent, tagged) or _blocked(rel, False, _specs_for(root, parent, specs), skipped):
            continue
        path = root / rel
        if path.is_file() and not path.is_symlink():
            yield Path(rel)


def _git_files(root: Path) -> list[str] | None:
    """The files git would commit under root (tracked or new, not ignored), or None outside a work tree."""
    try:
        found = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
            cwd=root,
            capture_output=True,
            timeout=60,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git here: the walk below applies the ignore files itself
    if found.returncode != 0:
        return None  # not a work tree
    names = sorted({name for name in found.stdout.decode("utf-8", "surrogateescape").split("\0") if name})
    if not names:  # nothing listed: maybe the source folder itself is git-ignored (then its own ignore files decide)
        ignored = subprocess.run(["git", "check-ignore", "-q", "."], cwd=root, capture_output=True, timeout=60)
        if ignored.returncode == 0:
            return None
    return names


def _in_tagged(root: Path, folder: str, cache: dict[str, bool]) -> bool:
    """Whether folder or a parent (up to root, excluded) holds a cache directory tag."""
    if not folder:
        return False
    if folder not in cache:
        cache[folder] = _is_tagged(root / folder) or _in_tagged(root, folder.rpartition("/")[0], cache)
    return cache[folder]


def _is_tagged(folder: Path) -> bool:
    try:
        with (folder / CACHE_TAG).open("rb") as handle:
            return handle.read(len(CACHE_SIGNATURE)) == CACHE_SIGNATURE.encode()
    except OSError:
        return False


def _specs_for(root: Path, folder: str, cache: dict[str, Specs]) -> Specs:
    """The .flashignore rules that apply in folder (its own and every parent's), outermost first."""
    if folder not in cache:
        parent = folder.rpartition("/")[0] if folder else None
        inherited = _specs_for(root, parent, cache) if parent is not None else []
        cache[folder] = inherited + _read_specs(root / folder, folder, (FLASH_IGNORE,))
    return cache[folder]


def _read_specs(folder: Path, rel: str, names: Iterable[str]) -> Specs:
    specs: Specs = []
    for name in names:
        try:
            lines = (folder / name).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        specs.append((f"{rel}/" if rel else "", _spec(lines)))
    return specs


def _blocked(rel: str, is_dir: bool, specs: Specs, skipped: tuple[str, ...]) -> bool:
    shown = rel + "/" if is_dir else rel
    if always_excluded(shown) or any(shown == s or shown.startswith(s + "/") for s in skipped):
        return True
    verdict = False
    for prefix, spec in specs:  # deeper files come later and win, as in git
        result = spec.check_file(shown[len(prefix) :])
        if result.include is not None:
            verdict = result.include
    return verdict


def _walk(root: Path, rel: str, inherited: Specs, skipped: tuple[str, ...]) -> Iterator[Path]:
    folder = root / rel
    specs = inherited + _read_specs(folder, rel, (GIT_IGNORE, FLASH_IGNORE))
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        child = f"{rel}/{entry.name}" if rel else entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        if _blocked(child, is_dir, specs, skipped):
            continue
        if is_dir:
            if not _is_tagged(root / child):
                yield from _walk(root, child, specs, skipped)
        elif entry.is_file(follow_symlinks=False):
            yield Path(child)


def _relative_prefixes(root: Path, paths: tuple[Path, ...]) -> tuple[str, ...]:
    """The skipped paths that lie under root, relative to it (posix)."""
    base = root.resolve()
    found = []
    for path in paths:
        try:
            found.append(PurePosixPath(path.resolve().relative_to(base)).as_posix())
        except ValueError:
            continue
    return tuple(p for p in found if p != ".")
