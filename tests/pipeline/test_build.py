"""flash build: the rendered tree, its determinism, what never enters it, and --push without docker."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from flash_pipeline.builder.render import content_hash, render_endpoint
from flash_pipeline.config.model import Cpu, Endpoint, Loc, Project, Route, Workers

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "example"
GENERATED = ("flash_worker.py", "Dockerfile", "requirements.txt", ".dockerignore")


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """flash.toml.example and its app in a scratch folder (builds write next to the config)."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "flash.toml.example", tmp_path / "flash.toml")
    return tmp_path


def _normalised_manifest(path: Path) -> dict:
    data = json.loads(path.read_text())
    for entry in data["endpoints"].values():
        if entry["hash"]:
            assert entry["image"].endswith(":" + entry["hash"][:12])
            entry["hash"], entry["image"] = "<hash>", entry["image"].rsplit(":", 1)[0] + ":<hash>"
    return data


def test_example_matches_golden_files(example: Path, flash) -> None:
    result = flash("build", cwd=example)
    assert result.code == 0, result.err
    build = example / ".flash" / "build"
    for endpoint in ("inference-api", "data-api"):
        for name in GENERATED:
            assert (build / endpoint / name).read_text() == (GOLDEN / endpoint / name).read_text(), f"{endpoint}/{name}"
    assert _normalised_manifest(build / "manifest.json") == json.loads((GOLDEN / "manifest.json").read_text())


def test_build_output_lines(example: Path, flash) -> None:
    first = flash("build", cwd=example)
    lines = first.out.splitlines()
    assert lines[0].startswith("built     inference-api: .flash/build/inference-api (")
    assert "image ghcr.io/acme/demo-inference-api:" in lines[0]
    assert lines[2].startswith("flash: 2 endpoints built in ")
    again = flash("build", cwd=example)
    assert again.out.splitlines()[0].startswith("unchanged inference-api: ")


def test_build_is_deterministic_and_a_rebuild_rewrites_nothing(example: Path, flash) -> None:
    assert flash("build", cwd=example).code == 0
    assert flash("build", "-o", "other", cwd=example).code == 0
    first, second = example / ".flash" / "build", example / "other"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    before = {f: os.stat(first / f) for f in files}
    assert flash("build", cwd=example).code == 0
    after = {f: os.stat(first / f) for f in files}
    assert {f: (s.st_ino, s.st_mtime_ns) for f, s in before.items()} == {
        f: (s.st_ino, s.st_mtime_ns) for f, s in after.items()
    }


def test_a_change_replaces_the_tree_and_keeps_unchanged_files(example: Path, flash) -> None:
    assert flash("build", cwd=example).code == 0
    build = example / ".flash" / "build" / "data-api"
    kept = os.stat(build / "flash_runtime" / "app.py").st_ino
    (example / "examples" / "demo" / "app" / "data.py").write_text(
        (example / "examples/demo/app/data.py").read_text() + "\n# changed\n"
    )
    (example / "examples" / "demo" / "app" / "new_module.py").write_text("X = 1\n")
    assert flash("build", cwd=example).code == 0
    assert (build / "src" / "app" / "new_module.py").read_text() == "X = 1\n"
    assert os.stat(build / "flash_runtime" / "app.py").st_ino == kept
    assert not list(build.parent.glob(".data-api*"))  # no staging folder left behind


def test_secrets_caches_and_ignored_files_never_enter_the_context(example: Path, flash) -> None:
    src = example / "examples" / "demo"
    for name in (
        ".env",
        ".env.production",
        "secrets.env",
        "server.pem",
        "tls.key",
        "id_rsa",
        "id_rsa.pub",
        "notes.tmp",
        "big/data.bin",
        "keep/x.log",
    ):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text("SECRET")
    for folder in (".git", "venv", ".venv", "app/__pycache__", ".flash/build/old"):
        (src / folder).mkdir(parents=True, exist_ok=True)
        (src / folder / "file").write_text("SECRET")
    (src / ".gitignore").write_text("*.tmp\n*.log\n!keep/x.log\n")
    (src / ".flashignore").write_text("/big/\n")
    assert flash("build", cwd=example).code == 0
    shipped = sorted(
        p.relative_to(example / ".flash/build/data-api/src").as_posix()
        for p in (example / ".flash/build/data-api/src").rglob("*")
        if p.is_file()
    )
    assert shipped == [
        ".flashignore",
        ".gitignore",
        "app/__init__.py",
        "app/data.py",
        "app/handlers.py",
        "app/model.py",
        "keep/x.log",
    ]


