"""runpod-flash's enums as flash.toml values (pipeline/config/flash_constants.py): whatever import
writes for them validates."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from flash_pipeline.config import flash_constants as constants

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "flash.schema.json").read_text())


def test_the_pools_and_data_centers_are_the_schemas() -> None:
    assert list(constants.POOLS) == SCHEMA["$defs"]["gpuPool"]["enum"]
    centers = SCHEMA["$defs"]["settings"]["properties"]["datacenters"]["items"]["enum"]
    assert set(centers) == constants.DATA_CENTERS


def test_every_gpu_type_maps_to_one_pool_and_notes_its_neighbours() -> None:
    for member, (type_id, pool) in constants.GPU_TYPES.items():
        assert pool in constants.POOLS
        assert constants.gpu_pool("GpuType", member)[0] == [pool]
        assert constants.gpu_pool("", type_id)[0] == [pool]  # the id as a string, too
    assert constants.gpu_pool("GpuType", "NVIDIA_L4") == (
        ["AMPERE_24"],
        "NVIDIA L4 is in pool AMPERE_24, which also has NVIDIA RTX A5000, NVIDIA GeForce RTX 3090",
    )
    assert constants.gpu_pool("GpuType", "NVIDIA_GEFORCE_RTX_4090") == (["ADA_24"], None)
    assert constants.gpu_pool("GpuGroup", "ANY")[0] == list(constants.POOLS)
    assert constants.gpu_pool("GpuGroup", "NOT_A_POOL") == ([], None)


@given(st.sampled_from(["cpu3c", "cpu3g", "cpu5c", "cpu5g"]), st.integers(1, 64), st.integers(1, 256))
def test_the_nearest_cpu_is_one_rest_v2_creates_and_never_smaller(flavor: str, vcpu: int, ram: int) -> None:
    fixed, note = constants.nearest_cpu(f"{flavor}-{vcpu}-{ram}")
    got_flavor, got_vcpu, got_ram = fixed.split("-")
    cpus, memory = int(got_vcpu), int(got_ram)
    assert got_flavor == flavor and cpus >= max(vcpu, 2) and cpus & (cpus - 1) == 0
    assert memory == cpus * (2 if flavor.endswith("c") else 4)
    assert (note is None) == (fixed == f"{flavor}-{vcpu}-{ram}")


def test_member_names_become_ids() -> None:
    assert constants.cpu_instance("CPU3C_1_2") == "cpu3c-1-2"
    assert constants.data_center("EU_RO_1") == "EU-RO-1"
    assert constants.data_center("eu-ro-1") == "EU-RO-1"
