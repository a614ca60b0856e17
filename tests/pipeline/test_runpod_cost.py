"""Cost, stock and the RunPod settings a GPU team needs, against the emulator's catalog (issue 28)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden" / "plan_mermaid.md"

CONFIG = """\
[app]
name = "shop"
call_key = "{{ RUNPOD_SECRET_calls }}"

[endpoints.embed]
gpu = ["ADA_24", "AMPERE_24"]
image = "ghcr.io/acme/embed:1"
workers = [1, 3]
routes = { "POST /embed" = "app:embed" }

[endpoints.llm]
gpu = "ADA_80_PRO"
gpu_count = 2
image = "vllm/vllm-openai:v0.9"
workers = [0, 2]
routes = { "POST /v1/chat" = "app:chat" }

[endpoints.api]
cpu = "cpu3c-4-8"
image = "ghcr.io/acme/api:1"
workers = [1, 2]
calls = ["embed", "llm"]
routes = { "POST /ask" = "app:ask" }
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "flash.toml").write_text(CONFIG)
    return tmp_path


def edit(app: Path, old: str, new: str) -> None:
    config = app / "flash.toml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new, 1))


def _id(emulator, name: str) -> str:
    return next(i for i, e in emulator.endpoints.items() if e.body["name"] == name)


def test_plan_shows_floor_and_ceiling_for_gpu_cpu_and_multi_pool_and_the_change(app: Path, flash, emulator) -> None:
    plan = flash("plan", cwd=app)
    assert (plan.code, plan.err) == (0, "")
    assert plan.out == (
        "plan for shop on the runpod target:\n"
        "  + embed: create\n"
        "      cost: $0.69-$1.10/h floor (+ $1.10/h while idle), $2.07-$3.30/h ceiling\n"
        "  + llm: create\n"
        "      cost: $0.00/h floor, $16.72/h ceiling\n"
        "  + api: create (after embed, llm)\n"
        "      cost: $0.16/h floor (+ $0.16/h while idle), $0.32/h ceiling\n"
        "flash: idle floor $1.26/h (+ $1.26/h while idle)\n"
        "flash: 3 to create, 0 to update, 0 unchanged, 0 orphaned\n"
    )
    as_json = json.loads(flash("plan", "--format", "json", cwd=app).out)["apps"][0]
    assert [(a["endpoint"], a["compute"], a["cost"], a["floor_change_per_hour"]) for a in as_json["actions"]] == [
        ("embed", "ADA_24|AMPERE_24", {"floor_per_hour": 1.1, "ceiling_per_hour": 3.3}, 1.1),  # a range: the highest
        ("llm", "ADA_80_PRO x2", {"floor_per_hour": 0.0, "ceiling_per_hour": 16.72}, 0.0),
        ("api", "cpu3c-4-8", {"floor_per_hour": 0.16, "ceiling_per_hour": 0.32}, 0.16),
    ]
    assert as_json["cost"] == {
        "floor_per_hour": 1.26,
        "floor_change_per_hour": 1.26,
        "max_floor": None,
        "catalog_error": None,
    }
    assert flash("deploy", cwd=app).code == 0

    emulator.market.price("ADA_80_PRO", 4.0)  # prices come from the catalog of this run
    edit(app, "workers = [0, 2]", "workers = [1, 2]")
    again = flash("plan", cwd=app)
    assert again.out == (
        "plan for shop on the runpod target:\n"
        "    embed: keep\n"
        "      cost: $0.69-$1.10/h floor, $2.07-$3.30/h ceiling\n"
        "  ~ llm: update\n"
        '      workers: {"min": 0, "max": 2, "idleTimeout": 5} -> {"min": 1, "max": 2, "idleTimeout": 5}\n'
        "      cost: $8.00/h floor (+ $8.00/h while idle), $16.00/h ceiling\n"
        "    api: keep (after embed, llm)\n"
        "      cost: $0.16/h floor, $0.32/h ceiling\n"
        "flash: idle floor $9.26/h (+ $8.00/h while idle)\n"
        "flash: 0 to create, 1 to update, 2 unchanged, 0 orphaned\n"
    )


