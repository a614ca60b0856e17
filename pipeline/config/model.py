"""The validated project: frozen values every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flash_pipeline.errors import Diagnostic


def runpod_name(app: str, environment: str | None, key: str) -> str:
    """The RunPod name of an endpoint: {app}-{key}, or {app}-{env}-{key} in a named environment."""
    return f"{app}-{environment}-{key}" if environment else f"{app}-{key}"


@dataclass(frozen=True)
class Loc:
    """Where a value was written, for messages about it after validation."""

    file: str
    line: int
    col: int


@dataclass(frozen=True)
class Gpu:
    pools: tuple[str, ...]
    count: int = 1


@dataclass(frozen=True)
class Cpu:
    flavor: str
    vcpu: int
    memory_gb: int

    @property
    def instance_id(self) -> str:
        return f"{self.flavor}-{self.vcpu}-{self.memory_gb}"


@dataclass(frozen=True)
class Workers:
    min: int
    max: int


@dataclass(frozen=True)
class Batch:
    """Dynamic batching of a route: concurrent requests in one handler call."""

    max_size: int
    max_wait_ms: int
    max_concurrent: int = 1


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    module: str
    function: str
    loc: Loc
    batch: Batch | None = None

    @property
    def handler(self) -> str:
        return f"{self.module}:{self.function}"

    @property
    def params(self) -> tuple[str, ...]:
        """Path parameter names in order of appearance."""
        return tuple(seg[1:-1] for seg in self.path.split("/") if seg.startswith("{"))


@dataclass(frozen=True)
class Endpoint:
    key: str
    name: str  # the RunPod name, "{app}-{endpoint}"
    compute: Gpu | Cpu
    workers: Workers
    routes: tuple[Route, ...]
    loc: Loc
    scaler_value: int = 4
    idle_timeout: int = 5
    timeout: int = 600
    datacenters: tuple[str, ...] = ()
    flashboot: bool = True
    disk: int = 20
    network_volumes: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    image: str | None = None
    base_image: str | None = None
    init: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    health_timeout: int = 600
    calls: tuple[str, ...] = ()  # endpoint keys of this app that this endpoint calls
    generated: bool = False  # the mothership: flash's own code, no user routes or source
    # Where single settings were written ("init", "env.NAME"), for messages after validation.
    locs: tuple[tuple[str, Loc], ...] = field(default=(), compare=False, repr=False)

    def loc_of(self, setting: str) -> Loc:
        """Where a setting was written, else where the endpoint was declared."""
        return dict(self.locs).get(setting, self.loc)

    @property
    def is_gpu(self) -> bool:
        return isinstance(self.compute, Gpu)


@dataclass(frozen=True)
class Project:
    name: str
    config_path: Path
    python: str = "3.11"
    registry: str | None = None
    source: str = "."
    endpoints: tuple[Endpoint, ...] = field(default_factory=tuple)
    environment: str | None = None  # the selected [environments.<name>] overlay, if any
    environments: tuple[str, ...] = ()  # every declared environment
    source_loc: Loc | None = field(default=None, compare=False, repr=False)  # where app.source was written
    call_key: str | None = None  # a {{ RUNPOD_SECRET_… }} or ${VAR} reference: what callers send callees
    call_key_loc: Loc | None = field(default=None, compare=False, repr=False)
    warnings: tuple[Diagnostic, ...] = field(default=(), compare=False, repr=False)  # valid, but likely a mistake

    @property
    def root(self) -> Path:
        """The folder holding flash.toml; relative paths in it start here."""
        return self.config_path.parent

    @property
    def source_dir(self) -> Path:
        return (self.root / self.source).resolve()


@dataclass(frozen=True)
class FileResult:
    """The outcome of validating one config file: a Project or its diagnostics."""

    display: str
    project: Project | None = None
    diagnostics: tuple[Diagnostic, ...] = ()
