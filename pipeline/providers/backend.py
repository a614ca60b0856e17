"""What the RunPod deploy needs from a control-plane backend (REST v2 or GraphQL).

Both speak REST v2-shaped endpoint dicts, so planning, gating and reporting are shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pipeline.http import Client


class Backend(Protocol):
    name: str
    client: Client

    def list(self) -> list[dict[str, Any]]: ...

    def find(self, name: str) -> dict[str, Any] | None: ...

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def update(self, endpoint_id: str, patch: Mapping[str, Any], name: str) -> dict[str, Any]: ...

    def delete(self, endpoint_id: str, name: str) -> None: ...

    def rollout(self, endpoint_id: str, name: str) -> dict[str, Any]: ...

    def worker_summary(self, endpoint_id: str, name: str) -> dict[str, Any]: ...
