"""The error tree: every failure a user can cause or meet ends in one of these leaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Exit(IntEnum):
    """flash's exit codes: the one table (README "Exit codes" shows it; a test keeps them equal)."""

    OK = 0  # done
    BUG = 1  # an internal error, a bug in flash: the traceback is shown
    INVALID = 2  # the config is invalid, or the command line asks for what cannot be done
    BUILD = 3  # rendering, writing, an image build or push failed
    API = 4  # a RunPod (or local supervisor) call failed, a conflict, or `flash call` got a non-2xx answer
    UNHEALTHY = 5  # an endpoint never answered /ping 200 (gate timed out or failed), or it cannot start
    CHANGES = 10  # `flash plan --detailed-exitcode` found changes
    INTERRUPTED = 130  # Ctrl-C (SIGINT) or SIGTERM: what was done is reported (a closed output pipe: quietly)


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in a config file; ordered by position so reports read top to bottom."""

    file: str
    line: int
    col: int
    path: str
    message: str
    hint: str = ""
    # What `flash validate --fix` may do about it, when that is safe: ("rename", key path, new
    # key) or ("set", key path, value). Not part of the problem's identity.
    fix: tuple[str, tuple[Any, ...], Any] | None = field(default=None, compare=False, repr=False)


class FlashError(Exception):
    """Base of every expected failure; cli.py prints these without a traceback."""

    exit_code: int = Exit.BUG


class ConfigError(FlashError):
    """The config is invalid; carries every diagnostic found."""

    exit_code = Exit.INVALID

    def __init__(self, diagnostics: list[Diagnostic], consequence: str = "") -> None:
        self.diagnostics = sorted(diagnostics)
        self.consequence = consequence  # what did not happen, e.g. "nothing was built"
        super().__init__(f"{len(self.diagnostics)} problem(s) in the config")


class UsageError(FlashError):
    """The command line asks for something that cannot be done (e.g. overwrite without --force)."""

    exit_code = Exit.INVALID

    def __init__(self, message: str, hint: str = "") -> None:
        self.hint = hint
        super().__init__(message)


class BuildError(FlashError):
    """Rendering, writing or docker build/push failed."""

    exit_code = Exit.BUILD

    def __init__(self, message: str, hint: str = "") -> None:
        self.hint = hint
        super().__init__(message)


class ApiError(FlashError):
    """A control-plane call failed (or provisioning did)."""

    exit_code = Exit.API

    def __init__(
        self, operation: str, message: str, *, status: int | None = None, request_id: str | None = None, hint: str = ""
    ) -> None:
        self.operation = operation
        self.status = status
        self.request_id = request_id
        self.hint = hint
        super().__init__(message)


class HealthError(FlashError):
    """An endpoint did not answer /ping 200 in time."""

    exit_code = Exit.UNHEALTHY

    def __init__(self, endpoint: str, waited: float, last_status: str, hint: str = "", detail: str = "") -> None:
        self.endpoint = endpoint
        self.waited = waited
        self.last_status = last_status
        self.hint = hint
        if detail:  # the target said why (a crash loop, a failed init hook): no need to wait it out
            super().__init__(f"{endpoint}: {detail}")
        else:
            super().__init__(f"{endpoint}: not healthy after {waited:.0f}s (last /ping: {last_status})")


class ConflictError(FlashError):
    """A RunPod name this config needs belongs to someone else: refused before any write."""

    exit_code = Exit.API

    def __init__(self, message: str, hint: str = "") -> None:
        self.hint = hint
        super().__init__(message)


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run; what was done is reported by the command.

    Not a FlashError: code that records a failure (`except FlashError`) never catches an
    interruption by mistake, so it needs no guard; it goes up to the CLI's boundary (exit 130)."""

    exit_code = Exit.INTERRUPTED

    def __init__(self, message: str = "interrupted", hint: str = "") -> None:
        self.hint = hint
        super().__init__(message)