def test_max_floor_refuses_before_any_write(app: Path, flash, emulator) -> None:
    plan = flash("plan", "--max-floor", "1", cwd=app)
    refusal = "the idle floor would rise to $1.26/h (+ $1.26/h), over the budget of $1.00/h"
    assert plan.code == 4
    assert plan.err == f"flash: error: shop: {refusal}\n"
    deploy = flash("deploy", "--max-floor", "1", cwd=app)
    assert deploy.code == 4
    assert deploy.err.splitlines()[0] == f"flash: error: shop: {refusal}; nothing was changed"
    assert "hint: lower min workers, or raise the budget (--max-floor or [app] max_floor)" in deploy.err
    assert emulator.writes() == [] and emulator.endpoints == {}

    edit(app, 'call_key = "{{ RUNPOD_SECRET_calls }}"', 'call_key = "{{ RUNPOD_SECRET_calls }}"\nmax_floor = 1.0')
    assert flash("deploy", cwd=app).code == 4  # the config key says the same
    assert emulator.writes() == []
    assert flash("deploy", "--max-floor", "1.5", cwd=app).code == 0  # the option wins over the key


def test_a_pool_without_stock_is_refused_before_any_write_unless_allowed(app: Path, flash, emulator) -> None:
    edit(app, 'gpu = "ADA_80_PRO"', 'gpu = "ADA_80_PRO"\ndatacenters = ["EU-RO-1", "US-KS-2"]')
    emulator.market.stock("ADA_80_PRO", "NONE", "EU-RO-1", "US-KS-2")  # plenty elsewhere
    emulator.market.stock("ADA_24", "LOW")
    emulator.market.stock("AMPERE_24", "NONE")
    plan = flash("plan", cwd=app)
    assert plan.code == 4
    lines = plan.out.splitlines()
    assert lines[1:7] == [
        "  + embed: create",
        "      cost: $0.69-$1.10/h floor (+ $1.10/h while idle), $2.07-$3.30/h ceiling",
        "      warning: LOW stock of ADA_24, AMPERE_24 (" + ", ".join(sorted(emulator_dcs())) + ")",
        "  + llm: create",
        "      cost: $0.00/h floor, $16.72/h ceiling",
        "      error: no serverless stock of ADA_80_PRO in EU-RO-1, US-KS-2",
    ]
    assert plan.err == "flash: error: shop: endpoint 'llm': no serverless stock of ADA_80_PRO in EU-RO-1, US-KS-2\n"

    refused = flash("deploy", cwd=app)
    assert refused.code == 4
    assert refused.err.splitlines()[-2:] == [
        "flash: error: shop: endpoint 'llm': no serverless stock of ADA_80_PRO in EU-RO-1, US-KS-2; nothing was changed",
        "  hint: choose pools or data centers with stock, or pass --allow-unavailable to deploy anyway",
    ]
    assert emulator.writes() == []

    allowed = flash("deploy", "--allow-unavailable", cwd=app)
    assert allowed.code == 0, allowed.err
    assert "llm: warning: no serverless stock of ADA_80_PRO in EU-RO-1, US-KS-2" in allowed.err
    assert sorted(e.body["name"] for e in emulator.endpoints.values()) == ["shop-api", "shop-embed", "shop-llm"]


def emulator_dcs() -> list[str]:
    import catalog

    return list(catalog.DATA_CENTERS)


def test_a_network_volume_pins_its_data_center(app: Path, flash, emulator) -> None:
    emulator.market.volumes = {"vol0001": "US-TX-3", "vol0002": "EU-RO-1"}
    emulator.market.stock("ADA_80_PRO", "NONE", "US-TX-3")
    edit(app, 'gpu = "ADA_80_PRO"', 'gpu = "ADA_80_PRO"\nnetwork_volumes = ["vol0001"]')
    edit(app, 'cpu = "cpu3c-4-8"', 'cpu = "cpu3c-4-8"\nnetwork_volumes = ["vol0002"]\ndatacenters = ["US-KS-2"]')
    plan = flash("plan", "--allow-unavailable", cwd=app)
    assert plan.code == 4
    assert plan.err.splitlines() == [
        "flash: error: shop: endpoint 'api': network volume vol0002 is in EU-RO-1, which datacenters excludes (US-KS-2)",
    ]
    volume = "network volume vol0001 pins workers to US-TX-3, where there is no serverless stock of ADA_80_PRO"
    assert f"      error: {volume}" in plan.out.splitlines()
    deploy = flash("deploy", cwd=app)
    assert deploy.code == 4
    assert deploy.err.splitlines()[-2] == (
        "flash: error: shop: endpoint 'llm': network volume vol0001 pins workers to US-TX-3, where there is no "
        "serverless stock of ADA_80_PRO; endpoint 'llm': no serverless stock of ADA_80_PRO in US-TX-3; endpoint 'api': network "
        "volume vol0002 is in EU-RO-1, which datacenters excludes (US-KS-2); nothing was changed"
    )
    assert emulator.writes() == []


