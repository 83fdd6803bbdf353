"""The writer's record encoders: every record it emits, laid out by the declarations of :mod:`heapdiff.etl.structs`
and :mod:`heapdiff.etl.payloads`, with field values copied from the real Windows 10 samples where the notes leave a
choice (notes Appendix A, section 9).

The hot records (heap Alloc/Free/ReAlloc/Create/Destroy, stack walks) get one precompiled :class:`struct.Struct`
per kind and pointer size, header and payload glued (:class:`HotStructs`); the rare ones are packed field by field.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import Final

from heapdiff.etl import payloads as P
from heapdiff.etl import structs as S
from heapdiff.etl.cstruct import Payload, Struct
from heapdiff.events import kinds as K
from heapdiff.tracegen.buffers import WrittenRecord, align8

# --- values copied from the real samples (notes Appendix A, section 9) -----------------------------------
TRACE_FLAGS: Final = 0xC0                  # byte 3 of every classic marker (3.1)
_VERSION_LAYOUT_1_5: Final = 0x0501000A    # {10, 0, 1, 5}: Windows 10.0, file layout 1.5 (2.2)
_VERSION_LAYOUT_2_0: Final = 0x0002000A    # {10, 0, 2, 0}: layout 2.0, required when compressed (2.2, 7)
_LOG_FILE_MODE_SEQUENTIAL: Final = 0x00000001
_PROVIDER_VERSION: Final = 19041           # OS build
_TIMER_RESOLUTION: Final = 156250          # 15.625 ms in 100 ns units
CPU_SPEED_MHZ: Final = 3000
_HAL_TIMER_SOURCES: Final = (10, 7)        # LoggerName/LogFileName "pointers" (HAL_PLATFORM_TIMER_SOURCE)
_CONTROLLER_TID: Final = 0x1F80            # thread/process that started the session (header record)
_CONTROLLER_PID: Final = 0x17E0
_KERNEL_EVENT_VERSION: Final = 0x46        # last u32 of the 0x0005 header extension in the PerfDiag sample
_HOOK_HEADER_EXTENSION: Final = 0x0005
_HOOK_PARTITION_INFO: Final = 0x0050
#: UTC time zone as Windows stores it: MUI references into tzres.dll, no daylight rules
_TZ_STANDARD_NAME: Final = "@tzres.dll,-932"
_TZ_DAYLIGHT_NAME: Final = "@tzres.dll,-931"
_STILL_ACTIVE: Final = 0x103               # ExitStatus of a live process (Start/DCStart/DCEnd in real files)
#: S-1-5-18 (LocalSystem): a real SID, because dissect cannot parse the NULL-SID form (6.2)
_SID_LOCAL_SYSTEM: Final = P.SID_HEADER.pack(
    {"Revision": 1, "SubAuthorityCount": 1, "IdentifierAuthority": (5).to_bytes(6, "big")}
) + struct.pack("<I", 18)

# --- event (payload) versions, the Version word of the classic header (6.1, 6.2, 4.1, 5.1) ---------------
V_HEADER: Final = 2
V_PROCESS: Final = 4
V_IMAGE: Final = 3
#: PerfInfo Mark: version 2 like the other PerfInfo records of kernel traces (inferred; events.marks)
V_MARK: Final = 2
V_HEAP: Final = 2
V_STACK: Final = 2

SYSTEM_TYPES: Final = {4: S.HT_SYSTEM32, 8: S.HT_SYSTEM64}
PERFINFO_TYPES: Final = {4: S.HT_PERFINFO32, 8: S.HT_PERFINFO64}
_PTR_CODES: Final = {4: "I", 8: "Q"}

#: timestamp offset inside a record, per header type (3.2-3.6), for :meth:`TraceWriter.raw`
TS_OFFSETS: Final = {
    S.HT_SYSTEM32: S.SYSTEM_TS,
    S.HT_SYSTEM64: S.SYSTEM_TS,
    S.HT_COMPACT32: S.SYSTEM_TS,
    S.HT_COMPACT64: S.SYSTEM_TS,
    S.HT_PERFINFO32: S.PERFINFO_TS,
    S.HT_PERFINFO64: S.PERFINFO_TS,
    **{ht: S.GUID_TS for ht, (kind, _, _) in S.HEADER_KINDS.items()
       if kind in (S.HK_EVENT_TRACE, S.HK_EVENT_HEADER) and ht != S.HT_ERROR},
}

#: 4.3 heap hooks with a known layout: (version-2 payload, version-3 payload or None)
HEAP_LAYOUTS: Final[dict[int, tuple[Payload, Payload | None]]] = {
    K.HOOK_HEAP_CREATE: (P.HEAP_CREATE, P.HEAP_CREATE_V3),
    K.HOOK_HEAP_DESTROY: (P.HEAP_COMMON, None),
    K.HOOK_HEAP_EXPAND: (P.HEAP_EXPANSION, P.HEAP_EXPANSION_V3),
    K.HOOK_HEAP_SNAPSHOT: (P.HEAP_SNAPSHOT, P.HEAP_SNAPSHOT_V3),
    K.HOOK_HEAP_CONTRACT: (P.HEAP_EXPANSION, P.HEAP_EXPANSION_V3),
    0x102B: (P.HEAP_COMMON, None),  # Lock
    0x102C: (P.HEAP_COMMON, None),  # Unlock
    0x102D: (P.HEAP_COMMON, None),  # Validate
    0x102E: (P.HEAP_COMMON, None),  # Walk
}


def compose(*parts: Struct, tail: str = "") -> struct.Struct:
    """One :class:`struct.Struct` for header + payload (+ ``tail`` codes), zero-padded to the 8-byte grid.

    Built from the declarations' own formats, so the offsets stay those of :mod:`heapdiff.etl.structs`.
    """
    fmt = "".join(p.format.lstrip("<") for p in parts) + tail
    size = struct.calcsize("<" + fmt)
    pad = align8(size) - size
    return struct.Struct("<" + fmt + (f"{pad}x" if pad else ""))


def utf16z(text: str) -> bytes:
    return text.encode("utf-16-le") + b"\0\0"


def _wchar_array(text: str, chars: int) -> bytes:
    raw = text.encode("utf-16-le")[: 2 * (chars - 1)]
    return raw + b"\0" * (2 * chars - len(raw))


def filetime_of(ts: int, *, t0: int, start_filetime: int, clock_type: int, perf_freq: int,
                cpu_mhz: int = CPU_SPEED_MHZ) -> int:
    """FILETIME of raw timestamp ``ts`` by the notes' clock rules (2.3), as dissect and TraceEvent do."""
    if clock_type == S.CLOCK_QPC:
        return start_filetime + (ts - t0) * 10_000_000 // perf_freq
    if clock_type == S.CLOCK_SYSTEM_TIME:
        return start_filetime + (ts - t0)
    if clock_type == S.CLOCK_CPU_CYCLES:
        return start_filetime + (ts - t0) * 10 // cpu_mhz
    raise ValueError(f"clock type {clock_type} is not 1 (QPC), 2 (system time) or 3 (CPU cycles)")


