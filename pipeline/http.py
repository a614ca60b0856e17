"""One HTTP session for the control plane: retries for idempotent calls, timeouts, clean errors.

Every failure leaves here as an ApiError naming the operation, the status, RunPod's message
and request id. The API key lives in the session's headers only: never in a repr, an error
message or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pipeline import __version__
from pipeline.errors import ApiError

log = logging.getLogger("flash.http")
DEFAULT_BASE_URL = "https://api.runpod.io"
TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class AmbiguousError(ApiError):
    """A write was sent but no answer came back: it may or may not have been applied."""


def api_key(environ: Mapping[str, str], home: Path) -> str:
    """RUNPOD_API_KEY, else ~/.runpod/config.toml [default] api_key; ApiError (exit 4) if neither."""
    key = environ.get("RUNPOD_API_KEY", "").strip()
    if key:
        return key
    config = home / ".runpod" / "config.toml"
    try:
        key = str(tomllib.loads(config.read_text(encoding="utf-8")).get("default", {}).get("api_key", "")).strip()
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        key = ""
    if not key:
        raise ApiError(
            "credentials",
            "no RunPod API key: RUNPOD_API_KEY is not set and ~/.runpod/config.toml has none",
            hint="export RUNPOD_API_KEY=… (create one at runpod.io → Settings → API Keys)",
        )
    return key


class Client:
    """The control-plane session. Idempotent methods retry on 429/5xx, honouring Retry-After."""

    def __init__(
        self, base_url: str, key: str, *, retries: int = 5, backoff_factor: float = 0.5, backoff_max: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        retry = Retry(
            total=retries,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "PUT", "DELETE", "PATCH"}),  # our PATCHes carry absolute values
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=32))
        self.session.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=32))
        self.session.headers.update(
            {
                "Authorization": f"Bearer {key}",
                "User-Agent": f"flash-pipeline/{__version__}",
                "Accept": "application/json",
            }
        )
        self.calls: list[tuple[str, str]] = []  # (method, path) of every call: for reports and tests

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, key=<redacted>)"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Client:
        env = os.environ if environ is None else environ
        return cls(env.get("RUNPOD_API_BASE_URL", DEFAULT_BASE_URL), api_key(env, Path.home()))

    def probe(self, url: str) -> int | str:
        """GET a data-plane URL once (no retries: the health gate has its own backoff)."""
        if not hasattr(self, "_plain"):
            self._plain = requests.Session()
            self._plain.headers.update(
                {k: v for k, v in self.session.headers.items() if k in ("Authorization", "User-Agent")}
            )
        try:
            return self._plain.get(url, timeout=(5, 10)).status_code
        except requests.Timeout:
            return "timeout"
        except requests.RequestException as exc:
            return f"connection error ({type(exc).__name__})"

    def event_lines(self, operation: str, path: str, *, limit: int, seconds: float = 3.0) -> list[str]:
        """Up to `limit` `line` fields of a Server-Sent Events stream (worker logs), read for at most `seconds`."""
        import time

        lines: list[str] = []
        deadline = time.monotonic() + seconds
        try:
            with self.session.get(self.base_url + path, stream=True, timeout=(5, seconds)) as response:
                if response.status_code >= 400:
                    raise _api_error(operation, response)
                for raw in response.iter_lines(decode_unicode=True):
                    if raw and raw.startswith("data:"):
                        try:
                            lines.append(str(json.loads(raw[5:]).get("line", "")))
                        except (ValueError, AttributeError):
                            lines.append(raw[5:].strip())
                    if len(lines) >= limit or time.monotonic() > deadline:
                        break
        except requests.RequestException:
            pass  # logs are a courtesy in an error report: never the cause of one
        return [self.redact(line) for line in lines]

    def redact(self, text: str) -> str:
        return text.replace(self._key, "<redacted>") if self._key else text

    def request(
        self, operation: str, method: str, path: str, body: Any = None, *, timeout: tuple[float, float] = TIMEOUT
    ) -> Any:
        """Call the API; the decoded JSON answer (None for 204). ApiError on any failure."""
        self.calls.append((method, path))
        log.debug("%s %s", method, path)
        try:
            response = self.session.request(method, self.base_url + path, json=body, timeout=timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            reason = self.redact(type(exc).__name__)
            error = AmbiguousError if method == "POST" else ApiError
            raise error(
                operation,
                f"{operation}: no answer from {self.base_url} ({reason})",
                hint="check the network and RUNPOD_API_BASE_URL",
            ) from None
        except requests.RequestException as exc:
            raise ApiError(operation, f"{operation}: request failed ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise _api_error(operation, response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                operation,
                f"{operation}: the API answered {response.status_code} with something that is not JSON",
                status=response.status_code,
            ) from None


def _api_error(operation: str, response: requests.Response) -> ApiError:
    status = response.status_code
    request_id = response.headers.get("X-Request-Id") or response.headers.get("Cf-Ray")
    message = _problem_message(response)
    hints = {
        401: "the API key was refused: check RUNPOD_API_KEY",
        403: "the API key lacks permission for this",
        429: "rate limited: try again in a minute",
    }
    return ApiError(
        operation,
        f"{operation}: HTTP {status}: {message}",
        status=status,
        request_id=request_id,
        hint=hints.get(status, ""),
    )


def _problem_message(response: requests.Response) -> str:
    """RFC 9457 detail (+ the individual errors), or the title of an HTML error page."""
    content_type = response.headers.get("Content-Type", "")
    if "json" in content_type:
        try:
            problem = response.json()
        except ValueError:
            return "unreadable error body"
        if isinstance(problem, dict):
            detail = str(
                problem.get("detail") or problem.get("title") or problem.get("error") or json.dumps(problem)[:200]
            )
            errors = problem.get("errors")
            return detail + (f" ({'; '.join(map(str, errors[:5]))})" if isinstance(errors, list) and errors else "")
    title = re.search(r"<title>(.*?)</title>", response.text, re.I | re.S)
    if title:
        return f"an HTML error page ({title.group(1).strip()[:80]})"
    return response.text.strip()[:200] or response.reason or "no detail"