def test_status_shows_throttled_and_stale_workers_availability_and_spend(app: Path, flash, emulator) -> None:
    edit(app, 'gpu = "ADA_80_PRO"', 'gpu = "ADA_80_PRO"\ndatacenters = ["US-KS-2"]')
    assert flash("deploy", cwd=app).code == 0
    llm = _id(emulator, "shop-llm")
    emulator.market.worker_states["shop-llm"] = [
        {"status": "THROTTLED", "isStale": False},
        {"status": "THROTTLED", "isStale": False},
        {"status": "IDLE", "isStale": True},
    ]
    emulator.market.spent[llm] = 8.9
    emulator.market.stock("ADA_80_PRO", "LOW", "US-KS-2")
    status = flash("status", cwd=app)
    assert status.code == 0
    lines = status.out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("llm  "))
    assert lines[start].endswith("workers: 1 idle, 2 throttled  /ping: 200 ready")
    assert lines[start + 1 : start + 6] == [
        "  2 throttled: waiting for capacity in the endpoint's pools",
        "  1 worker on an old release",
        "  availability now: LOW (US-KS-2)",
        "  LOW stock of ADA_80_PRO (US-KS-2)",
        "  spend, last 24 h: $8.90",
    ]
    row = next(
        r
        for r in json.loads(flash("status", "--format", "json", cwd=app).out)["apps"][0]["endpoints"].values()
        if r["id"] == llm
    )
    assert row["workers_by_state"] == {"running": 0, "idle": 1, "initializing": 0, "throttled": 2, "unhealthy": 0}
    assert (row["stale_workers"], row["spend_24h"], row["max_workers_zero"]) == (1, 8.9, False)
    assert row["availability"] == {
        "level": "LOW",
        "data_centers": ["US-KS-2"],
        "problems": ["LOW stock of ADA_80_PRO (US-KS-2)"],
    }


def test_a_gate_timeout_prints_the_diagnosis(app: Path, flash, emulator) -> None:
    edit(app, 'image = "ghcr.io/acme/embed:1"', 'image = "ghcr.io/acme/embed:unhealthy"\ndatacenters = ["EU-RO-1"]')
    emulator.market.worker_states["shop-embed"] = [{"status": "THROTTLED", "isStale": False}]
    emulator.market.stock("ADA_24", "NONE")
    emulator.market.stock("AMPERE_24", "LOW", "EU-RO-1")
    result = flash("deploy", "--health-timeout", "1", cwd=app)
    assert result.code == 5
    lines = result.err.splitlines()
    start = lines.index("flash: error: embed: not healthy after 1s (last /ping: HTTP 503); workers: 1 throttled")
    assert lines[start + 1 : start + 6] == [
        "  1 throttled: waiting for capacity in the endpoint's pools",
        "  availability now: LOW (EU-RO-1)",
        "  LOW stock of ADA_24, AMPERE_24 (EU-RO-1)",
        "  spend, last 24 h: $0.00",
        "api: not deployed: it calls embed, which is not healthy",
    ]


def test_catalog_unreadable_plan_says_so_and_goes_on(app: Path, flash, emulator) -> None:
    emulator.market.broken = True
    emulator.retry_after = 0
    plan = flash("plan", cwd=app)
    assert plan.code == 0
    assert plan.out.splitlines()[-2].startswith("flash: costs unknown: the RunPod catalog could not be read (")
    assert emulator.market.reads >= 1 and "cost:" not in plan.out
    assert json.loads(flash("plan", "--format", "json", cwd=app).out)["apps"][0]["actions"][0]["cost"] is None


