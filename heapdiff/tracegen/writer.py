"""Writer of faithful Windows ETW ``.etl`` files carrying user-mode heap events.

Why it exists: no public trace holds heap events, so every heap scenario of the project (tests, bundled
fixtures, benchmarks) is written by this module. A reader that only ever sees these files is only as right
as they are, so the writer follows the format notes (``etl-format.md``, cited by section) byte for byte and
copies field values from the real Windows 10 samples (``../shared/etl-samples``) wherever the notes leave a
choice:

* buffers (sections 1, 9.2): buffer 0 is the header buffer; every CPU then fills its own buffer and a full
  buffer is *flushed* to the file with the next ``SequenceNumber``, so the file is in flush order, not time
  order -- exactly the shape a reader must merge (section 8 item 2);
* the header record (section 2) with a ``TRACE_LOGFILE_HEADER`` of the trace's pointer size, and the 0x0005 /
  0x0050 header extensions real files carry;
* heap events (section 4) with a full ``SYSTEM_TRACE_HEADER`` (type 2, or 1 for a WOW64 process) and packed
  payloads; stack walks (section 5.1) whose ``EventTimeStamp`` is the heap event's raw timestamp;
* process and image rundown/start/end events (section 6) so that frames can be mapped to modules;
* optional Xpress compression of every buffer but the header buffer (section 7).

Every header and payload is packed through the declarations in :mod:`heapdiff.etl.structs`; nothing here knows
an offset of its own. The hot methods (:meth:`TraceWriter.heap_alloc`, :meth:`~TraceWriter.heap_free`,
:meth:`~TraceWriter.heap_realloc`, :meth:`~TraceWriter.stack`) glue header and payload formats into one
precompiled :class:`struct.Struct` per record kind and pack straight into a preallocated per-CPU
``bytearray``, so that writing millions of events takes seconds.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Final

from heapdiff.etl import payloads as P
from heapdiff.etl import structs as S
from heapdiff.etl.cstruct import Payload, Struct
from heapdiff.etl.xpress import compress as xpress_compress
from heapdiff.events import kinds as K

__all__ = [
    "DEFAULT_START_FILETIME",
    "DEFAULT_T0",
    "TraceWriter",
    "WrittenBuffer",
    "WrittenRecord",
    "filetime_of",
]

#: 2026-01-01T00:00:00Z as a FILETIME (100 ns ticks since 1601-01-01 UTC)
DEFAULT_START_FILETIME: Final = S.FILETIME_UNIX_EPOCH + 1_767_225_600 * 10_000_000
#: raw QPC value at session start: 100 s after boot at 10 MHz (real samples: 0.6 s to 3 days)
DEFAULT_T0: Final = 1_000_000_000

# --- values copied from the real samples (notes Appendix A, section 9) -----------------------------------
_TRACE_FLAGS: Final = 0xC0                 # byte 3 of every classic marker (3.1)
_LOGGER_ID: Final = 0x20                   # ETW_BUFFER_CONTEXT.LoggerId, same in every buffer (9.2)
_STATE_FLUSHED: Final = 3                  # ETW_BUFFER_STATE of every real buffer; also XPRESS = 3 (1.1, 7)
_FLAG_FLUSH_MARKER: Final = 0x0001
_FLAG_PROC_INDEX: Final = 0x0020
_BUFFER_TYPE_GENERIC: Final = 0
_VERSION_LAYOUT_1_5: Final = 0x0501000A    # {10, 0, 1, 5}: Windows 10.0, file layout 1.5 (2.2)
_VERSION_LAYOUT_2_0: Final = 0x0002000A    # {10, 0, 2, 0}: layout 2.0, required when compressed (2.2, 7)
_LOG_FILE_MODE_SEQUENTIAL: Final = 0x00000001
_PROVIDER_VERSION: Final = 19041           # OS build
_TIMER_RESOLUTION: Final = 156250          # 15.625 ms in 100 ns units
_CPU_SPEED_MHZ: Final = 3000
_HAL_TIMER_SOURCES: Final = (10, 7)        # LoggerName/LogFileName "pointers" (HAL_PLATFORM_TIMER_SOURCE)
_CONTROLLER_TID: Final = 0x1F80            # thread/process that started the session (header record)
_CONTROLLER_PID: Final = 0x17E0
_KERNEL_EVENT_VERSION: Final = 0x46        # last u32 of the 0x0005 header extension in the PerfDiag sample
#: UTC time zone as Windows stores it: MUI references into tzres.dll, no daylight rules
_TZ_STANDARD_NAME: Final = "@tzres.dll,-932"
_TZ_DAYLIGHT_NAME: Final = "@tzres.dll,-931"

# --- event (payload) versions, the Version word of the classic header (6.1, 6.2, 4.1, 5.1) ---------------
_V_HEADER: Final = 2
_V_PROCESS: Final = 4
_V_IMAGE: Final = 3
_V_HEAP: Final = 2
_V_STACK: Final = 2

_PROCESS_HOOKS: Final = {
    "start": K.HOOK_PROCESS_START,
    "end": K.HOOK_PROCESS_END,
    "dcstart": K.HOOK_PROCESS_DCSTART,
    "dcend": K.HOOK_PROCESS_DCEND,
}
_IMAGE_HOOKS: Final = {
    "load": K.HOOK_PROCESS_LOAD_IMAGE,
    "unload": K.HOOK_IMAGE_UNLOAD,
    "dcstart": K.HOOK_IMAGE_DCSTART,
    "dcend": K.HOOK_IMAGE_DCEND,
}
_STILL_ACTIVE: Final = 0x103               # ExitStatus of a live process (Start/DCStart/DCEnd in real files)
#: S-1-5-18 (LocalSystem): a real SID, because dissect cannot parse the NULL-SID form (6.2)
_SID_LOCAL_SYSTEM: Final = P.SID_HEADER.pack(
    {"Revision": 1, "SubAuthorityCount": 1, "IdentifierAuthority": (5).to_bytes(6, "big")}
) + struct.pack("<I", 18)

_T_ALLOC: Final = K.HOOK_HEAP_ALLOC & 0xFF    # opcode (Type) bytes of the hot hooks
_T_REALLOC: Final = K.HOOK_HEAP_REALLOC & 0xFF
_T_FREE: Final = K.HOOK_HEAP_FREE & 0xFF
_T_STACK: Final = K.HOOK_STACK_WALK & 0xFF
assert K.HOOK_STACK_WALK >> 8 == K.GROUP_STACKWALK and K.HOOK_HEAP_ALLOC >> 8 == K.GROUP_HEAP

_SYSTEM_TYPES: Final = {4: S.HT_SYSTEM32, 8: S.HT_SYSTEM64}
_PERFINFO_TYPES: Final = {4: S.HT_PERFINFO32, 8: S.HT_PERFINFO64}
_PTR_CODES: Final = {4: "I", 8: "Q"}

#: timestamp offset inside a record, per header type (3.2-3.6), for :meth:`TraceWriter.raw`
_TS_OFFSETS: Final = {
    S.HT_SYSTEM32: S.SYSTEM_HEADER.off("SystemTime"),
    S.HT_SYSTEM64: S.SYSTEM_HEADER.off("SystemTime"),
    S.HT_COMPACT32: S.COMPACT_HEADER.off("SystemTime"),
    S.HT_COMPACT64: S.COMPACT_HEADER.off("SystemTime"),
    S.HT_PERFINFO32: S.PERFINFO_HEADER.off("SystemTime"),
    S.HT_PERFINFO64: S.PERFINFO_HEADER.off("SystemTime"),
    S.HT_FULL_HEADER32: S.EVENT_TRACE_HEADER.off("TimeStamp"),
    S.HT_FULL_HEADER64: S.EVENT_TRACE_HEADER.off("TimeStamp"),
    S.HT_INSTANCE32: S.INSTANCE_HEADER.off("TimeStamp"),
    S.HT_INSTANCE64: S.INSTANCE_HEADER.off("TimeStamp"),
    S.HT_EVENT_HEADER32: S.EVENT_HEADER.off("TimeStamp"),
    S.HT_EVENT_HEADER64: S.EVENT_HEADER.off("TimeStamp"),
}


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _compose(*parts: Struct, tail: str = "") -> struct.Struct:
    """One :class:`struct.Struct` for header + payload (+ ``tail`` codes), zero-padded to the 8-byte grid.

    Built from the declarations' own formats, so the offsets stay those of :mod:`heapdiff.etl.structs`.
    """
    fmt = "".join(p.format.lstrip("<") for p in parts) + tail
    size = struct.calcsize("<" + fmt)
    pad = _align8(size) - size
    return struct.Struct("<" + fmt + (f"{pad}x" if pad else ""))


def _utf16z(text: str) -> bytes:
    return text.encode("utf-16-le") + b"\0\0"


def _wchar_array(text: str, chars: int) -> bytes:
    raw = text.encode("utf-16-le")[: 2 * (chars - 1)]
    return raw + b"\0" * (2 * chars - len(raw))


def filetime_of(ts: int, *, t0: int, start_filetime: int, clock_type: int, perf_freq: int,
                cpu_mhz: int = _CPU_SPEED_MHZ) -> int:
    """FILETIME of raw timestamp ``ts`` by the notes' clock rules (2.3), as dissect and TraceEvent do."""
    if clock_type == S.CLOCK_QPC:
        return start_filetime + (ts - t0) * 10_000_000 // perf_freq
    if clock_type == S.CLOCK_SYSTEM_TIME:
        return start_filetime + (ts - t0)
    if clock_type == S.CLOCK_CPU_CYCLES:
        return start_filetime + (ts - t0) * 10 // cpu_mhz
    raise ValueError(f"clock type {clock_type} is not 1 (QPC), 2 (system time) or 3 (CPU cycles)")


