"""The one typed result of heapdiff (schema ``heapdiff/1``): its records, how it is built, and its JSON text.

Every reporter (terminal, HTML, JSON, Markdown) reads a :class:`Document`; reading a JSON document back goes
through :func:`decode` and fails with a clear :class:`~heapdiff.errors.DocumentError`, never a silent 0.
"""

from heapdiff.document.decode import decode, decode_value
from heapdiff.document.encode import document_json, encode, json_bytes, write_document
from heapdiff.document.model import (
    SCHEMA,
    Counts,
    Document,
    Filters,
    FrameRecord,
    FrameTotals,
    GroupRecord,
    ProcessRecord,
    RunDetails,
    Totals,
    TraceRecord,
)

__all__ = [
    "SCHEMA", "Counts", "Document", "Filters", "FrameRecord", "FrameTotals", "GroupRecord", "ProcessRecord",
    "RunDetails", "Totals", "TraceRecord", "decode", "decode_value", "document_json", "encode", "json_bytes",
    "write_document",
]
