"""One contract for every command (issue 24): `-c` takes files and globs everywhere, a one-app
command refuses several configs with exit 2, `--format json` is one versioned document whose keys
do not depend on the number of configs (`deploy --dry-run` included), and an option means one
thing everywhere (`--health-timeout`, `--timeout`, `--lock-timeout`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from flash_pipeline.cli import cli
from flash_pipeline.errors import Exit

GLOB = "services/*/flash.toml"
ONE_APP = {  # the commands that act on one app, with the arguments they need besides -c
    "dev": [],
    "call": ["api", "/x"],
    "logs": [],
    "openapi": [],
    "deploy": ["--target", "local"],
}
READS_CONFIGS = sorted(
    name for name, command in cli.commands.items() if any("--config" in p.opts for p in command.params)
)


def service(root: Path, app: str, *, invalid: bool = False) -> Path:
    """services/<app>/flash.toml with two CPU endpoints serving GET /x, and their handler."""
    folder = root / "services" / app
    folder.mkdir(parents=True)
    (folder / "handlers.py").write_text("def x() -> dict:\n    return {}\n")
    workers = "[3, 1]" if invalid else "[0, 1]"
    text = f'[app]\nname = "{app}"\nregistry = "ghcr.io/acme"\n'
    for key in ("api", "jobs"):
        text += f'\n[endpoints.{key}]\ncpu = "cpu3c-2-4"\nworkers = {workers}\nroutes = {{ "GET /x" = "handlers:x" }}\n'
    (folder / "flash.toml").write_text(text)
    return folder / "flash.toml"


def shape(document: dict[str, Any]) -> tuple[list[str], set[tuple[str, ...]], set[tuple[str, ...]]]:
    """The document's keys: top level, each app's, and each endpoint's or action's (names of
    endpoints are data, not keys of the shape)."""
    apps = document["apps"]
    items = [item for app in apps for item in (app.get("endpoints") or {}).values() if item]
    items += [action for app in apps for action in app.get("actions", [])]
    return sorted(document), {tuple(sorted(app)) for app in apps}, {tuple(sorted(item)) for item in items}


def run_json(flash, *args: str, cwd: Path) -> dict[str, Any]:
    result = flash(*args, "--format", "json", cwd=cwd)
    assert result.code in (Exit.OK, Exit.CHANGES), result.err
    document: dict[str, Any] = json.loads(result.out)
    assert (document["version"], document["command"]) == (1, "plan" if "--dry-run" in args else args[0])
    return document


@pytest.mark.parametrize(
    "args",
    [("plan", "--target", "local"), ("deploy", "--dry-run", "--target", "local"), ("status", "--target", "local")],
)
def test_one_config_and_several_give_the_same_json_keys_on_the_local_target(
    args: tuple[str, ...], flash, tmp_path: Path
) -> None:
    service(tmp_path, "svc-a")
    service(tmp_path, "svc-b")
    one = run_json(flash, *args, "-c", "services/svc-a/flash.toml", cwd=tmp_path)
    several = run_json(flash, *args, "-c", GLOB, cwd=tmp_path)
    assert shape(one) == shape(several)
    assert len(shape(several)[1]) == 1  # every app has the same keys
    assert [a["app"] for a in several["apps"]] == ["svc-a", "svc-b"]
    assert [a["config"] for a in several["apps"]] == ["services/svc-a/flash.toml", "services/svc-b/flash.toml"]
    assert one["apps"][0] | {"config": ""} == several["apps"][0] | {"config": ""}


def test_one_config_and_several_give_the_same_deploy_json_keys_on_runpod(flash, tmp_path: Path, emulator) -> None:
    service(tmp_path, "svc-a")
    service(tmp_path, "svc-b")
    one = run_json(flash, "deploy", "--no-build", "-c", "services/svc-a/flash.toml", cwd=tmp_path)
    several = run_json(flash, "deploy", "--no-build", "-c", GLOB, cwd=tmp_path)
    assert shape(one) == shape(several)
    assert shape(one)[0] == ["apps", "command", "ok", "version"]
    assert shape(one)[1] == {("app", "config", "endpoints", "error", "ok", "target")}
    assert sorted(several["apps"][1]["endpoints"]) == ["api", "jobs"]  # keys are endpoint keys, never "app/key"
    assert [e["action"] for e in several["apps"][0]["endpoints"].values()] == ["unchanged", "unchanged"]
    status = run_json(flash, "status", "-c", GLOB, cwd=tmp_path)
    assert shape(status)[1] == {("app", "config", "endpoints", "error", "ok", "target")}
    assert several["apps"][1]["endpoints"]["api"]["id"] == status["apps"][1]["endpoints"]["api"]["id"]


def test_deploy_dry_run_prints_the_plan_in_either_format(flash, tmp_path: Path) -> None:
    service(tmp_path, "svc-a")
    for fmt in ("text", "json"):
        planned = flash("plan", "-c", GLOB, "--target", "local", "--format", fmt, cwd=tmp_path)
        dry = flash("deploy", "--dry-run", "-c", GLOB, "--target", "local", "--format", fmt, cwd=tmp_path)
        assert (dry.code, dry.out, dry.err) == (planned.code, planned.out, planned.err)
    document = json.loads(dry.out)
    assert (document["command"], document["changes"], document["apps"][0]["actions"][0]) == (
        "plan",
        True,
        {"endpoint": "api", "action": "create", "changes": [], "note": None, "duplicates": [], "after": []},
    )


@pytest.mark.parametrize("command", READS_CONFIGS)
def test_every_command_that_reads_configs_expands_a_glob(
    command: str, flash, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two configs match, one invalid: a one-app command refuses them both by name (exit 2),
    before reading either; every other command validates both before doing anything (exit 2)."""
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    service(tmp_path, "svc-a")
    service(tmp_path, "svc-b", invalid=True)
    result = flash(command, *ONE_APP.get(command, []), "-c", GLOB, cwd=tmp_path)
    assert result.code == Exit.INVALID
    if command in ONE_APP:
        what = "the local target" if command == "deploy" else f"flash {command}"
        assert result.err == (
            f"flash: error: {what} acts on one app, but -c names 2 configs: "
            "services/svc-a/flash.toml, services/svc-b/flash.toml\n"
            "  hint: pass one -c (a file, or a glob that matches one config)\n"
        )
    else:
        problem = "services/svc-b/flash.toml:7:11: error: endpoints.api.workers: min (3) is greater than max (1)"
        assert problem in result.out + result.err
        assert "svc-a/flash.toml:" not in result.out + result.err


