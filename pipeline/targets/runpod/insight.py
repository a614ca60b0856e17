"""What a plan adds besides the diff: each endpoint's cost floor and ceiling and the change to the
app's idle floor, its stock where it may run, and the refusals deploy makes on them (stock NONE
everywhere, a network volume outside the data centers, a CUDA constraint no host meets, a floor
over budget), all before any write.

The insight is a plain JSON-ready dict, rendered by flash_pipeline.report.plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flash_pipeline.config.model import Cpu, Endpoint, Project
from flash_pipeline.errors import ConflictError
from flash_pipeline.targets.plan import Action
from flash_pipeline.targets.runpod.bodies import EndpointBody, LiveEndpoint
from flash_pipeline.targets.runpod.catalog import Catalog, Price, floor_and_ceiling
from flash_pipeline.targets.runpod.deploy import survey

if TYPE_CHECKING:
    from flash_pipeline.targets.runpod.provider import RunpodProvider


def compute_text(endpoint: Endpoint) -> str:
    """ADA_24 x2, ADA_24|AMPERE_24, cpu3c-4-8: what a plan shows an endpoint runs on."""
    if isinstance(endpoint.compute, Cpu):
        return endpoint.compute.instance_id
    pools = "|".join(endpoint.compute.pools)
    return pools + (f" x{endpoint.compute.count}" if endpoint.compute.count > 1 else "")


def insight(
    project: Project, bodies: Mapping[str, EndpointBody], live: Mapping[str, LiveEndpoint], catalog: Catalog
) -> dict[str, Any]:
    """Cost, stock and notes of every endpoint of the project; the app's floor before and after."""
    endpoints: dict[str, Any] = {}
    total, before, known = 0.0, 0.0, True
    for endpoint in project.endpoints:
        body = bodies[endpoint.key]
        item: dict[str, Any] = {"compute": compute_text(endpoint), "cost": None}
        item |= {"errors": [], "blocking": [], "warnings": [], "notes": []}
        costs = floor_and_ceiling(catalog, body)
        old = floor_and_ceiling(catalog, live[endpoint.key]) if endpoint.key in live else (Price(0, 0), Price(0, 0))
        if costs is None or old is None:
            known = False
        else:
            floor, ceiling = costs
            item["cost"] = {"floor_per_hour": _usd(floor.high), "ceiling_per_hour": _usd(ceiling.high)}
            item["range"] = {
                "floor": [_usd(floor.low), _usd(floor.high)],
                "ceiling": [_usd(ceiling.low), _usd(ceiling.high)],
            }
            item["floor_change_per_hour"] = _usd(floor.high - old[0].high)
            total += floor.high
            before += old[0].high
        stock = catalog.stock(body)
        if stock is not None:
            item["availability"] = {"level": stock.level, "data_centers": list(stock.where)}
            item["errors"], item["blocking"], item["warnings"] = (
                list(stock.errors),
                list(stock.blocking),
                list(stock.warnings),
            )
        if endpoint.cuda is not None and endpoint.cuda.inferred_from:
            item["notes"].append(f"cuda {endpoint.cuda} inferred from base_image {endpoint.cuda.inferred_from}")
        endpoints[endpoint.key] = item
    out: dict[str, Any] = {"catalog": catalog.error, "endpoints": endpoints}
    out["floor_per_hour"] = _usd(total) if known else None
    out["floor_change_per_hour"] = _usd(total - before) if known else None
    out["max_floor"] = project.max_floor
    return out


def _usd(value: float) -> float:
    return round(value, 4)


def refusals(found: Mapping[str, Any], *, allow_unavailable: bool, max_floor: float | None) -> list[str]:
    """Why deploy would refuse, before any write: stock and CUDA (unless allowed), volumes, budget."""
    reasons = []
    for key, item in found["endpoints"].items():
        reasons += [f"endpoint {key!r}: {text}" for text in item["blocking"]]
        if not allow_unavailable:
            reasons += [f"endpoint {key!r}: {text}" for text in item["errors"]]
    budget = max_floor if max_floor is not None else found.get("max_floor")
    total, change = found.get("floor_per_hour"), found.get("floor_change_per_hour")
    if budget is not None and total is not None and change is not None and change > 0 and total > budget:
        reasons.append(
            f"the idle floor would rise to ${total:.2f}/h (+ ${change:.2f}/h), over the budget of ${budget:.2f}/h"
        )
    elif budget is not None and total is None:
        reasons.append(
            f"the idle floor cannot be priced ({found.get('catalog') or 'a pool is not in the catalog'}), so the budget of ${budget:.2f}/h cannot be checked"
        )
    return reasons


def plan_with_insight(
    project: Project, provider: RunpodProvider, images: Mapping[str, str]
) -> tuple[list[Action], dict[str, Any]]:
    """The plan (one listing of the account) and its insight."""
    planned = survey(project, provider.backend, images, provider.environ)
    provider.refuse_key_in_env(planned.bodies)
    found = insight(project, planned.bodies, planned.claims.live(), provider.catalog)
    for key, item in found["endpoints"].items():  # what only one backend can say is refused, never dropped
        api = provider.backend.name
        item["blocking"] += [
            f"FLASH_API={api} cannot set {what}" for what in provider.backend.unsupported(planned.bodies[key])
        ]
    return planned.actions, found


def preflight(
    project: Project,
    provider: RunpodProvider,
    images: Mapping[str, str],
    *,
    allow_unavailable: bool,
    max_floor: float | None,
    echo: Callable[[str], None],
) -> None:
    """Refuse before any write (the deploy lease included) what deploy must not attempt."""
    _, found = plan_with_insight(project, provider, images)
    if found["catalog"]:
        echo(f"{project.name}: {found['catalog']}: costs and stock are not checked")
    for key, item in found["endpoints"].items():
        for text in item["warnings"] + (item["errors"] if allow_unavailable else []):
            echo(f"{key}: warning: {text}")
    reasons = refusals(found, allow_unavailable=allow_unavailable, max_floor=max_floor)
    if reasons:
        unavailable = any(item["errors"] for item in found["endpoints"].values()) and not allow_unavailable
        raise ConflictError(
            f"{project.name}: " + "; ".join(reasons) + "; nothing was changed",
            "choose pools or data centers with stock, or pass --allow-unavailable to deploy anyway"
            if unavailable
            else "lower min workers, or raise the budget (--max-floor or [app] max_floor)",
        )
