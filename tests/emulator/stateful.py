"""The RunPod target driven by random sequences of commands against the emulator, and the
invariants checked at every quiescent point (issue 22).

A `World` is one account (an emulator) and one app, `st`, in two environments (default and
`staging`). Each command runs as flash runs it (a provider of its own, the real Cancel and lease),
in a thread of its own, so two or three overlap for real; an interruption is the Cancel a SIGINT
sets, set from inside the emulator at a chosen call. Time in health gates and lease waits is
virtual (VirtualCancel): a sleep advances the clock and only yields the CPU for a moment; real time
counts as well.
`Machine` is the hypothesis state machine over a World; tests/pipeline/test_runpod_invariants.py
runs it bounded, tests/stress/test_runpod_stateful.py long.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from runpod_emulator import Emulator, Faults

from flash_pipeline.config.validate import validate_file
from flash_pipeline.errors import FlashError, Interrupted
from flash_pipeline.report import interrupted_text, runpod_deploy_text
from flash_pipeline.report.github import write_github_outputs
from flash_pipeline.targets.cancel import Cancel
from flash_pipeline.targets.runpod.api import Client
from flash_pipeline.targets.runpod.converge import Outcome
from flash_pipeline.targets.runpod.deploy import DeployOptions
from flash_pipeline.targets.runpod.ownership import MARKER_APP, MARKER_ENDPOINT, MARKER_ENV
from flash_pipeline.targets.runpod.provider import RunpodProvider
from flash_runtime.backoff import Backoff

REPO = Path(__file__).resolve().parents[2]
APP = "stm"
KEYS = ("a", "b", "c")
PACE = 0.05  # the most a virtual sleep really waits (lets other threads run; never synchronises)


class Clock:
    """Real elapsed time plus every virtual sleep: a gate's limit counts the time its probes take
    (as it does for flash), so a probe that waits for its timeout ends the gate, never stretches it
    without end; sleeps cost (almost) nothing."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now + (time.monotonic() - self.started)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += max(0.0, seconds)


