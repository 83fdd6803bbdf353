"""Reading the files that are not traces: heapdiff JSON documents (baselines) and suppression files."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from heapdiff.document.model import Document
    from heapdiff.document.suppress import Pattern

#: a JSON document is at most this large (a trace is mapped, never read whole; a document is read whole)
MAX_DOCUMENT = 4 << 30


def looks_like_json(path: str) -> bool:
    """A JSON document starts with ``{"`` (white space allowed, and a UTF-8 byte-order mark); a trace's first bytes
    are a buffer header whose size (a multiple of 4 KiB) starts with a zero byte. A path that is not a readable
    regular file is left to the trace reader to report."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return False
    body = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return body[:1] == b"{" and body[1:].lstrip()[:1] in (b'"', b"}")


def read_document(path: str) -> Document:
    """A heapdiff/1 document from a file; a usage error (exit 2) when it is not one, naming the field."""
    from heapdiff.document import decode
    from heapdiff.errors import DocumentError

    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_DOCUMENT + 1)
    except OSError as e:
        raise click.UsageError(f"{path}: cannot read: {e.strerror}") from None
    if len(data) > MAX_DOCUMENT:
        raise click.UsageError(f"{path}: larger than {MAX_DOCUMENT >> 30} GiB: not a heapdiff document")
    try:
        return decode(data)
    except DocumentError as e:
        raise click.UsageError(f"{path}: {e}") from None


def read_suppressions(paths: tuple[str, ...]) -> tuple[Pattern, ...]:
    from heapdiff.document.suppress import SuppressionError, parse_suppressions

    out: list[Pattern] = []
    for p in paths:
        try:
            with open(p, encoding="utf-8-sig") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise click.UsageError(f"--suppress {p}: cannot read: {why}") from None
        try:
            out += parse_suppressions(text, p)
        except SuppressionError as e:
            raise click.UsageError(f"--suppress {e}") from None
    return tuple(out)