def test_missing_handler_is_a_config_error_at_the_route_and_nothing_is_written(example: Path, flash) -> None:
    config = example / "flash.toml"
    config.write_text(
        config.read_text()
        .replace('"app.data:process"', '"app.data:proces"')
        .replace('"app.handlers:health"', '"app.handler:health"')
    )
    result = flash("build", cwd=example)
    assert result.code == 2
    assert result.err == (
        "flash.toml:32:17: error: endpoints.inference-api.routes.\"GET /health\": module app.handler not found in 'examples/demo' (looked for app/handler.py)\n"
        "  hint: handlers are module:function with the module importable from the source folder 'examples/demo'\n"
        "flash.toml:40:19: error: endpoints.data-api.routes.\"POST /process\": module app.data defines no function 'proces'\n"
        '  hint: did you mean "process"?\n'
        "flash: 2 errors in flash.toml; nothing was built\n"
    )
    assert not (example / ".flash").exists()


def test_invalid_config_builds_nothing(example: Path, flash) -> None:
    (example / "flash.toml").write_text('[app]\nname = "x"\n')
    result = flash("build", cwd=example)
    assert result.code == 2
    assert result.err.endswith("nothing was built\n")
    assert not (example / ".flash").exists()


HOSTILE = [
    'a"b',
    "a'b",
    "line\nbreak",
    "{{ x }}",
    "$(id)",
    "back\\slash",
    "\"); import os; os.system('id'); (\"",
    "{% raw %}",
]


def _hostile_endpoint(text: str) -> Endpoint:
    loc = Loc("flash.toml", 1, 1)
    route = Route("GET", "/" + text, "mod" + text, "fn" + text, loc)
    return Endpoint(
        key="api",
        name="x-" + text,
        compute=Cpu("cpu3c", 2, 4),
        workers=Workers(0, 1),
        routes=(route,),
        loc=loc,
        init="m:" + text,
        env=(("K", text),),
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_values_are_carried_inert(text: str, tmp_path: Path) -> None:
    # Built past validation on purpose: even values the schema refuses must not become code.
    project = Project(name="x", config_path=tmp_path / "flash.toml", endpoints=(_hostile_endpoint(text),))
    tree = render_endpoint(project, project.endpoints[0], {}, {})
    module = ast.parse(tree["flash_worker.py"])
    assigned = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in module.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("ROUTES", "INIT")
    }
    assert assigned == {"ROUTES": [("GET", "/" + text, f"mod{text}:fn{text}")], "INIT": "m:" + text}
    calls = [n for n in ast.walk(module) if isinstance(n, ast.Call)]
    assert [ast.unparse(c.func) for c in calls] == ["os.path.dirname", "os.path.abspath", "os.path.join", "serve"]
    benign = render_endpoint(project, _hostile_endpoint("plain"), {}, {})
    instructions = [line for line in tree["Dockerfile"].decode().splitlines() if not line.startswith("#")]
    assert instructions == [line for line in benign["Dockerfile"].decode().splitlines() if not line.startswith("#")]
    assert tree["requirements.txt"] == benign["requirements.txt"]
    assert content_hash(tree) == content_hash(dict(reversed(list(tree.items()))))


def test_hostile_env_values_in_a_real_config_build_and_stay_out_of_images(example: Path, flash) -> None:
    config = example / "flash.toml"
    hostile = 'env = { LOG_LEVEL = "INFO", EVIL = "\\"); os.system(\'id\') #", T = "{{ RUNPOD_SECRET_t }}", C = "$(rm -rf /)" }'
    config.write_text(config.read_text().replace('env = { LOG_LEVEL = "INFO" }', hostile))
    assert flash("build", cwd=example).code == 0
    build = example / ".flash" / "build"
    for name in GENERATED:
        assert "os.system" not in (build / "data-api" / name).read_text()
    env = json.loads((build / "manifest.json").read_text())["endpoints"]["data-api"]["config"]["env"]
    assert env["EVIL"] == "\"); os.system('id') #" and env["C"] == "$(rm -rf /)"


def _path_without_docker(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("python3", "sh"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool), bin_dir / tool)
    return str(bin_dir)


def test_push_without_any_builder_installed(
    example: Path, flash, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", _path_without_docker(tmp_path))
    monkeypatch.delenv("FLASH_BUILDER", raising=False)
    result = flash("build", "--push", cwd=example)
    assert result.code == 3
    assert result.err == (
        "flash: error: no image builder found: --push needs docker (with a running engine), podman or buildah\n"
        "  hint: install one (apt-get install buildah is enough), or build and push the images in CI\n"
    )
    for name, install in (("docker", "install Docker and start its engine (or point DOCKER_HOST at one)"),
                          ("buildah", "install buildah (apt-get install buildah)")):  # fmt: skip
        named = flash("build", "--push", "--builder", name, cwd=example)
        assert (named.code, named.err) == (
            3,
            f"flash: error: {name} is not installed (no `{name}` on PATH); --push needs it\n  hint: {install}\n",
        )


def _engine_answers() -> bool:
    docker = shutil.which("docker")
    return (
        bool(docker)
        and subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"], capture_output=True, timeout=30
        ).returncode
        == 0
    )