class VirtualCancel(Cancel):
    """The real Cancel, whose sleeps pass on a virtual clock."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if self.event.wait(min(max(0.0, seconds), PACE)):
            raise Interrupted()


@dataclass(frozen=True)
class Variant:
    """One config of the app: which endpoints, their compute, env, callees and image health."""

    endpoints: tuple[str, ...] = ("a", "b")
    gpu: frozenset[str] = frozenset()
    env: tuple[tuple[str, int], ...] = ()
    calls: tuple[tuple[str, str], ...] = ()  # (caller, callee), callee after caller in KEYS
    mothership: bool = False
    environment: str | None = None
    unhealthy: frozenset[str] = frozenset()  # endpoints whose new image never turns healthy

    def text(self) -> str:
        lines = [f'[app]\nname = "{APP}"\nregistry = "ghcr.io/acme"\nsource = "src"']
        lines.append('call_key = "{{ RUNPOD_SECRET_calls }}"\n')
        if self.mothership:
            lines.append("[mothership]\n")
        lines.append("[environments.staging]\n")
        env = dict(self.env)
        for key in self.endpoints:
            lines.append(f"[endpoints.{key}]")
            lines.append('gpu = "ADA_24"' if key in self.gpu else 'cpu = "cpu3c-2-4"')
            if key in self.unhealthy:
                lines.append(f'image = "ghcr.io/acme/unhealthy-{key}:1"')
            callees = [c for k, c in self.calls if k == key and c in self.endpoints]
            if callees:
                lines.append(f"calls = {json.dumps(callees)}")
            lines.append(f'env = {{ V = "{env.get(key, 0)}" }}')
            lines.append(f'[endpoints.{key}.routes]\n"GET /x" = "app.handlers:health"\n')
        return "\n".join(lines)


@dataclass
class Run:
    """One command in flight: what it was, what it reported, how it ended."""

    kind: str  # deploy, destroy, unlock
    variant: Variant
    cancel: Cancel
    provider: RunpodProvider
    outcomes: list[Outcome] = field(default_factory=list)
    error: FlashError | None = None
    interrupted: bool = False
    report: str = ""
    github: dict[str, str] = field(default_factory=dict)
    thread: threading.Thread | None = None


class World:
    def __init__(self, root: Path, *, graphql: bool, unique_names: bool) -> None:
        import shutil

        self.root = root
        shutil.copytree(REPO / "examples" / "demo", root / "src", dirs_exist_ok=True)
        self.emu = Emulator(warmup=0.0, rollout=0.0).__enter__()
        self.emu.unique_template_names = unique_names
        self.graphql = graphql
        self.clock = Clock()
        self.projects: dict[Variant, Any] = {}
        self.kept: set[str] = set()  # ids a report said are kept on purpose (an old endpoint still called)
        self.current: dict[str | None, Variant] = {}  # environment -> the variant last deployed there
        self.runs: list[Run] = []
        self.operations = 0
        self.lock = threading.Lock()
        self.crashed: list[BaseException] = []  # anything but a FlashError out of a command
        self.foreign = self._seed_foreign()

    def close(self) -> None:
        self.emu.__exit__(None, None, None)

    # -- commands ----------------------------------------------------------------------------------
    def environ(self) -> dict[str, str]:
        env = {"RUNPOD_API_BASE_URL": self.emu.url, "RUNPOD_API_KEY": self.emu.api_key}
        env["RUNPOD_LB_URL_TEMPLATE"] = self.emu.url + "/lb/{endpoint_id}"
        env["FLASH_API"] = "graphql" if self.graphql else "rest"
        return env

    def provider(self) -> RunpodProvider:
        client = Client(self.emu.url, self.emu.api_key, retries=4, backoff_factor=0.001)
        provider = RunpodProvider(client, self.environ(), graphql=self.graphql)
        provider.lease_poll = Backoff(
            initial=0.05, factor=1.5, cap=0.2, jitter=0.0
        )  # a waiter looks about 20 times a second, not more
        provider.clock = self.clock
        return provider

    def project(self, variant: Variant) -> Any:
        if variant not in self.projects:
            folder = self.root / f"v{len(self.projects)}"
            folder.mkdir()
            (folder / "src").symlink_to(self.root / "src")
            (folder / "flash.toml").write_text(variant.text())
            self.projects[variant] = validate_file(folder / "flash.toml", None, variant.environment)
        return self.projects[variant]

    def start(self, kind: str, variant: Variant) -> Run:
        with self.lock:
            self.project(variant)
        run = Run(kind, variant, VirtualCancel(self.clock), self.provider())
        run.thread = threading.Thread(target=self._run, args=(run,), daemon=True)
        self.runs.append(run)
        self.operations += 1
        run.thread.start()
        return run

    def _run(self, run: Run) -> None:
        project = self.project(run.variant)
        provider = run.provider
        try:
            if run.kind == "deploy":
                images = {e.key: e.image or f"ghcr.io/acme/{APP}-{e.key}:{self._tag(run.variant, e.key)}" for e in project.endpoints}  # fmt: skip
                options = DeployOptions(prune=True, rollback=True, timeout=8.0, lease_wait=60.0)
                run.outcomes = provider.apply(project, images, options, echo=lambda _line: None, cancel=run.cancel)
            elif run.kind == "destroy":
                doomed, _ = provider.destroy_targets(project)
                provider.destroy(project, doomed, run.cancel, lambda _line: None)
            else:
                provider.unlock(project)
        except Interrupted:
            run.interrupted = True
            provider.release_all()  # as the CLI does, then it prints the report
        except FlashError as exc:
            run.error = exc
        except BaseException as exc:  # a traceback flash must never show: the test fails on it
            self.crashed.append(exc)
            raise
        finally:  # a process ending closes its connections: so does a command here
            client = provider.client
            for session in (client.session, client.write_session, getattr(client, "_plain", None)):
                if session is not None:
                    session.close()
        if run.kind == "deploy":
            run.outcomes = provider.outcomes_of(project)  # what the report shows, whichever way it ended
            if run.interrupted:
                run.report = interrupted_text([(APP, run.outcomes)])
            elif run.outcomes:
                run.report = runpod_deploy_text(run.outcomes)
            output = self.root / f"github-{id(run)}"
            write_github_outputs(run.outcomes, {"GITHUB_OUTPUT": str(output)}, "")
            if output.exists():
                run.github = dict(line.split("=", 1) for line in output.read_text().splitlines())

    def _tag(self, variant: Variant, key: str) -> str:
        return f"{dict(variant.env).get(key, 0)}{'g' if key in variant.gpu else 'c'}"

    def wait(self) -> None:
        for run in self.runs:
            assert run.thread is not None
            run.thread.join(120)
            if run.thread.is_alive():
                import sys
                import traceback

                stacks = ["".join(traceback.format_stack(f)) for f in sys._current_frames().values()]
                stuck = "\n---\n".join(s for s in stacks if "pipeline/targets" in s or "emulator" in s)
                # Every thread's innermost frames and the account's last calls: a stall of the
                # emulator (no handler busy, a client waiting for an answer) shows as such.
                names = {t.ident: t.name for t in threading.enumerate()}
                tails = [
                    f"{names.get(ident, ident)}: "
                    + " <- ".join(
                        f"{fr.f_code.co_filename.rsplit('/', 2)[-1]}:{fr.f_lineno} {fr.f_code.co_name}"
                        for fr, _ in traceback.walk_stack(frame)
                    )[:400]
                    for ident, frame in sys._current_frames().items()
                ]
                recent = list(zip(self.emu.times[-30:], self.emu.calls[-30:], strict=False))
                raise AssertionError(
                    f"a {run.kind} never ended:\n{stuck}\n--- every thread:\n"
                    + "\n".join(tails)
                    + f"\n--- the account's last calls (now {time.monotonic():.1f}):\n"
                    + "\n".join(f"{t:.1f} {c}" for t, c in recent)
                )
        if self.crashed:
            raise self.crashed[0]
        for run in self.runs:
            self._learn(run)
        self.emu.on_call = None
        self.emu.hooks.clear()
        self.emu.op_faults.clear()
        self.emu.op_latency.clear()

    def _learn(self, run: Run) -> None:
        import re

        Machine.seen.update([run.kind + (" interrupted" if run.interrupted else " failed" if run.error else " ok")])
        Machine.seen.update(o.action for o in run.outcomes)
        if run.error is not None:
            Machine.seen.update([f"error: {str(run.error)[:60]}"])
        for outcome in run.outcomes:
            self.kept.update(re.findall(r"(?:endpoint|duplicate) (\w+) is kept", outcome.note or ""))
            if outcome.retire:
                self.kept.add(outcome.retire)
        if run.kind == "deploy" and not run.error and not run.interrupted:
            self.current[run.variant.environment] = run.variant

    def interrupt_at(self, run: Run, call: int) -> None:
        """Set the run's Cancel (what SIGINT does) when the account sees its `call`-th call from now."""
        count = [0]

        def on_call(_op: str) -> None:
            count[0] += 1
            if count[0] == call:
                run.cancel.set()

        self.emu.on_call = on_call

    def faults(self, rate: float, seed: int, ops: tuple[str, ...] = ("create", "update", "delete", "list")) -> None:
        for op in ops:
            self.emu.op_faults[op] = Faults(rate=rate, kinds=("503", "502", "drop"), seed=seed + len(op))

    # -- the invariants -----------------------------------------------------------------------------
    def live(self) -> dict[str, dict[str, Any]]:
        """id -> {name, env, ...} of every endpoint on the account (REST and GraphQL)."""
        found = {}
        for endpoint_id, deployed in self.emu.endpoints.items():
            if not deployed.body.get("gql"):
                found[endpoint_id] = deployed.body
        for endpoint_id, node in self.emu.gql_endpoints.items():
            template = self.emu.templates.get(node.get("templateId")) or {}
            env = {e["key"]: e["value"] for e in template.get("env") or []}
            found[endpoint_id] = {"name": node["name"], "env": env}
        return found

    def check(self) -> None:
        live = self.live()
        ours = {i: e for i, e in live.items() if (e.get("env") or {}).get(MARKER_APP) == APP}
        self.kept &= set(ours)
        # 1. at most one endpoint per RunPod name (an old endpoint a report said is kept aside)
        names: dict[str, list[str]] = {}
        for endpoint_id, body in ours.items():
            names.setdefault(body["name"], []).append(endpoint_id)
        for name, ids in names.items():
            assert len([i for i in ids if i not in self.kept]) <= 1, f"two endpoints named {name}: {ids}"
        # 2. every FLASH_ENDPOINTS entry names a live endpoint of that callee, with its markers
        base = self.emu.url + "/lb/"
        for body in ours.values():
            env = body.get("env") or {}
            configured = self.current.get(env.get(MARKER_ENV))
            if configured is None or env.get(MARKER_ENDPOINT) not in (*configured.endpoints, "mothership"):
                continue  # an orphan a failed prune left: not part of the app
            for callee, url in json.loads(env.get("FLASH_ENDPOINTS") or "{}").items():
                target = live.get(url.removeprefix(base))
                assert url.startswith(base) and target is not None, f"{body['name']} calls {callee} at {url!r}: gone"
                markers = target.get("env") or {}
                assert (markers.get(MARKER_APP), markers.get(MARKER_ENDPOINT), markers.get(MARKER_ENV)) == (
                    APP, callee, env.get(MARKER_ENV),
                ), f"{body['name']} calls {callee} at {url}, which is {target['name']}"  # fmt: skip
        # 3. endpoints without this app's markers are never written
        for endpoint_id, snapshot in self.foreign.items():
            assert self.live().get(endpoint_id) == snapshot, f"another owner's {endpoint_id} was written"
        # 4. no lease is left once every run has ended
        leases = [t["name"] for t in self.emu.templates.values() if str(t.get("name")).startswith("flash-lease")]
        assert leases == [], f"leases left: {leases}"
        # 5. what reports and $GITHUB_OUTPUT name exists and belongs together
        alone = len(self.runs) == 1 and not self.runs[0].interrupted
        for run in self.runs:
            for outcome in run.outcomes:
                if outcome.endpoint_id and outcome.url and outcome.action not in ("orphaned", "deleted"):
                    assert outcome.url == base + outcome.endpoint_id, f"{outcome.key}: {outcome.endpoint_id} with {outcome.url}"  # fmt: skip
                    if alone and outcome.action in ("created", "updated", "replaced", "unchanged", "rolled back"):
                        assert outcome.endpoint_id in live, f"the report names {outcome.endpoint_id}, which is gone"
                if alone and outcome.action == "deleted":
                    assert not set(outcome.endpoint_id.split(", ")) & set(live), "reported deleted, still there"
            for name, value in run.github.items():
                if name.endswith("_id"):
                    assert run.github[name.removesuffix("_id") + "_url"] == base + value
        assert self.emu.rejected == [], f"RunPod's schema rejected {self.emu.rejected}"
        self.runs = []

    def converge(self, variant: Variant) -> None:
        """6. a fault-free re-run converges, and the one after it writes nothing but the lease."""
        self.emu.faults.rate = 0.0
        run = self.start("deploy", variant)
        self.wait()
        assert run.error is None and not run.interrupted, run.report or run.error
        first = run.report
        self.check()
        live = self.live()
        names = [b["name"] for b in live.values() if (b.get("env") or {}).get(MARKER_APP) == APP]
        for env_name, configured in self.current.items():
            if env_name == variant.environment:
                want = {e.name for e in self.project(configured).endpoints}
                mine = [n for n in names if n.startswith(f"{APP}-staging-") == bool(env_name)]
                assert sorted(mine) == sorted(want), (
                    f"after a clean deploy: {sorted(mine)}, want {sorted(want)}:\n{first}"
                )
        self.emu.ops.clear()
        before = json.dumps(self.live(), sort_keys=True)
        run = self.start("deploy", variant)
        self.wait()
        assert run.error is None, run.error
        writes = [op for op in self.emu.ops if op in ("create", "update", "delete")]
        assert writes == [], f"a second clean deploy wrote {writes}:\n{run.report}"
        assert json.dumps(self.live(), sort_keys=True) == before, "a second clean deploy changed an endpoint"
        self.check()

    def _seed_foreign(self) -> dict[str, dict[str, Any]]:
        """Another app's endpoint and one made by hand, never to be written."""
        from graphql_subset import Root

        if self.graphql:
            root = Root(self.emu)
            for name, env in (("other-a", [{"key": MARKER_APP, "value": "other"}, {"key": MARKER_ENDPOINT, "value": "a"}]), ("stm-hand", [])):  # fmt: skip
                template = root.saveTemplate(None, {"name": f"{name}-t", "imageName": "x:1", "containerDiskInGb": 5, "volumeInGb": 0, "dockerArgs": "", "env": env})  # fmt: skip
                root.saveEndpoint(None, {"name": name, "templateId": template["id"], "instanceIds": ["cpu3c-2-4"]})
        else:
            scaling = {"type": "REQUEST_COUNT", "requestCount": 4}
            self.emu.create({"name": "other-a", "type": "LOAD_BALANCER", "image": "x:1", "env": {MARKER_APP: "other", MARKER_ENDPOINT: "a"}, "scaling": scaling})  # fmt: skip
            self.emu.create({"name": "stm-hand", "type": "LOAD_BALANCER", "image": "x:1", "env": {}, "scaling": scaling})  # fmt: skip
        return {i: json.loads(json.dumps(b)) for i, b in self.live().items()}


