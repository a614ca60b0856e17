"""`flash init`: write a flash.toml and a small app that validates, builds and runs as is."""

from __future__ import annotations

import re
from pathlib import Path

from flash_pipeline.errors import UsageError
from flash_pipeline.resources import resource_path

_PLACEHOLDER = "__APP_NAME__"


def app_name_for(directory: Path) -> str:
    """A valid app name derived from the folder name ("My App!" -> "my-app")."""
    name = re.sub(r"[^a-z0-9]+", "-", directory.resolve().name.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:32].rstrip("-")
    return name if len(name) >= 3 else "my-app"


def scaffold(directory: Path, *, force: bool) -> list[Path]:
    """Copy the starter files into directory; refuse to overwrite unless force."""
    starter = resource_path("templates", "init")
    files = sorted(p for p in starter.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    targets = [(src, directory / src.relative_to(starter)) for src in files]
    # A file where the starter needs a folder (a file named `app`) cannot be overwritten, even with --force.
    blocking = sorted(
        {str(p) for _, dst in targets for p in dst.relative_to(directory).parents if (directory / p).is_file()}
    )
    if blocking:
        shown = ", ".join(str(directory / p) for p in blocking)
        raise UsageError(f"{shown} is a file where the starter app needs a folder", "choose another folder")
    existing = [str(dst) for _, dst in targets if dst.exists()]
    if existing and not force:
        raise UsageError(
            f"{', '.join(existing)} already exist(s)", "pass --force to overwrite, or choose another folder"
        )
    name = app_name_for(directory)
    for src, dst in targets:
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(src.read_text(encoding="utf-8").replace(_PLACEHOLDER, name), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {dst}: {exc.strerror or exc}", "check the folder's permissions") from None
    return [dst for _, dst in targets]