@pytest.mark.skipif(
    shutil.which("docker") is None or _engine_answers(), reason="needs a docker client with no engine behind it"
)
def test_push_without_a_docker_engine(example: Path, flash, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = flash("build", "--push", "--builder", "docker", cwd=example)
    assert result.code == 3
    first, hint = result.err.splitlines()
    assert first.startswith("flash: error: docker does not work here: no Docker engine answers: ")
    assert hint == "  hint: install Docker and start its engine (or point DOCKER_HOST at one)"


def test_push_needs_a_registry(example: Path, flash) -> None:
    config = example / "flash.toml"
    config.write_text(config.read_text().replace('registry = "ghcr.io/acme"', ""))
    result = flash("build", "--push", cwd=example)
    assert result.code == 3
    assert (
        result.err
        == 'flash: error: app.registry is not set, so there is nowhere to push\n  hint: add registry = "ghcr.io/your-org" to [app]\n'
    )


@pytest.mark.skipif(not _engine_answers(), reason="no Docker engine answers on this machine")
def test_real_docker_build_of_the_example(example: Path) -> None:
    build_dir = example / ".flash/build/data-api"
    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    build(validate_file(example / "flash.toml"))
    done = subprocess.run(
        ["docker", "build", "-t", "flash-test-data-api", str(build_dir)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_identical_files_across_endpoints_are_written_once(example: Path, flash) -> None:
    assert flash("build", cwd=example).code == 0
    build = example / ".flash" / "build"
    first, second = os.stat(build / "inference-api/runtime/app.py"), os.stat(build / "data-api/runtime/app.py")
    assert first.st_ino == second.st_ino  # a hard link, not a second copy


def _plant(root: Path, names: tuple[str, ...]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("SECRET")


def _shipped(build_src: Path) -> list[str]:
    return sorted(p.relative_to(build_src).as_posix() for p in build_src.rglob("*") if p.is_file())


CREDENTIALS = (".envrc", ".netrc", ".aws/credentials", ".ssh/config", ".docker/config.json", "cert.p12", ".npmrc")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_inside_a_git_repository_the_image_ships_what_git_would(tmp_path: Path, flash) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "examples" / "demo", repo / "svc")
    config = (REPO / "flash.toml.example").read_text().replace('source = "examples/demo"', 'source = "svc"')
    (repo / "flash.toml").write_text(config)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("svc/credentials.json\n*.sqlite3\n")
    (repo / "svc" / "app" / ".gitignore").write_text("local.cfg\n")
    (repo / ".git" / "info" / "exclude").write_text("scratch/\n")
    _plant(repo / "svc", ("credentials.json", "db.sqlite3", "app/local.cfg", "scratch/notes.txt", *CREDENTIALS))
    (repo / "svc" / "untracked.txt").write_text("new files git would add ship too")
    assert flash("build", cwd=repo).code == 0
    assert _shipped(repo / ".flash/build/data-api/src") == [
        "app/.gitignore",
        "app/__init__.py",
        "app/data.py",
        "app/handlers.py",
        "app/model.py",
        "untracked.txt",
    ]


def test_outside_git_nested_ignore_files_apply_at_every_level(example: Path, flash) -> None:
    src = example / "examples" / "demo"
    (src / ".gitignore").write_text("*.sqlite3\n")
    (src / "app" / ".gitignore").write_text("local.cfg\n!keep.sqlite3\n")
    (src / "app" / ".flashignore").write_text("fixtures/\n")
    _plant(src, ("db.sqlite3", "app/keep.sqlite3", "app/local.cfg", "app/fixtures/a.json", *CREDENTIALS))
    assert flash("build", cwd=example).code == 0
    assert _shipped(example / ".flash/build/data-api/src") == [
        ".gitignore",
        "app/.flashignore",
        "app/.gitignore",
        "app/__init__.py",
        "app/data.py",
        "app/handlers.py",
        "app/keep.sqlite3",
        "app/model.py",
    ]


def test_the_mothership_is_built_from_flash_code_alone(tmp_path: Path, flash) -> None:
    shutil.copytree(REPO / "tests" / "apps" / "calls", tmp_path, dirs_exist_ok=True)
    result = flash("build", cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1].startswith("flash: 3 endpoints built in ")
    mothership = tmp_path / ".flash" / "build" / "mothership"
    files = sorted(str(p.relative_to(mothership)) for p in mothership.rglob("*") if p.is_file())
    assert [f for f in files if not f.startswith("flash_runtime/")] == [
        ".dockerignore", "Dockerfile", "flash_worker.py", "requirements.txt", "src/.keep",
    ]  # fmt: skip
    assert (mothership / "requirements.txt").read_text().splitlines()[-2:] == ["aiohttp>=3.9,<4", "uvloop>=0.19"]
    worker = (mothership / "flash_worker.py").read_text()
    assert 'APP = {"app": \'calls-test\', "environment": None, "endpoints": ' in worker
    assert "{'inference': ['POST /predict'], 'api': ['POST /ask', 'POST /ask-sync', 'POST /ask-missing']}" in worker
