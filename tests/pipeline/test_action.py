"""The GitHub Action's step (action/run.py, as action.yml runs it) run here, against the RunPod emulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "action" / "run.py"
BIN = str(Path(sys.executable).parent)  # where `flash` is installed beside this Python


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "flash.toml.example", tmp_path / "flash.toml")
    return tmp_path


def run_action(
    workspace: Path, command: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    outputs, summary = workspace / "github_output", workspace / "step_summary"
    outputs.write_text("")
    summary.write_text("")
    full = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
        "FLASH_COMMAND": command,
        "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
        **env,
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=workspace, env=full, capture_output=True, text=True, timeout=300
    )
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
    return done, values, summary.read_text()


def test_validate_annotates_problems(workspace: Path) -> None:
    (workspace / "flash.toml").write_text(
        (workspace / "flash.toml").read_text().replace("workers = [1, 3]", "workers = [3, 1]")
    )
    done, _, _ = run_action(workspace, "validate")
    assert done.returncode == 2
    assert (
        "::error file=flash.toml,line=37,col=11::endpoints.data-api.workers: min (3) is greater than max (1)%0Ahint: lower the first number or raise the second"
        in done.stdout
    )


def test_plan_then_deploy_expose_outputs_and_summary(workspace: Path, emulator) -> None:
    done, values, summary = run_action(workspace, "plan")
    assert done.returncode == 0, done.stderr
    assert values == {"changes": "true"}
    assert summary.startswith("### flash plan: `demo` on `runpod`")

    done, values, summary = run_action(workspace, "deploy")
    assert done.returncode == 0, done.stderr
    endpoints = json.loads(values["endpoints"])
    assert set(endpoints) == {"inference-api", "data-api"}
    assert endpoints["data-api"]["url"].startswith(emulator.url + "/lb/")
    assert values["data_api_id"] == endpoints["data-api"]["id"]
    assert "| `data-api` | created |" in summary

    done, values, _ = run_action(workspace, "plan")
    assert values == {"changes": "false"}

    done, _, _ = run_action(workspace, "destroy")
    assert done.returncode == 0 and emulator.endpoints == {}


def test_unknown_command_is_refused(workspace: Path) -> None:
    done, _, _ = run_action(workspace, "launch")
    assert done.returncode == 2
    assert "unknown command 'launch'" in done.stderr


def _service(root: Path, app: str) -> None:
    shutil.copytree(REPO / "examples", root / app / "examples")
    (root / app / "flash.toml").write_text(
        (REPO / "flash.toml.example").read_text().replace('name = "demo"', f'name = "{app}"')
    )


def test_a_failed_deploy_still_prints_its_report_and_writes_its_outputs(workspace: Path, emulator) -> None:
    """The report and `endpoints` survive a failed deploy, and the step exits with flash's code;
    `args` are split as a shell splits them (`--health-timeout '1'`)."""
    config = workspace / "flash.toml"
    config.write_text(
        config.read_text().replace(
            'cpu = "cpu3c-4-8"               # <flavor>-<vCPU>-<RAM GB>',
            'cpu = "cpu3c-4-8"\nimage = "ghcr.io/acme/broken:unhealthy"',
        )
    )
    done, values, summary = run_action(workspace, "deploy", FLASH_ARGS="--health-timeout '1'")
    assert done.returncode == 5, done.stderr
    report = json.loads(done.stdout)
    assert (report["version"], report["ok"], report["apps"][0]["ok"]) == (1, False, False)
    broken = report["apps"][0]["endpoints"]["data-api"]
    assert broken["action"] == "created" and broken["error"].startswith("data-api: not healthy after 1s")
    endpoints = json.loads(values["endpoints"])
    ids = {e.body["name"]: i for i, e in emulator.endpoints.items()}
    # both exist on RunPod (the unhealthy one is left for inspection): both are named, each with its own id
    assert {key: item["id"] for key, item in endpoints.items()} == {
        "inference-api": ids["demo-inference-api"],
        "data-api": ids["demo-data-api"],
    }
    assert "| `data-api` | failed |" in summary


def test_args_are_split_as_a_shell_splits_them(workspace: Path) -> None:
    done, _, _ = run_action(workspace, "validate", FLASH_ARGS="--format 'json'")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["files"][0]["file"] == "flash.toml"
    unbalanced, _, _ = run_action(workspace, "validate", FLASH_ARGS="--format 'json")
    assert unbalanced.returncode == 2
    assert "flash action: the args input cannot be split as a shell would: No closing quotation" in unbalanced.stderr


def test_every_command_takes_a_glob(workspace: Path, emulator) -> None:
    for app in ("svc-a", "svc-b"):
        _service(workspace / "services", app)
    glob = {"FLASH_CONFIG": "services/*/flash.toml"}
    assert run_action(workspace, "validate", **glob)[0].returncode == 0
    assert run_action(workspace, "plan", **glob)[1] == {"changes": "true"}
    done, values, _ = run_action(workspace, "deploy", **glob)
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(values["endpoints"])) == [
        "svc-a/data-api",
        "svc-a/inference-api",
        "svc-b/data-api",
        "svc-b/inference-api",
    ]
    assert len(emulator.endpoints) == 4
    done, _, _ = run_action(workspace, "destroy", **glob)
    assert done.returncode == 0, done.stderr
    assert emulator.endpoints == {}
    assert "RunPod endpoints of svc-a to delete:" in done.stdout
    assert "RunPod endpoints of svc-b to delete:" in done.stdout
