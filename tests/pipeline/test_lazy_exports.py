"""The two packages that load their public names on first use (PEP 562): flash_pipeline.report
(so `flash validate` loads only the config reports) and flash_runtime (so the CLI imports the one
backoff without Sanic and aiohttp). Each declares its names twice, for mypy and for the loader:
the two must agree, and each name must load."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _typed_names(path: Path, package: str) -> dict[str, str]:
    """name -> subject module, from the `if TYPE_CHECKING:` imports of a package's __init__.py."""
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for item in node.body:
                if isinstance(item, ast.ImportFrom) and item.module and item.module.startswith(package + "."):
                    found |= {
                        alias.asname or alias.name: item.module.removeprefix(package + ".") for alias in item.names
                    }
    return found


@pytest.mark.parametrize(
    ("package", "folder"), [("flash_pipeline.report", "pipeline/report"), ("flash_runtime", "runtime")]
)
def test_the_names_for_mypy_are_the_names_loaded(package: str, folder: str) -> None:
    module = importlib.import_module(package)
    typed = _typed_names(ROOT / folder / "__init__.py", package)
    assert typed == module._WHERE  # type: ignore[attr-defined]
    assert sorted(typed) == module.__all__
    for name, subject in typed.items():
        assert getattr(module, name) is getattr(importlib.import_module(f"{package}.{subject}"), name)


def test_the_backoff_loads_without_the_worker_server() -> None:
    """Every retry loop of the CLI uses flash_runtime.backoff: importing it must not cost Sanic (~200 ms)."""
    code = "import sys, flash_runtime.backoff; print(sorted(m for m in ('sanic', 'aiohttp') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
