"""Every input gets a clear answer: odd files, odd names, odd encodings, odd handler modules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
[app]
name = "inputs"

[endpoints.api]
cpu = "cpu3c-2-4"

[endpoints.api.routes]
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "handlers.py").write_text("def hello() -> dict:\n    return {}\n")
    (tmp_path / "flash.toml").write_text(CONFIG + '"GET /hello" = "app.handlers:hello"\n')
    return tmp_path


def _routes(app: Path, *lines: str, extra: str = "") -> None:
    (app / "flash.toml").write_text(CONFIG + "".join(line + "\n" for line in lines) + extra)


def test_any_module_level_binding_is_a_handler(app: Path, flash) -> None:
    (app / "app" / "handlers.py").write_text(
        "try:\n"
        "    import fastjson\n"
        "    def fast(data):\n"
        "        return fastjson.dumps(data)\n"
        "except ImportError:\n"
        "    def fast(data):\n"
        "        return data\n"
        "annotated: object = lambda: {}\n"
        "if True:\n"
        "    with open(__file__) as handle, open(__file__) as (other):\n"
        "        pass\n"
        "for looped in [print]:\n"
        "    pass\n"
        "if (walrus := print):\n"
        "    pass\n"
        "class Handlers:\n"
        "    def inner(self):\n"
        "        pass\n"
        "def outer():\n"
        "    hidden = 1\n"
    )
    names = ("fast", "annotated", "handle", "other", "looped", "walrus", "Handlers")
    _routes(app, *(f'"GET /{name.lower()}" = "app.handlers:{name}"' for name in names))
    assert flash("validate", cwd=app).code == 0
    _routes(app, '"GET /inner" = "app.handlers:inner"', '"GET /hidden" = "app.handlers:hidden"')
    result = flash("validate", cwd=app)
    assert result.out == (
        "flash.toml:8:16: error: endpoints.api.routes.\"GET /inner\": module app.handlers defines no function 'inner'\n"
        "  hint: define `def inner(...)` in app/handlers.py\n"
        "flash.toml:9:17: error: endpoints.api.routes.\"GET /hidden\": module app.handlers defines no function 'hidden'\n"
        "  hint: define `def hidden(...)` in app/handlers.py\n"
        "flash: 2 errors in flash.toml\n"
    )


def test_star_imports_and_module_getattr_cannot_be_listed_so_any_name_passes(app: Path, flash) -> None:
    (app / "app" / "star.py").write_text("from os.path import *\n")
    (app / "app" / "lazy.py").write_text("def __getattr__(name):\n    return print\n")
    _routes(app, '"GET /a" = "app.star:join"', '"GET /b" = "app.lazy:anything"')
    assert flash("validate", cwd=app).code == 0


def test_validate_checks_source_handlers_and_init_like_build(app: Path, flash) -> None:
    _routes(
        app,
        '"GET /a" = "app.handlers:helo"',
        '"GET /b" = "app.nothere:f"',
        extra='[endpoints.api2]\ncpu = "cpu3c-2-4"\ninit = "app.model:load"\n[endpoints.api2.routes]\n"GET /c" = "app.handlers:hello"\n',
    )
    expected = (
        "flash.toml:8:12: error: endpoints.api.routes.\"GET /a\": module app.handlers defines no function 'helo'\n"
        '  hint: did you mean "hello"?\n'
        "flash.toml:9:12: error: endpoints.api.routes.\"GET /b\": module app.nothere not found in '.' (looked for app/nothere.py)\n"
        "  hint: handlers are module:function with the module importable from the source folder '.'\n"
        "flash.toml:12:8: error: endpoints.api2.init: module app.model not found in '.' (looked for app/model.py)\n"
        "  hint: handlers are module:function with the module importable from the source folder '.'\n"
    )
    validated = flash("validate", cwd=app)
    assert (validated.code, validated.out) == (2, expected + "flash: 3 errors in flash.toml\n")
    built = flash("build", cwd=app)
    assert (built.code, built.err) == (2, expected + "flash: 3 errors in flash.toml; nothing was built\n")


def test_a_missing_source_folder_is_reported_at_app_source(app: Path, flash) -> None:
    text = (app / "flash.toml").read_text().replace('name = "inputs"', 'name = "inputs"\nsource = "nope"')
    (app / "flash.toml").write_text(text)
    result = flash("validate", cwd=app)
    assert (result.code, result.out) == (
        2,
        "flash.toml:3:10: error: app.source: source folder 'nope' does not exist\n"
        "  hint: set app.source to the folder holding your handlers, relative to flash.toml\n"
        "flash: 1 error in flash.toml\n",
    )


def test_a_handler_in_a_folder_that_never_ships_fails_the_check(app: Path, flash) -> None:
    (app / "env").mkdir()
    (app / "env" / "mod.py").write_text("def f():\n    pass\n")
    (app / "app" / "local.py").write_text("def g():\n    pass\n")
    (app / ".flashignore").write_text("app/local.py\n")
    _routes(app, '"GET /f" = "env.mod:f"', '"GET /g" = "app.local:g"')
    result = flash("build", cwd=app)
    assert result.code == 2
    assert result.err == (
        'flash.toml:8:12: error: endpoints.api.routes."GET /f": env/mod.py does not ship: flash never puts env/ in an image (virtualenvs, caches and credential files stay out)\n'
        "  hint: move the handler module to another folder\n"
        'flash.toml:9:12: error: endpoints.api.routes."GET /g": app/local.py does not ship: a .gitignore or .flashignore rule excludes it\n'
        "  hint: remove the rule that matches it (`git check-ignore -v app/local.py` finds a .gitignore one)\n"
        "flash: 2 errors in flash.toml; nothing was built\n"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_handler_module_is_a_clear_error(app: Path, flash) -> None:
    (app / "app" / "handlers.py").chmod(0)
    result = flash("validate", cwd=app)
    assert result.out.splitlines()[0].endswith("app/handlers.py cannot be read (Permission denied)")


def test_a_symlink_loop_in_the_source_builds_and_links_never_ship(app: Path, flash) -> None:
    (app / "app" / "loop1").symlink_to("loop2")
    (app / "app" / "loop2").symlink_to("loop1")
    (app / "app" / "self").symlink_to(".")
    result = flash("build", cwd=app)
    assert result.code == 0, result.err
    shipped = sorted(p.name for p in (app / ".flash/build/api/src/app").iterdir())
    assert shipped == ["__init__.py", "handlers.py"]


def test_a_file_name_that_is_not_utf8_ships_as_its_bytes(app: Path, flash) -> None:
    odd = os.fsdecode(b"data-\xff.bin")
    (app / "app" / odd).write_bytes(b"odd")
    result = flash("build", cwd=app)
    assert result.code == 0, result.err
    assert (app / ".flash/build/api/src/app" / odd).read_bytes() == b"odd"
    assert flash("build", cwd=app).out.startswith("unchanged api")


def test_a_byte_order_mark_is_accepted(app: Path, flash) -> None:
    config = app / "flash.toml"
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    assert flash("validate", cwd=app).out == "flash: flash.toml is valid (1 endpoint, 1 route)\n"


@pytest.mark.parametrize("depth", [40, 3000])
def test_deeply_nested_toml_is_a_clear_error(app: Path, flash, depth: int) -> None:
    (app / "deep.toml").write_text("a = " + "[" * depth + "]" * depth + "\n")
    result = flash("validate", "deep.toml", cwd=app)
    assert (result.code, result.out) == (
        2,
        "deep.toml:1:1: error: values are nested more than 32 levels deep\n"
        "  hint: a flash.toml needs a few levels at most; check for a generated or corrupted file\n"
        "flash: 1 error in deep.toml\n",
    )


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ('name = "inputs\\n"', 'flash.toml:2:8: error: app.name: "inputs\\n" is not a valid app name'),
        (
            'name = "inputs"\n[endpoints."api\\n"]\ncpu = "cpu3c-2-4"\n[endpoints."api\\n".routes]\n"GET /x" = "app.handlers:hello"\n#',
            'flash.toml:3:12: error: endpoints."api\\n": "api\\n" is not a valid endpoint key',
        ),
    ],
)
def test_a_trailing_newline_never_matches_a_pattern(app: Path, flash, snippet: str, message: str) -> None:
    config = app / "flash.toml"
    config.write_text(config.read_text().replace('name = "inputs"', snippet, 1))
    result = flash("validate", cwd=app)
    assert result.code == 2
    assert result.out.splitlines()[0] == message


def test_init_where_a_file_named_app_exists(tmp_path: Path, flash) -> None:
    (tmp_path / "app").write_text("not a folder")
    result = flash("init", str(tmp_path))
    assert result.code == 2
    assert result.err == (
        f"flash: error: {tmp_path / 'app'} is a file where the starter app needs a folder\n  hint: choose another folder\n"
    )
    assert (tmp_path / "app").read_text() == "not a folder"
    assert not (tmp_path / "flash.toml").exists()


def test_an_unreadable_runpod_config_is_named(
    app: Path, flash, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / ".runpod").mkdir(parents=True)
    (home / ".runpod" / "config.toml").write_bytes('[default]\napi_key = "rp_secret"\n'.encode("utf-16"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    result = flash("plan", cwd=app)
    assert result.code == 4
    assert result.err == (
        "flash: error: ~/.runpod/config.toml is not UTF-8 text\n"
        "  hint: save it as UTF-8 (`runpodctl config` writes it so), or export RUNPOD_API_KEY=…\n"
    )
    (home / ".runpod" / "config.toml").write_text('[default]\napi_key = "rp_secret\n')
    result = flash("plan", cwd=app)
    assert result.code == 4
    assert result.err.startswith("flash: error: ~/.runpod/config.toml is not valid TOML (")
    assert "rp_secret" not in result.err


def test_output_folder_never_enters_the_next_build(app: Path, flash) -> None:
    first = flash("build", "-o", "dist", cwd=app)
    assert first.code == 0, first.err
    assert (app / "dist" / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    default = flash("build", cwd=app)
    manifests = [json.loads((app / d / "manifest.json").read_text()) for d in ("dist", ".flash/build")]
    assert manifests[0]["endpoints"]["api"]["image"] == manifests[1]["endpoints"]["api"]["image"], default.out
    assert not (app / ".flash/build/api/src/dist").exists()


def test_concurrent_builds_of_one_folder_all_succeed(app: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-m", "flash_pipeline", "build"]
    config = app / "flash.toml"  # a second endpoint: shared hard links and the stale sweep race too
    config.write_text(
        config.read_text()
        + '[endpoints.two]\ncpu = "cpu3c-2-4"\n[endpoints.two.routes]\n"GET /x" = "app.handlers:hello"\n'
    )
    for round_ in range(4):
        (app / "app" / "handlers.py").write_text(f"def hello() -> dict:\n    return {{'round': {round_}}}\n")
        runs = [
            subprocess.Popen(command, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(6)
        ]
        results = [(run.wait(timeout=120), run.stderr.read().decode()) for run in runs]  # type: ignore[union-attr]
        assert all(code == 0 for code, _ in results), results
        for key in ("api", "two"):
            assert f"round': {round_}" in (app / f".flash/build/{key}/src/app/handlers.py").read_text()
    assert sorted(p.name for p in (app / ".flash/build").iterdir()) == ["CACHEDIR.TAG", "api", "manifest.json", "two"]


def test_build_memory_does_not_grow_with_the_source(app: Path) -> None:
    """A 200 MB file in the source: the build streams it (hash and copy), never holds it whole."""
    with open(app / "weights.bin", "wb") as handle:
        for _ in range(200):
            handle.write(os.urandom(1024 * 1024))
    shutil.copytree(app / "app", app / "app2")  # a second endpoint shares the big file by hard link
    (app / "flash.toml").write_text(
        (app / "flash.toml").read_text()
        + '[endpoints.two]\ncpu = "cpu3c-2-4"\n[endpoints.two.routes]\n"GET /x" = "app.handlers:hello"\n'
    )
    probe = (
        "import resource, subprocess, sys; "
        "code = subprocess.run([sys.executable, '-m', 'flash_pipeline', 'build'], capture_output=True).returncode; "
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)"
    )
    for _ in range(2):  # a build, then a no-change rebuild
        code, peak_mb = subprocess.run(
            [sys.executable, "-c", probe], cwd=app, capture_output=True, text=True, check=True
        ).stdout.split()
        assert code == "0"
        assert int(peak_mb) < 150
    built = [os.stat(app / f".flash/build/{key}/src/weights.bin") for key in ("api", "two")]
    assert built[0].st_ino == built[1].st_ino and built[0].st_size == 200 * 1024 * 1024


def test_the_never_ship_prefilter_never_hides_a_match() -> None:
    """always_excluded() skips pathspec for paths no pattern could match; it must never skip one
    pathspec would exclude."""
    import random

    from flash_pipeline.builder.ignore import _always, _suspect

    parts = [
        "app", ".env", ".env.local", "x.env", ".envrc", ".netrc", "_netrc", ".aws", "credentials", ".ssh",
        ".docker", "config.json", "a.pem", "k.key", "c.p12", "id_rsa.pub", "__pycache__", "m.pyc", "venv",
        ".venv", "env", "environment", ".git", ".config", "gcloud", "data.txt", ".DS_Store", "x.jks", ".kube",
    ]  # fmt: skip
    rng = random.Random(7)
    for _ in range(5000):
        path = "/".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) + rng.choice(["", "/"])
        if _always().match_file(path):
            assert _suspect().search(path), path
