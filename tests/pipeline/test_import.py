"""`flash import` on runpod-flash-style projects (tests/apps/import): golden flash.toml files, what
is reported rather than imported, --rewrite, and the imported app serving on the local target."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps" / "import"
GOLDEN = REPO / "tests" / "golden" / "import"


@pytest.mark.parametrize("name", ["basic", "package", "queue"])
def test_import_writes_the_golden_flash_toml_and_reports_what_it_left(tmp_path: Path, flash, name: str) -> None:
    project = tmp_path / name
    shutil.copytree(APPS / name, project)
    result = flash("import", cwd=project)
    assert result.code == 0
    assert (result.out, result.err) == ((GOLDEN / f"{name}.out").read_text(), (GOLDEN / f"{name}.err").read_text())
    assert (project / "flash.toml").read_text() == (GOLDEN / f"{name}.toml").read_text()
    assert [p.read_text() for p in sorted(project.rglob("*.py"))] == [
        p.read_text() for p in sorted((APPS / name).rglob("*.py"))
    ]  # without --rewrite, the source is untouched
    again = flash("import", cwd=project)
    assert (again.code, again.err) == (
        2,
        "flash: error: flash.toml already exists\n  hint: pass --force to overwrite it, or -o to write elsewhere\n",
    )
    assert flash("import", "--force", cwd=project).code == 0


def test_a_dynamic_gpu_leaves_a_config_that_says_what_to_set(tmp_path: Path, flash) -> None:
    shutil.copytree(APPS / "queue", tmp_path / "queue")
    assert flash("import", cwd=tmp_path / "queue").code == 0
    checked = flash("validate", cwd=tmp_path / "queue")
    assert checked.code == 2 and "endpoints.api: exactly one of gpu or cpu is required" in checked.out


def test_rewrite_removes_exactly_the_runpod_flash_lines_and_the_app_serves_locally(tmp_path: Path, flash) -> None:
    import requests

    project = tmp_path / "basic"
    shutil.copytree(APPS / "basic", project)
    before = (project / "main.py").read_text().splitlines()
    rewritten = flash("import", "--rewrite", cwd=project)
    assert rewritten.code == 0, rewritten.err
    assert "rewrote main.py (7 runpod-flash line(s) removed)" in rewritten.out
    removed = [
        line.split(": ", 1)[1]
        for line in (GOLDEN / "basic.out").read_text().splitlines()
        if line.startswith("--rewrite")
    ]
    after = (project / "main.py").read_text().splitlines()
    assert [line for line in before if line not in removed] == after
    assert "runpod_flash" not in (project / "main.py").read_text()
    assert flash("deploy", "--target", "local", "--detach", cwd=project).code == 0
    try:
        urls = {
            k: v["url"]
            for k, v in json.loads(flash("status", "--target", "local", "--format", "json", cwd=project).out)[
                "endpoints"
            ].items()
        }
        # The requests runpod-flash's handlers answered (keyword bodies keep their signatures).
        assert requests.post(urls["inference-api"] + "/predict", json={"values": [1, 2]}, timeout=30).json() == {
            "predictions": [2.0, 4.0]
        }
        assert requests.get(urls["inference-api"] + "/items/7", timeout=30).json() == {"item_id": 7}
        assert requests.post(urls["data-api"] + "/process", json={"a": 1}, timeout=30).json() == {
            "status": "success",
            "echo": {"a": 1},
        }
        assert requests.get(urls["data-api"] + "/health", timeout=30).json() == {"status": "healthy"}
    finally:
        assert flash("destroy", "--target", "local", "--yes", cwd=project).code == 0
