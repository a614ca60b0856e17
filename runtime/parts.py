"""The two small types handlers use for files: `Upload` (a multipart file part they receive) and
`Binary` (bytes they answer with a content type of their choosing); and the multipart reader."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from urllib.parse import unquote

from sanic.headers import parse_content_header


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


@dataclass
class Form:
    """A multipart/form-data body: text fields and file parts by name, and the fields that could not
    be read as text (each a problem naming it: the handler's 422, not a silently dropped form)."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[Upload]] = field(default_factory=dict)
    problems: list[dict[str, str]] = field(default_factory=list)


class FormError(ValueError):
    """A multipart body that cannot be split into parts; str() is the reason for the 400."""


def read_form(content_type: str, body: bytes) -> Form:
    """The parts of a multipart/form-data body (RFC 7578): a part with a filename is a file, any
    other a text field in its charset (UTF-8 unless it says otherwise)."""
    _, params = _header(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise FormError("multipart/form-data request without a boundary in its Content-Type")
    form = Form()
    delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    for index, chunk in enumerate(body.split(delimiter)[1:]):
        if chunk.startswith(b"--"):  # the closing delimiter: the epilogue after it is ignored
            return form
        head, blank, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not blank:
            raise FormError(f"multipart part {index + 1} has no blank line after its headers")
        name, filename, kind, charset = _part_headers(head, index + 1)
        if name is None:
            continue  # RFC 7578 requires a name; a part without one feeds no argument
        data = data.removesuffix(b"\r\n")
        if filename is not None:
            form.files.setdefault(name, []).append(Upload(name, filename or None, kind, data))
            continue
        try:
            text = data.decode(charset)
        except (UnicodeDecodeError, LookupError):
            form.problems.append({"path": name, "message": f"form field is not {charset} text"})
        else:
            form.fields.setdefault(name, []).append(text)
    raise FormError("multipart body ends without its closing boundary")


def _part_headers(head: bytes, number: int) -> tuple[str | None, str | None, str, str]:
    """A part's field name, filename (None for a text field), content type and charset."""
    name = filename = None
    kind, charset = "application/octet-stream", "utf-8"
    try:
        lines = head.decode("utf-8").split("\r\n")
    except UnicodeDecodeError:
        raise FormError(f"multipart part {number} has headers that are not UTF-8") from None
    for line in filter(None, lines):
        header, colon, value = line.partition(":")
        if not colon:
            raise FormError(f"multipart part {number} has a header line without a colon: {line[:80]!r}")
        header = header.strip().lower()
        if header == "content-disposition":
            _, params = _header(value)
            name, filename = params.get("name"), params.get("filename")
            if filename is None and params.get("filename*"):  # RFC 5987: charset''percent-encoded
                encoding, _, quoted = email.utils.decode_rfc2231(params["filename*"])
                filename = unquote(quoted, encoding=encoding or "utf-8")
        elif header == "content-type":
            kind, params = _header(value)
            charset = params.get("charset", charset)
    return name, filename, kind, charset


def _header(value: str) -> tuple[str, dict[str, str]]:
    """A header's value and its parameters (Sanic's parser: quoting and escapes)."""
    main, params = parse_content_header(value.strip())
    return main, {key: str(item) for key, item in params.items()}
