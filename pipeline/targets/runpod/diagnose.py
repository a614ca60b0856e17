"""Why an endpoint is not serving, as far as the API tells: workers by state, workers on an old
release, max workers lowered to 0, its pools' stock now, and the last 24 hours of spend.

`flash status` shows it for every endpoint; a deploy whose gate times out prints the same lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from flash_pipeline.errors import FlashError
from flash_pipeline.targets.runpod.api import Client
from flash_pipeline.targets.runpod.rows import Availability, Diagnosis, StatusRow

if TYPE_CHECKING:
    from flash_pipeline.targets.runpod.backend import WorkerSummary
    from flash_pipeline.targets.runpod.catalog import Catalog

STATES = ("running", "idle", "initializing", "throttled", "unhealthy")
SPEND_WINDOW = "bucketSize=hour&lastN=24"  # the last 24 hourly buckets, the current one included


def spend_24h(client: Client, endpoint_id: str, name: str) -> float | None:
    """USD spent by one endpoint in the last 24 hours (None when billing cannot be read)."""
    try:
        answer = client.request(
            f"spend of {name}", "GET", f"/v2/billing/serverless?{SPEND_WINDOW}&serverlessId={endpoint_id}"
        )
        return round(float(answer["metadata"]["totals"]["totalAmount"]), 4)
    except (FlashError, KeyError, TypeError, ValueError):
        return None


def diagnosis(
    client: Client,
    catalog: Catalog | None,
    endpoint_id: str,
    name: str,
    live: Mapping[str, Any],
    summary: WorkerSummary,
) -> Diagnosis:
    """The JSON-ready diagnosis of one live endpoint, from its worker summary (already read)."""
    counts = cast(Mapping[str, int], summary)
    stock = catalog.stock(live) if catalog is not None else None
    availability: Availability | None = None
    if stock is not None:
        problems = [*stock.blocking, *stock.errors, *stock.warnings]
        availability = {"level": stock.level, "data_centers": list(stock.where), "problems": problems}
    return {
        "workers_by_state": {s: int(counts.get(s) or 0) for s in STATES},
        "stale_workers": int(summary.get("stale") or 0),
        "availability": availability,
        "spend_24h": spend_24h(client, endpoint_id, name),
    }


def diagnosis_lines(found: Diagnosis | StatusRow) -> list[str]:
    """The diagnosis (alone, or in a status row) as lines (without indentation)."""
    lines = []
    throttled = found.get("workers_by_state", {}).get("throttled", 0)
    if throttled:
        lines.append(f"{throttled} throttled: waiting for capacity in the endpoint's pools")
    stale = found.get("stale_workers", 0)
    if stale:
        lines.append(f"{stale} worker{'s' if stale != 1 else ''} on an old release")
    stock = found.get("availability")
    if stock is not None:
        where = f" ({', '.join(stock['data_centers'])})" if stock["data_centers"] else ""
        lines.append(f"availability now: {stock['level']}{where}")
        lines.extend(stock["problems"])
    spend = found.get("spend_24h")
    if spend is not None:
        lines.append(f"spend, last 24 h: ${spend:.2f}")
    return lines
