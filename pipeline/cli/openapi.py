"""`flash openapi`: each worker's OpenAPI document, made offline from the build output.

The document is made by the worker's own code (flash_runtime.openapi, from the same bindings that serve
requests), run as a subprocess in the endpoint's build folder exactly as the image starts it, so
the handlers are imported where they will run and nothing of theirs enters flash's process.
"""

from __future__ import annotations

import json
import subprocess
import sys

from flash_pipeline.config.model import Project
from flash_pipeline.errors import BuildError, UsageError

IMPORT_TIMEOUT = 120  # seconds: importing handlers (never running init) should take far less


def openapi_documents(project: Project, key: str | None) -> str:
    """One endpoint's document, or {key: document} for every built endpoint."""
    from flash_pipeline.builder.output import build

    served = [e.key for e in project.endpoints if not e.image and not e.generated]
    if key is not None and key not in served:
        raise UsageError(
            f"no endpoint {key!r} with handlers in {project.name}",
            f"choose one of: {', '.join(served) or 'none (every endpoint sets image)'}",
        )
    result = build(project)
    folders = {e.key: e.path for e in result.endpoints if e.path is not None}
    keys = [key] if key is not None else served
    documents = {k: _document(k, folders[k]) for k in keys}
    return json.dumps(documents[keys[0]] if len(keys) == 1 else documents, indent=2)


def _document(key: str, folder: object) -> object:
    command = [sys.executable, "../flash_worker.py", "--openapi"]
    try:
        done = subprocess.run(
            command, cwd=f"{folder}/src", capture_output=True, text=True, timeout=IMPORT_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"{key}: importing the handlers took over {IMPORT_TIMEOUT}s", "") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = next(
            (line.split("cannot load the handlers: ", 1)[1] for line in lines if "cannot load the handlers" in line), ""
        )
        raise BuildError(
            f"{key}: cannot import its handlers: {why or (lines[-1] if lines else f'exit {done.returncode}')}",
            "fix the import error (run the worker locally: flash deploy --target local), then try again",
        )
    return json.loads(done.stdout)
