"""`flash dev`: which endpoints a saved file concerns.

Every endpoint ships the whole source folder, so any saved file changes every endpoint's build
hash. Restarting all of them for a file only one imports is slow (each reloads its model), so
dev restarts an endpoint only when a file in its import closure changed: the modules its routes
and init hook import, followed through the source folder by reading (`ast`), never by
importing. A file no closure reaches (a data file, a module loaded by name at run time) may
matter to anyone: it concerns every endpoint. So do the files flash renders (the worker, the
Dockerfile): a route or dependency change in flash.toml restarts the endpoints it changes.
"""

from __future__ import annotations

import ast
import hashlib
import stat
from collections.abc import Iterable
from pathlib import Path

from flash_pipeline.builder.output import BuildResult
from flash_pipeline.config.model import Endpoint, Project


def identities(project: Project, result: BuildResult) -> dict[str, str]:
    """Per built endpoint, a fingerprint of the files its code depends on, as built: equal
    fingerprints, no restart needed. Cheap: (path, size, mtime, inode) per file, no reading; the
    build hard-links unchanged files and copies changed ones, so a changed file changes it."""
    root = project.source_dir
    built = {e.key: e.path for e in result.endpoints if e.path is not None}
    closures = {e.key: closure(root, _entry_modules(e)) for e in project.endpoints if e.key in built}
    reached: set[Path] = set().union(*closures.values()) if closures else set()
    found = {}
    for key, folder in built.items():
        assert folder is not None
        mine = closures[key]
        digest = hashlib.sha256()
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if rel.parts[0] == "src":
                source = Path(*rel.parts[1:])
                if source.suffix == ".py" and source in reached and source not in mine:
                    continue  # another endpoint's module: not this one's concern
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                continue  # a changed build swaps in new folders: only files say what changed
            digest.update(f"{rel}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}\n".encode())
        found[key] = digest.hexdigest()
    return found


def _entry_modules(endpoint: Endpoint) -> list[str]:
    refs = [route.handler for route in endpoint.routes] + ([endpoint.init] if endpoint.init else [])
    return [ref.split(":")[0] for ref in refs]


def closure(root: Path, modules: Iterable[str]) -> set[Path]:
    """The source files (relative to root) these modules import, directly or not, themselves included."""
    seen: set[Path] = set()
    pending = [m for m in modules]
    while pending:
        module = pending.pop()
        for rel in _files_of(root, module):
            if rel in seen:
                continue
            seen.add(rel)
            pending.extend(_imports(root, rel))
    return seen


def _files_of(root: Path, module: str) -> list[Path]:
    """The module's file, and the __init__.py of every package on its way (imported first)."""
    parts = module.split(".")
    found = [Path(*parts[:i], "__init__.py") for i in range(1, len(parts) + 1)]
    found.append(Path(*parts[:-1], parts[-1] + ".py"))
    return [rel for rel in found if (root / rel).is_file()]


def _imports(root: Path, rel: Path) -> list[str]:
    try:
        tree = ast.parse((root / rel).read_bytes(), filename=str(rel))
    except (OSError, SyntaxError, ValueError):
        return []
    package = list(rel.parent.parts)  # a module's package; an __init__.py is its own package
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            if node.level > 1 and len(package) < node.level - 1:
                continue
            prefix = [*base, *(node.module.split(".") if node.module else [])]
            if prefix:
                names.append(".".join(prefix))
            names.extend(".".join([*prefix, alias.name]) for alias in node.names if alias.name != "*")
    return names