def test_a_glob_that_matches_one_config_serves_a_one_app_command(flash, tmp_path: Path) -> None:
    service(tmp_path, "svc-a")
    result = flash("logs", "-c", "services/*/flash.toml", "--target", "local", cwd=tmp_path)
    assert (result.code, result.err.splitlines()[0]) == (Exit.INVALID, "flash: error: no local log for svc-a")


def test_validate_arguments_are_the_same_as_c(flash, tmp_path: Path) -> None:
    service(tmp_path, "svc-a")
    service(tmp_path, "svc-b", invalid=True)
    as_arguments = flash("validate", GLOB, "--format", "json", cwd=tmp_path)
    as_options = flash("validate", "-c", GLOB, "--format", "json", cwd=tmp_path)
    assert (as_arguments.code, as_arguments.out) == (as_options.code, as_options.out) == (Exit.INVALID, as_options.out)
    assert [f["file"] for f in json.loads(as_options.out)["files"]] == [
        "services/svc-a/flash.toml",
        "services/svc-b/flash.toml",
    ]


def test_build_of_several_configs_builds_each_and_refuses_one_output_folder(flash, tmp_path: Path) -> None:
    service(tmp_path, "svc-a")
    service(tmp_path, "svc-b")
    refused = flash("build", "-c", GLOB, "-o", "out", cwd=tmp_path)
    assert (refused.code, refused.err) == (
        Exit.INVALID,
        "flash: error: -o names one output folder, but -c names 2 configs: services/svc-a/flash.toml, "
        "services/svc-b/flash.toml\n"
        "  hint: leave -o out (each config builds into .flash/build next to it), or pass one -c\n",
    )
    assert not (tmp_path / "out").exists()
    built = flash("build", "-c", GLOB, cwd=tmp_path)
    assert built.code == 0, built.err
    for app in ("svc-a", "svc-b"):
        assert (tmp_path / "services" / app / ".flash" / "build" / "manifest.json").is_file()


def test_deploy_timeout_is_a_deprecated_spelling_of_health_timeout(flash, tmp_path: Path) -> None:
    service(tmp_path, "svc-a")
    result = flash("deploy", "--dry-run", "-c", GLOB, "--target", "local", "--timeout", "5", cwd=tmp_path)
    assert result.code == 0
    assert result.err == (
        "flash: deploy --timeout is deprecated; it is now --health-timeout "
        "(`--timeout` is `flash call`'s limit on one request)\n"
    )
    assert "--health-timeout S" in flash("deploy", "--help").out
    assert "--timeout" not in flash("deploy", "--help").out.replace("--health-timeout", "").replace(
        "--lock-timeout", ""
    )


def test_destroy_waits_for_a_deploy_lease_as_long_as_lock_timeout_says(flash, tmp_path: Path, emulator) -> None:
    service(tmp_path, "svc-a")
    expires = str(int(time.time()) + 600)
    emulator.save_template(
        {"name": "flash-lease svc-a", "image": "flash-lease:none", "env": {"FLASH_LEASE_HOLDER": "ci@runner pid 7", "FLASH_LEASE_EXPIRES": expires}}
    )  # fmt: skip
    blocked = flash("destroy", "-c", GLOB, "--yes", "--lock-timeout", "0", cwd=tmp_path)
    assert blocked.code == Exit.API
    assert blocked.out == (
        "flash: a deploy of svc-a is running (ci@runner pid 7); destroy waits for it, then deletes what it made\n"
    )
    assert "flash: error: another deploy holds the lease 'flash-lease svc-a': ci@runner pid 7" in blocked.err
