"""The emulator's catalog, billing, network volumes and worker states (RunPod REST v2, as
openapi-v2.json describes them), with prices and stock the tests set.

`Market` holds the state: one GPU type per serverless pool by default (priced per pool, HIGH in
every data center, CUDA 12.4 to 12.9 on offer), the four CPU flavors, no spend, no volumes.
Tests change it with `price`, `stock`, `cuda`, `spend`, `volumes` and `workers`. Answers are
validated against the document's response schemas, and the catalog's query rules are RunPod's:
include=AVAILABILITY needs product, and product is valid only with it (400 either way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

DATA_CENTERS = [
    "EU-RO-1",
    "CA-MTL-1",
    "EU-SE-1",
    "US-IL-1",
    "EUR-IS-1",
    "EU-CZ-1",
    "US-TX-3",
    "EUR-IS-2",
    "US-KS-2",
    "US-GA-2",
    "US-WA-1",
    "US-TX-1",
    "CA-MTL-3",
    "EU-NL-1",
    "US-TX-4",
    "US-CA-2",
    "US-NC-1",
    "OC-AU-1",
    "US-DE-1",
    "EUR-IS-3",
    "CA-MTL-2",
    "AP-JP-1",
    "EUR-NO-1",
    "EU-FR-1",
    "US-KS-3",
    "US-GA-1",
]
# pool -> (GPU type id, name, memory GB, serverless USD per GPU-hour)
POOLS = {
    "AMPERE_16": ("NVIDIA RTX A4000", "RTX A4000", 16, 0.58),
    "AMPERE_24": ("NVIDIA RTX A5000", "RTX A5000", 24, 0.69),
    "AMPERE_48": ("NVIDIA RTX A6000", "RTX A6000", 48, 1.22),
    "AMPERE_80": ("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, 2.72),
    "ADA_24": ("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 1.10),
    "ADA_32_PRO": ("NVIDIA GeForce RTX 5090", "RTX 5090", 32, 1.58),
    "ADA_48_PRO": ("NVIDIA L40S", "L40S", 48, 1.90),
    "ADA_80_PRO": ("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 4.18),
    "HOPPER_141": ("NVIDIA H200", "H200", 141, 5.58),
    "BLACKWELL_96": ("NVIDIA RTX PRO 6000", "RTX PRO 6000", 96, 3.20),
    "BLACKWELL_180": ("NVIDIA B200", "B200", 180, 8.64),
}
CPUS = {"cpu3c": ("Compute-Optimized", 2.0), "cpu3g": ("General Purpose", 4.0), "cpu5c": ("Compute-Optimized", 2.0)}
CPUS["cpu5g"] = ("General Purpose", 4.0)
CPU_PRICE = {"cpu3c": 0.04, "cpu3g": 0.05, "cpu5c": 0.06, "cpu5g": 0.07}  # serverless USD per vCPU-hour
CUDA = ("12.4", "12.6", "12.8", "12.9")


@dataclass
class Market:
    """What the catalog, billing and workers calls answer; tests change it."""

    gpus: list[dict[str, Any]] = field(default_factory=list)  # GpuType records with every data center's level
    cpus: dict[str, dict[str, Any]] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)  # endpoint id -> USD in the last 24 hours
    volumes: dict[str, str] = field(default_factory=dict)  # network volume id -> its data center
    worker_states: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # endpoint name -> workers
    reads: int = 0  # catalog GETs answered
    # the catalog answers 403 (a key without its scope): unreadable, and not retried, so tests stay fast
    broken: bool = False

    def __post_init__(self) -> None:
        for pool, (type_id, name, memory, price) in POOLS.items():
            self.gpus.append(
                {
                    "id": type_id, "name": name, "pool": pool, "manufacturer": "NVIDIA", "memory": memory,
                    "secure": True, "community": False, "price": {"secure": price, "community": 0, "serverless": price},
                    "maxCount": {"secure": 8, "community": 0}, "stock": dict.fromkeys(DATA_CENTERS, "HIGH"),
                    "cuda": dict.fromkeys(CUDA, True),
                }
            )  # fmt: skip
        for flavor, (name, ram) in CPUS.items():
            self.cpus[flavor] = {
                "id": flavor, "name": name, "group": f"Gen {flavor[3]}", "vcpu": {"min": 2, "max": 32},
                "ramGbPerVcpu": ram, "price": {"securePerVcpu": CPU_PRICE[flavor] * 1.2, "serverlessPerVcpu": CPU_PRICE[flavor]},
                "stock": dict.fromkeys(DATA_CENTERS, "HIGH"),
            }  # fmt: skip

    def pool(self, pool: str) -> list[dict[str, Any]]:
        return [g for g in self.gpus if g["pool"] == pool]

    def price(self, pool_or_flavor: str, usd: float) -> None:
        if pool_or_flavor in self.cpus:
            self.cpus[pool_or_flavor]["price"]["serverlessPerVcpu"] = usd
        for gpu in self.pool(pool_or_flavor):
            gpu["price"]["serverless"] = usd

    def stock(self, pool_or_flavor: str, level: str, *data_centers: str) -> None:
        """Set the stock level in these data centers (every one when none are named)."""
        records = [self.cpus[pool_or_flavor]] if pool_or_flavor in self.cpus else self.pool(pool_or_flavor)
        for record in records:
            for dc in data_centers or DATA_CENTERS:
                record["stock"][dc] = level

    def cuda(self, pool: str, offered: dict[str, bool]) -> None:
        for gpu in self.pool(pool):
            gpu["cuda"] = dict(offered)

    def add_gpu(self, type_id: str, pool: str, price: float) -> None:
        """A second GPU type in a pool (for exclusions)."""
        first = self.pool(pool)[0]
        self.gpus.append({**first, "id": type_id, "name": type_id, "price": {**first["price"], "serverless": price},
                          "stock": dict(first["stock"]), "cuda": dict(first["cuda"])})  # fmt: skip


def _levels(record: dict[str, Any]) -> dict[str, Any]:
    """availability and dataCenters as the document gives them: the best level overall; data
    centers offering the type, dataCenters omitted when it is unavailable everywhere."""
    order = ("NONE", "LOW", "MEDIUM", "HIGH")
    stock = record["stock"]
    best = max(stock.values(), key=order.index, default="NONE")
    out: dict[str, Any] = {"availability": best}
    if best != "NONE":
        out["dataCenters"] = [
            {"id": dc, "name": dc, "availability": level} for dc, level in stock.items() if level != "NONE"
        ]
    return out


def gpu_answer(market: Market, availability: bool) -> dict[str, Any]:
    gpus = []
    for g in market.gpus:
        item = {k: v for k, v in g.items() if k not in ("stock", "cuda")}
        if availability:
            item |= _levels(g)
            item["cudaVersions"] = [{"version": v, "available": a} for v, a in g["cuda"].items()]
        gpus.append(item)
    return {"gpus": gpus}


def cpu_answer(market: Market, availability: bool) -> dict[str, Any]:
    cpus = []
    for c in market.cpus.values():
        item = {k: v for k, v in c.items() if k != "stock"}
        if availability:
            item |= _levels(c)
        cpus.append(item)
    return {"cpus": cpus}


def billing_answer(market: Market, query: dict[str, list[str]]) -> dict[str, Any]:
    """lastN hourly buckets per endpoint; the spend of the last 24 h in the newest bucket."""
    size = (query.get("bucketSize") or ["day"])[0]
    count = int((query.get("lastN") or ["1"])[0])
    wanted = (query.get("serverlessId") or [None])[0]
    step = timedelta(hours=1) if size == "hour" else timedelta(days=1)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + step
    start = end - step * count

    def iso(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    records = []
    for endpoint_id, amount in market.spent.items():
        if wanted not in (None, endpoint_id):
            continue
        records.append(
            {"startTime": iso(end - step), "endTime": iso(end), "serverlessId": endpoint_id, "totalAmount": amount,
             "gpuAmount": round(amount * 0.9, 6), "cpuAmount": 0, "diskAmount": 0, "feeAmount": round(amount * 0.1, 6)}
        )  # fmt: skip
    total = sum(r["totalAmount"] for r in records)
    query_echo: dict[str, Any] = {"startTime": iso(start), "endTime": iso(end), "bucketSize": size}
    if wanted:
        query_echo["serverlessId"] = wanted
    totals = {"totalAmount": total, "gpuAmount": round(total * 0.9, 6), "cpuAmount": 0, "diskAmount": 0}
    totals["feeAmount"] = round(total * 0.1, 6)
    metadata = {"query": query_echo, "recordCount": len(records), "totals": totals}
    metadata["uniqueServerlessCount"] = len({r["serverlessId"] for r in records})
    return {"records": records, "metadata": metadata}


def serve(emulator: Any, method: str, path: str, raw_query: str) -> tuple[int, Any] | None:
    """Answer a catalog, billing or network-volume call; None for any other path."""
    market: Market = emulator.market
    query = parse_qs(raw_query)
    if path in ("/v2/catalog/gpus", "/v2/catalog/cpus") and method == "GET":
        market.reads += 1
        if market.broken:
            return 403, {"title": "Forbidden", "status": 403, "detail": "this API key may not read the catalog"}
        include = (query.get("include") or [""])[0]
        product = (query.get("product") or [""])[0]
        if bool(include) != bool(product):
            detail = "product is required with include=AVAILABILITY" if include else "product needs include"
            return 400, {"title": "Bad Request", "status": 400, "detail": detail}
        answer = (gpu_answer if path.endswith("gpus") else cpu_answer)(market, include == "AVAILABILITY")
        return 200, _checked("ListGpuTypesResponse" if path.endswith("gpus") else "ListCpuTypesResponse", answer)
    if path == "/v2/billing/serverless" and method == "GET":
        return 200, _checked("ListServerlessBillingResponse", billing_answer(market, query))
    if path.startswith("/v2/network-volumes/") and method == "GET":
        volume_id = path.rsplit("/", 1)[1]
        if volume_id not in market.volumes:
            return 404, {"title": "Not Found", "status": 404, "detail": "network volume not found"}
        volume = {"id": volume_id, "name": volume_id, "size": 50, "dataCenter": market.volumes[volume_id]}
        return 200, _checked("NetworkVolume", {**volume, "type": "STANDARD"})
    return None


def workers_answer(emulator: Any, endpoint_id: str) -> dict[str, Any] | None:
    """The workers a test set for an endpoint (by name), or None for the emulator's own."""
    name = emulator.endpoints[endpoint_id].body.get("name")
    states = emulator.market.worker_states.get(name)
    if states is None:
        return None
    workers = [
        {"id": f"w{i}-{endpoint_id}", "gpuCount": 1, "version": 3 if w.get("isStale") else 4, **w}
        for i, w in enumerate(states)
    ]
    summary = {s.lower(): sum(1 for w in workers if w["status"] == s) for s in _STATES}
    summary["total"] = len(workers)
    return _checked("ListEndpointWorkersResponse", {"endpointVersion": 4, "summary": summary, "workers": workers})


