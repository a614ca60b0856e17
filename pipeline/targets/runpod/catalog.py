"""RunPod's catalog, read once per run: serverless prices (cost floor and ceiling of an endpoint)
and stock per data center with the CUDA versions on offer (availability before any write).

Everything here reads REST-shaped endpoint bodies (desired or live), so a plan's cost before and
after come from one function. A catalog that cannot be read is not an error: the plan says so
and goes on without costs or stock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flash_pipeline.errors import ApiError, FlashError
from flash_pipeline.targets.runpod.api import Client

LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")
AVAILABILITY = "?include=AVAILABILITY&product=SERVERLESS"


@dataclass(frozen=True)
class Price:
    """USD per worker-hour: a range when the endpoint may land on pools priced differently."""

    low: float
    high: float

    def times(self, n: int) -> Price:
        return Price(self.low * n, self.high * n)


@dataclass(frozen=True)
class Stock:
    """Where an endpoint's workers may run now: the best level, where it is, and what is wrong."""

    level: str  # best of NONE LOW MEDIUM HIGH over its pools and data centers
    where: tuple[str, ...] = ()  # the data centers at that level
    errors: tuple[str, ...] = ()  # deploy refuses these unless --allow-unavailable
    blocking: tuple[str, ...] = ()  # deploy refuses these whatever the options
    warnings: tuple[str, ...] = ()