class HotStructs:
    """Precompiled structs of the hot record kinds, per pointer size: SYSTEM header + payload + zero padding.

    A struct's size is its record's 8-aligned size; the Size field holds the unpadded one (``sizes``).
    """

    def __init__(self, ptrs: tuple[int, ...]) -> None:
        sh = S.SYSTEM_HEADER
        heap = {K.HOOK_HEAP_ALLOC: P.HEAP_ALLOC, K.HOOK_HEAP_FREE: P.HEAP_FREE, K.HOOK_HEAP_REALLOC: P.HEAP_REALLOC,
                K.HOOK_HEAP_CREATE: P.HEAP_CREATE, K.HOOK_HEAP_DESTROY: P.HEAP_COMMON}
        #: (hook, pointer size) -> (struct, record size)
        self.heap = {(hook, p): (compose(sh, decl[p]), sh.size + decl[p].size) for hook, decl in heap.items()
                     for p in ptrs}
        self._ptrs = ptrs
        # stack walks: (pointer size, header kind, frame count) -> (struct, record size); filled on demand
        self._stack: dict[tuple[int, str, int], tuple[struct.Struct, int]] = {}

    def stack(self, p: int, header: str, frames: int) -> tuple[struct.Struct, int]:
        """StackWalk 0x1820 with ``frames`` frames under a "perfinfo" or "system" header."""
        key = (p, header, frames)
        got = self._stack.get(key)
        if got is None:
            if header not in ("perfinfo", "system"):
                raise ValueError(f"stack header must be 'perfinfo' or 'system', not {header!r}")
            head = S.PERFINFO_HEADER if header == "perfinfo" else S.SYSTEM_HEADER
            got = (compose(head, P.STACK_WALK, tail=f"{frames}{_PTR_CODES[p]}" if frames else ""),
                   head.size + P.STACK_WALK.size + frames * p)
            self._stack[key] = got
        return got


