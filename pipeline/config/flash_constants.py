"""runpod-flash's enumerations as flash.toml values: the facts `flash import` needs to turn
`GpuGroup.*`, `GpuType.*`, `CpuInstanceType.*` and `DataCenter.*` into values REST v2 accepts.

The GPU type -> pool table is RunPod's (`GET /v2/catalog/gpus` gives each type's `pool`); runpod-flash
kept the same table as POOLS_TO_TYPES. Read, never imported: flash does not depend on runpod-flash.
"""

from __future__ import annotations

import re

POOLS = (
    "AMPERE_16",
    "AMPERE_24",
    "AMPERE_48",
    "AMPERE_80",
    "ADA_24",
    "ADA_32_PRO",
    "ADA_48_PRO",
    "ADA_80_PRO",
    "HOPPER_141",
    "BLACKWELL_96",
    "BLACKWELL_180",
)
# GpuType member -> (RunPod GPU type id, its serverless pool)
GPU_TYPES: dict[str, tuple[str, str]] = {
    "NVIDIA_GEFORCE_RTX_4090": ("NVIDIA GeForce RTX 4090", "ADA_24"),
    "NVIDIA_GEFORCE_RTX_5090": ("NVIDIA GeForce RTX 5090", "ADA_32_PRO"),
    "NVIDIA_RTX_6000_ADA_GENERATION": ("NVIDIA RTX 6000 Ada Generation", "ADA_48_PRO"),
    "NVIDIA_H100_80GB_HBM3": ("NVIDIA H100 80GB HBM3", "ADA_80_PRO"),
    "NVIDIA_RTX_A4000": ("NVIDIA RTX A4000", "AMPERE_16"),
    "NVIDIA_RTX_A4500": ("NVIDIA RTX A4500", "AMPERE_16"),
    "NVIDIA_RTX_4000_ADA_GENERATION": ("NVIDIA RTX 4000 Ada Generation", "AMPERE_16"),
    "NVIDIA_RTX_2000_ADA_GENERATION": ("NVIDIA RTX 2000 Ada Generation", "AMPERE_16"),
    "NVIDIA_RTX_A5000": ("NVIDIA RTX A5000", "AMPERE_24"),
    "NVIDIA_L4": ("NVIDIA L4", "AMPERE_24"),
    "NVIDIA_GEFORCE_RTX_3090": ("NVIDIA GeForce RTX 3090", "AMPERE_24"),
    "NVIDIA_A40": ("NVIDIA A40", "AMPERE_48"),
    "NVIDIA_RTX_A6000": ("NVIDIA RTX A6000", "AMPERE_48"),
    "NVIDIA_A100_80GB_PCIe": ("NVIDIA A100 80GB PCIe", "AMPERE_80"),
    "NVIDIA_A100_SXM4_80GB": ("NVIDIA A100-SXM4-80GB", "AMPERE_80"),
    "NVIDIA_H200": ("NVIDIA H200", "HOPPER_141"),
    "NVIDIA_B200": ("NVIDIA B200", "BLACKWELL_180"),
    "NVIDIA_RTX_PRO_6000_BLACKWELL_SERVER_EDITION": ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "BLACKWELL_96"),
    "NVIDIA_RTX_PRO_6000_BLACKWELL_WORKSTATION_EDITION": (
        "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
        "BLACKWELL_96",
    ),
    "NVIDIA_RTX_PRO_6000_BLACKWELL_MAX_Q_WORKSTATION_EDITION": (
        "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition",
        "BLACKWELL_96",
    ),
}
GPU_TYPE_IDS = {type_id: pool for type_id, pool in GPU_TYPES.values()}
# REST v1's list, as flash.toml's schema takes it
_CENTERS = "EU-RO-1 CA-MTL-1 EU-SE-1 US-IL-1 EUR-IS-1 EU-CZ-1 US-TX-3 EUR-IS-2 US-KS-2 US-GA-2 US-WA-1 US-TX-1 CA-MTL-3"
DATA_CENTERS = frozenset(
    f"{_CENTERS} EU-NL-1 US-TX-4 US-CA-2 US-NC-1 OC-AU-1 US-DE-1 EUR-IS-3 CA-MTL-2 AP-JP-1 EUR-NO-1 EU-FR-1 US-KS-3 US-GA-1".split()
)
_CPU = re.compile(r"^(cpu3c|cpu3g|cpu5c|cpu5g)-([0-9]+)-([0-9]+)$")


def pools_of_type(type_id: str) -> list[str]:
    """The other GPU types sharing a type's pool (what choosing the pool also allows)."""
    pool = GPU_TYPE_IDS.get(type_id)
    return [t for t, p in GPU_TYPE_IDS.items() if p == pool and t != type_id]


def gpu_pool(group: str, member: str) -> tuple[list[str], str | None]:
    """`GpuGroup.X` / `GpuType.X` (or a pool or GPU type id string) as pools, and a note where the
    pool is wider than what was asked for; ([], None) when it names nothing known."""
    if group == "GpuGroup" or (group == "" and member in POOLS):
        if member.upper() == "ANY":
            return list(POOLS), "any GPU: every GPU pool"
        return ([member], None) if member in POOLS else ([], None)
    if group == "GpuType" and member in GPU_TYPES:
        type_id, pool = GPU_TYPES[member]
    elif group == "" and member in GPU_TYPE_IDS:
        type_id, pool = member, GPU_TYPE_IDS[member]
    elif group == "GpuType" and member.upper() == "ANY":
        return list(POOLS), "any GPU: every GPU pool"
    else:
        return [], None
    others = pools_of_type(type_id)
    if not others:
        return [pool], None
    return [pool], f"{type_id} is in pool {pool}, which also has {', '.join(others)}"


def cpu_instance(member_or_id: str) -> str:
    """`CpuInstanceType.CPU3C_1_2` (member name) or "cpu3c-1-2" as an instance id."""
    return member_or_id.lower().replace("_", "-")


def nearest_cpu(instance: str) -> tuple[str, str | None]:
    """The nearest instance REST v2 can create (vCPUs a power of two >= 2, RAM per the flavor's ratio),
    and a note when it differs."""
    match = _CPU.match(instance)
    if match is None:
        return instance, None
    flavor, vcpu = match.group(1), int(match.group(2))
    wanted = 2
    while wanted < vcpu:
        wanted *= 2
    fixed = f"{flavor}-{wanted}-{wanted * (2 if flavor.endswith('c') else 4)}"
    if fixed == instance:
        return instance, None
    return fixed, f"{instance} is not an instance REST v2 creates (vCPUs a power of two >= 2): {fixed} is the nearest"


def data_center(value: str) -> str:
    """`DataCenter.EU_RO_1` (member name) or "eu-ro-1" as RunPod's id."""
    return value.strip().upper().replace("_", "-")
