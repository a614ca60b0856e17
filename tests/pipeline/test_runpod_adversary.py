"""What a new user (and CI) broke in the RunPod target after issue 22, each as real `flash`
processes (or the Action's step) against the emulator on loopback, signals sent at chosen calls.

Each test reproduces one bug found by trying, and the fix; what held is listed in the report.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from unittest.mock import ANY

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)  # where `flash` is installed beside this Python


def config(
    *keys: str,
    calls: tuple[tuple[str, str], ...] = (),
    gpu: tuple[str, ...] = (),
    big: tuple[str, ...] = (),
    mothership: bool = False,
    unhealthy: tuple[str, ...] = (),
) -> str:
    lines = ['[app]\nname = "adv"\nregistry = "ghcr.io/acme"\nsource = "src"\ncall_key = "{{ RUNPOD_SECRET_calls }}"\n']
    if mothership:
        lines.append("[mothership]\n")
    for key in keys:
        lines.append(f"[endpoints.{key}]")
        lines.append(
            'gpu = "ADA_24"' if key in gpu else f'cpu = "cpu3c-{4 if key in big else 2}-{8 if key in big else 4}"'
        )
        if key in unhealthy:  # the emulator's workers of such an image never answer /ping 200
            lines.append(f'image = "ghcr.io/acme/unhealthy-{key}:1"')
        callees = [c for k, c in calls if k == key]
        if callees:
            lines.append(f"calls = {json.dumps(callees)}")
        lines.append(f'[endpoints.{key}.routes]\n"GET /x" = "app.handlers:health"\n')
    return "\n".join(lines)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "examples" / "demo", tmp_path / "src")
    return tmp_path


def environ(emulator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB", "FLASH_", "RUNPOD_"))}
    env |= {
        "RUNPOD_API_BASE_URL": emulator.url,
        "RUNPOD_API_KEY": emulator.api_key,
        "RUNPOD_LB_URL_TEMPLATE": emulator.url + "/lb/{endpoint_id}",
        "FLASH_NO_REGISTRY_CHECK": "1",
        "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
    }
    return env | extra


def names(emulator) -> Counter[str]:
    return Counter(str(d.body.get("name")) for d in emulator.endpoints.values())


def leases(emulator) -> list[str]:
    return [t["name"] for t in emulator.templates.values() if str(t["name"]).startswith("flash-lease")]


# -- the Action cancelled ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGINT to the step's process group", "SIGTERM to the step"])
def test_a_cancelled_action_lets_flash_stop_cleanly_and_prints_its_report(app: Path, emulator, how: str) -> None:
    """A workflow cancelled during a deploy: the step used subprocess.run, which kills flash 0.25 s
    after a SIGINT (the lease was left, no report, a traceback from run.py), and on a SIGTERM to the
    step alone flash went on deploying unseen while the step died without its report."""
    (app / "flash.toml").write_text(config("a", "b", calls=(("a", "b"),)))
    outputs = app / "github_output"
    env = environ(emulator, FLASH_COMMAND="deploy", FLASH_ARGS="--no-build", GITHUB_OUTPUT=str(outputs))
    step: list[subprocess.Popen[str]] = []

    def cancel_the_workflow() -> None:  # b is made on the account; its answer has not come back yet
        if how.startswith("SIGINT"):
            os.killpg(step[0].pid, signal.SIGINT)
        else:
            step[0].send_signal(signal.SIGTERM)

    emulator.after["create"] = cancel_the_workflow
    step.append(
        subprocess.Popen(
            [sys.executable, str(REPO / "action" / "run.py")],
            cwd=app,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a group of its own, as the runner gives the step
        )
    )
    out, err = step[0].communicate(timeout=60)
    assert step[0].returncode == 130, err
    assert "Traceback" not in err
    [made] = [i for i, d in emulator.endpoints.items() if d.body["name"] == "adv-b"]
    # stdout is deploy's JSON document (the Action reads it); the report for people is on stderr
    assert f"  b: created {made} (health not confirmed)" in err.splitlines()
    assert "  a: not changed" in err.splitlines()
    rows = json.loads(out)["apps"][0]["endpoints"]
    assert (rows["b"]["action"], rows["b"]["id"], rows["a"]["action"]) == ("created", made, "pending")
    assert names(emulator) == Counter({"adv-b": 1})  # a was never created: flash stopped
    assert leases(emulator) == []
    written = json.loads(outputs.read_text().removeprefix("endpoints="))
    assert list(written) == ["b"] and written["b"]["id"] == made  # the endpoint it made, not {}


# -- Ctrl-C while an update is in flight ---------------------------------------------------------


def deploy(app: Path, emulator, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flash_pipeline", "deploy", "--no-build", *args],
        cwd=app,
        env=environ(emulator),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ctrl_c_while_an_update_is_in_flight_reports_the_update_the_account_shows(app: Path, emulator) -> None:
    """The report said `b: not changed` while b's PATCH had landed (creates were looked up, updates
    were not): an update in flight is looked up too before the report is printed."""
    import threading

    (app / "flash.toml").write_text(config("a", "b", calls=(("a", "b"),)))
    first = deploy(app, emulator)
    assert first.wait(60) == 0, first.communicate()
    (app / "flash.toml").write_text(config("a", "b", calls=(("a", "b"),), big=("b",)))
    [b] = [i for i, d in emulator.endpoints.items() if d.body["name"] == "adv-b"]
    answered = threading.Event()
    run: list[subprocess.Popen[str]] = []

    def after_update() -> None:  # applied on the account; the answer comes only after the report (or 30 s)
        run[0].send_signal(signal.SIGINT)
        answered.wait(30)

    emulator.after["update"] = after_update
    run.append(deploy(app, emulator))
    out, err = run[0].communicate(timeout=60)
    answered.set()
    assert run[0].returncode == 130, err
    assert emulator.endpoints[b].body["cpu"][0]["vcpuCount"] == 4  # the PATCH landed
    assert f"  b: updated {b} (health not confirmed)" in out.splitlines()  # not "not changed"
    assert "  a: not changed" in out.splitlines()
    assert leases(emulator) == []


def test_ctrl_c_while_a_rollback_is_in_flight_reports_it_rolled_back(app: Path, emulator) -> None:
    """b's new image fails its gate and is rolled back; Ctrl-C as the rollback's PATCH lands: the
    report said `b: updated` for an endpoint back on its previous spec."""
    import threading

    (app / "flash.toml").write_text(config("a", "b", calls=(("a", "b"),)))
    assert deploy(app, emulator).wait(60) == 0
    [b] = [i for i, d in emulator.endpoints.items() if d.body["name"] == "adv-b"]
    image = emulator.endpoints[b].body["image"]
    (app / "flash.toml").write_text(config("a", "b", calls=(("a", "b"),), unhealthy=("b",)))
    answered = threading.Event()
    run: list[subprocess.Popen[str]] = []
    updates: list[bool] = []

    def after_update() -> None:  # the second PATCH of b is its rollback
        updates.append(True)
        if len(updates) == 2:
            run[0].send_signal(signal.SIGINT)
            answered.wait(30)

    emulator.after["update"] = after_update
    run.append(deploy(app, emulator, "--timeout", "1"))
    out, err = run[0].communicate(timeout=60)
    answered.set()
    assert run[0].returncode == 130, err
    assert emulator.endpoints[b].body["image"] == image  # the rollback landed
    assert f"  b: rolled back {b} (health not confirmed)" in out.splitlines()
    assert leases(emulator) == []


# -- Ctrl-C while a delete is in flight ----------------------------------------------------------

CHAIN = ("a", "b", "c")
CALLS = (("a", "b"), ("b", "c"))


def interrupt_at_first_delete(emulator, run: list[subprocess.Popen[str]]):
    """SIGINT once the first delete is applied on the account; its answer comes only after the
    report (or 30 s). Returns the Event that lets the answer go."""
    import threading

    answered = threading.Event()
    sent: list[bool] = []

    def after_delete() -> None:
        if not sent:
            sent.append(True)
            run[0].send_signal(signal.SIGINT)
            answered.wait(30)

    emulator.after["delete"] = after_delete
    return answered


def live_names(emulator) -> dict[str, str]:
    return {str(d.body["name"]): i for i, d in emulator.endpoints.items()}


def callers_of_gone(emulator) -> list[str]:
    """Endpoints whose FLASH_ENDPOINTS names an endpoint that is not on the account."""
    bad = []
    for deployed in emulator.endpoints.values():
        for key, url in json.loads(deployed.body.get("env", {}).get("FLASH_ENDPOINTS") or "{}").items():
            if url.rstrip("/").rsplit("/", 1)[-1] not in emulator.endpoints:
                bad.append(f"{deployed.body['name']} -> {key}")
    return bad


def test_ctrl_c_while_a_pruned_endpoint_is_deleted_reports_it_deleted(app: Path, emulator) -> None:
    """`--prune` of c (and of b, which calls it), interrupted as b's delete lands: the report said
    `b: not changed (id)` for an endpoint that was gone."""
    (app / "flash.toml").write_text(config(*CHAIN, calls=CALLS))
    assert deploy(app, emulator).wait(60) == 0
    gone = live_names(emulator)["adv-b"]
    (app / "flash.toml").write_text(config("a"))
    run: list[subprocess.Popen[str]] = []
    answered = interrupt_at_first_delete(emulator, run)
    run.append(deploy(app, emulator, "--prune"))
    out, err = run[0].communicate(timeout=60)
    answered.set()
    assert run[0].returncode == 130, err
    assert gone not in emulator.endpoints  # callers first: b went before c
    assert f"  b: deleted {gone}" in out.splitlines()
    assert "  c: not changed (" in out
    assert callers_of_gone(emulator) == [] and leases(emulator) == []


def test_ctrl_c_while_a_replaced_endpoint_is_deleted_does_not_say_it_is_kept(app: Path, emulator) -> None:
    """A GPU->CPU replace of c, interrupted as the old c's delete lands: the report said `(the old
    endpoint … is kept)` for an endpoint that was gone."""
    (app / "flash.toml").write_text(config(*CHAIN, calls=CALLS, gpu=("c",)))
    assert deploy(app, emulator).wait(60) == 0
    old = live_names(emulator)["adv-c"]
    (app / "flash.toml").write_text(config(*CHAIN, calls=CALLS))
    run: list[subprocess.Popen[str]] = []
    answered = interrupt_at_first_delete(emulator, run)
    run.append(deploy(app, emulator))
    out, err = run[0].communicate(timeout=60)
    answered.set()
    assert run[0].returncode == 130, err
    new = live_names(emulator)["adv-c"]
    assert old not in emulator.endpoints and new != old
    assert f"  c: replaced {new}" in out.splitlines()  # not "(the old endpoint … is kept)"
    assert callers_of_gone(emulator) == [] and leases(emulator) == []


def test_an_interrupted_destroy_deletes_callers_first(app: Path, emulator) -> None:
    """destroy deleted in listing order, callee first: stopped after one delete, it left b calling a
    deleted c. It deletes callers before callees, as prune does."""
    (app / "flash.toml").write_text(config(*CHAIN, calls=CALLS))
    assert deploy(app, emulator).wait(60) == 0
    run: list[subprocess.Popen[str]] = []
    answered = interrupt_at_first_delete(emulator, run)
    run.append(
        subprocess.Popen(
            [sys.executable, "-m", "flash_pipeline", "destroy", "--yes"],
            cwd=app,
            env=environ(emulator),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
    out, err = run[0].communicate(timeout=60)
    answered.set()
    assert run[0].returncode == 130, err
    assert sorted(live_names(emulator)) == ["adv-b", "adv-c"]  # a, the only caller of nothing left, went first
    assert callers_of_gone(emulator) == [] and leases(emulator) == []
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["adv-a", "adv-b", "adv-c"]  # as it deletes


# -- a replace beside a mothership turned off ------------------------------------------------------


def test_a_replaced_callee_kept_for_an_orphan_is_not_what_status_shows_and_prune_frees_it(app: Path, emulator) -> None:
    """The mothership turned off (orphaned, not pruned) while c goes GPU->CPU: the old c is kept
    for the orphan, which is never rewired, yet the note said "deploy again once they are rewired"
    on every deploy, and `flash status` (and `call`, `logs`) showed the old GPU endpoint as c while
    deploy wired everything to the new one: they now take the survivor deploy keeps."""
    (app / "flash.toml").write_text(config(*CHAIN, calls=CALLS, gpu=("c",), mothership=True))
    assert deploy(app, emulator).wait(60) == 0
    old = live_names(emulator)["adv-c"]
    (app / "flash.toml").write_text(config(*CHAIN, calls=CALLS))
    run = deploy(app, emulator)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    new = next(i for i, d in emulator.endpoints.items() if d.body["name"] == "adv-c" and i != old)
    assert (
        f"(adv-c now runs as {new}; the old endpoint {old} is kept: mothership still calls it; "
        "`--prune` deletes mothership (not in the config), then it)"
    ) in out
    status = subprocess.run(
        [sys.executable, "-m", "flash_pipeline", "status"],
        cwd=app,
        env=environ(emulator),
        capture_output=True,
        text=True,
    )
    [row] = [line for line in status.stdout.splitlines() if line.startswith("c  ")]
    assert row.split()[1] == new and f"(duplicates: {old};" in row
    pruned = deploy(app, emulator, "--prune")
    assert pruned.wait(60) == 0
    assert live_names(emulator) == {"adv-a": ANY, "adv-b": ANY, "adv-c": new}
    assert callers_of_gone(emulator) == []


# -- a control plane that answers in over a second ------------------------------------------------


@pytest.mark.parametrize("ended", ["finished", "interrupted"])
def test_a_slow_control_plane_does_not_leave_the_lease_behind(app: Path, emulator, ended: str) -> None:
    """The lease was released in at most 1 s (read + delete, or list + delete after Ctrl-C): with
    an API answering those in 1.5 s, every deploy left its lease, and the next one waited for a
    deploy that had finished (2 minutes, or `--lock-timeout` and exit 4)."""
    import threading

    (app / "flash.toml").write_text(config("a"))
    slow = "template.get" if ended == "finished" else "template.list"  # release reads by id; abandon lists
    run: list[subprocess.Popen[str]] = []
    answered = threading.Event()
    if ended == "interrupted":

        def after_create() -> None:
            run[0].send_signal(signal.SIGINT)
            answered.wait(30)

        emulator.after["create"] = after_create
    emulator.op_latency[slow] = 1.5
    run.append(deploy(app, emulator))
    _, err = run[0].communicate(timeout=90)
    answered.set()
    assert run[0].returncode == (0 if ended == "finished" else 130), err
    assert leases(emulator) == []


# -- many deploys queued on an API that refuses a second template of one name ----------------------


def test_a_run_that_loses_the_race_for_a_freed_lease_again_and_again_keeps_waiting(emulator) -> None:
    """Where RunPod refuses a second template of one name, a waiter whose create lost the race for
    a freed lease (another run took it between its listing and its create) spent one of 3 retries
    each time: the 4th lost race failed the deploy (exit 4, "Template name must be unique") instead
    of waiting its turn. Found with six deploys of one app at once. A clash with a lease the next
    listing shows is a wait, not a failure."""
    import time

    from flash_pipeline.targets.cancel import Cancel
    from flash_pipeline.targets.runpod.api import Client
    from flash_pipeline.targets.runpod.lease import EXPIRES, HOLDER, TAKEN, acquire
    from flash_pipeline.targets.runpod.rest import RestBackend
    from flash_runtime.backoff import Backoff

    assert emulator.unique_template_names
    name, races = "flash-lease adv", [0]
    seen: list[bool] = []

    def another_run_takes_it_first() -> None:  # between our listing and our create
        if races[0] < 6:
            races[0] += 1
            env = {HOLDER: f"run {races[0]}", EXPIRES: str(int(time.time() + 120)), TAKEN: "1.0"}
            emulator.save_template({"name": name, "image": "busybox", "env": env})
            seen.clear()

    def and_finishes_after_we_saw_it() -> None:
        if seen:
            theirs = [i for i, t in emulator.templates.items() if {"key": HOLDER, "value": "us"} not in t["env"]]
            for template_id in theirs:
                del emulator.templates[template_id]
        seen.append(True)

    emulator.hooks["template.create"] = another_run_takes_it_first
    emulator.hooks["template.list"] = and_finishes_after_we_saw_it
    store = RestBackend(Client(emulator.url, emulator.api_key, retries=0))
    held = acquire(
        store,
        name,
        "us",
        wait=60,
        cancel=Cancel(),
        echo=lambda _: None,
        poll=Backoff(initial=0.01, factor=1.0, cap=0.01, jitter=0.0),
    )
    held.release()
    assert races[0] == 6 and held.template_id and leases(emulator) == []
