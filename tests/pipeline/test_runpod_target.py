"""flash against the RunPod emulator (REST v2 validated against RunPod's OpenAPI document)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "flash.toml.example", tmp_path / "flash.toml")
    return tmp_path


def edit(project: Path, old: str, new: str) -> None:
    config = project / "flash.toml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def test_full_lifecycle(project: Path, flash, emulator) -> None:
    first = flash("deploy", cwd=project)
    assert first.code == 0, first.err
    lines = first.out.splitlines()
    assert lines[0].startswith("inference-api  created")
    assert "healthy in" in lines[0] and emulator.url + "/lb/" in lines[0]
    assert lines[-1] == "flash: deployed to RunPod: 2 created, 0 updated, 0 unchanged, 0 deleted, 0 orphaned"
    assert sorted(e.body["name"] for e in emulator.endpoints.values()) == ["demo-data-api", "demo-inference-api"]

    emulator.calls.clear()
    again = flash("deploy", cwd=project)
    assert again.code == 0, again.err
    assert (
        again.out.splitlines()[-1]
        == "flash: deployed to RunPod: 0 created, 0 updated, 2 unchanged, 0 deleted, 0 orphaned"
    )
    # A listing and the catalog (stock and prices, before any write), a listing under the lease and
    # a rollout check per endpoint; the only writes are the deploy lease's.
    reads = sorted(c for c in emulator.calls if c[0] == "GET" and not c[1].startswith("/v2/templates"))
    catalog = [("GET", "/v2/catalog/cpus"), ("GET", "/v2/catalog/gpus")]
    assert reads == sorted(
        [("GET", "/v2/serverless")] * 2
        + catalog
        + [("GET", f"/v2/serverless/{i}/releases") for i in emulator.endpoints]
    )
    assert [m for m, _ in emulator.writes()] == ["POST", "DELETE"]
    assert all(path.startswith("/v2/templates") for _, path in emulator.writes())
    assert emulator.templates == {}  # the lease is gone

    edit(project, "workers = [1, 3]", "workers = [1, 4]")
    emulator.calls.clear()
    updated = flash("deploy", cwd=project)
    assert updated.code == 0, updated.err
    assert [w for w in emulator.writes() if "templates" not in w[1]] == [
        ("PATCH", f"/v2/serverless/{_id(emulator, 'demo-data-api')}")
    ]
    assert emulator.endpoints[_id(emulator, "demo-data-api")].body["workers"]["max"] == 4

    edit(
        project,
        'cpu = "cpu3c-4-8"               # <flavor>-<vCPU>-<RAM GB>',
        'cpu = "cpu3c-4-8"\nimage = "ghcr.io/acme/broken:unhealthy"',
    )
    failed = flash("deploy", "--health-timeout", "2", cwd=project)
    assert failed.code == 5
    assert "data-api: rolling back image" in failed.err
    assert "data-api: not healthy after 2s (last /ping: HTTP 503); workers: 1 unhealthy" in failed.err
    assert emulator.endpoints[_id(emulator, "demo-data-api")].body["image"].startswith("ghcr.io/acme/demo-data-api:")

    edit(project, 'image = "ghcr.io/acme/broken:unhealthy"', "")
    config = project / "flash.toml"
    text = config.read_text()
    config.write_text(text[: text.index("[endpoints.data-api]")])
    plan = flash("plan", cwd=project)
    assert "  ! data-api: orphan" in plan.out.splitlines()
    kept = flash("deploy", cwd=project)
    assert "not in the config; `--prune` deletes it" in kept.out
    assert _id(emulator, "demo-data-api")
    pruned = flash("deploy", "--prune", cwd=project)
    assert pruned.code == 0
    assert "demo-data-api" not in [e.body["name"] for e in emulator.endpoints.values()]

    inference = _id(emulator, "demo-inference-api")
    gone = flash("destroy", "--yes", cwd=project)
    assert (gone.code, gone.out) == (
        0,
        f"flash: 1 RunPod endpoint of demo to delete:\n  demo-inference-api  {inference}\n"
        f"flash: deleted demo-inference-api ({inference}) on RunPod\n",
    )
    assert emulator.endpoints == {}


def _id(emulator, name: str) -> str:
    return next(i for i, e in emulator.endpoints.items() if e.body["name"] == name)


def test_missing_key_fails_fast_before_any_build(
    project: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RUNPOD_API_KEY")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = flash("deploy", cwd=project)
    assert result.code == 4
    assert (
        result.err.splitlines()[0]
        == "flash: error: no RunPod API key: RUNPOD_API_KEY is not set and ~/.runpod/config.toml has none"
    )
    assert not (project / ".flash").exists()


def test_wrong_key_is_an_api_error_with_a_hint(project: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_wrong")
    result = flash("plan", cwd=project)
    assert result.code == 4
    assert (
        result.err
        == "flash: error: list endpoints: HTTP 401: invalid or missing API key\n  hint: the API key was refused: check RUNPOD_API_KEY\n"
    )
    assert "rpa_wrong" not in result.out + result.err


def test_faults_converge_without_duplicates(project: Path, flash, emulator) -> None:
    extra = "".join(
        f'\n[endpoints.extra-{i}]\ncpu = "cpu3c-2-4"\n\n[endpoints.extra-{i}.routes]\n"GET /x" = "app.handlers:health"\n'
        for i in range(3)
    )
    (project / "flash.toml").write_text((project / "flash.toml").read_text() + extra)
    emulator.faults.rate = 0.3
    emulator.faults.rng.seed(7)
    result = flash("deploy", cwd=project)
    assert result.code == 0, result.err
    names = sorted(e.body["name"] for e in emulator.endpoints.values())
    assert names == ["demo-data-api", "demo-extra-0", "demo-extra-1", "demo-extra-2", "demo-inference-api"]


def test_a_lost_create_response_makes_no_duplicate(project: Path, flash, emulator) -> None:
    emulator.faults.rate = 1.0
    emulator.faults.kinds = ("drop",)
    original = emulator.faults.draw

    def only_posts() -> str | None:  # drop the answers of the creates only
        method = emulator.calls[-1][0] if emulator.calls else "GET"
        return original() if method == "POST" else None

    emulator.faults.draw = only_posts
    result = flash("deploy", cwd=project)
    assert result.code == 0, result.err
    assert len(emulator.endpoints) == 2
    assert [c for c in emulator.calls if c == ("POST", "/v2/serverless")] == [("POST", "/v2/serverless")] * 2


def test_secrets_stay_out_of_output_and_build(project: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cr3t-value-42")
    edit(project, 'env = { MODEL = "tiny-linear",', 'env = { TOKEN = "${DEPLOY_TOKEN}", MODEL = "tiny-linear",')
    result = flash("-v", "deploy", cwd=project)
    assert result.code == 0, result.err
    deployed = emulator.endpoints[_id(emulator, "demo-inference-api")].body["env"]
    assert deployed["TOKEN"] == "s3cr3t-value-42"
    assert "RUNPOD_API_KEY" not in deployed
    plan = flash("plan", "--format", "json", cwd=project)
    for text in (result.out, result.err, plan.out):
        assert "s3cr3t-value-42" not in text and emulator.api_key not in text
    for path in (project / ".flash").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"s3cr3t-value-42" not in content and emulator.api_key.encode() not in content


def test_github_outputs_and_step_summary(
    project: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    outputs, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert flash("deploy", cwd=project).code == 0
    lines = outputs.read_text().splitlines()
    inference = _id(emulator, "demo-inference-api")
    assert f"inference_api_id={inference}" in lines
    assert f"inference_api_url={emulator.url}/lb/{inference}" in lines
    assert summary.read_text().startswith(
        "### flash deploy: `demo`\n\n| endpoint | action | id | URL | healthy after |"
    )


def test_status_and_json_deploy(project: Path, flash, emulator) -> None:
    deployed = json.loads(flash("deploy", "--format", "json", cwd=project).out)["apps"][0]
    assert set(deployed["endpoints"]) == {"inference-api", "data-api"}
    status = flash("status", cwd=project)
    assert status.code == 0
    line = status.out.splitlines()[0]
    assert line.startswith(f"inference-api  {_id(emulator, 'demo-inference-api')}  {emulator.url}/lb/")
    assert line.endswith("workers: 1 idle  /ping: 200 ready")


def test_graphql_backend_lifecycle(project: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASH_API", "graphql")
    monkeypatch.setenv("RUNPOD_LB_URL_TEMPLATE", emulator.url + "/lb/{endpoint_id}")
    first = flash("deploy", cwd=project)
    assert first.code == 0, first.err
    assert sorted(n["name"] for n in emulator.gql_endpoints.values()) == ["demo-data-api", "demo-inference-api"]
    node = next(n for n in emulator.gql_endpoints.values() if n["name"] == "demo-data-api")
    assert (node["type"], node["scalerType"], node["instanceIds"]) == ("LB", "REQUEST_COUNT", ["cpu3c-4-8"])
    template = emulator.templates[node["templateId"]]
    template["env"].append({"key": "PORT", "value": "80"})  # what the platform adds at first deploy

    emulator.calls.clear()
    emulator.ops.clear()
    again = flash("deploy", cwd=project)
    assert again.code == 0, again.err
    assert again.out.splitlines()[-1].endswith(
        "0 created, 0 updated, 2 unchanged, 0 deleted, 0 orphaned"
    )  # PORT is no drift
    # a listing and the catalog before any write, then the lease and one listing: no save
    assert [op for op in emulator.ops if not op.startswith("template.") and op != "catalog"] == ["list", "list"]

    edit(project, "workers = [1, 3]", "workers = [1, 4]")
    assert flash("deploy", cwd=project).code == 0
    node = emulator.gql_endpoints[node["id"]]
    assert (node["workersMax"], node["scalerType"], node["flashBootType"]) == (
        4,
        "REQUEST_COUNT",
        "FLASHBOOT",
    )  # full replace kept every field
    assert {"key": "PORT", "value": "80"} in emulator.templates[node["templateId"]]["env"]  # carried over

    assert flash("destroy", "--yes", cwd=project).code == 0
    assert emulator.gql_endpoints == {}


def test_graphql_errors_are_api_errors(project: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import runpod_emulator

    monkeypatch.setenv("FLASH_API", "graphql")
    status, body = runpod_emulator.graphql_subset.run(
        emulator, {"query": 'mutation { saveEndpoint(input: {name: "x", bogus: 1}) { id } }'}
    )
    assert status == 400 and "bogus" in body["errors"][0]["message"]
    status, body = runpod_emulator.graphql_subset.run(emulator, {"query": 'mutation { deleteEndpoint(id: "nope") }'})
    assert (status, body["errors"][0]["message"]) == (200, "Endpoint not found")


def test_unhealthy_create_is_left_for_inspection_and_exits_5(project: Path, flash, emulator) -> None:
    edit(
        project,
        'cpu = "cpu3c-4-8"               # <flavor>-<vCPU>-<RAM GB>',
        'cpu = "cpu3c-4-8"\nimage = "ghcr.io/acme/broken:unhealthy"',
    )
    result = flash("deploy", "--health-timeout", "1.5", cwd=project)
    assert result.code == 5
    endpoint_id = _id(emulator, "demo-data-api")
    lines = result.err.splitlines()
    start = lines.index("flash: error: data-api: not healthy after 2s (last /ping: HTTP 503); workers: 1 unhealthy")
    assert lines[start + 1 : start + 5] == [
        f"  last log lines of worker w-{endpoint_id}:",
        "    Starting flash worker",
        "    Traceback (most recent call last):",
        "    RuntimeError: model weights missing",
    ]
    hint = lines[-1]
    assert (
        hint
        == f"  hint: data-api: the new endpoint {endpoint_id} is left for inspection; fix it and deploy again, or remove it with `flash destroy`"
    )
    assert _id(emulator, "demo-inference-api")  # the healthy one stays


def test_no_rollback_leaves_the_failed_update(project: Path, flash, emulator) -> None:
    assert flash("deploy", cwd=project).code == 0
    edit(
        project,
        'cpu = "cpu3c-4-8"               # <flavor>-<vCPU>-<RAM GB>',
        'cpu = "cpu3c-4-8"\nimage = "ghcr.io/acme/broken:unhealthy"',
    )
    result = flash("deploy", "--no-rollback", "--health-timeout", "1.5", cwd=project)
    assert result.code == 5
    assert (
        result.err.splitlines()[-1] == "  hint: data-api: rollback is off: the endpoint keeps the new, unhealthy spec"
    )
    assert emulator.endpoints[_id(emulator, "demo-data-api")].body["image"] == "ghcr.io/acme/broken:unhealthy"


def test_dry_run_changes_nothing(project: Path, flash, emulator) -> None:
    result = flash("deploy", "--dry-run", cwd=project)
    assert result.code == 0
    assert result.out.splitlines()[-1] == "flash: 2 to create, 0 to update, 0 unchanged, 0 orphaned"
    assert emulator.writes() == [] and emulator.endpoints == {}


def test_graphql_failed_update_rolls_back_and_prune_deletes_orphans(
    project: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASH_API", "graphql")
    monkeypatch.setenv("RUNPOD_LB_URL_TEMPLATE", emulator.url + "/lb/{endpoint_id}")
    assert flash("deploy", cwd=project).code == 0
    edit(
        project,
        'cpu = "cpu3c-4-8"               # <flavor>-<vCPU>-<RAM GB>',
        'cpu = "cpu3c-4-8"\nimage = "ghcr.io/acme/broken:unhealthy"',
    )
    failed = flash("deploy", "--health-timeout", "1.5", cwd=project)
    assert failed.code == 5
    assert "data-api: rolling back image" in failed.err
    node = next(n for n in emulator.gql_endpoints.values() if n["name"] == "demo-data-api")
    assert emulator.templates[node["templateId"]]["imageName"].startswith("ghcr.io/acme/demo-data-api:")
    config = project / "flash.toml"
    config.write_text(config.read_text().split("[endpoints.data-api]")[0])
    assert "  ! data-api: orphan" in flash("plan", cwd=project).out.splitlines()
    assert flash("deploy", "--prune", cwd=project).code == 0
    assert [n["name"] for n in emulator.gql_endpoints.values()] == ["demo-inference-api"]


def test_an_emulated_deploy_serves_the_real_routes(project: Path, flash, emulator) -> None:
    import requests

    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    result = build(validate_file(project / "flash.toml"))
    emulator.serve_builds(
        {e.image: {"build_dir": str(e.path), "digest": e.digest} for e in result.endpoints if e.path},
        project / ".flash" / "emulator",
    )
    deployed = flash("deploy", "--format", "json", cwd=project)
    assert deployed.code == 0, deployed.err
    urls = {k: v["url"] for k, v in json.loads(deployed.out)["apps"][0]["endpoints"].items()}
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    predicted = requests.post(urls["inference-api"] + "/predict", json={"values": [1, 2]}, headers=headers)
    assert predicted.json() == {"predictions": [2.5, 4.5], "model": "tiny-linear"}
    processed = requests.post(urls["data-api"] + "/process", json={"text": "a b"}, headers=headers)
    assert processed.json() == {"words": 2, "chars": 3, "upper": "A B"}


STAGING = """
[environments.staging]
defaults = { workers = [0, 1] }