def classic_record(hook: int, version: int, kind: str, ptr: int, pid: int, tid: int, ts: int,
                   payload: bytes) -> tuple[bytes, int, int]:
    """A record under a SYSTEM (``kind`` "system": with pid and tid) or PERFINFO header: (bytes, header type,
    header size)."""
    head = S.SYSTEM_HEADER if kind == "system" else S.PERFINFO_HEADER
    htype = (SYSTEM_TYPES if kind == "system" else PERFINFO_TYPES)[ptr]
    fields: dict[str, int | bytes] = {"Version": version, "HeaderType": htype, "Flags": TRACE_FLAGS,
                                      "Size": head.size + len(payload), "Type": hook & 0xFF, "Group": hook >> 8,
                                      "SystemTime": ts}
    if kind == "system":
        fields.update(ThreadId=tid, ProcessId=pid)
    return head.pack(fields) + payload, htype, head.size


def kernel_address(ptr: int, n: int) -> int:
    """A stable kernel-space address (EPROCESS, SID) of the form seen in real payloads."""
    if ptr == 8:
        return 0xFFFFCA8680000000 + (n << 8) + 0xC0
    return 0x84000000 + ((n << 8) & 0x0FFFFFFF) + 0xC0


def process_payload(ptr: int, pid: int, parent_pid: int, image_name: str, command_line: str, live: bool) -> bytes:
    """A Process event's payload, version 4 (6.2), with the LocalSystem SID."""
    fixed = P.PROCESS_V4[ptr].pack({
        "UniqueProcessKey": kernel_address(ptr, 0x8000 + pid),
        "ProcessId": pid,
        "ParentId": parent_pid,
        "SessionId": 0xFFFFFFFF if pid in (0, 4) else 1,
        "ExitStatus": _STILL_ACTIVE if live else 0,
        "DirectoryTableBase": 0x1AD000 + (pid << 12),
        "Flags": 0,
    })
    token = (P.TOKEN_USER64 if ptr == 8 else P.TOKEN_USER32).pack(
        {"Sid": kernel_address(ptr, 0x4000 + pid), "Attributes": 0})
    return (fixed + token + _SID_LOCAL_SYSTEM + image_name.encode("latin-1") + b"\0"
            + utf16z(command_line) + utf16z("") + utf16z(""))


