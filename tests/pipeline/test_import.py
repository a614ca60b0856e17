"""`flash import` on runpod-flash-style projects (tests/apps/import): golden flash.toml files, what
is reported rather than imported, --rewrite (and when it refuses), and the imported app serving on
the local target. RunPod's own examples: test_import_corpus.py.

Golden files: FLASH_UPDATE_GOLDEN=1 pytest tests/pipeline/test_import.py rewrites them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps" / "import"
GOLDEN = REPO / "tests" / "golden" / "import"


def golden(name: str, text: str) -> None:
    """Compare with the golden file, or (FLASH_UPDATE_GOLDEN=1) write it."""
    if os.environ.get("FLASH_UPDATE_GOLDEN"):
        (GOLDEN / name).write_text(text)
    assert text == (GOLDEN / name).read_text(), name


@pytest.mark.parametrize(
    ("name", "flags"),
    [("basic", ()), ("package", ()), ("queue", ()), ("queue", ("--queue-workers",)), ("constants", ())],
)
def test_import_writes_the_golden_flash_toml_and_reports_what_it_left(
    tmp_path: Path, flash, name: str, flags: tuple[str, ...]
) -> None:
    project = tmp_path / name
    shutil.copytree(APPS / name, project)
    result = flash("import", *flags, cwd=project)
    assert result.code == 0
    stem = name + "".join(f".{flag.strip('-')}" for flag in flags)
    golden(f"{stem}.out", result.out)
    golden(f"{stem}.err", result.err)
    golden(f"{stem}.toml", (project / "flash.toml").read_text())
    assert flash("validate", cwd=project).code == (2 if name == "queue" else 0)
    assert [p.read_text() for p in sorted(project.rglob("*.py"))] == [
        p.read_text() for p in sorted((APPS / name).rglob("*.py"))
    ]  # without --rewrite, the source is untouched
    again = flash("import", cwd=project)
    assert (again.code, again.err) == (
        2,
        "flash: error: flash.toml already exists\n  hint: pass --force to overwrite it, or -o to write elsewhere\n",
    )
    assert flash("import", "--force", *flags, cwd=project).code == 0


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
            for k, v in json.loads(flash("status", "--target", "local", "--format", "json", cwd=project).out)["apps"][
                0
            ]["endpoints"].items()
        }
        # The requests runpod-flash's handlers answered (keyword bodies keep their signatures).
        assert requests.post(urls["inference-api"] + "/predict", json={"values": [1, 2]}, timeout=30).json() == {
            "predictions": [2.0, 4.0]
        }
        assert requests.get(urls["inference-api"] + "/items/7", timeout=30).json() == {"item_id": 7}
        # runpod-flash bound the body's keys to the parameters, even one: body_keys = true keeps that
        assert requests.post(urls["data-api"] + "/process", json={"input_data": {"a": 1}}, timeout=30).json() == {
            "status": "success",
            "echo": {"a": 1},
        }
        assert requests.get(urls["data-api"] + "/health", timeout=30).json() == {"status": "healthy"}
    finally:
        assert flash("destroy", "--target", "local", "--yes", cwd=project).code == 0


def test_rewrite_refuses_and_writes_nothing_when_a_kept_line_shares_a_removed_one(tmp_path: Path, flash) -> None:
    (tmp_path / "main.py").write_text(
        "from runpod_flash import Endpoint\n"
        'api = Endpoint(name="api", cpu="cpu3c-2-4"); LIMIT = 3\n'
        "\n"
        '@api.post("/run")\n'
        "def run(n: int) -> dict:\n"
        "    return {'n': min(n, LIMIT)}\n"
    )
    before = (tmp_path / "main.py").read_text()
    result = flash("import", "--rewrite", cwd=tmp_path)
    assert (result.code, result.err) == (
        2,
        "flash: error: --rewrite: nothing written: main.py:2 shares a line with a removed runpod-flash line; "
        "main.py would still use LIMIT but no longer define or import it\n"
        "  hint: run flash import without --rewrite, and remove the runpod-flash lines by hand\n",
    )
    assert (tmp_path / "main.py").read_text() == before and not (tmp_path / "flash.toml").exists()
    dry = flash("import", cwd=tmp_path)  # without --rewrite it says so, and still writes flash.toml
    assert dry.code == 0 and "--rewrite would refuse: main.py:2 shares a line" in dry.err


def test_a_runpod_flash_name_still_used_keeps_its_import(tmp_path: Path, flash) -> None:
    (tmp_path / "main.py").write_text(
        "from runpod_flash import Endpoint, GpuGroup\n"
        'api = Endpoint(name="api", gpu=GpuGroup.ADA_24)\n'
        "DEFAULT = GpuGroup.ADA_24\n"
        "\n"
        '@api.post("/run")\n'
        "def run(n: int) -> dict:\n"
        "    return {'n': n}\n"
    )
    result = flash("import", "--rewrite", cwd=tmp_path)
    assert result.code == 0, result.err
    assert [line for line in result.out.splitlines() if line.startswith("removed")] == [
        'removed main.py:2: api = Endpoint(name="api", gpu=GpuGroup.ADA_24)',
        'removed main.py:5: @api.post("/run")',
    ]
    assert (tmp_path / "main.py").read_text() == (
        "from runpod_flash import Endpoint, GpuGroup\nDEFAULT = GpuGroup.ADA_24\n\ndef run(n: int) -> dict:\n    return {'n': n}\n"
    )


def test_queue_workers_sharing_an_endpoint_become_one_endpoint_and_serve_their_keyword_bodies(
    tmp_path: Path, flash
) -> None:
    import requests

    project = tmp_path / "queue"
    shutil.copytree(APPS / "queue", project)
    (project / "worker.py").write_text(
        (project / "worker.py").read_text().replace('os.environ.get("GPU", "ADA_24")', '"ADA_24"')
    )
    result = flash("import", "--queue-workers", "--rewrite", cwd=project)
    assert result.code == 0, result.err
    assert (
        "  worker.py:14 train -> endpoints.jobs POST /train\n  worker.py:19 fine_tune -> endpoints.jobs POST /fine_tune\n"
        in result.out
    )
    assert "runpod_flash" not in (project / "worker.py").read_text()
    assert flash("deploy", "--target", "local", "--detach", cwd=project).code == 0
    try:
        status = json.loads(flash("status", "--target", "local", "--format", "json", cwd=project).out)["apps"][0]
        url = status["endpoints"]["jobs"]["url"]
        # runpod-flash's job {"input": {"data": {...}}} is now the body itself
        assert requests.post(url + "/train", json={"data": {"x": 1}}, timeout=30).json() == {"x": 1}
        assert requests.post(url + "/fine_tune", json={"data": {"y": 2}}, timeout=30).json() == {"y": 2}
    finally:
        assert flash("destroy", "--target", "local", "--yes", cwd=project).code == 0


def test_handlers_below_the_folder_import_from_an_app_source_that_resolves_them(tmp_path: Path, flash) -> None:
    import subprocess
    import sys

    project = tmp_path / "nested"
    shutil.copytree(APPS / "nested", project)
    result = flash("import", "--rewrite", cwd=project)
    assert result.code == 0, result.err
    text = (project / "flash.toml").read_text()
    assert 'source = "src"' in text and '"POST /echo" = "app.handlers:echo"' in text
    assert "removed src/app/handlers.py:1: from .endpoints import api" in result.out
    assert flash("validate", cwd=project).code == 0
    ran = subprocess.run(
        [sys.executable, "-c", "import app.handlers, app.endpoints"],
        cwd=project / "src",
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr


def test_two_workers_of_one_endpoint_with_one_name_keep_the_first_and_say_why(tmp_path: Path, flash) -> None:
    for module in ("a", "b"):
        (tmp_path / f"{module}.py").write_text(
            "from runpod_flash import Endpoint\n\n\n"
            '@Endpoint(name="same", cpu="cpu3c-2-4")\n'
            f"async def run(data: dict) -> dict:\n    return {{'from': {module!r}}}\n"
        )
    result = flash("import", "--queue-workers", "--rewrite", cwd=tmp_path)
    assert result.code == 0, result.err
    assert '"POST /run" = "a:run"' in (tmp_path / "flash.toml").read_text()
    assert (
        "not imported: b.py:4: run: endpoint same already has POST /run (a:run): rename one, then import again\n"
        in result.err
    )
    assert "from runpod_flash import Endpoint" in (tmp_path / "b.py").read_text()  # b keeps what it still uses
    assert "runpod_flash" not in (tmp_path / "a.py").read_text()


def test_a_remote_worker_with_its_resource_inline_keeps_its_settings_and_dependencies(tmp_path: Path, flash) -> None:
    (tmp_path / "w.py").write_text(
        "from runpod_flash import GpuGroup, LiveServerless, remote\n\n\n"
        '@remote(resource_config=LiveServerless(name="legacy", gpus=[GpuGroup.AMPERE_80], workersMax=2), '
        'dependencies=["numpy"], system_dependencies=["ffmpeg"])\n'
        "async def legacy(x: int) -> int:\n    return x\n"
    )
    result = flash("import", "--queue-workers", cwd=tmp_path)
    assert result.code == 0, result.err
    text = (tmp_path / "flash.toml").read_text()
    assert 'gpu = "AMPERE_80"\nworkers = [0, 2]\nidle_timeout = 60\ndependencies = ["numpy"]\n' in text
    assert result.err == "not imported: w.py:4: @remote(system_dependencies=): flash has no counterpart for it here\n"