@dataclass(frozen=True, slots=True)
class WrittenRecord:
    """What the writer put in one record: enough to check a reader's framing against (tests only).

    ``pid``/``tid`` are None for headers that carry none (PERFINFO); ``hook``/``version`` are None for
    :meth:`TraceWriter.raw` records, whose header the writer did not build.
    """

    hook: int | None
    version: int | None
    header_type: int
    pid: int | None
    tid: int | None
    ts: int
    payload: bytes
    data: bytes


@dataclass(slots=True)
class WrittenBuffer:
    """One buffer as written, in file order (tests only)."""

    index: int
    sequence: int
    cpu: int
    flags: int
    timestamp: int
    filled: int
    disk_size: int
    compressed: bool
    records: list[WrittenRecord] = field(default_factory=list)


class _CpuBuffer:
    """The buffer one CPU is filling (1.1): preallocated, records packed in place from offset 0x48."""

    __slots__ = ("buf", "cpu", "flags", "last_ts", "pos", "records")

    def __init__(self, cpu: int, size: int, t0: int) -> None:
        self.cpu = cpu
        self.buf = bytearray(size)
        self.pos = S.BUFFER_HEADER_SIZE
        self.last_ts = t0
        self.flags = _FLAG_PROC_INDEX
        self.records: list[WrittenRecord] = []