SETTINGS = """\
[endpoints.vllm]
gpu = "ADA_24"
image = "vllm/vllm-openai:v0.9"
flashboot = "priority"
health = { path = "/health" }
gpu_exclude = ["NVIDIA RTX 4000 Ada"]
cuda = ">=12.8"
routes = { "POST /v1/chat" = "app:chat" }
"""


def test_settings_reach_the_rest_body_show_in_plan_and_rollback_restores_them(tmp_path: Path, flash, emulator) -> None:
    emulator.market.add_gpu("NVIDIA RTX 4000 Ada", "ADA_24", 0.9)
    (tmp_path / "flash.toml").write_text('[app]\nname = "shop"\n\n' + SETTINGS)
    first = flash("deploy", "--health-timeout", "5", cwd=tmp_path)
    assert first.code == 0, first.err
    body = emulator.endpoints[_id(emulator, "shop-vllm")].body
    assert body["flashboot"] == "PRIORITY_FLASHBOOT"
    assert body["env"]["HEALTH_CHECK_PATH"] == "/health"
    assert body["gpu"] == {
        "pools": ["ADA_24"],
        "count": 1,
        "excludedTypes": ["NVIDIA RTX 4000 Ada"],
        "minCudaVersion": "12.8",
        "allowedCudaVersions": [],
    }
    assert "shop-vllm /health" in " ".join(emulator.events)  # the gate polled the health path

    edit(tmp_path, 'gpu = "ADA_24"', 'gpu = ["ADA_24", "AMPERE_24"]')
    edit(tmp_path, 'cuda = ">=12.8"', 'cuda = ["12.8", "12.9"]')
    edit(tmp_path, 'flashboot = "priority"', "flashboot = true")
    plan = flash("plan", cwd=tmp_path)
    assert plan.out.splitlines()[1:6] == [
        "  ~ vllm: update",
        '      flashboot: "PRIORITY_FLASHBOOT" -> "FLASHBOOT"',
        '      gpu.pools: ["ADA_24"] -> ["ADA_24", "AMPERE_24"]',
        '      gpu.minCudaVersion: "12.8" -> null',
        '      gpu.allowedCudaVersions: null -> ["12.8", "12.9"]',
    ]
    updated = flash("deploy", "--health-timeout", "5", cwd=tmp_path)
    assert updated.code == 0, updated.err
    body = emulator.endpoints[_id(emulator, "shop-vllm")].body
    assert body["gpu"] == {  # the exclusion survived a PATCH that changed the pools; the floor was cleared
        "pools": ["ADA_24", "AMPERE_24"],
        "count": 1,
        "excludedTypes": ["NVIDIA RTX 4000 Ada"],
        "minCudaVersion": None,
        "allowedCudaVersions": ["12.8", "12.9"],
    }
    before = json.loads(json.dumps(body))

    edit(tmp_path, 'image = "vllm/vllm-openai:v0.9"', 'image = "vllm/vllm-openai:unhealthy"')
    edit(tmp_path, 'gpu = ["ADA_24", "AMPERE_24"]', 'gpu = "ADA_24"')
    edit(tmp_path, 'cuda = ["12.8", "12.9"]', 'cuda = ">=12.9"')
    edit(tmp_path, "flashboot = true", 'flashboot = "priority"')
    edit(tmp_path, 'health = { path = "/health" }', 'health = { path = "/healthz" }')
    failed = flash("deploy", "--health-timeout", "1", cwd=tmp_path)
    assert failed.code == 5
    assert "vllm: rolling back image, env, flashboot, gpu" in failed.err
    after = emulator.endpoints[_id(emulator, "shop-vllm")].body
    for field in ("image", "flashboot", "gpu"):
        assert after[field] == before[field], field
    assert after["env"]["HEALTH_CHECK_PATH"] == "/health"