_STATES = ("RUNNING", "IDLE", "INITIALIZING", "THROTTLED", "UNHEALTHY")


def gpu_problem(market: Market, body: dict[str, Any] | None) -> str | None:
    """RunPod's 400s for a GPU selection: an exclusion not in the pools, both CUDA constraints."""
    gpu = (body or {}).get("gpu")
    if not isinstance(gpu, dict):
        return None
    known = {g["id"] for pool in gpu.get("pools") or [] for g in market.pool(pool)}
    for excluded in gpu.get("excludedTypes") or []:
        if excluded.strip() not in known:
            return f"excludedTypes: {excluded!r} is not a GPU type in the selected pools"
    if gpu.get("minCudaVersion") and gpu.get("allowedCudaVersions"):
        return "minCudaVersion and a non-empty allowedCudaVersions are mutually exclusive"
    return None


def merge_gpu(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A PATCH's gpu: pools replace the selection (exclusions not restated are cleared); CUDA
    constraints change only when sent ("" and [] clear them)."""
    merged = dict(current)
    if "pools" in patch:
        merged.pop("excludedTypes", None)
    merged.update(patch)
    if merged.get("minCudaVersion") == "":
        merged["minCudaVersion"] = None
    if not merged.get("excludedTypes"):
        merged.pop("excludedTypes", None)
    return merged


def health_path(emulator: Any, endpoint_id: str) -> str:
    """The path the data plane answers as health: HEALTH_CHECK_PATH, else /ping."""
    deployed = emulator.endpoints.get(endpoint_id)
    return str((deployed.body.get("env") or {}).get("HEALTH_CHECK_PATH") or "/ping") if deployed else "/ping"


def _checked(schema: str, answer: dict[str, Any]) -> dict[str, Any]:
    from runpod_emulator import _validator

    errors = [e.message for e in _validator(schema).iter_errors(answer)]
    assert not errors, f"the emulator built an invalid {schema}: {errors}"
    return answer
