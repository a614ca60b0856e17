"""`flash dev` driven as a real subprocess: reload on save, errors at the user's file, only the
endpoint that changed restarts, Ctrl-C leaves nothing behind (for dev and the local deploy too)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devapp import CONFIG, HANDLERS, Dev, processes_of, save, write_app


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The dev app in a scratch folder; no RunPod key anywhere, so commands follow the local target."""
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.delenv("FLASH_TARGET", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.runpod/config.toml
    root = write_app(tmp_path / "app")
    yield root
    from flash_pipeline.config.validate import validate_file
    from flash_pipeline.targets.local.deploy import local_destroy

    local_destroy(validate_file(root / "flash.toml"))


def _status(flash, root: Path) -> dict:
    result = flash("status", "--format", "json", cwd=root)  # no --target: the local deployment runs
    assert result.code == 0, result.err
    return json.loads(result.out)["apps"][0]["endpoints"]


def _pids(info: dict) -> set[int]:
    return {w["pid"] for w in info["workers"]}


def test_dev_reloads_on_save_keeps_serving_through_errors_and_restarts_only_what_changed(app: Path, flash) -> None:
    dev = Dev(app)
    try:
        dev.wait_for(r"^flash: watching for changes")
        status = _status(flash, app)
        api, other = status["api"]["url"], status["other"]["url"]
        assert requests.get(api + "/hello").json() == {"version": 1}
        other_pids = _pids(status["other"])

        # A save of a module only api imports: api serves the new code, other keeps its workers.
        save(app / "app" / "helper.py", "VERSION = 2\n")
        dev.wait_for(r"^flash: api serves the new build at ")
        assert requests.get(api + "/hello").json() == {"version": 2}
        assert _pids(_status(flash, app)["other"]) == other_pids
        assert dev.count(r"^flash: other serves") == 1  # only its first start

        # A syntax error: printed once, at the user's file:line:col with Python's message; the old answer stays.
        save(app / "app" / "handlers.py", HANDLERS.replace("def hello() -> dict:", "def hello( -> dict:"))
        dev.wait_for(r"the previous workers keep serving$")
        assert requests.get(api + "/hello").json() == {"version": 2}
        assert dev.count(r"^app/handlers\.py:4:12: error: SyntaxError: invalid syntax$") == 1, dev.output
        assert ".flash/build" not in dev.output

        # A broken helper module (not a handler module, so only the worker finds it): the same.
        save(app / "app" / "handlers.py", HANDLERS)  # back to what serves: nothing restarts
        dev.wait_for(r"^flash: no endpoint's build, settings or env changed$")
        save(app / "app" / "helper.py", "VERSION = (3\n")
        dev.wait_for(r"^flash: api: the new build cannot start \(.*\); the previous workers keep serving$")
        assert requests.get(api + "/hello").json() == {"version": 2}
        assert dev.count(r"cannot load the handlers: app/helper\.py:1:11: SyntaxError: '\(' was never closed") == 1

        # The fix after it reloads.
        save(app / "app" / "helper.py", "VERSION = 3\n")
        dev.wait_for(r"^flash: api serves the new build at ", count=2)
        assert requests.get(api + "/hello").json() == {"version": 3}

        # An env change in flash.toml restarts only that endpoint.
        api_pids = _pids(_status(flash, app)["api"])
        save(app / "flash.toml", CONFIG.replace('WORD = "one"', 'WORD = "two"'))
        dev.wait_for(r"^flash: other serves the new build at ")
        assert requests.get(other + "/word").json() == {"word": "two"}
        after = _status(flash, app)
        assert _pids(after["api"]) == api_pids
        assert not _pids(after["other"]) & other_pids

        assert dev.interrupt() == 130
        assert "flash: stopped; no worker is left running" in dev.output
        assert processes_of(app) == []
    finally:
        dev.kill()


SLOW = CONFIG.replace("[endpoints.api.routes]", 'init = "app.lifecycle:slow"\n\n[endpoints.api.routes]')


@pytest.mark.parametrize(
    "command",
    [("dev",), ("deploy", "--target", "local"), ("deploy", "--target", "local", "--detach")],
    ids=["dev", "deploy", "deploy-detach"],
)
def test_ctrl_c_during_a_slow_init_hook_stops_everything_before_the_hook_ends(
    app: Path, command: tuple[str, ...]
) -> None:
    markers = app.parent / "markers"
    markers.mkdir()
    (app / "flash.toml").write_text(
        SLOW.replace("[endpoints.api]", f'[endpoints.api]\nenv = {{ MARKERS = "{markers}" }}')
    )
    run = Dev(app, *command)
    try:
        limit = time.monotonic() + 60  # bounded wait on the marker the hook writes as it starts
        while not (markers / "init-started").exists():
            assert time.monotonic() < limit and run.proc.poll() is None, run.output
            time.sleep(0.05)
        assert run.interrupt() == 130
        assert "flash: interrupted" in run.output
        assert processes_of(app) == []
        assert not (markers / "init-finished").exists()  # it ended long before the 20 s hook would have
    finally:
        run.kill()


def test_a_foreground_deploy_attached_to_a_detached_one_leaves_it_serving(app: Path, flash) -> None:
    assert flash("deploy", "--target", "local", "--detach", cwd=app).code == 0
    api = _status(flash, app)["api"]["url"]
    foreground = Dev(app, "deploy", "--target", "local")
    try:
        foreground.wait_for(r"healthy on the local target")
        assert foreground.interrupt() == 130
        assert "flash: detached from the local deployment it attached to" in foreground.output
        assert requests.get(api + "/hello").json() == {"version": 1}
    finally:
        foreground.kill()


def test_a_redeploy_with_a_broken_module_keeps_the_old_answer_and_status_keeps_why(app: Path, flash) -> None:
    assert flash("deploy", "--target", "local", "--detach", cwd=app).code == 0
    api = _status(flash, app)["api"]["url"]
    (app / "app" / "helper.py").write_text("raise ImportError('weights.bin is missing')\n")
    again = flash("deploy", "--target", "local", "--detach", cwd=app)
    assert again.code == 5
    lines = again.err.splitlines()
    assert (
        "flash: error: api: cannot start: worker exited with code 3 before it was ready; "
        "the previous workers keep serving; its last output:"
    ) in lines, again.err
    # The traceback names the user's files, and no frame of flash or Sanic.
    assert lines[-6:-1] == [
        '      File "app/handlers.py", line 1, in <module>',
        "        from app.helper import VERSION",
        '      File "app/helper.py", line 1, in <module>',
        "        raise ImportError('weights.bin is missing')",
        "    ImportError: weights.bin is missing",
    ], again.err
    assert requests.get(api + "/hello").json() == {"version": 1}
    kept = _status(flash, app)["api"]["last_failure"]
    assert kept["reason"] == "worker exited with code 3 before it was ready"
    assert kept["kept_previous"] is True
    assert "    raise ImportError('weights.bin is missing')" in kept["output"]


def test_call_fails_at_once_when_the_endpoint_cannot_start(app: Path, flash) -> None:
    others = app / "app" / "others.py"
    others.write_text("raise ImportError('weights.bin is missing')\n" + others.read_text())
    deployed = flash("deploy", "--target", "local", "--detach", cwd=app)
    assert deployed.code == 5  # api is healthy: a detached deploy keeps it, and other's reason in status
    assert requests.get(_status(flash, app)["api"]["url"] + "/hello").json() == {"version": 1}
    called = flash("call", "other", "/word", "--timeout", "300", cwd=app)
    assert called.code == 4
    assert called.err.splitlines()[0] == (
        "flash: error: other cannot start: worker exited with code 3 before it was ready (3 times in a row)"
    )
    assert "waited" not in called.err
    assert _status(flash, app)["other"]["failure"]["reason"].startswith("worker exited with code 3 before it was ready")


def test_a_failed_first_deploy_that_stops_everything_still_says_why_in_status(app: Path, flash) -> None:
    helper = app / "app" / "helper.py"
    helper.write_text("raise ImportError('weights.bin is missing')\n")
    (app / "app" / "others.py").write_text("from app.helper import X\n" + (app / "app" / "others.py").read_text())
    assert flash("deploy", "--target", "local", "--detach", cwd=app).code == 5  # nothing healthy: nothing kept
    guess = flash("status", cwd=app)  # nothing runs: RunPod, as before
    assert guess.code == 4 and guess.err.startswith("flash: error: no RunPod API key")
    status = json.loads(flash("status", "--target", "local", "--format", "json", cwd=app).out)["apps"][0]
    assert status["running"] is False
    for key in ("api", "other"):
        kept = status["endpoints"][key]
        assert kept["running"] is False
        assert kept["last_failure"]["reason"] == "worker exited with code 3 before it was ready (3 times in a row)"
        assert kept["last_failure"]["output"][-1] == "ImportError: weights.bin is missing"
    text = flash("status", "--target", "local", cwd=app).out.splitlines()
    assert (
        text[0]
        == "api    not running (the last deploy: worker exited with code 3 before it was ready (3 times in a row))"
    )


def test_status_and_call_follow_the_local_deployment_without_target(
    app: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert flash("deploy", "--target", "local", "--detach", cwd=app).code == 0
    monkeypatch.delenv("RUNPOD_API_KEY")  # no credentials: the running local deployment is the target
    assert flash("call", "api", "/hello", cwd=app).out == '{"version":1}\n'
    status = flash("status", cwd=app)
    assert status.code == 0 and status.out.splitlines()[-1].startswith("flash: local supervisor pid ")
    monkeypatch.setenv("RUNPOD_API_KEY", emulator.api_key)  # with credentials: RunPod, as in CI, plus a hint
    on_runpod = flash("status", cwd=app)
    assert on_runpod.code == 0
    assert on_runpod.out.splitlines()[0].startswith("api  not deployed")
    hint = "flash: a local deployment of this config is running; pass --target local (or set FLASH_TARGET=local) for it"
    assert on_runpod.err.splitlines() == [hint]
    called = flash("call", "api", "/hello", cwd=app)
    assert called.code == 4 and called.err.splitlines()[0] == hint
    monkeypatch.setenv("FLASH_TARGET", "local")
    assert flash("call", "api", "/hello", cwd=app).out == '{"version":1}\n'


def test_a_handler_syntax_error_is_reported_once_per_file_at_its_position(tmp_path: Path, flash) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "h.py").write_text("def a():\n    return 1\n\ndef b(:\n    return 2\n")
    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "syntax"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\ninit = "app.h:a"\n\n[endpoints.api.routes]\n'
        '"GET /a" = "app.h:a"\n"GET /b" = "app.h:b"\n\n[endpoints.two]\ncpu = "cpu3c-2-4"\n\n'
        '[endpoints.two.routes]\n"GET /a" = "app.h:a"\n'
    )
    result = flash("validate", cwd=tmp_path)
    assert (result.code, result.out) == (
        2,
        "app/h.py:4:7: error: SyntaxError: invalid syntax\nflash: 1 error in flash.toml\n",
    )