def test_graphql_refuses_what_it_cannot_express_before_any_write(
    tmp_path: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASH_API", "graphql")
    monkeypatch.setenv("RUNPOD_LB_URL_TEMPLATE", emulator.url + "/lb/{endpoint_id}")
    emulator.market.add_gpu("NVIDIA RTX 4000 Ada", "ADA_24", 0.9)
    (tmp_path / "flash.toml").write_text('[app]\nname = "shop"\n\n' + SETTINGS)
    result = flash("deploy", cwd=tmp_path)
    assert result.code == 4
    assert result.err.splitlines()[-2] == (
        "flash: error: shop: endpoint 'vllm': FLASH_API=graphql cannot set flashboot = \"priority\" (GraphQL knows "
        "only FLASHBOOT and OFF); endpoint 'vllm': FLASH_API=graphql cannot set gpu_exclude (GraphQL has no "
        "excluded GPU types); nothing was changed"
    )
    assert emulator.gql_endpoints == {} and emulator.templates == {}  # not even the deploy lease
    edit(tmp_path, 'flashboot = "priority"\n', "")
    edit(tmp_path, 'gpu_exclude = ["NVIDIA RTX 4000 Ada"]\n', "")
    assert (
        flash("deploy", "--health-timeout", "5", cwd=tmp_path).code == 0
    )  # the CUDA floor and health path: GraphQL can
    node = next(iter(emulator.gql_endpoints.values()))
    assert node["minCudaVersion"] == "12.8"


def test_markdown_plan_draws_the_app_as_mermaid(app: Path, flash, emulator) -> None:
    edit(app, 'name = "shop"', 'name = "shop"\nregistry = "ghcr.io/acme"')
    (app / "flash.toml").write_text((app / "flash.toml").read_text() + "\n[mothership]\n")
    assert flash("deploy", cwd=app).code == 0
    edit(app, "workers = [1, 3]", "workers = [2, 3]")
    plan = flash("plan", "--format", "markdown", cwd=app)
    assert plan.code == 0
    block = plan.out[plan.out.index("```mermaid") :]
    assert block == GOLDEN.read_text()
    assert "**idle floor $2.36/h (+ $1.10/h while idle)**" in plan.out


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            'cpu = "cpu3c-2-4"\ngpu_exclude = ["NVIDIA L40"]',
            "flash.toml:7:1: error: endpoints.api.gpu_exclude: gpu_exclude applies to GPU endpoints only",
        ),
        (
            'cpu = "cpu3c-2-4"\ncuda = ">=12.8"',
            "flash.toml:7:1: error: endpoints.api.cuda: cuda applies to GPU endpoints only",
        ),
        (
            'gpu = "ADA_24"\ncuda = "12.8"',
            'flash.toml:7:8: error: endpoints.api.cuda: a CUDA constraint is a floor ">=major.minor" or a list of versions',
        ),
        (
            'gpu = "ADA_24"\nhealth = { path = "/health" }',
            "flash.toml:7:19: error: endpoints.api.health.path: flash-built workers answer /ping, not /health",
        ),
        (
            'gpu = "ADA_24"\nflashboot = "fast"',
            'flash.toml:7:13: error: endpoints.api.flashboot: flashboot takes true, false or "priority"',
        ),
    ],
)
def test_new_settings_are_validated_with_positions(tmp_path: Path, flash, setting: str, expected: str) -> None:
    header = '[app]\nname = "shop"\nregistry = "ghcr.io/acme"\n\n[endpoints.api]\n'
    (tmp_path / "flash.toml").write_text(header + setting + '\nroutes = { "POST /x" = "app:x" }\n')
    result = flash("validate", cwd=tmp_path)
    assert result.code == 2
    assert expected in (result.out + result.err).splitlines(), result.out + result.err


