"""What `flash status` reports for one endpoint on RunPod (RunpodProvider.status builds it, the
report stage prints it as text or JSON), and the diagnosis a failed gate prints too."""

from __future__ import annotations

from typing import TYPE_CHECKING, NotRequired, TypedDict

if TYPE_CHECKING:
    from flash_pipeline.targets.runpod.backend import WorkerSummary


class Availability(TypedDict):
    level: str  # best of NONE LOW MEDIUM HIGH over the endpoint's pools and data centers
    data_centers: list[str]
    problems: list[str]


class Diagnosis(TypedDict):
    """Why an endpoint is not serving, as far as the API tells (diagnose.diagnosis)."""

    workers_by_state: dict[str, int]
    stale_workers: int
    availability: Availability | None
    spend_24h: float | None  # USD; None when billing cannot be read


class StatusRow(TypedDict):
    """One endpoint of the app. `id` None: not deployed (`owner`: whose endpoint holds the name);
    else its URL, workers, /ping and the diagnosis. `--format json` prints these keys as they are."""

    endpoint: str  # the endpoint's key in flash.toml
    name: str  # its RunPod name
    id: str | None
    owner: NotRequired[str]
    url: NotRequired[str]
    workers: NotRequired[WorkerSummary]  # the backend's worker summary: counts by state (RunPod's JSON)
    ping: NotRequired[int | str]  # an HTTP status, or why there was none
    duplicates: NotRequired[list[str]]  # ids of further endpoints of ours with the name
    adopt: NotRequired[bool]  # no owner markers yet: deploy adopts it
    workers_by_state: NotRequired[dict[str, int]]
    stale_workers: NotRequired[int]
    availability: NotRequired[Availability | None]
    spend_24h: NotRequired[float | None]
    max_workers_zero: NotRequired[bool]
    warning: NotRequired[str]
