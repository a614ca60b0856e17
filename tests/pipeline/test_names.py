"""flash's import names cannot collide with an app's: the wheel installs flash_pipeline and
flash_runtime only, and an app with its own `pipeline.py`, `runtime/` package or `runtime.py`
validates, builds, deploys on the local target and answers; its worker starts as the image does."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import Worker

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "tests" / "apps" / "collide"


@pytest.fixture
def collide(tmp_path: Path) -> Iterator[Path]:
    shutil.copytree(APP, tmp_path, dirs_exist_ok=True)
    yield tmp_path
    from flash_pipeline.config.validate import validate_file
    from flash_pipeline.targets.local.deploy import local_destroy

    local_destroy(validate_file(tmp_path / "flash.toml"))


def test_the_wheel_installs_no_generic_top_level_names(tmp_path: Path) -> None:
    top = set(importlib.metadata.distribution("flash-pipeline").read_text("top_level.txt").split())
    assert top == {"flash_pipeline", "flash_runtime"}
    probe = "import importlib.util as u; print([n for n in ('pipeline', 'runtime') if u.find_spec(n)])"
    found = subprocess.run([sys.executable, "-P", "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert found.stdout == "[]\n", found.stderr


def test_an_app_named_like_flash_deploys_and_answers_on_the_local_target(collide: Path, flash) -> None:
    assert flash("validate", cwd=collide).code == 0
    result = flash("deploy", "--target", "local", "--detach", cwd=collide)
    assert result.code == 0, result.err
    url = result.out.split()[2]
    assert requests.post(url + "/classify", json={"text": "hello world"}, timeout=30).json() == {
        "label": "long",
        "module": "pipeline",
    }
    assert requests.get(url + "/tag", timeout=30).json() == {"tag": "users-runtime"}


def test_python_m_flash_pipeline_from_such_a_folder_builds_flashs_own_runtime(collide: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flash_pipeline", "build"], cwd=collide, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    shipped = collide / ".flash" / "build" / "api"
    assert (shipped / "flash_runtime" / "server.py").is_file()
    assert not (shipped / "runtime").exists()  # the app's runtime/ ships inside src/, as the app's
    assert (shipped / "src" / "runtime" / "handlers.py").is_file()


def test_a_handler_module_named_runtime_starts_as_the_image_does(tmp_path: Path, flash) -> None:
    shutil.copytree(APP / "flat", tmp_path, dirs_exist_ok=True)
    assert flash("build", cwd=tmp_path).code == 0
    worker = Worker(tmp_path / ".flash" / "build" / "flat")
    try:
        worker.wait_listening()
        worker.wait_ready()
        assert requests.get(worker.url + "/where", timeout=10).json() == {"module": "runtime", "file": "runtime.py"}
    finally:
        worker.stop()


def test_validate_points_an_old_client_import_at_its_new_name(tmp_path: Path, flash) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "old"\nsource = "app"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\nroutes = { "POST /x" = "handlers:x" }\n'
    )
    (tmp_path / "app" / "handlers.py").write_text(
        "import json\nfrom runtime import endpoint, CallError\n\n\nasync def x(body: dict) -> dict:\n    return body\n"
    )
    result = flash("validate", cwd=tmp_path)
    assert result.code == 2
    assert result.out == (
        "app/handlers.py:2:1: error: imports: `from runtime import endpoint, CallError`: flash's client is named "
        "flash_runtime now (the app has no `runtime` module)\n"
        "  hint: write `from flash_runtime import endpoint, CallError`\n"
        "flash: 1 error in flash.toml\n"
    )


def test_an_old_client_import_guarded_by_try_is_not_reported(tmp_path: Path, flash) -> None:
    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "old"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\nroutes = { "POST /x" = "handlers:x" }\n'
    )
    (tmp_path / "handlers.py").write_text(
        "try:\n    from runtime import endpoint\nexcept (ModuleNotFoundError, KeyError):\n"
        "    from flash_runtime import endpoint\n"
        "try:\n    import runtime.calls\nexcept ImportError:\n    pass\n"
        "try:\n    import runtime\nexcept KeyError:\n    pass\n\n\n"
        "async def x(body: dict) -> dict:\n    return body\n"
    )
    result = flash("validate", cwd=tmp_path)
    assert result.out == (
        "handlers.py:10:5: error: imports: `import runtime`: flash's client is named flash_runtime now "
        "(the app has no `runtime` module)\n"
        "  hint: write `import flash_runtime`\n"
        "flash: 1 error in flash.toml\n"
    )
    assert result.code == 2


@pytest.mark.parametrize(
    ("handler", "files", "what"),
    [
        ("flash_runtime.handlers:x", ["flash_runtime/__init__.py", "flash_runtime/handlers.py"], "package"),
        ("flash_runtime:x", ["flash_runtime.py"], "module"),
    ],
)
def test_a_handler_module_named_like_the_workers_own_files_is_refused(
    tmp_path: Path, flash, handler: str, files: list[str], what: str
) -> None:
    """The worker has loaded flash_runtime before the source folder goes on sys.path: such a
    handler would validate, then every worker would die with "No module named ..."."""
    (tmp_path / "flash.toml").write_text(
        f'[app]\nname = "mine"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\nroutes = {{ "POST /x" = "{handler}" }}\n'
    )
    for name in files:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("def x() -> dict:\n    return {}\n")
    module, top = handler.split(":")[0], handler.split(".")[0].split(":")[0]
    own = "package"
    result = flash("validate", cwd=tmp_path)
    assert result.out == (
        f'flash.toml:6:24: error: endpoints.api.routes."POST /x": module {module} cannot be imported in the '
        f"worker: '{top}' is flash's own {own} there, ahead of the source folder\n"
        f"  hint: rename your {top} {what} (and the handler reference)\n"
        "flash: 1 error in flash.toml\n"
    )
    assert result.code == 2


def test_an_app_module_named_like_a_library_of_the_worker_does_not_replace_it(tmp_path: Path, flash) -> None:
    """The worker imports flash_runtime (and sanic, which it serves with) before the source folder
    goes on sys.path: an app's `sanic.py` or `flash_runtime.py` stays the app's business."""
    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "libs"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\nroutes = { "GET /x" = "handlers:x" }\n'
    )
    for name in ("sanic", "flash_runtime", "flash_pipeline"):
        (tmp_path / f"{name}.py").write_text(f'raise RuntimeError("the app\'s {name}.py was imported")\n')
    (tmp_path / "handlers.py").write_text("def x() -> dict:\n    return {'ok': True}\n")
    assert flash("build", cwd=tmp_path).code == 0
    worker = Worker(tmp_path / ".flash" / "build" / "api")
    try:
        worker.wait_listening()
        worker.wait_ready()
        assert requests.get(worker.url + "/x", timeout=10).json() == {"ok": True}
    finally:
        worker.stop()


def test_a_runtime_folder_of_data_is_not_the_apps_runtime_module(tmp_path: Path, flash) -> None:
    """A `runtime/` folder without Python files is no module: the old import is still reported, and
    the hint renames the module only (not a name that merely contains it)."""
    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "old"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\nroutes = { "POST /x" = "handlers:x" }\n'
    )
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "settings.json").write_text("{}\n")
    (tmp_path / "my_runtime.py").write_text("")
    (tmp_path / "handlers.py").write_text(
        "import my_runtime, runtime\n\n\nasync def x(body: dict) -> dict:\n    return body\n"
    )
    result = flash("validate", cwd=tmp_path)
    assert result.out == (
        "handlers.py:1:1: error: imports: `import my_runtime, runtime`: flash's client is named flash_runtime now "
        "(the app has no `runtime` module)\n"
        "  hint: write `import my_runtime, flash_runtime`\n"
        "flash: 1 error in flash.toml\n"
    )
    assert result.code == 2


def test_an_apps_aiohttp_py_does_not_replace_the_one_calls_use(tmp_path: Path, flash) -> None:
    shutil.copytree(REPO / "examples" / "calls", tmp_path, dirs_exist_ok=True)
    (tmp_path / "aiohttp.py").write_text('raise RuntimeError("the app\'s aiohttp.py was imported")\n')
    assert flash("build", cwd=tmp_path).code == 0
    build = tmp_path / ".flash" / "build"
    callee = Worker(build / "inference")
    caller = Worker(build / "api", env={"FLASH_ENDPOINTS": json.dumps({"inference": callee.url})})
    try:
        for worker in (callee, caller):
            worker.wait_listening()
            worker.wait_ready()
        answer = requests.post(caller.url + "/classify", json={"text": "hello world"}, timeout=30)
        assert (answer.status_code, answer.json()["label"]) == (200, "long"), caller.output()
    finally:
        caller.stop()
        callee.stop()


def test_a_handler_module_named_like_a_library_the_worker_loads_says_so(tmp_path: Path, flash) -> None:
    """The worker's libraries are imported before the source folder: an app's `ujson.py` handler
    module is never the one imported, and the worker's one line says which file was, and the fix."""
    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "libs"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\nroutes = { "GET /x" = "ujson:x" }\n'
    )
    (tmp_path / "ujson.py").write_text("def x() -> dict:\n    return {}\n")
    assert flash("build", cwd=tmp_path).code == 0
    worker = Worker(tmp_path / ".flash" / "build" / "api")
    try:
        assert worker.proc.wait(timeout=60) == 3
        import ujson

        assert (
            "ERROR flash.worker: cannot load the handlers: AttributeError: module 'ujson' is "
            f"{ujson.__file__}, a library the worker loads, not the app's ujson: rename the app's module\n"
        ) in worker.output()
    finally:
        worker.stop()


