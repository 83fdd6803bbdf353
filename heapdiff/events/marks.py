"""Marks: the named points in time that ``xperf -m NAME`` (``EtwSetMark``) writes into a kernel trace.

The record is PerfInfo's ``PERFINFO_LOG_TYPE_MARK`` (group 0x0F, type 0x22: hook 0x0F22). Its payload is
inferred, not verified against a real file (no public trace that heapdiff's samples include holds one): Windows
XP's kernel copied the ``Mark`` WCHARs of ``ETW_SET_MARK_INFORMATION {ULONG Flag; WCHAR Mark[]}`` and added a NUL
(a UTF-16 string); later kernels' type information declares ``PERFINFO_MARK_INFORMATION {char Name[]}`` (an ANSI
string); and a kernel could as well keep the ``Flag``. So each of those three readings is tried, and the one that
gives the longest printable name wins (a wrong reading stops at a NUL or a control character early: the flag's
bytes, an ANSI string read as UTF-16 gives half as many characters); a tie goes to ASCII (names are typed on a
command line). A payload none of them reads raises :class:`PayloadError` (counted by the caller, never guessed).
"""

from __future__ import annotations

from typing import Final

from heapdiff.events.decode import PayloadError

#: payloads longer than this are not a mark's (EtwSetMark's buffer is a short string)
MAX_MARK_BYTES: Final = 4096
#: ``ETW_SET_MARK_INFORMATION.Flag``: its only defined bit (WMI_SET_MARK_WITH_FLUSH) and spare ones
_MAX_FLAG: Final = 0xFFFF


def _utf16z(raw: bytes) -> str | None:
    """A UTF-16LE string up to its NUL (or the payload's end), None if it is not one."""
    n = len(raw) - len(raw) % 2
    for k in range(0, n, 2):
        if raw[k] == 0 and raw[k + 1] == 0:
            n = k
            break
    try:
        return raw[:n].decode("utf-16-le")
    except UnicodeDecodeError:
        return None


def _ansiz(raw: bytes) -> str:
    end = raw.find(b"\0")
    body = raw if end < 0 else raw[:end]
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def _ascii_name(s: str | None) -> bool:
    return bool(s) and all(0x20 <= ord(c) < 0x7F for c in s or "")


def _printable(s: str | None) -> bool:
    return bool(s) and (s or "").isprintable()


def decode_mark(raw: bytes) -> str:
    """The mark's name (see the module's docstring for the readings tried)."""
    if not raw or len(raw) > MAX_MARK_BYTES:
        raise PayloadError(f"a mark payload of {len(raw)} bytes")
    readings = [_utf16z(raw)]
    flag = int.from_bytes(raw[:4], "little") if len(raw) >= 6 else None
    readings.append(_utf16z(raw[4:]) if flag is not None and flag <= _MAX_FLAG else None)
    readings.append(_ansiz(raw))
    names = [s for s in readings if s is not None and _printable(s)]
    if names:  # the longest; a tie goes to an ASCII name, then to the earlier reading
        return max(names, key=lambda s: (len(s), _ascii_name(s)))
    raise PayloadError("a mark payload that reads as no printable name")
