"""The one atomic writer: every file flash writes whole (flash.toml fixes and imports, the build
manifest, the local supervisor's state) goes through write_atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from flash_pipeline.errors import BuildError


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write a whole file or nothing: an interrupted or failed write leaves the old file (never half
    a new one, never a temporary file). The temporary file is this call's own, in the same folder,
    so concurrent writers never share one and the rename stays on one file system."""
    temporary = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(temporary, path)
    except OSError as exc:
        raise BuildError(f"cannot write {path}: {exc.strerror or exc}", "check the folder's permissions") from None
    finally:
        if temporary and os.path.exists(temporary):
            os.unlink(temporary)
