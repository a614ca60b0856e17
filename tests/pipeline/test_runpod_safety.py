"""Safe on a shared RunPod account: exact ownership, no duplicates, interruption, rollback, replace.

Every test runs flash against the emulator, which is as strict as RunPod where safety depends on
it (compute family immutable, unique template names, real Retry-After, repeatable names).
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CPU = 'cpu = "cpu3c-2-4"'
GPU = 'gpu = "ADA_24"'


def write_app(root: Path, app: str, endpoints: dict[str, str], extra: str = "") -> Path:
    """A config at root/flash.toml whose endpoints (key -> compute and other lines) all serve GET /x."""
    if not (root / "src").exists():
        shutil.copytree(REPO / "examples" / "demo", root / "src")
    text = f'[app]\nname = "{app}"\nregistry = "ghcr.io/acme"\nsource = "src"\n'
    for key, lines in endpoints.items():
        text += f'\n[endpoints.{key}]\n{lines}\n\n[endpoints.{key}.routes]\n"GET /x" = "app.handlers:health"\n'
    config = root / "flash.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text + extra)
    return config


def made_elsewhere(emulator, name: str, image: str, env: dict[str, str]) -> str:
    """An endpoint created on the account by someone else (straight into the emulator's state)."""
    scaling = {"type": "REQUEST_COUNT", "requestCount": 4}
    return str(
        emulator.create({"name": name, "type": "LOAD_BALANCER", "image": image, "env": env, "scaling": scaling})["id"]
    )


def names(emulator) -> list[str]:
    return sorted(e.body["name"] for e in emulator.endpoints.values())


def by_name(emulator, name: str) -> list[str]:
    return [i for i, e in emulator.endpoints.items() if e.body["name"] == name]


def test_an_app_never_touches_another_app_whose_name_shares_its_prefix(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path / "admin", "shop-admin", {"api": CPU})
    write_app(tmp_path / "shop", "shop", {"web": CPU})
    assert flash("deploy", "--no-build", cwd=tmp_path / "admin").code == 0
    assert flash("deploy", "--no-build", cwd=tmp_path / "shop").code == 0
    admin_id = by_name(emulator, "shop-admin-api")

    plan = flash("plan", cwd=tmp_path / "shop")
    assert plan.out.splitlines()[1:] == [
        "    web: keep",
        "      cost: $0.00/h floor, $0.24/h ceiling",
        "flash: idle floor $0.00/h (unchanged)",
        "flash: 0 to create, 0 to update, 1 unchanged, 0 orphaned",
    ]
    pruned = flash("deploy", "--no-build", "--prune", cwd=tmp_path / "shop")
    assert pruned.code == 0, pruned.err
    gone = flash("destroy", "--yes", cwd=tmp_path / "shop")
    assert gone.code == 0
    assert "shop-admin" not in gone.out
    assert by_name(emulator, "shop-admin-api") == admin_id and names(emulator) == ["shop-admin-api"]


def test_environments_sharing_a_prefix_stay_apart(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path, "demo", {"api": CPU}, "\n[environments.prod]\n\n[environments.prod-eu]\n")
    for env in ("prod", "prod-eu"):
        assert flash("deploy", "--no-build", "--env", env, cwd=tmp_path).code == 0
    assert names(emulator) == ["demo-prod-api", "demo-prod-eu-api"]
    plan = flash("plan", "--env", "prod", cwd=tmp_path)
    assert plan.out.splitlines()[-1] == "flash: 0 to create, 0 to update, 1 unchanged, 0 orphaned"
    gone = flash("destroy", "--yes", "--env", "prod", cwd=tmp_path)
    assert gone.code == 0 and "demo-prod-eu-api" not in gone.out
    assert names(emulator) == ["demo-prod-eu-api"]


def test_a_name_owned_by_another_app_is_refused_before_any_write(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path / "admin", "shop-admin", {"api": CPU})
    write_app(tmp_path / "shop", "shop", {"admin-api": 'cpu = "cpu3c-4-8"', "web": CPU})
    assert flash("deploy", "--no-build", cwd=tmp_path / "admin").code == 0
    [admin] = by_name(emulator, "shop-admin-api")
    before = json.dumps(emulator.endpoints[admin].body, sort_keys=True)

    plan = flash("plan", cwd=tmp_path / "shop")
    assert plan.code == 4
    assert "  x admin-api: conflict" in plan.out.splitlines()
    owner = f"shop-admin-api ({admin}) belongs to app 'shop-admin', endpoint 'api'"
    assert f"flash: error: shop: endpoint 'admin-api': {owner}" in plan.err

    emulator.calls.clear()
    deployed = flash("deploy", "--no-build", cwd=tmp_path / "shop")
    assert deployed.code == 4
    assert deployed.err.startswith(f"flash: error: shop: endpoint 'admin-api': {owner}; nothing was changed\n")
    assert "hint: flash never touches another app's endpoint" in deployed.err
    assert [w for w in emulator.writes() if "templates" not in w[1]] == []  # not even the other endpoint
    assert json.dumps(emulator.endpoints[admin].body, sort_keys=True) == before


def test_an_unmarked_endpoint_of_the_exact_name_is_adopted(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path, "demo", {"api": CPU})
    assert flash("deploy", "--no-build", cwd=tmp_path).code == 0
    [endpoint_id] = by_name(emulator, "demo-api")
    body = emulator.endpoints[endpoint_id].body
    body["env"] = {k: v for k, v in body["env"].items() if not k.startswith("FLASH_")}  # made by an older flash

    plan = flash("plan", cwd=tmp_path)
    # An older flash set neither the markers nor the build hash the gate checks.
    assert plan.out.splitlines()[1:4] == [
        "  ~ api: adopt",
        "      env: FLASH_BUILD added",
        "      (no flash markers yet)",
    ]
    destroy = flash("destroy", "--yes", cwd=tmp_path)  # not provably ours yet: left alone
    assert destroy.out == "flash: nothing to delete on RunPod\n"
    assert f"flash: left demo-api ({endpoint_id}): it has no flash owner markers" in destroy.err
    adopted = flash("deploy", "--no-build", cwd=tmp_path)
    assert adopted.code == 0
    assert adopted.out.splitlines()[0].startswith(f"api  adopted      {endpoint_id}")
    assert emulator.endpoints[endpoint_id].body["env"]["FLASH_APP"] == "demo"
    assert flash("plan", "--detailed-exitcode", cwd=tmp_path).code == 0


def test_duplicates_are_flagged_and_repaired_keeping_the_oldest(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path, "demo", {"api": CPU})
    assert flash("deploy", "--no-build", cwd=tmp_path).code == 0
    [oldest] = by_name(emulator, "demo-api")
    twin = emulator.create({k: v for k, v in emulator.endpoints[oldest].body.items() if k != "id"})["id"]
    stranger = made_elsewhere(emulator, "demo-api", "x", {"FLASH_APP": "other", "FLASH_ENDPOINT": "api"})

    plan = flash("plan", cwd=tmp_path)
    assert f"      (1 duplicate ({twin}): deploy deletes them, keeping the oldest)" in plan.out.splitlines()
    status = flash("status", cwd=tmp_path)
    assert f"(duplicates: {twin}; deploy deletes them)" in status.out
    repaired = flash("deploy", "--no-build", cwd=tmp_path)
    assert repaired.code == 0, repaired.err
    assert f"(deleted the duplicate {twin} of demo-api)" in repaired.out
    assert sorted(by_name(emulator, "demo-api")) == sorted([oldest, stranger])  # another owner's is not ours to delete


def _deploy_process(config: Path, emulator, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "RUNPOD_API_BASE_URL": emulator.url, "RUNPOD_API_KEY": emulator.api_key}
    env.pop("FLASH_API", None)
    return subprocess.Popen(
        [sys.executable, "-m", "flash_pipeline", "deploy", "-c", str(config), "--no-build", *args],
        cwd=config.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_concurrent_deploys_leave_exactly_one_endpoint_each(tmp_path: Path, emulator) -> None:
    config = write_app(tmp_path, "demo", {f"e{i}": CPU for i in range(5)})
    emulator.latency = 0.05  # both runs overlap for certain
    runs = [_deploy_process(config, emulator) for _ in range(2)]
    results = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    assert [code for code, _, _ in results] == [0, 0], results
    assert names(emulator) == [f"demo-e{i}" for i in range(5)]
    assert any("waiting for another deploy to finish" in err for _, _, err in results)
    assert emulator.templates == {}  # both leases released


def test_sigint_during_the_gate_stops_the_run_and_a_rerun_converges(tmp_path: Path, flash, emulator) -> None:
    config = write_app(tmp_path, "demo", {"api": CPU, "web": CPU})
    emulator.warmup = 60.0  # the gate sees 204 for a minute
    run = _deploy_process(config, emulator)
    assert run.stderr is not None
    seen, deadline = "", time.monotonic() + 30
    while "/ping 204" not in seen and time.monotonic() < deadline:
        if select.select([run.stderr], [], [], 0.5)[0]:
            seen += run.stderr.readline()
    assert "/ping 204" in seen, seen
    run.send_signal(2)
    # The gate would otherwise wait out the 60 s warm-up: a process that ends within the wait
    # stopped instead of waiting (how fast it stops is no claim of this test).
    code = run.wait(timeout=30)
    out, err = run.communicate()
    assert code == 130, (code, err)
    ids = {name: by_name(emulator, name)[0] for name in ("demo-api", "demo-web")}
    assert f"  api: created {ids['demo-api']} (health not confirmed)" in out.splitlines()
    assert f"  web: created {ids['demo-web']} (health not confirmed)" in out.splitlines()
    assert "flash: interrupted" in err

    for deployed in emulator.endpoints.values():
        deployed.healthy_from = 0.0
    again = flash("deploy", "--no-build", cwd=tmp_path)
    assert again.code == 0, again.err
    assert (
        again.out.splitlines()[-1]
        == "flash: deployed to RunPod: 0 created, 0 updated, 2 unchanged, 0 deleted, 0 orphaned"
    )
    assert names(emulator) == ["demo-api", "demo-web"]


def test_a_failed_gpu_change_is_rolled_back_with_the_pools_restored(tmp_path: Path, flash, emulator) -> None:
    config = write_app(tmp_path, "demo", {"gpu": GPU, "ok": CPU})
    assert flash("deploy", "--no-build", cwd=tmp_path).code == 0
    [endpoint_id] = by_name(emulator, "demo-gpu")
    image = emulator.endpoints[endpoint_id].body["image"]
    config.write_text(
        config.read_text().replace(GPU, 'gpu = ["AMPERE_24", "ADA_24"]\nimage = "ghcr.io/acme/x:unhealthy"')
    )
    failed = flash("deploy", "--no-build", "--health-timeout", "1.5", cwd=tmp_path)
    assert failed.code == 5, failed.err
    assert "gpu: rolling back image, env, gpu" in failed.err  # env: the build hash the gate checks
    body = emulator.endpoints[endpoint_id].body
    assert (body["gpu"]["pools"], body["image"]) == (["ADA_24"], image)
    lines = failed.out.splitlines()
    assert lines[0].startswith(f"gpu  rolled back  {endpoint_id}")
    assert (
        lines[-1]
        == "flash: deploy to RunPod failed: 0 created, 0 updated, 1 rolled back, 1 unchanged, 0 deleted, 0 orphaned"
    )


def test_a_compute_family_change_replaces_the_endpoint(tmp_path: Path, flash, emulator) -> None:
    config = write_app(tmp_path, "demo", {"api": GPU})
    assert flash("deploy", "--no-build", cwd=tmp_path).code == 0
    [old] = by_name(emulator, "demo-api")
    config.write_text(config.read_text().replace(GPU, CPU))
    plan = flash("plan", cwd=tmp_path)
    assert "  ± api: replace" in plan.out.splitlines()
    assert "      (GPU -> CPU: RunPod cannot change it in place)" in plan.out.splitlines()

    config.write_text(config.read_text().replace(CPU, CPU + '\nimage = "ghcr.io/acme/x:unhealthy"'))
    failed = flash("deploy", "--no-build", "--health-timeout", "1", cwd=tmp_path)
    assert failed.code == 5
    assert by_name(emulator, "demo-api") == [old] and emulator.endpoints[old].body.get("gpu")
    assert "the old endpoint " + old + " is kept as it was" in failed.err

    config.write_text(config.read_text().replace('\nimage = "ghcr.io/acme/x:unhealthy"', ""))
    replaced = flash("deploy", "--no-build", cwd=tmp_path)
    assert replaced.code == 0, replaced.err
    [new] = by_name(emulator, "demo-api")
    assert new != old and emulator.endpoints[new].body["cpu"][0]["id"] == "cpu3c"
    assert (
        replaced.out.splitlines()[-1]
        == "flash: deployed to RunPod: 0 created, 0 updated, 1 replaced, 0 unchanged, 0 deleted, 0 orphaned"
    )


def test_an_unchanged_endpoint_waits_for_a_rollout_in_progress(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path, "demo", {"api": CPU})
    assert flash("deploy", "--no-build", cwd=tmp_path).code == 0
    [endpoint_id] = by_name(emulator, "demo-api")
    deployed = emulator.endpoints[endpoint_id]
    deployed.rollout_until = time.monotonic() + 0.5  # a cancelled run's release still rolling out...
    deployed.healthy_from = time.monotonic() + 3600  # ...whose new workers never get ready
    result = flash("deploy", "--no-build", "--health-timeout", "1.5", cwd=tmp_path)
    assert result.code == 5  # the old workers' 200 during the rollout did not pass the gate
    assert "hint: api: nothing was changed: the endpoint was unhealthy already" in result.err
    assert "rollback is off" not in result.out + result.err


def test_graphql_deploy_destroy_deploy_gives_each_endpoint_its_own_template(
    tmp_path: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASH_API", "graphql")
    monkeypatch.setenv("RUNPOD_LB_URL_TEMPLATE", emulator.url + "/lb/{endpoint_id}")
    write_app(tmp_path, "demo", {"api": CPU + '\nnetwork_volumes = ["vol1abc", "vol2abc"]'})
    for _ in range(2):
        assert flash("deploy", "--no-build", cwd=tmp_path).code == 0
        [node] = emulator.gql_endpoints.values()
        assert [v["networkVolumeId"] for v in node["networkVolumeIds"]] == ["vol1abc", "vol2abc"]
        [template] = emulator.templates.values()  # the endpoint's own, and no lease
        assert template["id"] == node["templateId"] and template["name"].startswith("demo-api-")
        assert flash("destroy", "--yes", cwd=tmp_path).code == 0
        assert emulator.gql_endpoints == {} and emulator.templates == {}
    # A template stranded by an older flash blocks nothing, and is not touched.
    emulator.templates["old"] = {"id": "old", "name": "demo-api-template", "imageName": "x", "containerDiskInGb": 5, "dockerArgs": "", "env": [], "volumeInGb": 0, "isServerless": True}  # fmt: skip
    assert flash("deploy", "--no-build", cwd=tmp_path).code == 0
    assert emulator.templates["old"]["imageName"] == "x" and len(emulator.templates) == 2
    assert emulator.rejected == []


def test_a_graphql_create_refused_leaves_no_template(
    tmp_path: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASH_API", "graphql")
    monkeypatch.setenv("RUNPOD_LB_URL_TEMPLATE", emulator.url + "/lb/{endpoint_id}")
    write_app(tmp_path, "demo", {"api": CPU})
    emulator.refuse_creates = "There are no instances available in the selected data centers"
    failed = flash("deploy", "--no-build", cwd=tmp_path)
    assert failed.code == 4
    assert "create demo-api: There are no instances available" in failed.err
    assert emulator.gql_endpoints == {} and emulator.templates == {}
    emulator.refuse_creates = ""
    assert flash("deploy", "--no-build", cwd=tmp_path).code == 0  # no "Template name must be unique"


def _first_calls_rate_limited(emulator, count: int, seconds: int) -> None:
    emulator.retry_after = seconds
    original = emulator.faults.draw
    emulator.faults.draw = lambda: "429" if len(emulator.calls) <= count else original()


def test_retry_after_is_honoured_for_reads_and_creates(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path, "demo", {"api": CPU})
    _first_calls_rate_limited(emulator, 1, 2)
    plan = flash("plan", cwd=tmp_path)
    assert plan.code == 0
    assert emulator.times[1] - emulator.times[0] >= 2.0  # no retry sooner than asked

    emulator.calls.clear()
    emulator.times.clear()
    original = emulator.faults.draw
    emulator.faults.draw = lambda: "429" if emulator.calls[-1] == ("POST", "/v2/serverless") and emulator.calls.count(("POST", "/v2/serverless")) == 1 else original()  # type: ignore[method-assign]  # fmt: skip
    deployed = flash("deploy", "--no-build", cwd=tmp_path)
    assert deployed.code == 0, deployed.err
    posts = [t for c, t in zip(emulator.calls, emulator.times, strict=True) if c == ("POST", "/v2/serverless")]
    assert len(posts) == 2 and posts[1] - posts[0] >= 2.0
    assert "RunPod asked to wait (Retry-After): retrying create demo-api in 2s" in deployed.err
    assert len(emulator.endpoints) == 1


def test_a_plan_never_shows_env_values_or_digests_of_them(
    tmp_path: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_app(tmp_path, "demo", {"api": CPU + '\nenv = { TOKEN = "${SECRET}", MODE = "fast" }'})
    monkeypatch.setenv("SECRET", "hunter2-first")
    assert flash("deploy", "--no-build", cwd=tmp_path).code == 0
    monkeypatch.setenv("SECRET", "hunter2-second")
    outputs = [flash("plan", "--format", fmt, cwd=tmp_path).out for fmt in ("text", "json", "markdown")]
    assert "      env: TOKEN changed" in outputs[0].splitlines()
    assert json.loads(outputs[1])["apps"][0]["actions"][0]["changes"] == [{"field": "env", "detail": "TOKEN changed"}]
    for value in ("hunter2-first", "hunter2-second"):
        digests = [hashlib.new(algo, value.encode()).hexdigest() for algo in ("sha256", "sha1", "md5", "sha512")]
        for text in outputs:
            assert value not in text
            assert not any(d[:8] in text for d in digests)


def test_a_variable_carrying_the_api_key_is_refused(
    tmp_path: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_app(tmp_path, "demo", {"api": CPU + '\nenv = { KEY = "${MY_KEY}" }'})
    monkeypatch.setenv("MY_KEY", emulator.api_key)
    result = flash("deploy", "--no-build", cwd=tmp_path)
    assert result.code == 2
    assert result.err.startswith("flash: error: endpoint 'api': env KEY would ship the RunPod API key to the endpoint")
    assert emulator.api_key not in result.out + result.err
    assert emulator.endpoints == {}


def test_a_held_lease_makes_deploy_wait_then_fail_and_unlock_breaks_it(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path, "demo", {"api": CPU})
    expires = str(int(time.time()) + 600)
    emulator.save_template(
        {"name": "flash-lease demo", "image": "flash-lease:none", "env": {"FLASH_LEASE_HOLDER": "ci@runner pid 7", "FLASH_LEASE_EXPIRES": expires}}
    )  # fmt: skip
    blocked = flash("deploy", "--no-build", "--lock-timeout", "1", cwd=tmp_path)
    assert blocked.code == 4
    assert "flash: error: another deploy holds the lease 'flash-lease demo': ci@runner pid 7" in blocked.err
    assert emulator.endpoints == {}
    unlocked = flash("unlock", cwd=tmp_path)
    assert unlocked.out == "flash: removed the deploy lease held by ci@runner pid 7\n"
    assert flash("deploy", "--no-build", cwd=tmp_path).code == 0


def test_a_stale_lease_is_broken(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path, "demo", {"api": CPU})
    emulator.save_template(
        {"name": "flash-lease demo", "image": "flash-lease:none", "env": {"FLASH_LEASE_HOLDER": "crashed", "FLASH_LEASE_EXPIRES": "1000"}}
    )  # fmt: skip
    result = flash("deploy", "--no-build", cwd=tmp_path)
    assert result.code == 0
    assert "breaking a stale deploy lease of crashed (expired)" in result.err


def test_reports_are_honest_about_every_endpoint(tmp_path: Path, flash, emulator) -> None:
    config = write_app(tmp_path, "demo", {"a": CPU, "b": CPU, "c": CPU})
    assert flash("deploy", "--no-build", cwd=tmp_path).code == 0
    text = config.read_text()
    for key in ("a", "b"):
        text = text.replace(
            f"[endpoints.{key}]\n{CPU}", f'[endpoints.{key}]\n{CPU}\nimage = "ghcr.io/acme/{key}:unhealthy"'
        )
    config.write_text(text)
    result = flash("deploy", "--no-build", "--no-rollback", "--health-timeout", "1", "--format", "json", cwd=tmp_path)
    assert result.code == 5
    document = json.loads(result.out)
    report = document["apps"][0]
    assert (document["ok"], report["ok"]) == (False, False)
    assert {k: (v["action"], v["healthy"], bool(v["error"])) for k, v in report["endpoints"].items()} == {
        "a": ("updated", False, True),
        "b": ("updated", False, True),
        "c": ("unchanged", True, False),
    }
    assert report["endpoints"]["c"]["id"] == by_name(emulator, "demo-c")[0]
    assert "flash: error: a: not healthy" in result.err and "\nb: not healthy" in result.err
    text_run = flash("deploy", "--no-build", "--no-rollback", "--health-timeout", "1", cwd=tmp_path)
    assert (
        text_run.out.splitlines()[-1]
        == "flash: deploy to RunPod failed: 0 created, 0 updated, 2 failed, 1 unchanged, 0 deleted, 0 orphaned"
    )


def test_github_outputs_are_keyed_by_app_when_several_configs_deploy(
    tmp_path: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_app(tmp_path / "one", "one", {"api": CPU})
    write_app(tmp_path / "two", "two", {"api": CPU})
    outputs = tmp_path / "out.txt"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert flash("deploy", "--no-build", "-c", "one/flash.toml", "-c", "two/flash.toml", cwd=tmp_path).code == 0
    keys = sorted(line.split("=")[0] for line in outputs.read_text().splitlines())
    assert keys == ["one_api_id", "one_api_url", "two_api_id", "two_api_url"]


def test_status_answers_when_worker_logs_do_not(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path, "demo", {"api": CPU + '\nimage = "ghcr.io/acme/x:unhealthy"'})
    assert flash("deploy", "--no-build", "--health-timeout", "0.5", cwd=tmp_path).code == 5
    emulator.endpoints.clear()  # the workers answer, their logs 404...
    made_elsewhere(emulator, "demo-api", "x:unhealthy", {"FLASH_APP": "demo", "FLASH_ENDPOINT": "api"})
    original = emulator.faults.draw
    emulator.faults.draw = lambda: "404" if "logs" in emulator.calls[-1][1] else original()
    status = flash("status", cwd=tmp_path)
    assert status.code == 0, status.err
    assert status.out.startswith("api  ")


def test_an_unmarked_endpoint_is_never_replaced(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path, "demo", {"api": CPU})
    stranger = made_elsewhere(emulator, "demo-api", "x", {})
    emulator.endpoints[stranger].body["gpu"] = {"pools": ["ADA_24"], "count": 1, "allowedCudaVersions": [], "minCudaVersion": None}  # fmt: skip
    result = flash("deploy", "--no-build", cwd=tmp_path)
    assert result.code == 4
    assert "has no flash owner markers, and a GPU endpoint can only be replaced" in result.err
    assert list(emulator.endpoints) == [stranger]


def test_configs_of_prebuilt_images_build_plan_and_deploy(tmp_path: Path, flash, emulator) -> None:
    write_app(tmp_path, "demo", {"a": CPU + '\nimage = "ghcr.io/acme/a:1"', "b": CPU + '\nimage = "ghcr.io/acme/b:1"'})
    built = flash("build", cwd=tmp_path)
    assert built.code == 0, built.err
    assert built.out.splitlines()[:2] == [
        "prebuilt  a: deploys ghcr.io/acme/a:1 as is",
        "prebuilt  b: deploys ghcr.io/acme/b:1 as is",
    ]
    assert json.loads((tmp_path / ".flash" / "build" / "manifest.json").read_text())["app"] == "demo"
    assert flash("plan", "--detailed-exitcode", cwd=tmp_path).code == 10
    deployed = flash("deploy", cwd=tmp_path)
    assert deployed.code == 0, deployed.err
    assert sorted(e.body["image"] for e in emulator.endpoints.values()) == ["ghcr.io/acme/a:1", "ghcr.io/acme/b:1"]
    local = flash("deploy", "--target", "local", cwd=tmp_path)
    assert local.code == 3
    assert local.err.startswith(
        "flash: error: endpoint a sets image = 'ghcr.io/acme/a:1'; the local target runs only built endpoints"
    )
