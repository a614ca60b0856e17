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
import threading
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from flash_pipeline import __version__
from flash_pipeline.errors import ApiError
from flash_runtime.backoff import Backoff

log = logging.getLogger("flash.http")
DEFAULT_BASE_URL = "https://api.runpod.io"
TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_CAP = 60.0  # a Retry-After longer than this is waited for this long, then tried again


class AmbiguousError(ApiError):
    """A write was sent but no answer came back: it may or may not have been applied."""


def api_key(environ: Mapping[str, str], home: Path) -> str:
    """RUNPOD_API_KEY, else ~/.runpod/config.toml [default] api_key; ApiError (exit 4) if neither."""
    key = environ.get("RUNPOD_API_KEY", "").strip()
    if key:
        return key
    key = _config_key(home / ".runpod" / "config.toml")
    if not key:
        raise ApiError(
            "credentials",
            "no RunPod API key: RUNPOD_API_KEY is not set and ~/.runpod/config.toml has none",
            hint="export RUNPOD_API_KEY=… (create one at runpod.io → Settings → API Keys)",
        )
    return key


def _config_key(config: Path) -> str:
    """[default] api_key of runpodctl's config file; "" when the file is absent or has none."""
    shown = "~/.runpod/config.toml"

    def unusable(why: str, hint: str) -> ApiError:
        return ApiError("credentials", f"{shown} {why}", hint=f"{hint}, or export RUNPOD_API_KEY=…")

    try:
        raw = config.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return ""
    except OSError as exc:
        raise unusable(f"cannot be read ({exc.strerror or exc})", "check its permissions") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))  # -sig: a byte-order mark some editors write is fine
    except UnicodeDecodeError:
        raise unusable("is not UTF-8 text", "save it as UTF-8 (`runpodctl config` writes it so)") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        # The message names a position, never the file's content: it may hold the key.
        where = str(exc) if isinstance(exc, tomllib.TOMLDecodeError) else "nested too deeply"
        raise unusable(f"is not valid TOML ({where})", "fix or remove it") from None
    default = data.get("default")
    return str(default.get("api_key", "")).strip() if isinstance(default, dict) else ""


class _Retry(Retry):
    """urllib3's Retry, with Retry-After capped and every wait on it reported (progress output)."""

    notify: Callable[[float], None] | None = None

    def new(self, **kw: Any) -> _Retry:
        fresh = super().new(**kw)
        fresh.notify = self.notify
        return fresh

    def parse_retry_after(self, retry_after: str) -> float:
        return min(RETRY_AFTER_CAP, super().parse_retry_after(retry_after))

    def sleep_for_retry(self, response: Any) -> bool:
        seconds = self.get_retry_after(response)
        if seconds and self.notify is not None:
            self.notify(seconds)
        return super().sleep_for_retry(response)


class Client:
    """The control-plane session: the one retry layer (urllib3's Retry), timeouts, clean errors.

    Idempotent calls (GET, PATCH with absolute values, DELETE, GraphQL queries) retry on 429 and
    5xx. Writes that are not idempotent (creates, GraphQL mutations) retry only on 429 and on
    connection failures before anything was sent: a 5xx or a lost answer may hide an applied
    write, which only the caller can resolve (by listing again).
    """

    def __init__(
        self, base_url: str, key: str, *, retries: int = 5, backoff_factor: float = 0.5, backoff_max: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._local = threading.local()  # the operation each thread is running, for retry reports
        self.on_wait: Callable[[str], None] | None = None  # progress output for Retry-After waits
        # One backoff for the sessions' Retry (urllib3 sleeps factor * 2**(n-1), capped) and the
        # backends' own loops over ambiguous writes (backoff.delay(attempt)).
        self.backoff = Backoff(initial=backoff_factor, factor=2.0, cap=backoff_max, jitter=0.0)
        idempotent = _Retry(
            total=retries,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,  # only idempotent calls use this session
            backoff_factor=self.backoff.initial,
            backoff_max=self.backoff.cap,
            raise_on_status=False,
        )
        writes = _Retry(
            total=retries,
            read=0,  # an answer lost after sending: the write may have been applied
            other=0,
            status_forcelist={429},  # a 429 applied nothing; a 5xx may have
            allowed_methods=frozenset({"POST"}),
            backoff_factor=self.backoff.initial,
            backoff_max=self.backoff.cap,
            raise_on_status=False,
        )
        headers = {
            **self.auth_headers(),
            "User-Agent": f"flash-pipeline/{__version__}",
            "Accept": "application/json",
        }
        self.session = self._session(idempotent, headers)
        self.write_session = self._session(writes, headers)
        self.calls: list[tuple[str, str]] = []  # (method, path) of every call: for reports and tests

    def _session(self, retry: _Retry, headers: Mapping[str, str]) -> requests.Session:
        retry.notify = self._waiting
        session = requests.Session()
        session.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=32))
        session.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=32))
        session.headers.update(headers)
        return session

    def _waiting(self, seconds: float) -> None:
        operation = getattr(self._local, "operation", "a call")
        message = f"RunPod asked to wait (Retry-After): retrying {operation} in {seconds:.0f}s"
        log.debug("%s", message)
        if self.on_wait is not None:
            self.on_wait(message)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, key=<redacted>)"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Client:
        env = os.environ if environ is None else environ
        return cls(env.get("RUNPOD_API_BASE_URL", DEFAULT_BASE_URL), api_key(env, Path.home()))

    def _data_plane(self) -> requests.Session:
        """A session without retries for the data plane (the health gate has its own backoff)."""
        if not hasattr(self, "_plain"):
            self._plain = requests.Session()
            self._plain.headers.update(
                {k: v for k, v in self.session.headers.items() if k in ("Authorization", "User-Agent")}
            )
        return self._plain

    def probe(self, url: str) -> int | str:
        """GET a data-plane URL once: its status, or why there was none."""
        try:
            return self._data_plane().get(url, timeout=(5, 10)).status_code
        except requests.Timeout:
            return "timeout"
        except requests.RequestException as exc:
            return f"connection error ({type(exc).__name__})"

    def probe_build(self, url: str) -> str | None:
        """The `build` a worker's GET /manifest reports; None when there is none to read (an older
        worker without /manifest, an error page, no answer)."""
        try:
            answer = self._data_plane().get(url, timeout=(5, 10))
            build = answer.json().get("build") if answer.status_code == 200 else None
        except (requests.RequestException, ValueError, AttributeError):
            return None
        return str(build) if build else None

    def auth_headers(self) -> dict[str, str]:
        """What a request to an endpoint's URL carries: the API key (RunPod LB URLs require one)."""
        return {"Authorization": f"Bearer {self._key}"}

    def redact(self, text: str) -> str:
        return text.replace(self._key, "<redacted>") if self._key else text

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: tuple[float, float] = TIMEOUT,
        idempotent: bool | None = None,
    ) -> Any:
        """Call the API; the decoded JSON answer (None for 204). ApiError on any failure.

        `idempotent` defaults to "not a POST"; a POST that only reads (a GraphQL query) passes True.
        """
        safe = method != "POST" if idempotent is None else idempotent
        self.calls.append((method, path))
        self._local.operation = operation
        log.debug("%s %s", method, path)
        session = self.session if safe else self.write_session
        try:
            response = session.request(method, self.base_url + path, json=body, timeout=timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            reason = self.redact(type(exc).__name__)
            error = ApiError if safe else AmbiguousError
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