def test_a_cuda_floor_inferred_from_the_base_image_is_checked_against_the_hosts(
    tmp_path: Path, flash, emulator
) -> None:
    import shutil

    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "examples", tmp_path / "examples")
    text = (repo / "flash.toml.example").read_text()
    base = "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04"
    text = text.replace("gpu_count = 1\n", f'gpu_count = 1\nbase_image = "{base}"\n', 1)
    (tmp_path / "flash.toml").write_text(text)
    emulator.market.cuda("ADA_24", {"12.4": True, "12.6": True})
    plan = flash("plan", cwd=tmp_path)
    assert plan.code == 4
    assert plan.out.splitlines()[1:5] == [
        "  + inference-api: create",
        "      cost: $1.10/h floor (+ $1.10/h while idle), $5.50/h ceiling",
        "      error: no ADA_24 host offers CUDA >=12.8 (offered: 12.4, 12.6)",
        f"      (cuda >=12.8 inferred from base_image {base})",
    ]
    emulator.market.cuda("ADA_24", {"12.8": False, "12.9": False})
    full = flash("plan", cwd=tmp_path)
    assert full.code == 0
    assert "      warning: every ADA_24 host with CUDA >=12.8 is full now" in full.out.splitlines()


def _gpu_endpoint(pools: list[str], count: int, exclude: list[str], cuda: object, priority: bool):
    from flash_pipeline.config.model import Cuda, Endpoint, Gpu, Loc, Workers

    constraint = None
    if isinstance(cuda, str):
        constraint = Cuda(minimum=cuda)
    elif cuda:
        constraint = Cuda(allowed=tuple(cuda))
    return Endpoint(
        key="vllm",
        name="shop-vllm",
        compute=Gpu(tuple(pools), count),
        workers=Workers(0, 2),
        routes=(),
        loc=Loc("flash.toml", 1, 1),
        flashboot_priority=priority,
        health_path="/health",
        gpu_exclude=tuple(exclude),
        cuda=constraint,
    )


def _selection():
    from hypothesis import strategies as st

    versions = st.sampled_from(["12.4", "12.6", "12.8", "12.9", "12.11"])
    return st.tuples(
        st.lists(st.sampled_from(["ADA_24", "AMPERE_24", "ADA_80_PRO"]), min_size=1, max_size=3, unique=True),
        st.integers(1, 4),
        st.lists(st.sampled_from(["NVIDIA GeForce RTX 4090", "NVIDIA RTX A5000"]), max_size=2, unique=True),
        st.one_of(st.none(), versions, st.lists(versions, min_size=1, max_size=3, unique=True)),
        st.booleans(),
    )


def test_property_any_gpu_selection_is_a_valid_body_and_a_patch_converges() -> None:
    """Whatever the pools, exclusions and CUDA constraint before and after: the create body and the
    PATCH pass RunPod's schemas, and the PATCH applied the way RunPod applies it (pools replace the
    exclusions, an omitted constraint stays) leaves nothing to plan."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "emulator"))
    import catalog
    from hypothesis import given, settings
    from runpod_emulator import CREATE, UPDATE, _complete

    from flash_pipeline.targets.plan import same
    from flash_pipeline.targets.runpod.bodies import comparable, desired_body, sparse_patch

    @settings(max_examples=150, deadline=None)
    @given(_selection(), _selection())
    def check(old: tuple, new: tuple) -> None:
        before = desired_body(_gpu_endpoint(*old), "vllm/vllm-openai:v1", {}, {})
        after = desired_body(_gpu_endpoint(*new), "vllm/vllm-openai:v1", {}, {})
        assert [e.message for e in CREATE.iter_errors(after)] == []
        live = _complete(json.loads(json.dumps(before)))
        patch = sparse_patch(after, ["gpu", "flashboot"])
        assert [e.message for e in UPDATE.iter_errors(patch)] == []
        live["gpu"] = catalog.merge_gpu(live["gpu"], patch["gpu"])
        live["flashboot"] = patch["flashboot"]
        assert same(comparable(live), comparable(after))

    check()


def test_an_exclusion_outside_the_pools_is_refused_before_any_write(tmp_path: Path, flash, emulator) -> None:
    (tmp_path / "flash.toml").write_text('[app]\nname = "shop"\n\n' + SETTINGS)
    result = flash("deploy", cwd=tmp_path)
    assert result.code == 4
    assert result.err.splitlines()[-2] == (
        "flash: error: shop: endpoint 'vllm': gpu_exclude: 'NVIDIA RTX 4000 Ada' is not a GPU type of ADA_24 "
        "(its types: NVIDIA GeForce RTX 4090); nothing was changed"
    )
    assert emulator.writes() == []