def image_payload(ptr: int, pid: int, base: int, size: int, file_name: str, time_date_stamp: int | None = None
                  ) -> bytes:
    """An Image event's payload, version 3 (6.1); checksum and (unless given) link time made up from the name,
    stably."""
    digest = zlib.crc32(file_name.encode("utf-16-le"))
    return P.IMAGE_LOAD[ptr].pack({
        "ImageBase": base,
        "ImageSize": size,
        "ProcessId": pid,
        "ImageChecksum": (size ^ digest) & 0x00FFFFFF,
        "TimeDateStamp": 0x50000000 | (digest & 0x0FFFFFFF) if time_date_stamp is None else time_date_stamp,
        "Signature": 0x0C | (0x01 << 8),  # SignatureLevel 0x0C, SignatureType 1 (user modules, samples)
        "DefaultBase": base,
    }) + utf16z(file_name)


def heap_payload_version(hook: int, ptr: int, payload: bytes) -> int:
    """The Version of a heap-group event with this payload: by its size for the hooks whose layout the notes give
    (4.3: version 2 or 3 of the event's pointer size; any other size is a :class:`ValueError`), else 2."""
    known = HEAP_LAYOUTS.get(hook)
    if known is None:
        return V_HEAP
    v2, v3 = known
    sizes = {v2[ptr].size: 2}
    if v3 is not None:
        sizes[v3[ptr].size] = 3
    if len(payload) not in sizes:
        allowed = " or ".join(map(str, sorted(sizes)))
        raise ValueError(f"hook {hook:#06x} payload must be {allowed} bytes for {ptr * 8}-bit "
                         f"pointers, not {len(payload)}")
    return sizes[len(payload)]


def stack_key_def_payload(ptr: int, key: int, frames: list[int] | tuple[int, ...]) -> bytes:
    """KeyCreate/KeyDelete/KeyRundown (5.3): StackKey then the frames."""
    return P.STACK_KEY_DEF[ptr].pack({"StackKey": key}) + struct.pack(f"<{len(frames)}{_PTR_CODES[ptr]}", *frames)


@dataclass(frozen=True)
class Session:
    """What the logfile header says of the trace session (2.2), as the writer was asked to write it."""

    pointer_size: int
    cpus: int
    buffer_size: int
    compressed: bool
    start_filetime: int
    perf_freq: int
    t0: int
    clock_type: int
    logger_name: str
    log_file_name: str
    events_lost: int
    buffers_lost: int
    header_extensions: bool

    def filetime(self, ts: int) -> int:
        """FILETIME of a raw timestamp of this session (2.3)."""
        return filetime_of(ts, t0=self.t0, start_filetime=self.start_filetime, clock_type=self.clock_type,
                           perf_freq=self.perf_freq)


