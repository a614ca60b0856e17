"""What the RunPod deploy needs from a control-plane backend (REST v2 or GraphQL).

Both speak REST v2-shaped endpoint dicts, so planning, gating and reporting are shared.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from flash_pipeline.targets.runpod.api import Client


class Backend(Protocol):
    name: str
    client: Client

    def list(self) -> list[dict[str, Any]]: ...

    def create(self, body: Mapping[str, Any], known: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        """Create; after an ambiguous failure, `known()` (a fresh listing) says whether it was applied."""
        ...

    def update(self, endpoint_id: str, patch: Mapping[str, Any], name: str) -> dict[str, Any]: ...

    def delete(self, endpoint_id: str, name: str) -> None: ...

    def rollout(self, endpoint_id: str, name: str) -> dict[str, Any]: ...

    def worker_summary(self, endpoint_id: str, name: str) -> dict[str, Any]: ...

    # Templates: the deploy lease (flash_pipeline.targets.runpod.lease) and, on GraphQL, each endpoint's container spec.
    def templates(self) -> builtins.list[dict[str, Any]]: ...

    def template(self, template_id: str) -> dict[str, Any] | None: ...

    def create_template(self, name: str, env: Mapping[str, str]) -> str: ...

    def update_template(self, template_id: str, env: Mapping[str, str]) -> None: ...

    def delete_template(self, template_id: str, name: str) -> None: ...
