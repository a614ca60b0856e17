"""`flash import` on RunPod's own examples (tests/corpus/flash-examples, copied from
runpod/flash-examples with its license): every example imports with and without --queue-workers
(golden flash.toml and report), validates, and after --rewrite every file still imports; a
representative few deploy on the local target and answer the requests their READMEs document
(all of them: tests/stress/test_import_corpus_deploy.py).

Golden files: FLASH_UPDATE_GOLDEN=1 pytest tests/pipeline/test_import_corpus.py rewrites them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "import" / "corpus"
_spec = importlib.util.spec_from_file_location("readme_requests", REPO / "tests" / "corpus" / "readme_requests.py")
assert _spec is not None and _spec.loader is not None
corpus = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("readme_requests", corpus)  # dataclasses look their module up there
_spec.loader.exec_module(corpus)
# A stand-in for runpod_flash, only so that a file which still uses runpod-flash on purpose (a
# construct flash does not import) can be imported: a NameError or a missing import still fails.
STUB = """\
class _Any:
    def __init__(self, *args, **kwargs): pass
    def __call__(self, *args, **kwargs): return args[0] if args and callable(args[0]) else _Any()
    def __getattr__(self, name): return _Any()
def __getattr__(name): return _Any()
"""


def golden(name: str, text: str) -> None:
    """Compare with the golden file, or (FLASH_UPDATE_GOLDEN=1) write it."""
    path = GOLDEN / name
    if os.environ.get("FLASH_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), name


def test_the_corpus_is_the_nine_examples_with_its_license() -> None:
    assert len(corpus.EXAMPLES) == 9 and set(corpus.REQUESTS) == set(corpus.EXAMPLES)
    assert (corpus.CORPUS / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.parametrize("queue", [False, True], ids=["lb-only", "queue-workers"])
@pytest.mark.parametrize("example", corpus.EXAMPLES)
def test_every_example_imports_as_the_golden_files_say_and_validates(
    tmp_path: Path, flash, example: str, queue: bool
) -> None:
    project = tmp_path / Path(example).name
    shutil.copytree(corpus.CORPUS / example, project)
    result = flash("import", *(["--queue-workers"] if queue else []), cwd=project)
    name = example.replace("/", "__") + (".queue" if queue else "")
    golden(f"{name}.out", result.out)
    golden(f"{name}.err", result.err)
    if result.code == 2:  # only queue-based workers, without the flag: it says what it found
        assert not queue and "queue-based worker(s):" in result.err and "--queue-workers" in result.err
        return
    assert result.code == 0
    golden(f"{name}.toml", (project / "flash.toml").read_text())
    checked = flash("validate", cwd=project)
    assert checked.code == 0, checked.out


def test_from_the_repository_root_it_says_where_to_run_import(tmp_path: Path, flash) -> None:
    shutil.copytree(corpus.CORPUS, tmp_path / "examples")
    result = flash("import", "--queue-workers", cwd=tmp_path / "examples")
    assert result.code == 2 and not (tmp_path / "examples" / "flash.toml").exists()
    assert "belong to 9 separate projects (each imports its modules from its own folder)" in result.err
    assert "hint: run flash import in each of those folders (e.g. cd 01_getting_started/01_hello_world" in result.err


@pytest.mark.parametrize("queue", [False, True], ids=["lb-only", "queue-workers"])
@pytest.mark.parametrize("example", corpus.EXAMPLES)
def test_rewrite_leaves_every_file_importable(tmp_path: Path, flash, example: str, queue: bool) -> None:
    project = tmp_path / Path(example).name
    shutil.copytree(corpus.CORPUS / example, project)
    before = {p: p.read_text().splitlines() for p in project.glob("*.py")}
    result = flash("import", "--rewrite", *(["--queue-workers"] if queue else []), cwd=project)
    if result.code == 2:
        assert not queue and all(p.read_text().splitlines() == lines for p, lines in before.items())
        return
    assert result.code == 0, result.err
    removed = {line for line in result.out.splitlines() if line.startswith("removed ")}
    for path, lines in before.items():
        after = path.read_text().splitlines()
        gone = [f"removed {path.name}:{n}: {line}" for n, line in enumerate(lines, 1)]
        # exactly the lines it printed are gone, in order; nothing else changed
        assert [line for n, line in enumerate(lines) if gone[n] not in removed] == after
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "runpod_flash.py").write_text(STUB)
    still = []
    for path in sorted(before):
        if "runpod_flash" in path.read_text():
            still.append(path.name)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(stub)])}
        ran = subprocess.run(
            [sys.executable, "-c", f"import {path.stem}"], cwd=project, env=env, capture_output=True, text=True
        )
        assert ran.returncode == 0, f"import {path.stem}: {ran.stderr}"
    # What keeps runpod-flash is what was not imported: queue workers without the flag, SimpleSD (a class)
    expected = (
        [] if queue else sorted(p.name for p in before if "@Endpoint(" in p.read_text() or "@remote" in p.read_text())
    )
    if example == "05_data_workflows/01_network_volumes":
        expected = ["gpu_worker.py"]
    assert still == expected


@pytest.mark.parametrize("example", ["01_getting_started/02_cpu_worker", "03_advanced_workers/05_load_balancer"])
def test_a_representative_few_serve_the_readme_requests_locally(tmp_path: Path, flash, example: str) -> None:
    _skipped, answered = corpus.deploy_and_ask(example, tmp_path, flash, pytest.skip)
    assert answered
