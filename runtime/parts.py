"""The two small types handlers use for files: `Upload` (a multipart file part they receive) and
`Binary` (bytes they answer with a content type of their choosing)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart/form-data request."""

    name: str
    filename: str | None
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Binary:
    """An answer of raw bytes: `return Binary(png, "image/png")`. Plain `bytes` answer as
    application/octet-stream."""

    body: bytes
    content_type: str = "application/octet-stream"
    status: int = 200