def header_records(session: Session, last_ts: int, buffers_written: int) -> list[tuple[int, bytes, WrittenRecord]]:
    """The records of buffer 0 (2.1): the header record with its TRACE_LOGFILE_HEADER (2.2) and, as real files
    have them, the 0x0005 / 0x0050 header extensions: (hook, framed bytes, what was written)."""
    s = session
    boot = s.filetime(0) if s.clock_type != S.CLOCK_SYSTEM_TIME else s.start_filetime - s.t0
    tz_rest = S.TIME_ZONE_REST.pack({
        "StandardName": _wchar_array(_TZ_STANDARD_NAME, 32), "StandardDate": bytes(16), "StandardBias": 0,
        "DaylightName": _wchar_array(_TZ_DAYLIGHT_NAME, 32), "DaylightDate": bytes(16), "DaylightBias": 0,
    })
    logfile = (S.LOGFILE_HEADER64 if s.pointer_size == 8 else S.LOGFILE_HEADER32).pack({
        "BufferSize": s.buffer_size,
        "Version": _VERSION_LAYOUT_2_0 if s.compressed else _VERSION_LAYOUT_1_5,
        "ProviderVersion": _PROVIDER_VERSION,
        "NumberOfProcessors": s.cpus,
        "EndTime": s.filetime(last_ts),
        "TimerResolution": _TIMER_RESOLUTION,
        "MaximumFileSize": 0,
        "LogFileMode": _LOG_FILE_MODE_SEQUENTIAL | (S.LOG_FILE_MODE_COMPRESSED if s.compressed else 0),
        "BuffersWritten": buffers_written,
        "StartBuffers": 1,
        "PointerSize": s.pointer_size,
        "EventsLost": s.events_lost,
        "CpuSpeedInMHz": CPU_SPEED_MHZ,
        "LoggerName": _HAL_TIMER_SOURCES[0],
        "LogFileName": _HAL_TIMER_SOURCES[1],
        "TimeZoneBias": 0,
        "TimeZoneRest": tz_rest,
        "BootTime": max(0, boot),
        "PerfFreq": s.perf_freq,
        "StartTime": s.start_filetime,
        "ReservedFlags": s.clock_type,
        "BuffersLost": s.buffers_lost,
    }) + utf16z(s.logger_name) + utf16z(s.log_file_name)
    bodies = [(K.HOOK_HEADER, logfile)]
    if s.header_extensions:
        bodies.append((_HOOK_HEADER_EXTENSION, S.HEADER_EXTENSION.pack({"KernelEventVersion": _KERNEL_EVENT_VERSION})))
        bodies.append((_HOOK_PARTITION_INFO, S.PARTITION_INFO.pack({})))
    out: list[tuple[int, bytes, WrittenRecord]] = []
    htype = SYSTEM_TYPES[s.pointer_size]
    for hook, body in bodies:
        size = S.SYSTEM_HEADER.size + len(body)
        if size > S.MAX_RECORD_SIZE:
            raise ValueError("the header record (logger and log file names) does not fit in buffer 0")
        rec = S.SYSTEM_HEADER.pack({
            "Version": V_HEADER, "HeaderType": htype, "Flags": TRACE_FLAGS, "Size": size,
            "Type": hook & 0xFF, "Group": hook >> 8, "ThreadId": _CONTROLLER_TID,
            "ProcessId": _CONTROLLER_PID, "SystemTime": s.t0, "KernelTime": 1, "UserTime": 0,
        }) + body
        out.append((hook, rec, WrittenRecord(hook, V_HEADER, htype, _CONTROLLER_PID, _CONTROLLER_TID, s.t0, body, rec)))
    return out


def image_id_records(ptr: int, ts: int, pid: int, base: int, size: int, time_date_stamp: int, file_name: str,
                     pdb_name: str, pdb_guid: str, pdb_age: int) -> tuple[bytes, bytes]:
    """KernelTraceControl's ImageID (opcode 0) and DbgID_RSDS (opcode 0x24) records for one image (6.3), as a
    merge writes them: EVENT_TRACE_HEADER records with the ImageID task GUID and the image event's timestamp."""
    guid = uuid.UUID(K.IMAGE_ID_GUID).bytes_le

    def framed(opcode: int, payload: bytes) -> bytes:
        payload += b"\0" * (-(S.EVENT_TRACE_HEADER.size + len(payload)) % 8)
        head = S.EVENT_TRACE_HEADER.pack({
            "Size": S.EVENT_TRACE_HEADER.size + len(payload),
            "HeaderType": S.HT_FULL_HEADER64 if ptr == 8 else S.HT_FULL_HEADER32, "MarkerFlags": 0xC0,
            "Type": opcode, "Version": 2, "ThreadId": 0xFFFFFFFF, "ProcessId": 0xFFFFFFFF, "TimeStamp": ts,
            "Guid": guid})
        return head + payload

    image_id = P.IMAGE_ID[ptr].pack({"ImageBase": base, "ImageSize": size, "ProcessId": pid,
                                     "TimeDateStamp": time_date_stamp}) + utf16z(file_name)
    rsds = P.DBGID_RSDS[ptr].pack({"ImageBase": base, "ProcessId": pid, "GuidSig": uuid.UUID(pdb_guid).bytes_le,
                                   "Age": pdb_age}) + pdb_name.encode("utf-8") + b"\0"
    return framed(0x00, image_id), framed(0x24, rsds)