class TraceWriter:
    """Write a heap trace as Windows would log it; see the module docstring for why and how.

    ``ptr=None`` on an event means the trace's pointer size; ``ptr=4`` in a 64-bit trace writes the event of a
    WOW64 (32-bit) process: SYSTEM32 / PERFINFO32 header (marker 0xC001xxxx / 0xC010xxxx) and 4-byte pointers.
    Records go to the buffer of ``cpu`` and must come in non-decreasing ``ts`` order per CPU, none before
    ``t0`` (:class:`ValueError` otherwise), as one CPU's buffer is in time order in real files (1.3).

    ``keep_log=True`` records every buffer and record written (:attr:`log`, file order) for tests.
    ``close()`` closes ``out`` only if the writer opened it (a path); a caller's file object stays open.
    """

    def __init__(self, out: str | os.PathLike[str] | BinaryIO, *, pointer_size: int = 8, cpus: int = 4,
                 buffer_size: int = 0x10000, compress: bool = False,
                 start_filetime: int = DEFAULT_START_FILETIME, perf_freq: int = 10_000_000,
                 t0: int = DEFAULT_T0, clock_type: int = S.CLOCK_QPC,
                 logger_name: str = "heapdiff writer", log_file_name: str = "C:\\traces\\heap.etl",
                 events_lost: int = 0, buffers_lost: int = 0, header_extensions: bool = True,
                 keep_log: bool = False) -> None:
        if pointer_size not in (4, 8):
            raise ValueError(f"pointer_size must be 4 or 8, not {pointer_size}")
        if not 1 <= cpus <= S.PROCESSOR_INDEX_MASK + 1:
            raise ValueError(f"cpus must be 1..{S.PROCESSOR_INDEX_MASK + 1}, not {cpus}")
        if buffer_size % 8 or not 0x400 <= buffer_size <= 0xFFFFFFF8:
            raise ValueError(f"buffer_size must be a multiple of 8 in 0x400..0xFFFFFFF8, "
                             f"not {buffer_size:#x}")
        if perf_freq <= 0 or t0 <= 0:
            raise ValueError("perf_freq and t0 must be positive "
                             "(readers divide by PerfFreq, TraceEvent asserts T0 != 0)")
        filetime_of(t0, t0=t0, start_filetime=start_filetime, clock_type=clock_type, perf_freq=perf_freq)
        self.pointer_size = pointer_size
        self.cpus = cpus
        self.buffer_size = buffer_size
        self.compressed = compress
        self.start_filetime = start_filetime
        self.perf_freq = perf_freq
        self.t0 = t0
        self.clock_type = clock_type
        self.logger_name = logger_name
        self.log_file_name = log_file_name
        self.events_lost = events_lost
        self.buffers_lost = buffers_lost
        self.header_extensions = header_extensions
        self.log: list[WrittenBuffer] | None = [] if keep_log else None

        self._ptrs = (4,) if pointer_size == 4 else (4, 8)
        self._max_record = min(S.MAX_RECORD_SIZE, buffer_size - S.BUFFER_HEADER_SIZE)
        self._cpu: dict[int, _CpuBuffer] = {c: _CpuBuffer(c, buffer_size, t0) for c in range(cpus)}
        self._seq = 0
        self._flushed = 0
        self._closed = False
        self._ff = b"\xff" * buffer_size
        self._build_structs()

        header = self._header_buffer()  # validates that the header record fits, before touching the output
        if isinstance(out, (str, os.PathLike)):
            self._fh: BinaryIO = open(out, "wb")  # noqa: SIM115 - closed by close()
            self._own = True
        else:
            self._fh = out
            self._own = False
        self._base = self._fh.tell()
        # Buffer 0 is written now (a crash leaves a readable prefix) and rewritten by close() with the counts.
        self._fh.write(header)

    # -------------------------------------------------------------------------------- setup

    def _build_structs(self) -> None:
        """Precompile one struct per hot record kind and pointer size (header + payload + zero padding)."""
        sh, ph = S.SYSTEM_HEADER, S.PERFINFO_HEADER
        self._st_alloc = {p: _compose(sh, P.HEAP_ALLOC[p]) for p in self._ptrs}
        self._st_free = {p: _compose(sh, P.HEAP_FREE[p]) for p in self._ptrs}
        self._st_realloc = {p: _compose(sh, P.HEAP_REALLOC[p]) for p in self._ptrs}
        self._st_create = {p: _compose(sh, P.HEAP_CREATE[p]) for p in self._ptrs}
        self._st_destroy = {p: _compose(sh, P.HEAP_COMMON[p]) for p in self._ptrs}
        self._sz_alloc = {p: sh.size + P.HEAP_ALLOC[p].size for p in self._ptrs}
        self._sz_free = {p: sh.size + P.HEAP_FREE[p].size for p in self._ptrs}
        self._sz_realloc = {p: sh.size + P.HEAP_REALLOC[p].size for p in self._ptrs}
        self._sz_create = {p: sh.size + P.HEAP_CREATE[p].size for p in self._ptrs}
        self._sz_destroy = {p: sh.size + P.HEAP_COMMON[p].size for p in self._ptrs}
        # stack walks: (pointer size, header kind, frame count) -> (struct, record size); filled on demand
        self._st_stack: dict[tuple[int, str, int], tuple[struct.Struct, int]] = {}
        self._stack_heads = {"perfinfo": ph, "system": sh}

    def _ptr(self, ptr: int | None) -> int:
        p = self.pointer_size if ptr is None else ptr
        if p not in self._ptrs:
            raise ValueError(f"pointer size {p} is not possible in a {self.pointer_size * 8}-bit trace")
        return p

    def filetime(self, ts: int) -> int:
        """FILETIME of a raw timestamp of this trace (notes 2.3)."""
        return filetime_of(ts, t0=self.t0, start_filetime=self.start_filetime, clock_type=self.clock_type,
                           perf_freq=self.perf_freq)

    # -------------------------------------------------------------------------------------- buffer mechanics

    def _reserve(self, cpu: int, ts: int, size: int) -> _CpuBuffer:
        """The buffer of ``cpu`` with room for an 8-aligned record of ``size`` bytes at ``.pos``.

        Flushes that CPU's buffer first when the record does not fit, as the kernel does (1.3: no record
        crosses a buffer).
        """
        if self._closed:
            raise ValueError("the trace is closed")
        try:
            c = self._cpu[cpu]
        except (KeyError, TypeError):
            raise ValueError(f"cpu {cpu!r} is not in 0..{self.cpus - 1}") from None
        if ts < c.last_ts:
            if ts < self.t0:
                raise ValueError(f"timestamp {ts} is before the session start t0={self.t0}")
            raise ValueError(f"cpu {cpu}: timestamp {ts} is before the previous record's {c.last_ts}; "
                             "records must come in non-decreasing time order per CPU")
        if size > self._max_record:
            raise ValueError(f"record of {size} bytes exceeds the {self._max_record}-byte limit "
                             "(u16 Size, and no record crosses a buffer)")
        if c.pos + _align8(size) > self.buffer_size:
            self._flush(c)
        return c

    def _flush(self, c: _CpuBuffer) -> None:
        """Write the CPU's buffer out with the next sequence number (file order = flush order, 1.1)."""
        self._seq += 1
        used = c.pos
        buf = c.buf
        flags = c.flags
        disk: bytes | bytearray = buf
        disk_size = self.buffer_size
        packed = False
        if self.compressed and used > S.BUFFER_HEADER_SIZE:
            body = xpress_compress(bytes(buf[S.BUFFER_HEADER_SIZE:used]))
            # A stream that does not shrink is stored plain: readers take min(BufferSize, Offset) - 0x48 bytes
            # (dissect) or reject BufferSize > the header's BufferSize (snail), so it could not be read back.
            if len(body) < used - S.BUFFER_HEADER_SIZE:
                packed = True
                flags |= S.BUFFER_FLAG_COMPRESSED
                disk_size = S.BUFFER_HEADER_SIZE + len(body)
                disk = self._buffer_header(disk_size, used, c.last_ts, self._seq, c.cpu, flags,
                                           _BUFFER_TYPE_GENERIC) + body
        if not packed:
            buf[used:] = self._ff[: self.buffer_size - used]
            buf[: S.BUFFER_HEADER_SIZE] = self._buffer_header(disk_size, used, c.last_ts, self._seq, c.cpu,
                                                              flags, _BUFFER_TYPE_GENERIC)
        self._fh.write(disk)
        self._flushed += 1
        if self.log is not None:
            self.log.append(WrittenBuffer(self._flushed, self._seq, c.cpu, flags, c.last_ts, used, disk_size,
                                          packed, c.records))
            c.records = []
        c.pos = S.BUFFER_HEADER_SIZE
        c.flags = _FLAG_PROC_INDEX

    @staticmethod
    def _buffer_header(disk_size: int, used: int, ts: int, seq: int, cpu: int, flags: int,
                       btype: int) -> bytes:
        """WMI_BUFFER_HEADER as in real files (9.2): SavedOffset = CurrentOffset = Offset = bytes used."""
        return S.BUFFER_HEADER.pack({
            "BufferSize": disk_size, "SavedOffset": used, "CurrentOffset": used, "ReferenceCount": 0,
            "TimeStamp": ts, "SequenceNumber": seq, "ClockInfo": 0, "ProcessorIndex": cpu,
            "LoggerId": _LOGGER_ID, "State": _STATE_FLUSHED, "Offset": used, "BufferFlag": flags,
            "BufferType": btype,
        })

    def _log(self, c: _CpuBuffer, pos: int, size: int, head: int, hook: int | None, version: int | None,
             htype: int, pid: int | None, tid: int | None, ts: int) -> None:
        data = bytes(c.buf[pos:pos + size])
        c.records.append(WrittenRecord(hook, version, htype, pid, tid, ts, data[head:], data))

    def _emit(self, cpu: int, ts: int, hook: int, version: int, kind: str, ptr: int, pid: int, tid: int,
              payload: bytes) -> None:
        """Frame and append one record (the general path: rare kinds, variable payloads)."""
        if kind == "system":
            head = S.SYSTEM_HEADER
            htype = _SYSTEM_TYPES[ptr]
            size = head.size + len(payload)
            hdr = head.pack({"Version": version, "HeaderType": htype, "Flags": _TRACE_FLAGS, "Size": size,
                             "Type": hook & 0xFF, "Group": hook >> 8, "ThreadId": tid, "ProcessId": pid,
                             "SystemTime": ts})
        else:
            head = S.PERFINFO_HEADER
            htype = _PERFINFO_TYPES[ptr]
            size = head.size + len(payload)
            hdr = head.pack({"Version": version, "HeaderType": htype, "Flags": _TRACE_FLAGS, "Size": size,
                             "Type": hook & 0xFF, "Group": hook >> 8, "SystemTime": ts})
        self._put(cpu, ts, hdr + payload, hook, version, htype, pid if kind == "system" else None,
                  tid if kind == "system" else None, head.size)

    def _put(self, cpu: int, ts: int, record: bytes, hook: int | None, version: int | None, htype: int,
             pid: int | None, tid: int | None, head: int) -> None:
        size = len(record)
        c = self._reserve(cpu, ts, size)
        pos = c.pos
        end = pos + _align8(size)
        c.buf[pos:pos + size] = record
        c.buf[pos + size:end] = bytes(end - pos - size)
        c.pos = end
        c.last_ts = ts
        if self.log is not None:
            self._log(c, pos, size, head, hook, version, htype, pid, tid, ts)

    # -------------------------------------------------------------------------------- header buffer

    def _header_buffer(self) -> bytearray:
        """Buffer 0 (2.1, 9.3): header record + optional 0x0005/0x0050 extensions, type 4, flag 0x0021, seq 0.

        Called at open (provisional counts) and again by :meth:`close` with the final ones.
        """
        p = self.pointer_size
        lfh = S.LOGFILE_HEADER64 if p == 8 else S.LOGFILE_HEADER32
        last_ts = max(c.last_ts for c in self._cpu.values())
        tz_rest = S.TIME_ZONE_REST.pack({
            "StandardName": _wchar_array(_TZ_STANDARD_NAME, 32), "StandardDate": bytes(16), "StandardBias": 0,
            "DaylightName": _wchar_array(_TZ_DAYLIGHT_NAME, 32), "DaylightDate": bytes(16), "DaylightBias": 0,
        })
        boot = self.filetime(0) if self.clock_type != S.CLOCK_SYSTEM_TIME else self.start_filetime - self.t0
        payload = lfh.pack({
            "BufferSize": self.buffer_size,
            "Version": _VERSION_LAYOUT_2_0 if self.compressed else _VERSION_LAYOUT_1_5,
            "ProviderVersion": _PROVIDER_VERSION,
            "NumberOfProcessors": self.cpus,
            "EndTime": self.filetime(last_ts),
            "TimerResolution": _TIMER_RESOLUTION,
            "MaximumFileSize": 0,
            "LogFileMode": _LOG_FILE_MODE_SEQUENTIAL | (S.LOG_FILE_MODE_COMPRESSED if self.compressed else 0),
            "BuffersWritten": 1 + self._flushed,
            "StartBuffers": 1,
            "PointerSize": p,
            "EventsLost": self.events_lost,
            "CpuSpeedInMHz": _CPU_SPEED_MHZ,
            "LoggerName": _HAL_TIMER_SOURCES[0],
            "LogFileName": _HAL_TIMER_SOURCES[1],
            "TimeZoneBias": 0,
            "TimeZoneRest": tz_rest,
            "BootTime": max(0, boot),
            "PerfFreq": self.perf_freq,
            "StartTime": self.start_filetime,
            "ReservedFlags": self.clock_type,
            "BuffersLost": self.buffers_lost,
        }) + _utf16z(self.logger_name) + _utf16z(self.log_file_name)
        records = [(K.HOOK_HEADER, payload, 1)]
        if self.header_extensions:
            ext = S.HEADER_EXTENSION.pack({"KernelEventVersion": _KERNEL_EVENT_VERSION})
            records.append((0x0005, ext, 1))
            records.append((0x0050, S.PARTITION_INFO.pack({}), 1))
        buf = bytearray(self.buffer_size)
        pos = S.BUFFER_HEADER_SIZE
        written: list[WrittenRecord] = []
        for hook, body, ktime in records:
            size = S.SYSTEM_HEADER.size + len(body)
            if size > S.MAX_RECORD_SIZE or pos + _align8(size) > self.buffer_size:
                raise ValueError("the header record (logger and log file names) does not fit in buffer 0")
            rec = S.SYSTEM_HEADER.pack({
                "Version": _V_HEADER, "HeaderType": _SYSTEM_TYPES[p], "Flags": _TRACE_FLAGS, "Size": size,
                "Type": hook & 0xFF, "Group": hook >> 8, "ThreadId": _CONTROLLER_TID,
                "ProcessId": _CONTROLLER_PID, "SystemTime": self.t0, "KernelTime": ktime, "UserTime": 0,
            }) + body
            buf[pos:pos + size] = rec
            written.append(WrittenRecord(hook, _V_HEADER, _SYSTEM_TYPES[p], _CONTROLLER_PID, _CONTROLLER_TID,
                                         self.t0, body, rec))
            pos += _align8(size)
        buf[pos:] = self._ff[: self.buffer_size - pos]
        flags = _FLAG_PROC_INDEX | _FLAG_FLUSH_MARKER
        buf[: S.BUFFER_HEADER_SIZE] = self._buffer_header(self.buffer_size, pos, 0, 0, 0, flags,
                                                          S.BUFFER_TYPE_HEADER)
        self._header_log = WrittenBuffer(0, 0, 0, flags, 0, pos, self.buffer_size, False, written)
        return buf

    # --------------------------------------------------------------------------------------- process / image

    def process(self, ts: int, cpu: int, pid: int, parent_pid: int, image_name: str, command_line: str = "",
                kind: str = "dcstart", *, tid: int | None = None) -> None:
        """A Process event, version 4 (6.2), with the LocalSystem SID.

        ``kind``: "start" 0x0301 / "end" 0x0302 (SYSTEM header: the creating context -- the parent for a
        start, the process itself for an end -- with ``tid`` or a made-up thread id) or "dcstart" 0x0303 /
        "dcend" 0x0304 (PERFINFO header, as the rundowns of the real samples).
        """
        try:
            hook = _PROCESS_HOOKS[kind]
        except KeyError:
            raise ValueError(f"process kind {kind!r} is not one of {sorted(_PROCESS_HOOKS)}") from None
        p = self.pointer_size
        live = kind != "end"
        fixed = P.PROCESS_V4[p].pack({
            "UniqueProcessKey": self._kernel_address(p, 0x8000 + pid),
            "ProcessId": pid,
            "ParentId": parent_pid,
            "SessionId": 0xFFFFFFFF if pid in (0, 4) else 1,
            "ExitStatus": _STILL_ACTIVE if live else 0,
            "DirectoryTableBase": 0x1AD000 + (pid << 12),
            "Flags": 0,
        })
        token = (P.TOKEN_USER64 if p == 8 else P.TOKEN_USER32).pack(
            {"Sid": self._kernel_address(p, 0x4000 + pid), "Attributes": 0})
        payload = (fixed + token + _SID_LOCAL_SYSTEM + image_name.encode("latin-1") + b"\0"
                   + _utf16z(command_line) + _utf16z("") + _utf16z(""))
        if kind in ("start", "end"):
            owner = parent_pid if kind == "start" else pid
            self._emit(cpu, ts, hook, _V_PROCESS, "system", p, owner, self._made_up_tid(owner, tid), payload)
        else:
            self._emit(cpu, ts, hook, _V_PROCESS, "perfinfo", p, 0, 0, payload)

    def image(self, ts: int, cpu: int, pid: int, base: int, size: int, file_name: str, kind: str = "dcstart",
              ptr: int | None = None, *, tid: int | None = None) -> None:
        """An Image event, version 3 (6.1); FileName should be an NT path as in real files.

        ``kind``: "load" 0x030A and "unload" 0x1402 (SYSTEM header with ``pid`` and ``tid`` -- or a made-up
        thread -- of the loading process), "dcstart" 0x1403 / "dcend" 0x1404 (PERFINFO header). Real kernels
        log WOW64 modules with the 64-bit layout, so leave ``ptr`` at None unless testing a 32-bit layout.
        """
        try:
            hook = _IMAGE_HOOKS[kind]
        except KeyError:
            raise ValueError(f"image kind {kind!r} is not one of {sorted(_IMAGE_HOOKS)}") from None
        p = self._ptr(ptr)
        digest = zlib.crc32(file_name.encode("utf-16-le"))
        payload = P.IMAGE_LOAD[p].pack({
            "ImageBase": base,
            "ImageSize": size,
            "ProcessId": pid,
            "ImageChecksum": (size ^ digest) & 0x00FFFFFF,
            "TimeDateStamp": 0x50000000 | (digest & 0x0FFFFFFF),
            "Signature": 0x0C | (0x01 << 8),  # SignatureLevel 0x0C, SignatureType 1 (user modules, samples)
            "DefaultBase": base,
        }) + _utf16z(file_name)
        if kind in ("load", "unload"):
            self._emit(cpu, ts, hook, _V_IMAGE, "system", p, pid, self._made_up_tid(pid, tid), payload)
        else:
            self._emit(cpu, ts, hook, _V_IMAGE, "perfinfo", p, 0, 0, payload)

    @staticmethod
    def _made_up_tid(pid: int, tid: int | None) -> int:
        """A plausible thread id (a multiple of 4, like Windows ids) when the caller has none."""
        return tid if tid is not None else (pid + 4) & 0xFFFFFFFC

    @staticmethod
    def _kernel_address(ptr: int, n: int) -> int:
        """A stable kernel-space address (EPROCESS, SID) of the form seen in real payloads."""
        if ptr == 8:
            return 0xFFFFCA8680000000 + (n << 8) + 0xC0
        return 0x84000000 + ((n << 8) & 0x0FFFFFFF) + 0xC0

    # -------------------------------------------------------------------------------- heap events

    def heap_create(self, ts: int, cpu: int, pid: int, tid: int, heap: int, flags: int = 0x2,
                    ptr: int | None = None) -> None:
        """Heap Create 0x1020, version 2: HeapHandle, HeapFlags (4.3)."""
        p = self._ptr(ptr)
        self._heap_fixed(self._st_create[p], self._sz_create[p], K.HOOK_HEAP_CREATE, p, ts, cpu, pid, tid,
                         heap, flags)

    def heap_alloc(self, ts: int, cpu: int, pid: int, tid: int, heap: int, size: int, addr: int,
                   source: int = 3, ptr: int | None = None) -> None:
        """Heap Alloc 0x1021, version 2: HeapHandle, AllocSize, AllocAddress, SourceId (4.3). Hot path."""
        p = self.pointer_size if ptr is None else ptr
        try:
            st = self._st_alloc[p]
        except KeyError:
            self._ptr(p)
            raise
        n = self._sz_alloc[p]
        c = self._reserve(cpu, ts, n)
        pos = c.pos
        try:
            st.pack_into(c.buf, pos, _V_HEAP, _SYSTEM_TYPES[p], _TRACE_FLAGS, n, _T_ALLOC, K.GROUP_HEAP, tid,
                         pid, ts, 0, 0, heap, size, addr, source)
        except struct.error as e:
            raise ValueError(f"heap_alloc: a value does not fit its field: {e}") from None
        c.pos = pos + st.size
        c.last_ts = ts
        if self.log is not None:
            self._log(c, pos, n, S.SYSTEM_HEADER.size, K.HOOK_HEAP_ALLOC, _V_HEAP, _SYSTEM_TYPES[p], pid, tid,
                      ts)

    def heap_realloc(self, ts: int, cpu: int, pid: int, tid: int, heap: int, new_addr: int, old_addr: int,
                     new_size: int, old_size: int, source: int = 3, ptr: int | None = None) -> None:
        """Heap ReAlloc 0x1022, version 2: HeapHandle, New/Old address, New/Old size, SourceId (4.3).

        Hot path."""
        p = self.pointer_size if ptr is None else ptr
        try:
            st = self._st_realloc[p]
        except KeyError:
            self._ptr(p)
            raise
        n = self._sz_realloc[p]
        c = self._reserve(cpu, ts, n)
        pos = c.pos
        try:
            st.pack_into(c.buf, pos, _V_HEAP, _SYSTEM_TYPES[p], _TRACE_FLAGS, n, _T_REALLOC, K.GROUP_HEAP,
                         tid, pid, ts, 0, 0, heap, new_addr, old_addr, new_size, old_size, source)
        except struct.error as e:
            raise ValueError(f"heap_realloc: a value does not fit its field: {e}") from None
        c.pos = pos + st.size
        c.last_ts = ts
        if self.log is not None:
            self._log(c, pos, n, S.SYSTEM_HEADER.size, K.HOOK_HEAP_REALLOC, _V_HEAP, _SYSTEM_TYPES[p], pid,
                      tid, ts)

    def heap_free(self, ts: int, cpu: int, pid: int, tid: int, heap: int, addr: int, source: int = 3,
                  ptr: int | None = None) -> None:
        """Heap Free 0x1024, version 2: HeapHandle, FreeAddress, SourceId (4.3). Hot path."""
        p = self.pointer_size if ptr is None else ptr
        try:
            st = self._st_free[p]
        except KeyError:
            self._ptr(p)
            raise
        n = self._sz_free[p]
        c = self._reserve(cpu, ts, n)
        pos = c.pos
        try:
            st.pack_into(c.buf, pos, _V_HEAP, _SYSTEM_TYPES[p], _TRACE_FLAGS, n, _T_FREE, K.GROUP_HEAP, tid,
                         pid, ts, 0, 0, heap, addr, source)
        except struct.error as e:
            raise ValueError(f"heap_free: a value does not fit its field: {e}") from None
        c.pos = pos + st.size
        c.last_ts = ts
        if self.log is not None:
            self._log(c, pos, n, S.SYSTEM_HEADER.size, K.HOOK_HEAP_FREE, _V_HEAP, _SYSTEM_TYPES[p], pid, tid,
                      ts)

    def heap_destroy(self, ts: int, cpu: int, pid: int, tid: int, heap: int, ptr: int | None = None) -> None:
        """Heap Destroy 0x1023, version 2: HeapHandle (4.3)."""
        p = self._ptr(ptr)
        self._heap_fixed(self._st_destroy[p], self._sz_destroy[p], K.HOOK_HEAP_DESTROY, p, ts, cpu, pid, tid,
                         heap)

    def _heap_fixed(self, st: struct.Struct, n: int, hook: int, p: int, ts: int, cpu: int, pid: int, tid: int,
                    *payload: int) -> None:
        """A fixed-size heap event: SYSTEM header (tid/pid of the allocating thread) + packed payload."""
        c = self._reserve(cpu, ts, n)
        pos = c.pos
        try:
            st.pack_into(c.buf, pos, _V_HEAP, _SYSTEM_TYPES[p], _TRACE_FLAGS, n, hook & 0xFF, hook >> 8, tid,
                         pid, ts, 0, 0, *payload)
        except struct.error as e:
            raise ValueError(f"heap event {hook:#06x}: a value does not fit its field: {e}") from None
        c.pos = pos + st.size
        c.last_ts = ts
        if self.log is not None:
            self._log(c, pos, n, S.SYSTEM_HEADER.size, hook, _V_HEAP, _SYSTEM_TYPES[p], pid, tid, ts)

    def heap_other(self, ts: int, cpu: int, pid: int, tid: int, hook: int, payload: bytes,
                   ptr: int | None = None) -> None:
        """Any other heap-group event (0x10xx) with a caller-built payload, e.g. Expand/SnapShot/Contract.

        For hooks whose layout the notes give (4.3), the payload must have the version-2 or version-3 size of
        the event's pointer size; the header Version follows from that size. Other heap hooks get Version 2.
        """
        if hook >> 8 != K.GROUP_HEAP:
            raise ValueError(f"hook {hook:#06x} is not in the heap group 0x10")
        p = self._ptr(ptr)
        version = _V_HEAP
        known = _HEAP_LAYOUTS.get(hook)
        if known is not None:
            v2, v3 = known
            sizes = {v2[p].size: 2}
            if v3 is not None:
                sizes[v3[p].size] = 3
            if len(payload) not in sizes:
                allowed = " or ".join(map(str, sorted(sizes)))
                raise ValueError(f"hook {hook:#06x} payload must be {allowed} bytes for {p * 8}-bit "
                                 f"pointers, not {len(payload)}")
            version = sizes[len(payload)]
        self._emit(cpu, ts, hook, version, "system", p, pid, tid, bytes(payload))

    # -------------------------------------------------------------------------------- stacks

    def stack(self, ts: int, cpu: int, event_ts: int, pid: int, tid: int, frames: Sequence[int],
              ptr: int | None = None, header: str = "perfinfo") -> None:
        """StackWalk 0x1820, version 2 (5.1): EventTimeStamp = ``event_ts`` (the heap event's raw timestamp),
        StackProcess, StackThread, frames innermost first. Hot path.

        ``header``: "perfinfo" (PERFINFO, no TID/PID -- the consumers' -1, most likely what the kernel writes)
        or "system" (SYSTEM header carrying ``tid``/``pid``).
        """
        p = self.pointer_size if ptr is None else ptr
        nf = len(frames)
        key = (p, header, nf)
        try:
            st, n = self._st_stack[key]
        except KeyError:
            st, n = self._stack_struct(key)
        c = self._reserve(cpu, ts, n)
        pos = c.pos
        try:
            if header == "perfinfo":
                st.pack_into(c.buf, pos, _V_STACK, _PERFINFO_TYPES[p], _TRACE_FLAGS, n, _T_STACK,
                             K.GROUP_STACKWALK, ts, event_ts, pid, tid, *frames)
            else:
                st.pack_into(c.buf, pos, _V_STACK, _SYSTEM_TYPES[p], _TRACE_FLAGS, n, _T_STACK,
                             K.GROUP_STACKWALK, tid, pid, ts, 0, 0, event_ts, pid, tid, *frames)
        except struct.error as e:
            raise ValueError(f"stack: a value does not fit its field: {e}") from None
        c.pos = pos + st.size
        c.last_ts = ts
        if self.log is not None:
            if header == "perfinfo":
                self._log(c, pos, n, S.PERFINFO_HEADER.size, K.HOOK_STACK_WALK, _V_STACK, _PERFINFO_TYPES[p],
                          None, None, ts)
            else:
                self._log(c, pos, n, S.SYSTEM_HEADER.size, K.HOOK_STACK_WALK, _V_STACK, _SYSTEM_TYPES[p], pid,
                          tid, ts)

    def _stack_struct(self, key: tuple[int, str, int]) -> tuple[struct.Struct, int]:
        p, header, nf = key
        self._ptr(p)
        try:
            head = self._stack_heads[header]
        except KeyError:
            raise ValueError(f"stack header must be 'perfinfo' or 'system', not {header!r}") from None
        st = _compose(head, P.STACK_WALK, tail=f"{nf}{_PTR_CODES[p]}" if nf else "")
        n = head.size + P.STACK_WALK.size + nf * p
        self._st_stack[key] = (st, n)
        return st, n

    def stack_key_create(self, ts: int, cpu: int, key: int, frames: Sequence[int],
                         hook: int = K.HOOK_STACK_KEY_CREATE, ptr: int | None = None) -> None:
        """A stack-cache key definition (5.3): 0x1822 KeyCreate, 0x1823 KeyDelete or 0x1824 KeyRundown;
        payload StackKey then frames; PERFINFO header like the other kernel stack events."""
        if hook not in (K.HOOK_STACK_KEY_CREATE, K.HOOK_STACK_KEY_DELETE, K.HOOK_STACK_KEY_RUNDOWN):
            raise ValueError(f"hook {hook:#06x} is not a stack key definition (0x1822..0x1824)")
        p = self._ptr(ptr)
        try:
            payload = (P.STACK_KEY_DEF[p].pack({"StackKey": key})
                       + struct.pack(f"<{len(frames)}{_PTR_CODES[p]}", *frames))
        except struct.error as e:
            raise ValueError(f"stack_key_create: a value does not fit its field: {e}") from None
        self._emit(cpu, ts, hook, _V_STACK, "perfinfo", p, 0, 0, payload)

    def stack_key_ref(self, ts: int, cpu: int, event_ts: int, pid: int, tid: int, key: int, user: bool = True,
                      ptr: int | None = None) -> None:
        """A stack-cache reference (5.3): 0x1826 StackKeyUser or 0x1825 StackKeyKernel; EventTimeStamp,
        StackProcess, StackThread, StackKey; PERFINFO header."""
        p = self._ptr(ptr)
        hook = K.HOOK_STACK_KEY_USER if user else K.HOOK_STACK_KEY_KERNEL
        payload = P.STACK_KEY_REF[p].pack({"EventTimeStamp": event_ts, "StackProcess": pid,
                                           "StackThread": tid, "StackKey": key})
        self._emit(cpu, ts, hook, _V_STACK, "perfinfo", p, 0, 0, payload)

    # -------------------------------------------------------------------------------- misc

    def raw(self, cpu: int, record: bytes) -> None:
        """Append an already framed record (tests of other header kinds); padded to 8 bytes with zeros.

        Its timestamp, read from the header type's field (3.2-3.6), keeps the per-CPU order check and the
        buffer TimeStamp honest; a header without one (WPP message) counts as the CPU's previous time.
        """
        record = bytes(record)
        if len(record) < 8:
            raise ValueError("a record is at least 8 bytes (marker and size)")
        marker = int.from_bytes(record[:4], "little")
        htype = (marker >> 16) & 0xFF
        off = _TS_OFFSETS.get(htype) if (marker >> 24) & 0xC0 == 0xC0 else None
        try:
            c = self._cpu[cpu]
        except (KeyError, TypeError):
            raise ValueError(f"cpu {cpu!r} is not in 0..{self.cpus - 1}") from None
        ts = c.last_ts
        if off is not None and len(record) >= off + 8:
            ts = int.from_bytes(record[off:off + 8], "little", signed=True)
        self._put(cpu, ts, record, None, None, htype, None, None, 0)

    def mark_events_lost(self, cpu: int) -> None:
        """Flag the CPU's current buffer EVENTS_LOST (0x0002), as the kernel does when it dropped events."""
        try:
            self._cpu[cpu].flags |= S.BUFFER_FLAG_EVENTS_LOST
        except (KeyError, TypeError):
            raise ValueError(f"cpu {cpu!r} is not in 0..{self.cpus - 1}") from None

    @property
    def buffers_written(self) -> int:
        """Buffers in the file so far, buffer 0 included (the header's BuffersWritten after close)."""
        return 1 + self._flushed

    def close(self) -> None:
        """Flush every CPU's buffer (CPU order; empty ones only if flagged), rewrite buffer 0 with the final
        BuffersWritten/EndTime, and close the output if the writer opened it. Idempotent."""
        if self._closed:
            return
        for cpu in sorted(self._cpu):
            c = self._cpu[cpu]
            if c.pos > S.BUFFER_HEADER_SIZE or c.flags != _FLAG_PROC_INDEX:
                self._flush(c)
        self._closed = True
        header = self._header_buffer()
        end = self._fh.tell()
        self._fh.seek(self._base)
        self._fh.write(header)
        self._fh.seek(end)
        self._fh.flush()
        if self.log is not None:
            self.log.insert(0, self._header_log)
        if self._own:
            self._fh.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: 4.3 heap hooks with a known layout: (version-2 payload, version-3 payload or None)
_HEAP_LAYOUTS: Final[dict[int, tuple[Payload, Payload | None]]] = {
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
