"""Decoders of the rare records: images, processes and image identities (notes 6.1-6.3).

They are a few thousand per trace, so they are plain Python over the payload bytes the record walk kept, using
the payload declarations of ``etl.structs``. A payload that does not fit raises :class:`PayloadError`, which the
caller counts as an anomaly of that kind: never a guess, never an IndexError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from heapdiff.etl import payloads as P
from heapdiff.events import kinds as K


class PayloadError(ValueError):
    """A payload shorter than or shaped unlike its declared layout."""


@dataclass(frozen=True)
class _Event:
    """What every decoded image and process event has: its raw time, its kind (the hook's name) and process."""

    ts: int
    kind: str
    pid: int


@dataclass(frozen=True)
class ImageEvent(_Event):
    """An image load or unload, or one of the rundown's (kind: load, unload, dcstart, dcend)."""

    base: int
    size: int
    file_name: str
    checksum: int = 0
    time_date_stamp: int = 0


@dataclass(frozen=True)
class ProcessEvent(_Event):
    """A process's start or end, or the rundown's (kind: start, end, dcstart, dcend, defunct)."""

    parent_pid: int
    image_name: str
    command_line: str = ""
    exit_status: int = 0
    session_id: int = 0


@dataclass(frozen=True)
class ImageIdEvent(_Event):
    """KernelTraceControl ImageID / DbgID_RSDS (kept for symbol look-up later; kind: image_id, rsds)."""

    base: int
    size: int = 0
    time_date_stamp: int = 0
    original_file_name: str = ""
    pdb_guid: str = ""
    pdb_age: int = 0
    pdb_file_name: str = ""


IMAGE_KINDS = {K.HOOK_PROCESS_LOAD_IMAGE: "load", K.HOOK_IMAGE_LOAD: "load", K.HOOK_IMAGE_UNLOAD: "unload",
               K.HOOK_IMAGE_DCSTART: "dcstart", K.HOOK_IMAGE_DCEND: "dcend"}
PROCESS_KINDS = {K.HOOK_PROCESS_START: "start", K.HOOK_PROCESS_END: "end", K.HOOK_PROCESS_DCSTART: "dcstart",
                 K.HOOK_PROCESS_DCEND: "dcend", K.HOOK_PROCESS_DEFUNCT: "defunct"}


def _utf16z(raw: bytes, pos: int) -> tuple[str, int]:
    """UTF-16Z at ``pos`` -> (text, position after the terminator); an unterminated string runs to the end."""
    end = raw.find(b"\x00\x00", pos)
    while end >= 0 and (end - pos) % 2:  # a NUL pair straddling two characters is not the terminator
        end = raw.find(b"\x00\x00", end + 1)
    if end < 0:
        end = len(raw) - (len(raw) - pos) % 2
    text = raw[pos:end].decode("utf-16-le", errors="replace")
    return text, min(end + 2, len(raw))


def _ansiz(raw: bytes, pos: int) -> tuple[str, int]:
    end = raw.find(b"\x00", pos)
    if end < 0:
        end = len(raw)
    return raw[pos:end].decode("latin-1"), min(end + 1, len(raw))


def _need(raw: bytes, n: int, what: str) -> None:
    if len(raw) < n:
        raise PayloadError(f"{what}: payload of {len(raw)} bytes, layout needs {n}")


def decode_image(raw: bytes, hook: int, version: int, ptr: int, ts: int) -> ImageEvent:
    decl = (P.IMAGE_LOAD if version >= 2 else P.IMAGE_LOAD_V1 if version == 1 else P.IMAGE_LOAD_V0)[ptr]
    _need(raw, decl.size, "image")
    v = decl.unpack(raw)
    name, _ = _utf16z(raw, decl.size)
    pid = int(v["ProcessId"]) if "ProcessId" in v else 0
    return ImageEvent(ts=ts, kind=IMAGE_KINDS.get(hook, "load"), pid=pid, base=int(v["ImageBase"]),
                      size=int(v["ImageSize"]), file_name=name,
                      checksum=int(v.get("ImageChecksum", 0)),
                      time_date_stamp=int(v.get("TimeDateStamp", 0)))


def _skip_sid(raw: bytes, pos: int, ptr: int) -> int:
    """6.2: a NULL SID is one zero u32; otherwise TOKEN_USER (2 pointers) then a SID with its sub-authorities."""
    _need(raw, pos + 4, "process SID")
    if int.from_bytes(raw[pos:pos + 4], "little") == 0:
        return pos + 4
    head = pos + 2 * ptr
    _need(raw, head + 8, "process SID")
    count = raw[head + 1]
    end = head + 8 + 4 * count
    _need(raw, end, "process SID")
    return end


def decode_process(raw: bytes, hook: int, version: int, ptr: int, ts: int) -> ProcessEvent:
    if version < 2:
        raise PayloadError(f"process event version {version} is not supported")
    decl = (P.PROCESS_V4 if version >= 4 else P.PROCESS_V3 if version == 3 else P.PROCESS_V2)[ptr]
    _need(raw, decl.size, "process")
    v = decl.unpack(raw)
    pos = _skip_sid(raw, decl.size, ptr)
    image, pos = _ansiz(raw, pos)
    cmd, pos = _utf16z(raw, pos) if pos < len(raw) else ("", pos)
    return ProcessEvent(ts=ts, kind=PROCESS_KINDS.get(hook, "start"), pid=int(v["ProcessId"]),
                        parent_pid=int(v["ParentId"]), image_name=image, command_line=cmd,
                        exit_status=int(v["ExitStatus"]), session_id=int(v["SessionId"]))


#: KernelTraceControl opcodes kept (6.3) -> their fixed payload: ImageID (0), DbgID_RSDS (0x24)
_IMAGE_ID_OPCODE: Final = 0x00
_RSDS_OPCODE: Final = 0x24
_IMAGE_ID_LAYOUTS: Final = {_IMAGE_ID_OPCODE: (P.IMAGE_ID, "ImageID"), _RSDS_OPCODE: (P.DBGID_RSDS, "DbgID_RSDS")}


def image_id_fits(raw: bytes, opcode: int, ptr: int) -> bool:
    """Whether an ImageID / DbgID_RSDS payload is long enough for its layout (other opcodes are not kept)."""
    layout = _IMAGE_ID_LAYOUTS.get(opcode)
    if layout is None:
        return False
    decl, what = layout
    if len(raw) < decl[ptr].size:
        raise PayloadError(f"{what} payload too short")
    return True


def decode_image_id(raw: bytes, opcode: int, ptr: int, ts: int) -> ImageIdEvent | None:
    """ImageID (opcode 0) and DbgID_RSDS (0x24); other KernelTraceControl opcodes are not needed (None)."""
    layout = _IMAGE_ID_LAYOUTS.get(opcode)
    if layout is None:
        return None
    decl, what = layout
    d = decl[ptr]
    _need(raw, d.size, what)
    v = d.unpack(raw)
    if opcode == _IMAGE_ID_OPCODE:
        name, _ = _utf16z(raw, d.size)
        return ImageIdEvent(ts=ts, kind="image_id", pid=int(v["ProcessId"]), base=int(v["ImageBase"]),
                            size=int(v["ImageSize"]), time_date_stamp=int(v["TimeDateStamp"]),
                            original_file_name=name)
    pdb, _ = _ansiz(raw, d.size)
    return ImageIdEvent(ts=ts, kind="rsds", pid=int(v["ProcessId"]), base=int(v["ImageBase"]),
                        pdb_guid=K.guid_from_le(v["GuidSig"]), pdb_age=int(v["Age"]),
                        pdb_file_name=pdb.encode("latin-1").decode("utf-8", errors="replace"))