# -- the state machine -------------------------------------------------------------------------------
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule  # noqa: E402


@st.composite
def variants(draw: Any) -> Variant:
    endpoints = tuple(k for k in KEYS if draw(st.booleans())) or ("a",)
    return Variant(
        endpoints=endpoints,
        gpu=frozenset(k for k in endpoints if draw(st.booleans())),
        env=tuple((k, draw(st.integers(0, 1))) for k in endpoints),
        calls=tuple((x, y) for i, x in enumerate(endpoints) for y in endpoints[i + 1 :] if draw(st.booleans())),
        mothership=draw(st.booleans()),
        environment=draw(st.sampled_from([None, None, "staging"])),
        unhealthy=frozenset(k for k in endpoints if draw(st.integers(0, 7)) == 0),
    )


commands = st.one_of(
    st.tuples(st.just("deploy"), variants()),
    st.tuples(st.sampled_from(["destroy", "unlock"]), variants()),
)


class Machine(RuleBasedStateMachine):
    """Random sequences of deploys, destroys, unlocks, overlaps, interruptions and faults."""

    root: Path  # set by the test (a temporary folder)
    operations = 0  # every command started, across all examples (reported by the tests)
    seen: ClassVar[Counter[str]] = Counter()  # what the commands did, across all examples (reported by the tests)

    def __init__(self) -> None:
        super().__init__()
        self.world: World | None = None
        self.tried: dict[str | None, Variant] = {}

    @initialize(graphql=st.booleans(), unique=st.booleans())
    def account(self, graphql: bool, unique: bool) -> None:
        import tempfile

        self.world = World(Path(tempfile.mkdtemp(dir=self.root)), graphql=graphql, unique_names=unique)

    def _start(self, kind: str, variant: Variant) -> Run:
        assert self.world is not None
        if kind == "deploy":
            self.tried[variant.environment] = variant
        return self.world.start(kind, variant)

    @rule(variant=variants(), interrupt=st.one_of(st.none(), st.integers(1, 25)), fault=st.sampled_from([0.0, 0.0, 0.2]), seed=st.integers(0, 99))  # fmt: skip
    def deploy(self, variant: Variant, interrupt: int | None, fault: float, seed: int) -> None:
        assert self.world is not None
        if fault:
            self.world.faults(fault, seed)
        run = self._start("deploy", variant)
        if interrupt is not None:
            self.world.interrupt_at(run, interrupt)
        self.world.wait()

    @rule(first=variants(), others=st.lists(commands, min_size=1, max_size=2), interrupt=st.one_of(st.none(), st.integers(1, 40)), slow=st.sampled_from(["", "", "list", "create", "template.list", "template.create"]))  # fmt: skip
    def together(self, first: Variant, others: list[tuple[str, Variant]], interrupt: int | None, slow: str) -> None:
        """Two or three commands at once (a deploy and one or two more), one operation maybe slow."""
        assert self.world is not None
        if slow:
            self.world.emu.op_latency[slow] = 0.01
        run = self._start("deploy", first)
        if interrupt is not None:
            self.world.interrupt_at(run, interrupt)
        for kind, variant in others:
            self._start(kind, variant if kind == "deploy" else first)
        self.world.wait()

    @rule(variant=variants(), second=st.booleans())
    def unlock_during_deploy(self, variant: Variant, second: bool) -> None:
        """`flash unlock` while a deploy writes, and maybe a second deploy straight after."""
        assert self.world is not None
        world = self.world
        done = threading.Event()

        def on_call(op: str) -> None:
            if op in ("create", "update", "delete") and not done.is_set():
                done.set()
                world.project(variant)
                world.provider().unlock(world.project(variant))
                if second:
                    self._start("deploy", variant)

        world.emu.on_call = on_call
        self._start("deploy", variant)
        world.wait()
        world.wait()  # the second deploy, started from inside the first's call
        if second:
            # The first deploy's write in flight when the lease broke lands anyway (RunPod has no
            # conditional write), and the second deploy may have surveyed before it: a duplicate of
            # a name can remain. What flash promises after `unlock` is that the next deploy
            # repairs it: the invariants are checked after that clean deploy (docs/runpod.md).
            from dataclasses import replace

            world.converge(replace(variant, unhealthy=frozenset()))

    @rule(variant=variants())
    def destroy(self, variant: Variant) -> None:
        assert self.world is not None
        self._start("destroy", variant)
        self.world.wait()
        self.world.current.pop(variant.environment, None)

    @invariant()
    def invariants_hold(self) -> None:
        if self.world is not None:
            self.world.check()

    def teardown(self) -> None:
        if self.world is None:
            return
        try:
            for variant in self.tried.values():
                from dataclasses import replace

                self.world.converge(replace(variant, unhealthy=frozenset()))
        finally:
            Machine.operations += self.world.operations
            self.world.close()
