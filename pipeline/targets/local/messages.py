"""What the CLI and the local supervisor say to each other, and what they keep on disk.

One JSON line each way over the supervisor's unix socket (control.py sends, supervisor.py
answers): a `Request`, then a `Reply`. `Any` stays at the JSON boundary (json.loads in
control.send and supervisor._control); past it, these types say what each key holds. The
supervisor's `state.json` is a `StateFile`; a deploy's `last-failures.json` maps endpoint keys
to `Remembered`. `EndpointStatus` is also what `flash status --target local` reports.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

STATE_FILE = "state.json"  # in the state folder: a StateFile
ALREADY_RUNNING = 75  # the supervisor's exit code when another one holds the state folder


class SpecBody(TypedDict):
    """One endpoint for the supervisor to run (balancer.EndpointSpec); env values resolved, held
    in the supervisor's memory only."""

    key: str
    name: str
    build_dir: str
    digest: str
    env: dict[str, str]
    workers_min: int
    workers_max: int
    scaler_value: int
    idle_timeout: int
    port: int
    source_dir: NotRequired[str]
    timeout: NotRequired[float]


class ApplyRequest(TypedDict):
    cmd: Literal["apply"]
    endpoints: list[SpecBody]


class StatusRequest(TypedDict):
    cmd: Literal["status"]


class StopRequest(TypedDict):
    cmd: Literal["stop"]


class AbandonRequest(TypedDict):
    """An interrupted deploy: drop the rollouts it began and the endpoints it created."""

    cmd: Literal["abandon"]
    rollouts: list[str]
    created: list[str]


Request = ApplyRequest | StatusRequest | StopRequest | AbandonRequest


class Comparable(TypedDict):
    """What `flash plan` compares (EndpointSpec.comparable): the env as a digest, never its values."""

    build: str
    env: str
    workers: list[int]
    scaler_value: int
    idle_timeout: int


class WorkerRow(TypedDict):
    number: int
    id: str
    pid: int
    port: int
    state: str  # starting | ready | unhealthy | failed | stopping
    inflight: int


class Failure(TypedDict):
    """Why an endpoint's workers cannot start: the reason, failures in a row, their last output."""

    reason: str
    times: int
    output: list[str]


class LastFailure(Failure):
    """A new build that could not start while the previous workers kept serving."""

    revision: str
    kept_previous: bool


class RolloutRow(TypedDict):
    revision: str
    workers: list[str]  # their states


class EndpointStatus(TypedDict):
    """One endpoint as the supervisor reports it (balancer.Endpoint.status)."""

    url: str
    port: int
    digest: str
    spec: Comparable
    workers: list[WorkerRow]
    ready: int
    restarts: int
    failure: Failure | None
    monitor_error: str | None
    revision: str
    rollout: RolloutRow | None
    last_failure: LastFailure | None


class Reply(TypedDict):
    """The supervisor's answer. `ok` false: `error` says why (`port_taken`: a port to choose again).
    apply: `changes` and `endpoints`; status: `pid`, `pgid`, `endpoints`; abandon: `endpoints`."""

    ok: bool
    error: NotRequired[str]
    port_taken: NotRequired[int]
    changes: NotRequired[dict[str, str]]  # endpoint key -> created | updated | unchanged | removed
    endpoints: NotRequired[dict[str, EndpointStatus]]
    pid: NotRequired[int]
    pgid: NotRequired[int]


class Address(TypedDict):
    url: str
    port: int


class Process(TypedDict):
    """The supervisor's process and process group (what process.stop signals)."""

    pid: int
    pgid: int


class State(Process):
    """The running supervisor's facts, as it answered them (control.read_state)."""

    endpoints: dict[str, Address]


class StateFile(State):
    """`.flash/local*/state.json`: non-secret facts for `flash status/destroy` (supervisor._write_state)."""

    socket: str


class Remembered(TypedDict):
    """Why the last deploy could not start an endpoint, kept after it stopped the supervisor."""

    reason: str
    output: list[str]
