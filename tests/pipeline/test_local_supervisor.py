"""The local supervisor's apply, in process: what an apply reports when a port is taken part-way
(two apps deployed at the same moment: both probe 8080 free, one binds it first)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from flash_pipeline.targets.local.balancer import EndpointSpec
from flash_pipeline.targets.local.supervisor import Supervisor, _PortInUse


def spec(key: str, port: int, tmp_path: Path, min_workers: int = 0) -> EndpointSpec:
    return EndpointSpec(key, f"app-{key}", str(tmp_path), "0" * 64, {}, min_workers, 1, 1, 60, port)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_apply_that_finds_a_port_taken_stops_what_it_made_and_the_next_reports_it_created(tmp_path: Path) -> None:
    async def scenario() -> tuple[dict[str, str], dict[str, str], list[str]]:
        supervisor = Supervisor(tmp_path, tmp_path / "sock")
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = int(held.getsockname()[1])
        first = spec("a", free_port(), tmp_path)
        try:
            with pytest.raises(_PortInUse) as raised:
                await supervisor._apply([first, spec("b", taken, tmp_path)])
            assert raised.value.port == taken
            left = sorted(supervisor.endpoints)  # nothing of the failed apply keeps running
            changes = await supervisor._apply([spec("a", first.port, tmp_path), spec("b", free_port(), tmp_path)])
            again = await supervisor._apply([spec("a", first.port, tmp_path)])
        finally:
            held.close()
            for endpoint in supervisor.endpoints.values():
                await endpoint.stop()
        return changes, again, left

    changes, again, left = asyncio.run(scenario())
    assert left == []
    assert changes == {"a": "created", "b": "created"}
    assert again == {"a": "unchanged", "b": "removed"}
