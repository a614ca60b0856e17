"""Where the RunPod target's features meet (issue 22): destroy × deploy, replace × calls × rollback,
concurrency × backstop × wiring, unlock × deploy, GraphQL against RunPod's schema, Ctrl-C × create,
and every sequence the stateful test (test_runpod_invariants.py) found, shrunk, as a named test.

Each runs commands as flash runs them (tests/emulator/stateful.py: own provider, the real Cancel
and lease) against the emulator, and checks the invariants of the stateful test afterwards.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "emulator"))

from stateful import MARKER_APP, Variant, World

from flash_pipeline.targets.cancel import Cancel

CHAIN = Variant(endpoints=("a", "b", "c"), calls=(("a", "b"), ("b", "c")), mothership=True)


@pytest.fixture(params=["rest", "graphql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path, graphql=request.param == "graphql", unique_names=False)
    yield made
    made.close()


@pytest.fixture
def rest(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path, graphql=False, unique_names=False)
    yield made
    made.close()


def ours(world: World) -> dict[str, dict]:
    return {i: e for i, e in world.live().items() if (e.get("env") or {}).get(MARKER_APP) == "stm"}


def named(world: World, name: str) -> list[str]:
    return [i for i, e in ours(world).items() if e["name"] == name]


def calls_of(world: World, name: str) -> dict[str, str]:
    [endpoint_id] = named(world, name)
    return json.loads(ours(world)[endpoint_id]["env"].get("FLASH_ENDPOINTS") or "{}")


def deploy(world: World, variant: Variant):
    run = world.start("deploy", variant)
    world.wait()
    return run


def test_a_destroy_started_during_a_deploy_leaves_nothing_of_the_app(world: World) -> None:
    project = world.project(CHAIN)
    destroyer = world.provider()
    deleted: list[list[tuple[str, str]]] = []
    started = threading.Event()
    threads: list[threading.Thread] = []

    def destroy_now() -> None:  # at the deploy's second create: c exists, b and a do not yet
        if started.is_set():
            return
        started.set()
        listed_before_the_lease, _ = destroyer.destroy_targets(project)
        assert [name for name, _ in listed_before_the_lease] == ["stm-c"]
        work = lambda: deleted.append(destroyer.destroy(project, listed_before_the_lease, Cancel(), print))  # noqa: E731
        threads.append(threading.Thread(target=work, daemon=True))
        threads[-1].start()

    count = [0]

    def on_create() -> None:
        count[0] += 1
        if count[0] == 2:
            destroy_now()

    world.emu.hooks["create"] = on_create
    run = deploy(world, CHAIN)
    for thread in threads:
        thread.join(60)
    assert run.error is None, run.report
    assert ours(world) == {}, "the destroy left endpoints of the app"
    assert sorted(name for name, _ in deleted[0]) == ["stm-a", "stm-b", "stm-c", "stm-mothership"]
    world.runs.clear()  # the deploy's report is older than the destroy: not what the account shows now
    world.check()


def test_a_replace_whose_caller_rolls_back_keeps_the_old_callee_and_says_why(world: World) -> None:
    first = Variant(endpoints=("a", "c"), gpu=frozenset("c"), calls=(("a", "c"),))
    assert deploy(world, first).error is None
    [old] = named(world, "stm-c")
    second = Variant(endpoints=("a", "c"), calls=(("a", "c"),), unhealthy=frozenset("a"))
    run = deploy(world, second)
    assert run.error is not None and run.error.exit_code == 5
    by_key = {o.key: o for o in run.outcomes}
    a, c = by_key["a"], by_key["c"]
    assert (a.key, a.action, c.key, c.action) == ("a", "rolled back", "c", "replaced")
    assert c.note == f"stm-c now runs as {c.endpoint_id}; the old endpoint {old} is kept: a still calls it; deploy again once they are rewired to delete it"  # fmt: skip
    assert f"({c.note})" in run.report
    assert sorted(named(world, "stm-c")) == sorted([old, c.endpoint_id])
    assert calls_of(world, "stm-a") == {"c": world.emu.url + "/lb/" + old}  # the rolled-back caller
    world.check()
    world.converge(Variant(endpoints=("a", "c"), calls=(("a", "c"),)))  # then the old one goes
    assert named(world, "stm-c") == [c.endpoint_id]


@pytest.mark.parametrize("runs", [2, 3])
def test_concurrent_deploys_with_duplicate_template_names_allowed_end_wired_once(world: World, runs: int) -> None:
    assert world.emu.unique_template_names is False
    world.emu.op_latency["template.list"] = 0.01  # every run lists while the others take the lease
    for _ in range(runs):
        world.start("deploy", CHAIN)
    world.wait()
    for name in ("stm-a", "stm-b", "stm-c", "stm-mothership"):
        assert len(named(world, name)) == 1, name
    [b], [c] = named(world, "stm-b"), named(world, "stm-c")
    assert calls_of(world, "stm-a") == {"b": world.emu.url + "/lb/" + b}
    assert calls_of(world, "stm-b") == {"c": world.emu.url + "/lb/" + c}
    world.check()  # leases gone, reports' ids and URLs pair up, mothership wired to survivors


def test_unlock_during_a_deploy_stops_its_writes_and_says_so(rest: World) -> None:
    world = rest
    project = world.project(CHAIN)
    writes_after: list[str] = []
    unlocked = threading.Event()

    def on_call(op: str) -> None:
        if unlocked.is_set():
            writes_after.append(op)
        elif op == "create":
            unlocked.set()
            assert world.provider().unlock(project) is not None

    world.emu.on_call = on_call
    run = deploy(world, CHAIN)
    assert run.error is not None
    assert "the deploy lease 'flash-lease stm' was removed while this deploy held it (`flash unlock`, or broken as expired by another run): stopped writing, as another deploy may be running" in str(run.error)  # fmt: skip
    assert [op for op in writes_after if op in ("create", "update", "delete")] == []
    world.check()
    world.converge(CHAIN)


def test_graphql_deploy_change_failed_replace_destroy_deploy_against_the_real_schema(tmp_path: Path) -> None:
    world = World(tmp_path, graphql=True, unique_names=True)
    try:
        first = Variant(endpoints=("a", "b"), gpu=frozenset("b"), calls=(("a", "b"),))
        assert deploy(world, first).error is None
        changed = Variant(endpoints=("a", "b"), gpu=frozenset("b"), calls=(("a", "b"),), env=(("b", 1),))
        run = deploy(world, changed)
        assert {o.key: o.action for o in run.outcomes} == {"a": "unchanged", "b": "updated"}, run.report
        [old] = named(world, "stm-b")
        template = dict(world.emu.templates[world.emu.gql_endpoints[old]["templateId"]])
        failing = Variant(endpoints=("a", "b"), calls=(("a", "b"),), env=(("b", 1),), unhealthy=frozenset("b"))
        run = deploy(world, failing)
        assert {o.key: o.action for o in run.outcomes}["b"] == "rolled back", run.report
        assert named(world, "stm-b") == [old]
        assert world.emu.templates[world.emu.gql_endpoints[old]["templateId"]] == template  # untouched
        world.check()
        run = world.start("destroy", first)
        world.wait()
        assert run.error is None and world.emu.gql_endpoints.keys() == set(world.foreign)
        assert sorted(t["name"] for t in world.emu.templates.values()) == ["other-a-t", "stm-hand-t"]
        assert deploy(world, first).error is None
        world.check()
        assert world.emu.rejected == []
    finally:
        world.close()


def test_ctrl_c_during_a_slow_create_reports_the_endpoint_it_made(tmp_path: Path, flash, emulator) -> None:
    import os
    import shutil

    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "demo", tmp_path / "src")
    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "demo"\nregistry = "ghcr.io/acme"\nsource = "src"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\n'
        '[endpoints.api.routes]\n"GET /x" = "app.handlers:health"\n'
    )
    answered = threading.Event()

    def after_create() -> None:  # applied on the account; the answer comes only after the report (or 30 s)
        os.kill(os.getpid(), signal.SIGINT)
        answered.wait(30)

    emulator.after["create"] = after_create
    result = flash("deploy", "--no-build", cwd=tmp_path)
    answered.set()
    assert result.code == 130
    [endpoint_id] = [i for i, e in emulator.endpoints.items() if e.body["name"] == "demo-api"]
    assert f"  api: created {endpoint_id} (health not confirmed)" in result.out.splitlines()  # not "not changed"
    assert emulator.templates == {}  # the lease was released


def test_ctrl_c_with_format_json_still_prints_the_document(tmp_path: Path, flash, emulator) -> None:
    """The Action reads deploy's JSON: an interrupted deploy printed only text, so the Action wrote
    `endpoints={}` although an endpoint had been made. stdout stays one JSON document, rows included."""
    import os
    import shutil

    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "demo", tmp_path / "src")
    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "demo"\nregistry = "ghcr.io/acme"\nsource = "src"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\n'
        '[endpoints.api.routes]\n"GET /x" = "app.handlers:health"\n'
    )
    answered = threading.Event()

    def after_create() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        answered.wait(30)

    emulator.after["create"] = after_create
    result = flash("deploy", "--no-build", "--format", "json", cwd=tmp_path)
    answered.set()
    assert result.code == 130
    [endpoint_id] = [i for i, e in emulator.endpoints.items() if e.body["name"] == "demo-api"]
    document = json.loads(result.out)
    [app] = document["apps"]
    assert (document["ok"], app["ok"], app["error"]["exit_code"]) == (False, False, 130)
    assert app["error"]["message"] == "flash was interrupted; each endpoint's row says how far it got"
    assert (app["endpoints"]["api"]["action"], app["endpoints"]["api"]["id"]) == ("created", endpoint_id)
    assert "flash: interrupted: no further change was sent" in result.err


# -- sequences the stateful test found, shrunk ---------------------------------------------------------


def test_found_a_caller_that_rolled_back_keeps_its_callee_from_prune(world: World) -> None:
    """The stateful test: b rolled back to calling c while the same deploy pruned c."""
    assert deploy(world, Variant(endpoints=("b", "c"), calls=(("b", "c"),))).error is None
    [c] = named(world, "stm-c")
    run = deploy(world, Variant(endpoints=("b",), unhealthy=frozenset("b")))
    assert run.outcomes[0].action == "rolled back"
    orphan = run.outcomes[1]
    assert (orphan.action, orphan.note) == (
        "orphaned",
        f"the endpoint {c} is kept: b still calls it; deploy again once they are rewired to delete it",
    )
    assert calls_of(world, "stm-b") == {"c": world.emu.url + "/lb/" + c}
    world.check()
    world.converge(Variant(endpoints=("b",)))
    assert named(world, "stm-c") == []


def test_found_an_interrupted_prune_deletes_callers_first(world: World) -> None:
    """The stateful test: Ctrl-C during a prune left the mothership calling a deleted endpoint."""
    assert deploy(world, Variant(endpoints=("a",), mothership=True)).error is None
    run = world.start("deploy", Variant(endpoints=("b",)))
    world.emu.hooks["delete"] = run.cancel.set  # Ctrl-C as the first prune delete goes out
    world.wait()
    assert run.interrupted
    assert named(world, "stm-mothership") == [] and len(named(world, "stm-a")) == 1
    world.check()


def test_found_prune_deletes_a_callee_only_a_replaced_caller_called(world: World) -> None:
    """The stateful test: prune kept b because the old, replaced a still called it."""
    assert deploy(world, Variant(endpoints=("a", "b"), gpu=frozenset("a"), calls=(("a", "b"),))).error is None
    run = deploy(world, Variant(endpoints=("a",)))
    assert [o.action for o in run.outcomes] == ["replaced", "deleted"], run.report
    assert list(named(world, "stm-a")) == [run.outcomes[0].endpoint_id] and named(world, "stm-b") == []
    world.check()


def test_the_lease_admits_one_holder_at_a_time_when_template_names_may_repeat(world: World) -> None:
    from stateful import VirtualCancel

    assert world.emu.unique_template_names is False
    world.emu.op_latency["template.list"] = 0.01  # every taker lists while the others take it
    project = world.project(CHAIN)
    holding, peak, lock = [0], [0], threading.Lock()

    def take_and_work() -> None:
        provider = world.provider()
        lease = provider.lease(project, VirtualCancel(world.clock), lambda _line: None, 600.0)
        with lock:
            holding[0] += 1
            peak[0] = max(peak[0], holding[0])
        lease.guard()  # still ours: nobody broke it
        provider.backend.list()  # some work under the lease
        with lock:
            holding[0] -= 1
        lease.release()

    threads = [threading.Thread(target=take_and_work, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert peak[0] == 1
    assert [t for t in world.emu.templates.values() if t["name"].startswith("flash-lease")] == []


def test_destroy_with_nothing_listed_yet_waits_for_a_running_deploy_and_deletes_what_it_made(
    tmp_path: Path, flash, emulator
) -> None:
    import shutil

    from flash_pipeline.config.validate import validate_file
    from flash_pipeline.targets.runpod.provider import RunpodProvider

    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "demo", tmp_path / "src")
    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "demo"\nregistry = "ghcr.io/acme"\nsource = "src"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\n'
        '[endpoints.api.routes]\n"GET /x" = "app.handlers:health"\n'
    )
    deploying = RunpodProvider.from_environment()
    held = deploying.lease(validate_file(tmp_path / "flash.toml"), Cancel(), print, 1.0)  # a deploy is running
    looks = [0]

    def deploy_finishes() -> None:  # as destroy first looks at the lease: the deploy made api, and ends
        looks[0] += 1
        if looks[0] == 2:
            emulator.create({"name": "demo-api", "type": "LOAD_BALANCER", "image": "x:1", "env": {"FLASH_APP": "demo", "FLASH_ENDPOINT": "api"}, "scaling": {"type": "REQUEST_COUNT", "requestCount": 4}})  # fmt: skip
            held.release()

    emulator.hooks["template.list"] = deploy_finishes
    result = flash("destroy", "--yes", cwd=tmp_path)
    assert result.code == 0, result.err
    [first, last] = result.out.splitlines()
    assert first.startswith("flash: a deploy of demo is running (") and first.endswith(
        "); destroy waits for it, then deletes what it made"
    )
    assert last.startswith("flash: deleted demo-api (") and emulator.endpoints == {}


def test_a_lease_broken_as_expired_stops_its_holder_writing(rest: World) -> None:
    from flash_pipeline.errors import ApiError
    from flash_pipeline.targets.runpod.lease import LEASE_TTL, LeaseLost, acquire

    world, backend = rest, rest.provider().backend
    late = [0.0]
    first = acquire(backend, "flash-lease stm", "run-1", wait=1.0, cancel=Cancel(), echo=print, now=lambda: late[0])
    late[0] += LEASE_TTL + 1  # run-1 stopped renewing (suspended laptop, lost network)
    told: list[str] = []
    second = acquire(backend, "flash-lease stm", "run-2", wait=1.0, cancel=Cancel(), echo=told.append, now=lambda: late[0])  # fmt: skip
    assert told == ["flash: breaking a stale deploy lease of run-1 (expired)"]
    with pytest.raises(LeaseLost) as lost:
        first.guard()
    assert isinstance(lost.value, ApiError) and "stopped writing" in str(lost.value)
    first.release()  # by id and holder: never run-2's lease
    second.guard()
    second.release()
    assert world.emu.templates == {}


@pytest.mark.parametrize("kind", ["deploy", "destroy"])
@pytest.mark.parametrize("call", [1, 2, 3])
def test_found_ctrl_c_while_the_lease_is_being_taken_leaves_no_lease(world: World, kind: str, call: int) -> None:
    """The long stateful run: a deploy interrupted at its first calls left `flash-lease stm` behind.
    Ctrl-C as the lease's list, create or proving list goes out: the run ends with no lease."""
    assert deploy(world, Variant(endpoints=("a",))).error is None
    seen = [0]

    def on_call(_op: str) -> None:
        seen[0] += 1
        if seen[0] == call:
            world.runs[-1].cancel.set()  # the run is listed before its thread starts

    world.emu.on_call = on_call
    run = world.start(kind, Variant(endpoints=("a",), env=(("a", "2"),)))
    world.wait()
    assert run.interrupted, (kind, call, run.error)
    world.check()
