"""Several configs in one command (-c repeated, or a glob): every block and every error line
names its app, and a row and its summary always say the same thing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from flash_pipeline import report
from flash_pipeline.targets.gate import GateResult
from flash_pipeline.targets.runpod.converge import Outcome

REPO = Path(__file__).resolve().parents[2]
GLOB = "services/*/flash.toml"
BROKEN = 'cpu = "cpu3c-4-8"\nimage = "ghcr.io/acme/broken:unhealthy"'


def _service(root: Path, app: str, broken: bool = False) -> None:
    folder = root / "services" / app
    shutil.copytree(REPO / "examples", folder / "examples")
    text = (REPO / "flash.toml.example").read_text().replace('name = "demo"', f'name = "{app}"')
    if broken:
        text = text.replace('cpu = "cpu3c-4-8"               # <flavor>-<vCPU>-<RAM GB>', BROKEN)
    (folder / "flash.toml").write_text(text)


def _steady(text: str) -> str:
    """Times vary from run to run: every `1.2s` becomes `Ns`; a cold start is seen or not."""
    return re.sub(r"\d+\.\ds", "Ns", text).replace(" (cold start Ns)", "")


def test_deploy_status_destroy_of_several_configs_name_each_app(tmp_path: Path, flash, emulator) -> None:
    _service(tmp_path, "svc-a")
    _service(tmp_path, "svc-b", broken=True)
    deployed = flash("deploy", "-c", GLOB, "--health-timeout", "1", cwd=tmp_path)
    assert deployed.code == 5
    ids = {e.body["name"]: i for i, e in emulator.endpoints.items()}

    def row(app: str, key: str, word: str, tail: str) -> str:
        endpoint_id = ids[f"{app}-{key}"]
        return f"{key.ljust(13)}  {word:<11}  {endpoint_id}  {emulator.url}/lb/{endpoint_id}{tail}"

    left = f"  (the new endpoint {ids['svc-b-data-api']} is left for inspection; fix it and deploy again, or remove it with `flash destroy`)"
    assert _steady(deployed.out) == "\n".join(
        [
            "deploy of svc-a:",
            row("svc-a", "inference-api", "created", "  healthy in Ns"),
            row("svc-a", "data-api", "created", "  healthy in Ns"),
            "flash: svc-a: deployed to RunPod: 2 created, 0 updated, 0 unchanged, 0 deleted, 0 orphaned",
            "",
            "deploy of svc-b:",
            row("svc-b", "inference-api", "created", "  healthy in Ns"),
            row("svc-b", "data-api", "failed", "  NOT healthy (HTTP 503)" + left),
            "flash: svc-b: deploy to RunPod failed: 1 created, 0 updated, 1 failed, 0 unchanged, 0 deleted, 0 orphaned",
            "",
        ]
    )
    err = deployed.err.splitlines()
    errors = err[next(n for n, line in enumerate(err) if line.startswith("flash: error:")) :]  # after the progress
    assert (
        errors
        == [
            "flash: error: svc-b: data-api: not healthy after 1s (last /ping: HTTP 503); workers: 1 unhealthy",
            f"  last log lines of worker w-{ids['svc-b-data-api']}:",  # indented: part of the line above
            "    Starting flash worker",
            "    Traceback (most recent call last):",
            "    RuntimeError: model weights missing",
            "  availability now: HIGH (EU-RO-1)",  # the gate's diagnosis (diagnose.py)
            "  spend, last 24 h: $0.00",
            f"  hint: svc-b: data-api: {left.strip()[1:-1]}",
        ]
    )

    status = flash("status", "-c", GLOB, cwd=tmp_path)
    assert status.code == 0, status.err
    blocks = status.out.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["status of svc-a on RunPod:", "status of svc-b on RunPod:"]
    rows = [line for line in blocks[1].splitlines() if line.startswith("data-api  ")]  # diagnosis lines follow rows
    assert len(rows) == 1 and rows[0].startswith(f"data-api  {ids['svc-b-data-api']}  ")

    destroyed = flash("destroy", "-c", GLOB, "--yes", cwd=tmp_path)
    assert destroyed.code == 0, destroyed.err
    lines = destroyed.out.splitlines()
    assert lines[0] == "flash: 2 RunPod endpoints of svc-a to delete:"
    assert lines[4] == "flash: 2 RunPod endpoints of svc-b to delete:"
    assert emulator.endpoints == {}
    again = flash("destroy", "-c", GLOB, "--yes", cwd=tmp_path)
    assert again.out == "flash: nothing of svc-a to delete on RunPod\nflash: nothing of svc-b to delete on RunPod\n"


def test_a_plan_that_fails_for_one_app_names_it_and_plans_the_others(tmp_path: Path, flash, emulator) -> None:
    _service(tmp_path, "svc-a")
    _service(tmp_path, "svc-b")
    lists = []

    def draw() -> str | None:  # the first listing of endpoints fails (whichever app sent it)
        if emulator.calls[-1] == ("GET", "/v2/serverless"):
            lists.append(1)
            return "404" if len(lists) == 1 else None
        return None

    emulator.faults.draw = draw
    planned = flash("plan", "-c", GLOB, "--format", "json", cwd=tmp_path)
    assert planned.code == 4
    apps = json.loads(planned.out)["apps"]  # every app, the failed one with its error
    [failed] = [a["app"] for a in apps if a["error"] is not None]
    [ok] = [a for a in apps if a["error"] is None]
    assert ok["ok"] and ok["actions"] and [a["error"]["exit_code"] for a in apps if a["app"] == failed] == [4]
    assert [sorted(a) for a in apps] == [sorted(ok)] * 2  # a failed app has the same keys, empty
    assert planned.err.startswith(f"flash: error: {failed}: ")
    assert planned.err.count("flash: error:") == 1, planned.err


OUTCOMES = st.builds(
    Outcome,
    key=st.sampled_from(["api", "inference", "embed"]),
    name=st.just("app-x"),
    action=st.sampled_from(
        ["pending", "created", "updated", "replacing", "replaced", "adopted", "rolled back", "failed"]
        + ["not deployed", "unchanged", "deleted", "orphaned"]
    ),
    endpoint_id=st.sampled_from(["", "ep1"]),
    gate=st.one_of(
        st.none(),
        st.builds(
            GateResult, healthy=st.booleans(), waited=st.just(1.0), last_status=st.just("HTTP 503"), probes=st.just(1)
        ),
    ),
    error=st.sampled_from(["", "boom"]),
)


@given(st.lists(OUTCOMES, min_size=1, max_size=6), st.sampled_from([None, "app-x"]))
def test_rows_and_summary_say_the_same(outcomes: list[Outcome], app: str | None) -> None:
    lines = report.runpod_deploy_text(outcomes, app).splitlines()
    rows = lines[1:-1] if app else lines[:-1]
    words = [re.split(r"\s{2,}", row)[1] for row in rows]
    counts = dict((kind, int(n)) for n, kind in (part.split(" ", 1) for part in lines[-1].split(": ")[-1].split(", ")))
    assert {w: words.count(w) for w in words} == {k: n for k, n in counts.items() if n}
    failed = sum(
        1 for o in outcomes if o.action == "failed" or (o.error and o.action not in ("rolled back", "not deployed"))
    )
    assert counts.get("failed", 0) == failed
    assert lines[-1].startswith(f"flash: {app}: " if app else "flash: deploy")
    table = report.runpod_summary_markdown("app-x", outcomes).splitlines()[4:]
    assert [line.split(" | ")[1] for line in table] == words


def test_status_and_destroy_of_several_configs_on_the_local_target(tmp_path: Path, flash) -> None:
    _service(tmp_path, "svc-a")
    _service(tmp_path, "svc-b")
    status = flash("status", "-c", GLOB, "--target", "local", cwd=tmp_path)
    assert status.code == 0, status.err
    block = [
        "inference-api  not running",
        "data-api       not running",
        "flash: nothing is running on the local target",
    ]
    assert status.out.split("\n\n") == [
        "\n".join(["status of svc-a on the local target:", *block]),
        "\n".join(["status of svc-b on the local target:", *block]) + "\n",
    ]
    as_json = json.loads(flash("status", "-c", GLOB, "--target", "local", "--format", "json", cwd=tmp_path).out)
    assert [(a["app"], a["running"]) for a in as_json["apps"]] == [("svc-a", False), ("svc-b", False)]
    destroyed = flash("destroy", "-c", GLOB, "--target", "local", "--yes", cwd=tmp_path)
    assert destroyed.out == (
        "flash: nothing of svc-a was running on the local target\n"
        "flash: nothing of svc-b was running on the local target\n"
    )


def test_one_invalid_config_stops_every_app_before_anything_is_sent(tmp_path: Path, flash, emulator) -> None:
    _service(tmp_path, "svc-a")
    _service(tmp_path, "svc-b")
    config = tmp_path / "services" / "svc-b" / "flash.toml"
    config.write_text(config.read_text().replace("workers = [1, 3]", "workers = [3, 1]"))
    for command in ("status", "destroy"):
        result = flash(command, "-c", GLOB, "--yes" if command == "destroy" else "--format=text", cwd=tmp_path)
        assert result.code == 2
        assert result.err.startswith("services/svc-b/flash.toml:")
    assert emulator.calls == []
