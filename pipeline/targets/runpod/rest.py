"""The RunPod REST v2 backend (the default): GET/POST/PATCH/DELETE /v2/serverless…, /v2/templates,
and each worker's log stream. Bodies pass through as they are (flash_pipeline.targets.runpod.bodies)."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from flash_pipeline.errors import ApiError
from flash_pipeline.targets.runpod import sse
from flash_pipeline.targets.runpod.api import AmbiguousError, Client
from flash_pipeline.targets.runpod.backend import Rollout, Template, WorkerSummary
from flash_pipeline.targets.runpod.bodies import LEASE_IMAGE, EndpointBody, LiveEndpoint, Patch

CREATE_ATTEMPTS = 4


class RestBackend:
    """GET/POST/PATCH/DELETE /v2/serverless… through one Client."""

    name = "rest"

    def __init__(self, client: Client, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.sleep = sleep

    def list(self) -> list[LiveEndpoint]:
        answer = self.client.request("list endpoints", "GET", "/v2/serverless")
        endpoints = answer.get("endpoints") if isinstance(answer, dict) else None
        if not isinstance(endpoints, list):
            raise ApiError("list endpoints", "list endpoints: unexpected answer shape (no endpoints list)")
        return cast(list[LiveEndpoint], endpoints)

    def unsupported(self, body: EndpointBody) -> builtins.list[str]:
        return []  # REST v2 expresses every field flash sets

    def create(self, body: EndpointBody, known: Callable[[], LiveEndpoint | None]) -> LiveEndpoint:
        """POST once; when the answer is lost or a 5xx (the create may have been applied), ask `known`
        (a fresh listing) before trying again, so a retry never makes a duplicate.

        429s are retried by the client's Retry (they apply nothing); this loop only resolves
        ambiguity, and sleeps the same backoff between attempts.
        """
        name = str(body["name"])
        for attempt in range(CREATE_ATTEMPTS):
            try:
                created: LiveEndpoint = self.client.request(f"create {name}", "POST", "/v2/serverless", dict(body))
                return created
            except ApiError as exc:
                if not _ambiguous(exc) or attempt == CREATE_ATTEMPTS - 1:
                    raise
            found = known()
            if found is not None:
                return found
            self.sleep(self.client.backoff.delay(attempt))
        raise AssertionError("unreachable")

    def update(self, endpoint_id: str, patch: Patch, name: str) -> LiveEndpoint:
        updated: LiveEndpoint = self.client.request(
            f"update {name}", "PATCH", f"/v2/serverless/{endpoint_id}", dict(patch)
        )
        return updated

    def delete(self, endpoint_id: str, name: str) -> None:
        try:
            self.client.request(f"delete {name}", "DELETE", f"/v2/serverless/{endpoint_id}")
        except ApiError as exc:
            if exc.status != 404:  # already gone is what we wanted
                raise

    def templates(self) -> builtins.list[Template]:
        answer = self.client.request("list templates", "GET", "/v2/templates")
        return list(answer.get("templates") or []) if isinstance(answer, dict) else []

    def template(self, template_id: str) -> Template | None:
        """One template by id; None once it is gone."""
        try:
            answer = self.client.request("read the deploy lease", "GET", f"/v2/templates/{template_id}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return cast(Template, dict(answer)) if isinstance(answer, dict) else None

    def create_template(self, name: str, env: Mapping[str, str]) -> str:
        """A template used as a lease (template names are unique on an account); its id."""
        body = {"name": name, "image": LEASE_IMAGE, "env": dict(env), "serverless": True}
        body |= {"startSsh": False, "startJupyter": False}
        answer = self.client.request(f"create template {name}", "POST", "/v2/templates", body)
        return str(answer["id"])

    def update_template(self, template_id: str, env: Mapping[str, str]) -> None:
        self.client.request("renew the deploy lease", "PATCH", f"/v2/templates/{template_id}", {"env": dict(env)})

    def delete_template(self, template_id: str, name: str) -> None:
        try:
            self.client.request(f"delete template {name}", "DELETE", f"/v2/templates/{template_id}")
        except ApiError as exc:
            if exc.status != 404:
                raise

    def rollout(self, endpoint_id: str, name: str) -> Rollout:
        answer = self.client.request(f"rollout of {name}", "GET", f"/v2/serverless/{endpoint_id}/releases")
        return cast(Rollout, dict(answer.get("rollout") or {})) if isinstance(answer, dict) else {}

    def _workers(self, endpoint_id: str, name: str) -> Any:
        return self.client.request(f"workers of {name}", "GET", f"/v2/serverless/{endpoint_id}/workers")

    def workers(self, endpoint_id: str, name: str) -> WorkerSummary:
        answer = self._workers(endpoint_id, name)
        if not isinstance(answer, dict):
            return {}
        summary = cast(WorkerSummary, dict(answer.get("summary") or {}))
        summary["stale"] = sum(1 for w in answer.get("workers") or [] if w.get("isStale"))
        failing = [w for w in answer.get("workers") or [] if w.get("status") in ("UNHEALTHY", "INITIALIZING")]
        if failing:  # the last log lines of one failing worker say more than any count
            worker = str(failing[0]["id"])
            summary["logs"] = self._last_lines(endpoint_id, worker, limit=5)
            summary["worker"] = worker
        return summary

    def log_workers(self, endpoint_id: str, name: str) -> builtins.list[str]:
        answer = self._workers(endpoint_id, name)
        return [str(worker["id"]) for worker in (answer or {}).get("workers") or []]

    def logs(
        self, endpoint_id: str, worker_id: str, query: str, *, last_event_id: str = "", idle: float | None
    ) -> Iterator[sse.Event]:
        url = f"{self.client.base_url}/v2/serverless/{endpoint_id}/workers/{worker_id}/logs?{query}"
        return sse.connect(self.client.session, url, last_event_id=last_event_id, idle=idle)

    def _last_lines(self, endpoint_id: str, worker_id: str, *, limit: int, seconds: float = 3.0) -> builtins.list[str]:
        """Up to `limit` lines of a worker's log stream, read for at most `seconds`. Logs are a
        courtesy in an error report: a stream that is refused or broken gives what it gave, never a
        failure."""
        lines: builtins.list[str] = []
        deadline = time.monotonic() + seconds
        url = f"{self.client.base_url}/v2/serverless/{endpoint_id}/workers/{worker_id}/logs?tail={limit}"
        try:
            for event in sse.connect(self.client.session, url, idle=seconds, connect_timeout=5):
                lines.append(sse.log_line(event)[1])
                if len(lines) >= limit or time.monotonic() > deadline:
                    break
        except sse.StreamRefused:
            pass
        return [self.client.redact(line) for line in lines]


def _ambiguous(exc: ApiError) -> bool:
    """A failure after which a write may or may not have been applied."""
    return isinstance(exc, AmbiguousError) or (exc.status or 0) >= 500