[environments.staging.endpoints.inference-api]
env = { MODEL = "tiny-staging" }
"""


def test_environments_deploy_side_by_side(project: Path, flash, emulator) -> None:
    (project / "flash.toml").write_text((project / "flash.toml").read_text() + STAGING)
    assert flash("deploy", cwd=project).code == 0
    staged_plan = flash("plan", "--env", "staging", "--format", "json", cwd=project)
    assert [(a["endpoint"], a["action"]) for a in json.loads(staged_plan.out)["apps"][0]["actions"]] == [
        ("inference-api", "create"),
        ("data-api", "create"),
    ]
    assert flash("deploy", "--env", "staging", cwd=project).code == 0
    bodies = {e.body["name"]: e.body for e in emulator.endpoints.values()}
    assert sorted(bodies) == [
        "demo-data-api",
        "demo-inference-api",
        "demo-staging-data-api",
        "demo-staging-inference-api",
    ]
    assert (bodies["demo-staging-data-api"]["workers"]["min"], bodies["demo-staging-data-api"]["workers"]["max"]) == (
        0,
        1,
    )
    assert (bodies["demo-data-api"]["workers"]["min"], bodies["demo-data-api"]["workers"]["max"]) == (1, 3)
    assert bodies["demo-staging-inference-api"]["env"]["MODEL"] == "tiny-staging"
    assert bodies["demo-inference-api"]["env"]["MODEL"] == "tiny-linear"
    # Neither environment sees the other's endpoints as orphans, and both are up to date.
    for args in ((), ("--env", "staging")):
        plan = flash("plan", "--detailed-exitcode", *args, cwd=project)
        assert (plan.code, plan.out.splitlines()[-1]) == (0, "flash: 0 to create, 0 to update, 2 unchanged, 0 orphaned")
    unknown = flash("plan", "--env", "qa", cwd=project)
    assert unknown.code == 2
    assert "no environment 'qa'" in unknown.err


def _service(root: Path, name: str, app: str) -> None:
    folder = root / name
    shutil.copytree(REPO / "examples", folder / "examples")
    (folder / "flash.toml").write_text(
        (REPO / "flash.toml.example").read_text().replace('name = "demo"', f'name = "{app}"')
    )


def test_monorepo_plan_and_deploy_many_configs_at_once(tmp_path: Path, flash, emulator) -> None:
    for i in range(3):
        _service(tmp_path / "services", f"svc{i}", f"svc-{i}")
    plan = flash("plan", "-c", "services/*/flash.toml", "--format", "json", "--detailed-exitcode", cwd=tmp_path)
    assert plan.code == 10
    report = json.loads(plan.out)
    assert report["changes"] is True and [p["app"] for p in report["apps"]] == ["svc-0", "svc-1", "svc-2"]
    deployed = flash("deploy", "-c", "services/*/flash.toml", cwd=tmp_path)
    assert deployed.code == 0, deployed.err
    assert len(emulator.endpoints) == 6
    again = flash("plan", "-c", "services/*/flash.toml", "--detailed-exitcode", cwd=tmp_path)
    assert again.code == 0


def test_two_configs_claiming_one_runpod_name_are_refused(tmp_path: Path, flash, emulator) -> None:
    _service(tmp_path, "a", "same")
    _service(tmp_path, "b", "same")
    result = flash("plan", "-c", "a/flash.toml", "-c", "b/flash.toml", cwd=tmp_path)
    assert result.code == 2
    assert "RunPod name 'same-inference-api' is also claimed by a/flash.toml" in result.err
    assert result.err.endswith("; nothing was planned\n")
    assert emulator.calls == []


def _add_calls(project: Path) -> int:
    """data-api calls inference-api; the line its `calls` is on."""
    edit(
        project,
        'cpu = "cpu3c-4-8"               # <flavor>-<vCPU>-<RAM GB>',
        'cpu = "cpu3c-4-8"\ncalls = ["inference-api"]',
    )
    lines = (project / "flash.toml").read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if text.startswith("calls"))


def test_calls_without_a_call_key_are_refused_before_anything_is_sent(project: Path, flash, emulator) -> None:
    line = _add_calls(project)
    result = flash("deploy", cwd=project)
    assert result.code == 2
    assert result.err.splitlines()[-3:] == [
        f"flash.toml:{line}:9: error: endpoints.data-api.calls: calling other endpoints on RunPod needs [app] call_key (RunPod LB URLs require a key)",
        '  hint: add call_key = "{{ RUNPOD_SECRET_flash_calls }}" to [app]: a RunPod secret holding a key restricted to this app\'s endpoints',
        "flash: 1 error in flash.toml; nothing was deployed",
    ]
    assert emulator.writes() == []