def test_a_500s_traceback_names_the_users_file_and_no_frame_of_flash_or_sanic(app: Path, flash) -> None:
    (app / "app" / "handlers.py").write_text(HANDLERS.replace('return {"version": VERSION}', "return {}[VERSION]"))
    assert flash("deploy", "--target", "local", "--detach", cwd=app).code == 0
    answer = requests.get(_status(flash, app)["api"]["url"] + "/hello", headers={"X-Request-ID": "r500"})
    assert (answer.status_code, answer.json()) == (500, {"error": "internal error", "request_id": "r500"})
    path, deadline = app / ".flash" / "local" / "supervisor.log", time.monotonic() + 30
    while "| KeyError: 1" not in path.read_text():  # the worker logs it just after answering
        assert time.monotonic() < deadline, path.read_text()
        time.sleep(0.05)
    log = path.read_text().splitlines()
    start = next(i for i, line in enumerate(log) if "unhandled error in GET /hello [r500]" in line)
    shown = [line.split(" | ", 1)[1] for line in log[start + 1 : start + 5]]
    assert shown == [
        "Traceback (most recent call last):",
        '  File "app/handlers.py", line 5, in hello',
        "    return {}[VERSION]",
        "           ~~^^^^^^^^^",
    ], log[start:]
    assert log[start + 5].endswith("| KeyError: 1")


