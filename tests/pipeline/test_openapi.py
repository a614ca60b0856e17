"""`flash openapi`: the workers' documents, made offline from the build output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from openapi_spec_validator import validate

REPO = Path(__file__).resolve().parents[2]


def test_the_example_gets_a_valid_document_per_endpoint(tmp_path: Path, flash) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "flash.toml.example", tmp_path / "flash.toml")
    result = flash("openapi", cwd=tmp_path)
    assert result.code == 0, result.err
    documents = json.loads(result.out)
    assert list(documents) == ["inference-api", "data-api"]
    for document in documents.values():
        validate(document)
    one = json.loads(flash("openapi", "--endpoint", "data-api", cwd=tmp_path).out)
    assert one == documents["data-api"]
    assert one["info"]["title"] == "demo data-api"
    assert list(one["paths"]) == ["/process"]


def test_an_unknown_endpoint_and_an_import_failure_are_clear_errors(tmp_path: Path, flash) -> None:
    shutil.copytree(REPO / "tests" / "apps" / "io", tmp_path, dirs_exist_ok=True)
    unknown = flash("openapi", "--endpoint", "nope", cwd=tmp_path)
    assert (unknown.code, unknown.err) == (
        2,
        "flash: error: no endpoint 'nope' with handlers in io-test\n  hint: choose one of: io\n",
    )
    handlers = tmp_path / "typed" / "migrated.py"
    handlers.write_text(handlers.read_text() + "\nimport not_installed_anywhere\n")
    broken = flash("openapi", cwd=tmp_path)
    assert (broken.code, broken.out) == (3, "")
    assert broken.err == (
        "flash: error: io: cannot import its handlers: ModuleNotFoundError: No module named 'not_installed_anywhere'\n"
        "  hint: fix the import error (run the worker locally: flash deploy --target local), then try again\n"
    )
