"""Endpoints that call each other, deployed to the RunPod emulator: callees first and gated, callers
wired to their URLs, and the gate telling an old worker from a new one by its /manifest build."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CALL_KEY = 'call_key = "{{ RUNPOD_SECRET_flash_calls }}"'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The contract's example, with data-api calling inference-api."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    text = (REPO / "flash.toml.example").read_text()
    text = text.replace('python = "3.11"', f'python = "3.11"\n{CALL_KEY}')
    text = text.replace(
        'cpu = "cpu3c-4-8"               # <flavor>-<vCPU>-<RAM GB>', 'cpu = "cpu3c-4-8"\ncalls = ["inference-api"]'
    )
    (tmp_path / "flash.toml").write_text(text)
    return tmp_path


def _bodies(emulator) -> dict[str, dict]:
    return {e.body["name"]: e.body for e in emulator.endpoints.values()}


def test_callees_are_created_and_gated_before_their_callers(project: Path, flash, emulator) -> None:
    plan = flash("plan", cwd=project)
    assert plan.out.splitlines()[:5] == [
        "plan for demo on the runpod target:",
        "  + inference-api: create",
        "      cost: $1.10/h floor (+ $1.10/h while idle), $5.50/h ceiling",
        "  + data-api: create (after inference-api)",
        "      cost: $0.16/h floor (+ $0.16/h while idle), $0.48/h ceiling",
    ]
    deployed = flash("deploy", cwd=project)
    assert deployed.code == 0, deployed.err
    events = emulator.events
    # The callee is created, then /ping 200 and its build on /manifest, before the caller exists.
    ready = events.index("200 demo-inference-api /manifest")
    assert events.index("create demo-inference-api") < ready < events.index("create demo-data-api")
    bodies = _bodies(emulator)
    inference_id = next(i for i, e in emulator.endpoints.items() if e.body["name"] == "demo-inference-api")
    caller, callee = bodies["demo-data-api"]["env"], bodies["demo-inference-api"]["env"]
    assert json.loads(caller["FLASH_ENDPOINTS"]) == {"inference-api": f"{emulator.url}/lb/{inference_id}"}
    assert caller["FLASH_CALL_KEY"] == "{{ RUNPOD_SECRET_flash_calls }}"  # RunPod resolves it; flash never does
    assert caller["FLASH_BUILD"] == bodies["demo-data-api"]["image"].rpartition(":")[2]
    assert "FLASH_ENDPOINTS" not in callee and "FLASH_CALL_KEY" not in callee

    emulator.calls.clear()
    again = flash("deploy", cwd=project)
    assert again.code == 0, again.err
    assert (
        again.out.splitlines()[-1]
        == "flash: deployed to RunPod: 0 created, 0 updated, 2 unchanged, 0 deleted, 0 orphaned"
    )
    assert [w for w in emulator.writes() if "templates" not in w[1]] == []  # only the lease's
    assert flash("plan", "--detailed-exitcode", cwd=project).code == 0


def test_a_callee_that_never_turns_healthy_leaves_its_callers_undeployed(project: Path, flash, emulator) -> None:
    text = (project / "flash.toml").read_text()
    (project / "flash.toml").write_text(
        text.replace('gpu = "ADA_24"', 'image = "ghcr.io/acme/unhealthy:1"\ngpu = "ADA_24"')
    )
    failed = flash("deploy", "--health-timeout", "1", cwd=project)
    assert failed.code == 5
    lines = failed.out.splitlines()
    assert lines[1].split() == [
        "data-api",
        "not",
        "deployed",
        "-",
        "-",
        "(deploy",
        "again",
        "once",
        "inference-api",
        "is",
        "healthy)",
    ]
    assert (
        lines[-1]
        == "flash: deploy to RunPod failed: 0 created, 0 updated, 1 failed, 1 not deployed, 0 unchanged, 0 deleted, 0 orphaned"
    )
    assert "data-api: not deployed: it calls inference-api, which is not healthy" in failed.err
    assert sorted(_bodies(emulator)) == ["demo-inference-api"]  # the caller was never created


def test_the_gate_refuses_an_old_worker_still_answering(project: Path, flash, emulator) -> None:
    assert flash("deploy", cwd=project).code == 0
    old = _bodies(emulator)["demo-data-api"]["env"]["FLASH_BUILD"]
    (project / "examples" / "demo" / "app" / "data.py").write_text(
        (project / "examples" / "demo" / "app" / "data.py").read_text() + "\n# a new release\n"
    )
    emulator.stale = {"demo-data-api": old}  # RunPod ended the rollout, yet an old worker still serves
    failed = flash("deploy", "--health-timeout", "1.5", cwd=project)
    assert failed.code == 5, failed.err
    refused = re.search(rf"data-api: /ping 200, but /manifest reports build {old}, not (\w+) after ", failed.err)
    assert refused is not None and refused.group(1) != old
    assert "data-api: rolling back image, env" in failed.err
    assert "data-api: rolled back to the previous spec, which is healthy" in failed.err
    assert _bodies(emulator)["demo-data-api"]["env"]["FLASH_BUILD"] == old  # the previous release is back
    emulator.stale = {}
    assert flash("deploy", cwd=project).code == 0  # the real new release passes


def test_a_missing_call_key_variable_is_refused_before_anything_is_sent(
    project: Path, flash, emulator, monkeypatch
) -> None:
    text = (project / "flash.toml").read_text().replace(CALL_KEY, 'call_key = "${FLASH_TEST_CALL_KEY}"')
    (project / "flash.toml").write_text(text)
    monkeypatch.delenv("FLASH_TEST_CALL_KEY", raising=False)
    result = flash("deploy", cwd=project)
    assert result.code == 2
    assert result.err.splitlines()[-3:] == [
        "flash.toml:10:12: error: app.call_key: ${FLASH_TEST_CALL_KEY} is not set in the deploying environment",
        "  hint: export FLASH_TEST_CALL_KEY=… before deploying",
        "flash: 1 error in flash.toml; nothing was deployed",
    ]
    assert emulator.writes() == []


def test_a_caller_reaches_its_callee_through_runpod_with_the_call_key(tmp_path: Path, flash, emulator) -> None:
    import requests

    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    shutil.copytree(REPO / "tests" / "apps" / "calls", tmp_path, dirs_exist_ok=True)
    config = tmp_path / "flash.toml"
    config.write_text(
        config.read_text().replace('name = "calls-test"', 'name = "calls-test"\nregistry = "ghcr.io/acme"')
    )
    result = build(validate_file(config))
    emulator.serve_builds(
        {e.image: {"build_dir": str(e.path), "digest": e.digest} for e in result.endpoints}, tmp_path / ".emu"
    )
    emulator.secrets = {"flash_calls": "rpa_calls_only"}  # a key restricted to this app's endpoints
    emulator.data_keys = {"rpa_calls_only"}
    deployed = flash("deploy", "--format", "json", cwd=tmp_path)
    assert deployed.code == 0, deployed.err
    urls = {k: v["url"] for k, v in json.loads(deployed.out)["apps"][0]["endpoints"].items()}
    asked = requests.post(
        urls["api"] + "/ask", json={"values": [1, 2]},
        headers={"Authorization": f"Bearer {emulator.api_key}", "X-Request-ID": "trace-9"}, timeout=30,
    )  # fmt: skip
    assert asked.json() == {
        "via": "async",
        "doubled": [2, 4],
        "request_id": "trace-9",
        "authorization": "Bearer rpa_calls_only",
    }
    # The mothership is created last, wired to every endpoint, and routes with the call key.
    creates = [e for e in emulator.events if e.startswith("create ")]
    assert creates == ["create calls-test-inference", "create calls-test-api", "create calls-test-mothership"]
    env = _bodies(emulator)["calls-test-mothership"]["env"]
    assert json.loads(env["FLASH_ENDPOINTS"]) == {"api": urls["api"], "inference": urls["inference"]}
    via = requests.post(
        urls["mothership"] + "/inference/predict", json={"values": [3]},
        headers={"Authorization": f"Bearer {emulator.api_key}", "X-Request-ID": "trace-10"}, timeout=30,
    )  # fmt: skip
    assert via.json() == {"doubled": [6], "request_id": "trace-10", "authorization": "Bearer rpa_calls_only"}
    app = requests.get(
        urls["mothership"] + "/manifest", headers={"Authorization": f"Bearer {emulator.api_key}"}, timeout=30
    ).json()
    assert {k: v["ping"] for k, v in app["endpoints"].items()} == {"api": 200, "inference": 200}
    status = flash("status", cwd=tmp_path)
    rows = [line.split()[0] for line in status.out.splitlines() if not line.startswith(" ")]
    assert rows == ["inference", "api", "mothership"]
