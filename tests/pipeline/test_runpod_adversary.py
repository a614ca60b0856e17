"""What a new user (and CI) broke in the RunPod target after issue 22, each as real `flash`
processes (or the Action's step) against the emulator on loopback, signals sent at chosen calls.

Each test reproduces one bug found by trying, and the fix; what held is listed in the report.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)  # where `flash` is installed beside this Python


def config(
    *keys: str, calls: tuple[tuple[str, str], ...] = (), gpu: tuple[str, ...] = (), big: tuple[str, ...] = ()
) -> str:
    lines = ['[app]\nname = "adv"\nregistry = "ghcr.io/acme"\nsource = "src"\ncall_key = "{{ RUNPOD_SECRET_calls }}"\n']
    for key in keys:
        lines.append(f"[endpoints.{key}]")
        lines.append(
            'gpu = "ADA_24"' if key in gpu else f'cpu = "cpu3c-{4 if key in big else 2}-{8 if key in big else 4}"'
        )
        callees = [c for k, c in calls if k == key]
        if callees:
            lines.append(f"calls = {json.dumps(callees)}")
        lines.append(f'[endpoints.{key}.routes]\n"GET /x" = "app.handlers:health"\n')
    return "\n".join(lines)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "examples" / "demo", tmp_path / "src")
    return tmp_path


def environ(emulator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB", "FLASH_", "RUNPOD_"))}
    env |= {
        "RUNPOD_API_BASE_URL": emulator.url,
        "RUNPOD_API_KEY": emulator.api_key,
        "RUNPOD_LB_URL_TEMPLATE": emulator.url + "/lb/{endpoint_id}",
        "FLASH_NO_REGISTRY_CHECK": "1",
        "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
    }
    return env | extra


def names(emulator) -> Counter[str]:
    return Counter(str(d.body.get("name")) for d in emulator.endpoints.values())


def leases(emulator) -> list[str]:
    return [t["name"] for t in emulator.templates.values() if str(t["name"]).startswith("flash-lease")]


# -- the Action cancelled ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGINT to the step's process group", "SIGTERM to the step"])
def test_a_cancelled_action_lets_flash_stop_cleanly_and_prints_its_report(app: Path, emulator, how: str) -> None:
    """A workflow cancelled during a deploy: the step used subprocess.run, which kills flash 0.25 s
    after a SIGINT (the lease was left, no report, a traceback from run.py), and on a SIGTERM to the
    step alone flash went on deploying unseen while the step died without its report."""
    (app / "flash.toml").write_text(config("a", "b", calls=(("a", "b"),)))
    outputs = app / "github_output"
    env = environ(emulator, FLASH_COMMAND="deploy", FLASH_ARGS="--no-build", GITHUB_OUTPUT=str(outputs))
    step: list[subprocess.Popen[str]] = []

    def cancel_the_workflow() -> None:  # b is made on the account; its answer has not come back yet
        if how.startswith("SIGINT"):
            os.killpg(step[0].pid, signal.SIGINT)
        else:
            step[0].send_signal(signal.SIGTERM)

    emulator.after["create"] = cancel_the_workflow
    step.append(
        subprocess.Popen(
            [sys.executable, str(REPO / "action" / "run.py")],
            cwd=app,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a group of its own, as the runner gives the step
        )
    )
    out, err = step[0].communicate(timeout=60)
    assert step[0].returncode == 130, err
    assert "Traceback" not in err
    [made] = [i for i, d in emulator.endpoints.items() if d.body["name"] == "adv-b"]
    assert f"  b: created {made} (health not confirmed)" in out.splitlines()
    assert "  a: not changed" in out.splitlines()
    assert names(emulator) == Counter({"adv-b": 1})  # a was never created: flash stopped
    assert leases(emulator) == []
    assert outputs.read_text().startswith("endpoints=")


# -- Ctrl-C while an update is in flight ---------------------------------------------------------


def deploy(app: Path, emulator, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flash_pipeline", "deploy", "--no-build", *args],
        cwd=app,
        env=environ(emulator),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ctrl_c_while_an_update_is_in_flight_reports_the_update_the_account_shows(app: Path, emulator) -> None:
    """The report said `b: not changed` while b's PATCH had landed (creates were looked up, updates
    were not): an update in flight is looked up too before the report is printed."""
    import threading

    (app / "flash.toml").write_text(config("a", "b", calls=(("a", "b"),)))
    first = deploy(app, emulator)
    assert first.wait(60) == 0, first.communicate()
    (app / "flash.toml").write_text(config("a", "b", calls=(("a", "b"),), big=("b",)))
    [b] = [i for i, d in emulator.endpoints.items() if d.body["name"] == "adv-b"]
    answered = threading.Event()
    run: list[subprocess.Popen[str]] = []

    def after_update() -> None:  # applied on the account; the answer comes only after the report (or 30 s)
        run[0].send_signal(signal.SIGINT)
        answered.wait(30)

    emulator.after["update"] = after_update
    run.append(deploy(app, emulator))
    out, err = run[0].communicate(timeout=60)
    answered.set()
    assert run[0].returncode == 130, err
    assert emulator.endpoints[b].body["cpu"][0]["vcpuCount"] == 4  # the PATCH landed
    assert f"  b: updated {b} (health not confirmed)" in out.splitlines()  # not "not changed"
    assert "  a: not changed" in out.splitlines()
    assert leases(emulator) == []