def test_an_apps_src_package_and_flash_worker_module_are_the_apps_in_the_worker(tmp_path: Path, flash) -> None:
    """The build's own folder (its `src/`, `flash_worker.py`) is off sys.path once flash_runtime is
    loaded: `src.handlers` is the app's src/handlers.py (a namespace package), not its top-level
    handlers.py found through the build's src/, and a `flash_worker.py` module is the app's."""
    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "layout"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\n\n[endpoints.api.routes]\n'
        '"GET /a" = "src.handlers:x"\n"GET /b" = "handlers:x"\n"GET /c" = "flash_worker:x"\n'
    )
    (tmp_path / "src").mkdir()
    for name in ("src/handlers.py", "handlers.py", "flash_worker.py"):
        (tmp_path / name).write_text(f"def x() -> dict:\n    return {{'file': {name!r}}}\n")
    assert flash("validate", cwd=tmp_path).code == 0
    assert flash("build", cwd=tmp_path).code == 0
    worker = Worker(tmp_path / ".flash" / "build" / "api")
    try:
        worker.wait_listening()
        worker.wait_ready()
        answers = [requests.get(worker.url + path, timeout=10).json() for path in ("/a", "/b", "/c")]
        assert answers == [{"file": "src/handlers.py"}, {"file": "handlers.py"}, {"file": "flash_worker.py"}]
    finally:
        worker.stop()