def test_an_import_closure_follows_absolute_and_relative_imports_inside_the_source_only(tmp_path: Path) -> None:
    from flash_pipeline.targets.local.reload import closure

    files = {
        "pkg/__init__.py": "",
        "pkg/api.py": "import os\nfrom . import util\nfrom .sub.deep import x\nimport numpy\n",
        "pkg/util.py": "from pkg import shared\n",
        "pkg/shared.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/sub/deep.py": "from .. import other\nx = 1\n",
        "pkg/other.py": "",
        "pkg/unused.py": "",
        "broken.py": "def (:\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = {p.as_posix() for p in closure(tmp_path, ["pkg.api", "broken"])}
    assert found == set(files) - {"pkg/unused.py"}


def test_ctrl_c_while_an_attached_deploy_starts_a_new_build_drops_only_that_build(app: Path, flash) -> None:
    assert flash("deploy", "--target", "local", "--detach", cwd=app).code == 0
    before = _status(flash, app)["api"]
    markers = app.parent / "markers"
    markers.mkdir()
    (app / "flash.toml").write_text(
        SLOW.replace("[endpoints.api]", f'[endpoints.api]\nenv = {{ MARKERS = "{markers}" }}')
    )
    run = Dev(app, "deploy", "--target", "local")  # attaches to the detached deployment
    try:
        limit = time.monotonic() + 60
        while not (markers / "init-started").exists():  # the new build's worker loads its "model"
            assert time.monotonic() < limit and run.proc.poll() is None, run.output
            time.sleep(0.05)
        assert requests.get(before["url"] + "/hello").json() == {"version": 1}  # the old workers serve meanwhile
        assert run.interrupt() == 130
    finally:
        run.kill()
    after = _status(flash, app)["api"]
    assert after["rollout"] is None and _pids(after) == _pids(before)
    assert requests.get(before["url"] + "/hello").json() == {"version": 1}
    supervisor = _status_pid(flash, app)
    # The new build's worker is gone (it stopped on SIGTERM inside its init hook), the old ones serve.
    assert set(processes_of(app)) == _pids(before) | {supervisor, *_pids(_status(flash, app)["other"])}
    assert not (markers / "init-finished").exists()


def _status_pid(flash, root: Path) -> int:
    return int(flash("status", "--target", "local", cwd=root).out.splitlines()[-1].rsplit(" ", 1)[1])


def test_dev_keeps_the_old_workers_when_the_new_init_hook_fails_and_says_it_once(app: Path, flash) -> None:
    dev = Dev(app)
    try:
        dev.wait_for(r"^flash: watching for changes")
        url = _status(flash, app)["api"]["url"]
        save(
            app / "flash.toml",
            CONFIG.replace("[endpoints.api.routes]", 'init = "app.lifecycle:failing"\n\n[endpoints.api.routes]'),
        )
        dev.wait_for(
            r"^flash: api: the new build cannot start \(worker init hook failed \(/ping answers 503\)\); "
            r"the previous workers keep serving$"
        )
        assert requests.get(url + "/hello").json() == {"version": 1}
        assert dev.count(r"\| RuntimeError: model weights missing$") == 1, dev.output
        assert dev.count(r'\|   File "app/lifecycle\.py", line \d+, in failing$') == 1, dev.output
        assert "sanic" not in dev.output.split("init hook app.lifecycle:failing failed")[1].split("RuntimeError")[0]
        assert _status(flash, app)["api"]["last_failure"]["reason"] == "worker init hook failed (/ping answers 503)"
        assert dev.interrupt() == 130
    finally:
        dev.kill()
