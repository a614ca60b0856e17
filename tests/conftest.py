"""Shared fixtures: run the CLI in-process exactly as the `flash` script does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "flash.toml.example"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def flash(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Call `flash ARGS...` in-process (through the real error boundary) and capture what it prints."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)

    def run(*args: str, cwd: Path | None = None) -> Result:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        captured = capsys.readouterr()
        code = exit_info.value.code
        return Result(code if isinstance(code, int) else 0, captured.out, captured.err)

    return run