@dataclass
class Catalog:
    """GET /v2/catalog/gpus and /cpus with availability, each at most once per run (thread-safe)."""

    client: Client
    error: str | None = None  # why the catalog could not be read
    _gpus: list[dict[str, Any]] | None = None
    _cpus: list[dict[str, Any]] | None = None
    _volumes: dict[str, str | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _read(self, kind: str) -> list[dict[str, Any]] | None:
        with self._lock:
            cached = self._gpus if kind == "gpus" else self._cpus
            if cached is not None or self.error is not None:
                return cached
            try:
                answer = self.client.request(f"read the {kind} catalog", "GET", f"/v2/catalog/{kind}{AVAILABILITY}")
                found = list(answer.get(kind) or []) if isinstance(answer, dict) else []
            except FlashError as exc:
                self.error = f"the RunPod catalog could not be read ({exc})"
                return None
            if kind == "gpus":
                self._gpus = found
            else:
                self._cpus = found
            return found

    def gpu_types(self, body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The GPU types an endpoint body may run on: its pools' types less its exclusions."""
        gpu = body.get("gpu") or {}
        types = self._read("gpus")
        if types is None:
            return None
        excluded = {str(t).strip() for t in gpu.get("excludedTypes") or []}
        pools = list(gpu.get("pools") or [])
        return [t for t in types if t.get("pool") in pools and t.get("id") not in excluded]

    def cpu_type(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        flavor = str(((body.get("cpu") or [{}])[0] or {}).get("id"))
        found = self._read("cpus") or []
        return next((c for c in found if c.get("id") == flavor or str(c.get("id")).startswith(flavor + "-")), None)

    def price(self, body: Mapping[str, Any]) -> Price | None:
        """One worker's price per hour, or None when the catalog cannot say."""
        if body.get("gpu"):
            types = self.gpu_types(body)
            prices = [float(t["price"]["serverless"]) for t in types or [] if t["price"].get("serverless") is not None]
            if not prices:
                return None
            count = int(body["gpu"].get("count") or 1)
            return Price(min(prices) * count, max(prices) * count)
        flavor = self.cpu_type(body)
        if flavor is None:
            return None
        vcpus = int(((body.get("cpu") or [{}])[0]).get("vcpuCount") or 0)
        each = float(flavor["price"]["serverlessPerVcpu"]) * vcpus
        return Price(each, each)

    def volume_dc(self, volume_id: str) -> str | None:
        """The data center a network volume lives in (None if it cannot be read)."""
        if volume_id not in self._volumes:
            try:
                answer = self.client.request(
                    f"read network volume {volume_id}", "GET", f"/v2/network-volumes/{volume_id}"
                )
                self._volumes[volume_id] = str(answer["dataCenter"]) if isinstance(answer, dict) else None
            except (ApiError, KeyError):
                self._volumes[volume_id] = None
        return self._volumes[volume_id]

    def stock(self, body: Mapping[str, Any]) -> Stock | None:
        """Availability where the endpoint may run (its data centers, else all), its volumes'
        data centers, and the CUDA versions on offer against its constraint."""
        gpu = bool(body.get("gpu"))
        if not gpu and not body.get("cpu"):
            return None
        records = self.gpu_types(body) if gpu else ([c] if (c := self.cpu_type(body)) else [])
        if records is None or (not records and self.error):
            return None
        what = ", ".join((body.get("gpu") or {}).get("pools") or []) if gpu else str(body["cpu"][0]["id"])
        chosen = list(body.get("dataCenterIds") or [])
        errors: list[str] = []
        blocking: list[str] = []
        warnings: list[str] = []
        for volume in body.get("networkVolumes") or []:
            dc = self.volume_dc(str(volume))
            if dc is None:
                warnings.append(f"network volume {volume} could not be read: its data center is not checked")
            elif chosen and dc not in chosen:
                blocking.append(f"network volume {volume} is in {dc}, which datacenters excludes ({', '.join(chosen)})")
            else:
                level = _best(records, [dc])[0]
                if level == "NONE":
                    errors.append(
                        f"network volume {volume} pins workers to {dc}, where there is no serverless stock of {what}"
                    )
                chosen = [dc]
        level, where = _best(records, chosen)
        place = ", ".join(chosen) if chosen else "any data center"
        if level == "NONE":
            errors.append(f"no serverless stock of {what} in {place}")
        elif level == "LOW":
            warnings.append(f"LOW stock of {what} ({', '.join(where)})")
        if gpu:
            _cuda(body["gpu"], records, what, errors, warnings)
            blocking += self._unknown_exclusions(body["gpu"], what)
        shown = where if chosen or level == "LOW" else []  # "HIGH anywhere" needs no list of 26 places
        return Stock(level, tuple(shown), tuple(errors), tuple(blocking), tuple(warnings))

    def _unknown_exclusions(self, gpu: Mapping[str, Any], what: str) -> list[str]:
        """RunPod refuses (400) an excluded type that is not in the pools: say so before any write."""
        types = {str(t.get("id")) for t in self._gpus or [] if t.get("pool") in (gpu.get("pools") or [])}
        return [
            f"gpu_exclude: {str(excluded).strip()!r} is not a GPU type of {what} (its types: {', '.join(sorted(types))})"
            for excluded in gpu.get("excludedTypes") or []
            if str(excluded).strip() not in types
        ]


def _best(records: Sequence[Mapping[str, Any]], chosen: Sequence[str]) -> tuple[str, list[str]]:
    """The best level of these records in the chosen data centers (all when none), and where."""
    by_dc: dict[str, str] = {}
    for record in records:
        for dc in record.get("dataCenters") or []:
            if chosen and dc["id"] not in chosen:
                continue
            if LEVELS.index(dc["availability"]) > LEVELS.index(by_dc.get(dc["id"], "NONE")):
                by_dc[dc["id"]] = dc["availability"]
    best = max(by_dc.values(), key=LEVELS.index, default="NONE")
    return best, sorted(dc for dc, level in by_dc.items() if level == best and best != "NONE")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _cuda(
    gpu: Mapping[str, Any], records: Sequence[Mapping[str, Any]], what: str, errors: list[str], warnings: list[str]
) -> None:
    floor, allowed = gpu.get("minCudaVersion"), list(gpu.get("allowedCudaVersions") or [])
    if not floor and not allowed:
        return
    wanted = f">={floor}" if floor else ", ".join(allowed)

    def fits(version: str) -> bool:
        return _version(version) >= _version(floor) if floor else version in allowed

    offered = {v["version"]: v["available"] for r in records for v in r.get("cudaVersions") or []}
    matching = [v for v in offered if fits(v)]
    if not matching:
        known = ", ".join(sorted(offered, key=_version)) or "none"
        errors.append(f"no {what} host offers CUDA {wanted} (offered: {known})")
    elif not any(offered[v] for v in matching):
        warnings.append(f"every {what} host with CUDA {wanted} is full now")


def floor_and_ceiling(catalog: Catalog, body: Mapping[str, Any]) -> tuple[Price, Price] | None:
    """(floor, ceiling) per hour: min and max workers at the worker price."""
    price = catalog.price(body)
    if price is None:
        return None
    workers = body.get("workers") or {}
    return price.times(int(workers.get("min") or 0)), price.times(int(workers.get("max") or 0))
