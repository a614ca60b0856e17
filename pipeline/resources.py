"""Find the data files shipped with flash: schemas/ and templates/.

A wheel installs them inside the package (pipeline/_schemas, pipeline/_templates); a source
checkout or editable install has them at the repository root. Both layouts are tried.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_path(kind: str, name: str = "") -> Path:
    """Path of a shipped data file (or of its folder when name is empty)."""
    for folder in (_PACKAGE / f"_{kind}", _PACKAGE.parent / kind):
        if folder.is_dir():
            return folder / name if name else folder
    raise FileNotFoundError(f"flash installation is missing its {kind}/ folder")
