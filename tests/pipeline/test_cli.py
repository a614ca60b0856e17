"""The validate and init commands as users run them: exact output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "flash.toml.example"

BAD = '[app]\nname = "demo"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\nworkers = [5, 2]\n\n[endpoints.api.routes]\n"GET /x" = "app.h:x"\n'


def example_config() -> str:
    """The example config, its source folder given absolutely (validate checks the handlers in it)."""
    return EXAMPLE.read_text().replace('source = "examples/demo"', f'source = "{REPO / "examples" / "demo"}"')


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_example_is_valid(flash) -> None:
    result = flash("validate", "-c", str(EXAMPLE))
    assert result.code == 0
    assert result.out == f"flash: {EXAMPLE} is valid (2 endpoints, 4 routes)\n"


def test_default_config_is_flash_toml_in_the_current_folder(flash, tmp_path: Path) -> None:
    result = flash("validate", cwd=tmp_path)
    assert result.code == 2
    assert (
        result.out
        == "flash.toml: error: file not found\n  hint: pass the path of a flash.toml with -c, or run `flash init`\nflash: 1 error in flash.toml\n"
    )


def test_contract_error_format(flash, tmp_path: Path) -> None:
    write(tmp_path, "flash.toml", BAD)
    result = flash("validate", cwd=tmp_path)
    assert result.code == 2
    assert result.out == (
        "flash.toml:6:11: error: endpoints.api.workers: min (5) is greater than max (2)\n"
        "  hint: lower the first number or raise the second\n"
        "flash: 1 error in flash.toml\n"
    )


def test_many_files_one_summary(flash, tmp_path: Path) -> None:
    write(tmp_path, "a/flash.toml", BAD)
    write(tmp_path, "b/flash.toml", example_config())
    write(tmp_path, "c/flash.toml", BAD.replace("[5, 2]", "[1, 0]"))
    result = flash("validate", "a/flash.toml", "-c", "b/flash.toml", "c/flash.toml", cwd=tmp_path)
    assert result.code == 2
    assert result.out.splitlines() == [
        "a/flash.toml:6:11: error: endpoints.api.workers: min (5) is greater than max (2)",
        "  hint: lower the first number or raise the second",
        "c/flash.toml:6:11: error: endpoints.api.workers: min (1) is greater than max (0)",
        "  hint: lower the first number or raise the second",
        "c/flash.toml:6:15: error: endpoints.api.workers[1]: must be between 1 and 1000 (got 0)",
        "flash: 3 errors in 2 of 3 files",
    ]


def test_all_valid_files_summary(flash, tmp_path: Path) -> None:
    for name in ("a", "b"):
        write(tmp_path, f"{name}/flash.toml", example_config())
    result = flash("validate", "a/flash.toml", "b/flash.toml", cwd=tmp_path)
    assert (result.code, result.out) == (0, "flash: 2 files valid (4 endpoints)\n")


def test_json_format(flash, tmp_path: Path) -> None:
    write(tmp_path, "flash.toml", BAD)
    result = flash("validate", "--format", "json", cwd=tmp_path)
    assert result.code == 2
    assert json.loads(result.out) == {
        "version": 1,
        "command": "validate",
        "ok": False,
        "error_count": 1,
        "files": [
            {
                "file": "flash.toml",
                "valid": False,
                "endpoints": [],
                "errors": [
                    {
                        "file": "flash.toml",
                        "line": 6,
                        "col": 11,
                        "path": "endpoints.api.workers",
                        "message": "min (5) is greater than max (2)",
                        "hint": "lower the first number or raise the second",
                    }
                ],
                "warnings": [],
            }
        ],
    }


def test_json_format_valid_lists_runpod_names(flash) -> None:
    result = flash("validate", "--format", "json", str(EXAMPLE))
    report = json.loads(result.out)
    assert (result.code, report["ok"], report["files"][0]["endpoints"]) == (
        0,
        True,
        ["demo-inference-api", "demo-data-api"],
    )


def test_github_format(flash, tmp_path: Path) -> None:
    write(tmp_path, "flash.toml", BAD.replace('"app.h:x"', '"a,b:c"'))
    result = flash("validate", "--format", "github", cwd=tmp_path)
    assert result.code == 2
    assert result.out.splitlines() == [
        "::error file=flash.toml,line=6,col=11::endpoints.api.workers: min (5) is greater than max (2)%0Ahint: lower the first number or raise the second",
        '::error file=flash.toml,line=9,col=12::endpoints.api.routes."GET /x": "a,b:c" is not a valid handler%0Ahint: write module:function, e.g. app.handlers:predict',
    ]


def test_github_actions_annotations(tmp_path: Path) -> None:
    write(tmp_path, "flash.toml", BAD)
    env = {**os.environ, "GITHUB_ACTIONS": "true"}
    proc = subprocess.run(
        [sys.executable, "-m", "flash_pipeline", "validate"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stdout.splitlines() == [
        "flash.toml:6:11: error: endpoints.api.workers: min (5) is greater than max (2)",
        "  hint: lower the first number or raise the second",
        "::error file=flash.toml,line=6,col=11::endpoints.api.workers: min (5) is greater than max (2)%0Ahint: lower the first number or raise the second",
        "flash: 1 error in flash.toml",
    ]


def test_console_script_and_module_agree(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("flash")
    for command in ([str(script)], [sys.executable, "-m", "flash_pipeline"]):
        proc = subprocess.run([*command, "validate", str(EXAMPLE)], capture_output=True, text=True, cwd=tmp_path)
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            0,
            f"flash: {EXAMPLE} is valid (2 endpoints, 4 routes)\n",
            "",
        )


def test_help_lists_commands(flash) -> None:
    result = flash("--help")
    assert result.code == 0
    assert "validate" in result.out and "init" in result.out and "runpod-flash" in result.out


def test_unknown_option_is_a_usage_error(flash) -> None:
    result = flash("validate", "--formt", "json")
    assert result.code == 2
    assert "Error: No such option '--formt'. Did you mean '--format'?" in result.err


def test_init_writes_a_valid_project(flash, tmp_path: Path) -> None:
    target = tmp_path / "My Service"
    result = flash("init", str(target))
    assert result.code == 0
    assert result.out.splitlines() == [
        f"wrote {target / 'app/__init__.py'}",
        f"wrote {target / 'app/handlers.py'}",
        f"wrote {target / 'flash.toml'}",
        f"next: flash validate -c {target / 'flash.toml'}",
    ]
    assert 'name = "my-service"' in (target / "flash.toml").read_text()
    check = flash("validate", "-c", str(target / "flash.toml"))
    assert (check.code, check.out) == (0, f"flash: {target / 'flash.toml'} is valid (1 endpoint, 2 routes)\n")


def test_init_refuses_to_overwrite_without_force(flash, tmp_path: Path) -> None:
    write(tmp_path, "flash.toml", "keep me")
    result = flash("init", str(tmp_path))
    assert result.code == 2
    assert (
        result.err
        == f"flash: error: {tmp_path / 'flash.toml'} already exist(s)\n  hint: pass --force to overwrite, or choose another folder\n"
    )
    assert (tmp_path / "flash.toml").read_text() == "keep me"
    assert not (tmp_path / "app").exists()
    forced = flash("init", str(tmp_path), "--force")
    assert forced.code == 0
    assert (tmp_path / "flash.toml").read_text() != "keep me"


def test_init_never_prompts_without_a_tty(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flash_pipeline", "init", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0
    assert (tmp_path / "flash.toml").is_file()


def test_schema_command_prints_the_shipped_schema(flash) -> None:
    result = flash("schema")
    assert result.code == 0
    assert json.loads(result.out) == json.loads((REPO / "schemas/flash.schema.json").read_text())


def test_validate_expands_globs_over_a_monorepo(flash, tmp_path: Path) -> None:
    for i in range(100):
        write(
            tmp_path,
            f"services/svc{i:03}/flash.toml",
            example_config().replace('name = "demo"', f'name = "svc-{i}"'),
        )
    write(tmp_path, "services/svc042/flash.toml", BAD)
    result = flash("validate", "services/**/flash.toml", cwd=tmp_path)
    assert result.code == 2
    assert result.out.splitlines() == [
        "services/svc042/flash.toml:6:11: error: endpoints.api.workers: min (5) is greater than max (2)",
        "  hint: lower the first number or raise the second",
        "flash: 1 error in 1 of 100 files",
    ]


def test_a_glob_matching_nothing_is_reported(flash, tmp_path: Path) -> None:
    result = flash("validate", "nothing/*/flash.toml", cwd=tmp_path)
    assert result.code == 2
    assert result.out.startswith("nothing/*/flash.toml: error: file not found")
