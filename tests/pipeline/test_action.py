"""The GitHub Action's shell step (action/run.sh) run here, against the RunPod emulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "action" / "run.sh"


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
        **env,
    }
    done = subprocess.run(["bash", str(SCRIPT)], cwd=workspace, env=full, capture_output=True, text=True, timeout=300)
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
