"""Binary structures of the .etl format, declared once.

Every structure is written down here with its C layout and hex offsets (from the project's format notes,
``etl-format.md``: section numbers are cited) and its size is asserted. The hot record walk reads its constants
(``OFF_*`` and ``*_SIZE``) from these declarations, the rare-record decoders call :meth:`Struct.unpack`, and the
trace writer calls :meth:`Struct.pack`: a field can only be wrong in one place.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from heapdiff.errors import TraceError

_CODES: Final = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "i32": "i", "i64": "q", "guid": "16s"}
_SIZES: Final = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "i32": 4, "i64": 8, "guid": 16}


class Struct:
    """A little-endian structure: named fields at declared offsets, unnamed bytes in between are padding.

    Declared as ``(offset, name, type)`` triples so that the declaration reads like the C comment above it; the
    constructor checks that offsets are increasing, that fields do not overlap and that they end inside ``size``.
    """

    def __init__(self, name: str, size: int, fields: Sequence[tuple[int, str, str]]) -> None:
        self.name = name
        self.size = size
        self.offsets: dict[str, int] = {}
        self.types: dict[str, str] = {}
        fmt = "<"
        pos = 0
        for off, fname, ftype in fields:
            if off < pos:
                raise AssertionError(f"{name}.{fname} at {off:#x} overlaps the previous field")
            if off > pos:
                fmt += f"{off - pos}x"
            if ftype.startswith("bytes"):
                n = int(ftype[5:])
                fmt += f"{n}s"
                pos = off + n
            else:
                fmt += _CODES[ftype]
                pos = off + _SIZES[ftype]
            self.offsets[fname] = off
            self.types[fname] = ftype
        if pos > size:
            raise AssertionError(f"{name} fields end at {pos:#x}, past its size {size:#x}")
        if pos < size:
            fmt += f"{size - pos}x"
        self._st = struct.Struct(fmt)
        if self._st.size != size:
            raise AssertionError(f"{name}: declared size {size:#x}, layout gives {self._st.size:#x}")
        self._names = [f[1] for f in fields]

    def off(self, field: str) -> int:
        return self.offsets[field]

    def unpack(self, data: bytes | bytearray | memoryview, offset: int = 0, base: int = 0) -> dict[str, Any]:
        """Decode at ``offset``; a short read raises :class:`TraceError` naming ``base + offset``."""
        if offset < 0 or offset + self.size > len(data):
            raise TraceError(f"{self.name} needs {self.size:#x} bytes, only {max(0, len(data) - offset):#x} left",
                             base + offset)
        return dict(zip(self._names, self._st.unpack_from(data, offset), strict=True))

    def pack(self, values: Mapping[str, int | bytes]) -> bytes:
        """Encode; fields not given are zero."""
        args: list[int | bytes] = []
        for n in self._names:
            t = self.types[n]
            default: int | bytes = b"" if t.startswith("bytes") or t == "guid" else 0
            args.append(values.get(n, default))
        return self._st.pack(*args)

    @property
    def format(self) -> str:
        """The :mod:`struct` format ("<", one code per field in declaration order, padding as "x").

        Lets a hot writer glue a header and a payload into one precompiled :class:`struct.Struct` (formats
        with "<" have no implicit alignment, so concatenation keeps every declared offset).
        """
        return self._st.format

    @property
    def field_names(self) -> tuple[str, ...]:
        """Field names in declaration order: the order :meth:`pack_into_values` takes its values in."""
        return tuple(self._names)

    def numpy_dtype(self) -> np.dtype[Any]:
        """The same layout as a numpy structured dtype, to read many instances at once (a strided view)."""
        codes = {"u8": "<u1", "u16": "<u2", "u32": "<u4", "u64": "<u8", "i32": "<i4", "i64": "<i8", "guid": "V16"}
        names = list(self._names)
        formats = [codes.get(self.types[k], f"V{self.types[k][5:]}" if self.types[k].startswith("bytes") else "")
                   for k in names]
        return np.dtype({"names": names, "formats": formats, "offsets": [self.offsets[k] for k in names],
                         "itemsize": self.size})

    def pack_into_values(self, buf: bytearray | memoryview, offset: int, *values: int | bytes) -> None:
        """Encode positional values (declaration order, padding zeroed) into ``buf`` at ``offset``.

        The dict-free twin of :meth:`pack` for paths that write millions of records.
        """
        self._st.pack_into(buf, offset, *values)


# --- 1.1 WMI_BUFFER_HEADER (0x48 bytes, same on 32- and 64-bit Windows) ------------------------------------------
#   0x00 u32 BufferSize      bytes from this header to the next buffer (on-disk size when compressed)
#   0x04 u32 SavedOffset     valid bytes incl. this header (uncompressed size when compressed)
#   0x08 u32 CurrentOffset   runtime cursor, not trusted
#   0x0C i32 ReferenceCount
#   0x10 i64 TimeStamp       flush time, raw clock
#   0x18 i64 SequenceNumber  flush order across the logger
#   0x20 u64 ClockType/Frequency | SlistEntry (stale kernel pointer in files)
#   0x28 u16 ProcessorIndex  CPU that owned the buffer
#   0x2A u16 LoggerId
#   0x2C u32 State           3 = flushed; compression format in buffer 0 of compressed files
#   0x30 u32 Offset          "FilledBytes": equals SavedOffset in real files
#   0x34 u16 BufferFlag      0x01 FLUSH_MARKER 0x02 EVENTS_LOST 0x04 BUFFER_LOST 0x20 PROC_INDEX 0x40 COMPRESSED
#   0x36 u16 BufferType      4 HEADER, 0 GENERIC, ...
#   0x38 16B ReferenceTime / padding
BUFFER_HEADER = Struct("WMI_BUFFER_HEADER", 0x48, [
    (0x00, "BufferSize", "u32"),
    (0x04, "SavedOffset", "u32"),
    (0x08, "CurrentOffset", "u32"),
    (0x0C, "ReferenceCount", "i32"),
    (0x10, "TimeStamp", "i64"),
    (0x18, "SequenceNumber", "i64"),
    (0x20, "ClockInfo", "u64"),
    (0x28, "ProcessorIndex", "u16"),
    (0x2A, "LoggerId", "u16"),
    (0x2C, "State", "u32"),
    (0x30, "Offset", "u32"),
    (0x34, "BufferFlag", "u16"),
    (0x36, "BufferType", "u16"),
    (0x38, "ReferenceTime", "bytes16"),
])
BUFFER_HEADER_SIZE: Final = 0x48
assert BUFFER_HEADER.size == BUFFER_HEADER_SIZE

BUFFER_FLAG_EVENTS_LOST: Final = 0x0002
BUFFER_FLAG_BUFFER_LOST: Final = 0x0004
BUFFER_FLAG_COMPRESSED: Final = 0x0040
BUFFER_TYPE_HEADER: Final = 4
PROCESSOR_INDEX_MASK: Final = 0x07FF  # phnt ETW_PROCESSOR_INDEX_MASK
LOG_FILE_MODE_COMPRESSED: Final = 0x04000000

# --- 3.1 record markers ----------------------------------------------------------------------------------------
# First dword of every record: byte 3 flags (0xC0 = trace header), byte 2 header type.
HT_SYSTEM32: Final = 0x01
HT_SYSTEM64: Final = 0x02
HT_COMPACT32: Final = 0x03
HT_COMPACT64: Final = 0x04
HT_FULL_HEADER32: Final = 0x0A  # EVENT_TRACE_HEADER
HT_INSTANCE32: Final = 0x0B     # EVENT_INSTANCE_GUID_HEADER
HT_ERROR: Final = 0x0D
HT_PERFINFO32: Final = 0x10
HT_PERFINFO64: Final = 0x11
HT_EVENT_HEADER32: Final = 0x12
HT_EVENT_HEADER64: Final = 0x13
HT_FULL_HEADER64: Final = 0x14
HT_INSTANCE64: Final = 0x15

#: header type -> (header size, pointer size of the payload, kind name)
HEADER_KINDS: Final[dict[int, tuple[int, int, str]]] = {
    HT_SYSTEM32: (0x20, 4, "system"),
    HT_SYSTEM64: (0x20, 8, "system"),
    HT_COMPACT32: (0x18, 4, "compact"),
    HT_COMPACT64: (0x18, 8, "compact"),
    HT_PERFINFO32: (0x10, 4, "perfinfo"),
    HT_PERFINFO64: (0x10, 8, "perfinfo"),
    HT_FULL_HEADER32: (0x30, 4, "event_trace"),
    HT_FULL_HEADER64: (0x30, 8, "event_trace"),
    HT_INSTANCE32: (0x48, 4, "instance"),
    HT_INSTANCE64: (0x48, 8, "instance"),
    HT_EVENT_HEADER32: (0x50, 4, "event_header"),
    HT_EVENT_HEADER64: (0x50, 8, "event_header"),
}
MESSAGE_HEADER_SIZE: Final = 8  # 3.1 MESSAGE_TRACE_HEADER (WPP), Size in the low word
MAX_RECORD_SIZE: Final = 0xFFFF

# --- 3.2 SYSTEM_TRACE_HEADER (0x20; compact form 0x18 stops before KernelTime) ------------------------------------
#   0x00 u16 Version (& 0xFF; 0x8000 PEBS, 0x0700 PMC count)   0x02 u8 HeaderType   0x03 u8 Flags 0xC0
#   0x04 u16 Size   0x06 u8 Type (opcode)   0x07 u8 Group   0x08 u32 ThreadId   0x0C u32 ProcessId
#   0x10 i64 SystemTime (raw timestamp)   0x18 u32 KernelTime   0x1C u32 UserTime
SYSTEM_HEADER = Struct("SYSTEM_TRACE_HEADER", 0x20, [
    (0x00, "Version", "u16"),
    (0x02, "HeaderType", "u8"),
    (0x03, "Flags", "u8"),
    (0x04, "Size", "u16"),
    (0x06, "Type", "u8"),
    (0x07, "Group", "u8"),
    (0x08, "ThreadId", "u32"),
    (0x0C, "ProcessId", "u32"),
    (0x10, "SystemTime", "i64"),
    (0x18, "KernelTime", "u32"),
    (0x1C, "UserTime", "u32"),
])
COMPACT_HEADER = Struct("COMPACT_SYSTEM_TRACE_HEADER", 0x18, [
    (0x00, "Version", "u16"),
    (0x02, "HeaderType", "u8"),
    (0x03, "Flags", "u8"),
    (0x04, "Size", "u16"),
    (0x06, "Type", "u8"),
    (0x07, "Group", "u8"),
    (0x08, "ThreadId", "u32"),
    (0x0C, "ProcessId", "u32"),
    (0x10, "SystemTime", "i64"),
])

# --- 3.3 PERFINFO_TRACE_HEADER (0x10 + extended items) -------------------------------------------------------------
#   0x00 u16 Version (+0x8000 PEBS u64, +0x0700 count of PMC u64 after the header)   0x02 u8 HeaderType 0x10/0x11
#   0x03 u8 Flags   0x04 u16 Size   0x06 u8 Type   0x07 u8 Group   0x08 i64 SystemTime   0x10 ext items, payload
PERFINFO_HEADER = Struct("PERFINFO_TRACE_HEADER", 0x10, [
    (0x00, "Version", "u16"),
    (0x02, "HeaderType", "u8"),
    (0x03, "Flags", "u8"),
    (0x04, "Size", "u16"),
    (0x06, "Type", "u8"),
    (0x07, "Group", "u8"),
    (0x08, "SystemTime", "i64"),
])
VERSION_PEBS_FLAG: Final = 0x8000
VERSION_PMC_MASK: Final = 0x0700

# --- 3.4 EVENT_TRACE_HEADER (0x30) / 3.5 EVENT_INSTANCE_GUID_HEADER (0x48) ------------------------------------
#   0x00 u16 Size   0x02 u8 HeaderType 0x0A/0x14 (0x0B/0x15 instance)   0x03 u8 MarkerFlags
#   0x04 u8 Class.Type (opcode)   0x05 u8 Class.Level   0x06 u16 Class.Version
#   0x08 u32 ThreadId   0x0C u32 ProcessId   0x10 i64 TimeStamp   0x18 GUID Guid (bytes_le)
#   0x28 u32 KernelTime   0x2C u32 UserTime   [instance: 0x30 u32 InstanceId  0x34 u32 ParentInstanceId
#   0x38 GUID ParentGuid]
_EVENT_TRACE_FIELDS: Final[list[tuple[int, str, str]]] = [
    (0x00, "Size", "u16"),
    (0x02, "HeaderType", "u8"),
    (0x03, "MarkerFlags", "u8"),
    (0x04, "Type", "u8"),
    (0x05, "Level", "u8"),
    (0x06, "Version", "u16"),
    (0x08, "ThreadId", "u32"),
    (0x0C, "ProcessId", "u32"),
    (0x10, "TimeStamp", "i64"),
    (0x18, "Guid", "guid"),
    (0x28, "KernelTime", "u32"),
    (0x2C, "UserTime", "u32"),
]
EVENT_TRACE_HEADER = Struct("EVENT_TRACE_HEADER", 0x30, _EVENT_TRACE_FIELDS)
INSTANCE_HEADER = Struct("EVENT_INSTANCE_GUID_HEADER", 0x48, [
    *_EVENT_TRACE_FIELDS,
    (0x30, "InstanceId", "u32"),
    (0x34, "ParentInstanceId", "u32"),
    (0x38, "ParentGuid", "guid"),
])

# --- 3.6 EVENT_HEADER (0x50 + extended items) ---------------------------------------------------------------------
#   0x00 u16 Size   0x02 u16 HeaderType 0xC012/0xC013   0x04 u16 Flags (0x1 EXTENDED_INFO)   0x06 u16 EventProperty
#   0x08 u32 ThreadId   0x0C u32 ProcessId   0x10 i64 TimeStamp   0x18 GUID ProviderId
#   0x28 u16 Id   0x2A u8 Version   0x2B u8 Channel   0x2C u8 Level   0x2D u8 Opcode   0x2E u16 Task
#   0x30 u64 Keyword   0x38 u32 KernelTime   0x3C u32 UserTime   0x40 GUID ActivityId
EVENT_HEADER = Struct("EVENT_HEADER", 0x50, [
    (0x00, "Size", "u16"),
    (0x02, "HeaderType", "u8"),
    (0x03, "MarkerFlags", "u8"),
    (0x04, "Flags", "u16"),
    (0x06, "EventProperty", "u16"),
    (0x08, "ThreadId", "u32"),
    (0x0C, "ProcessId", "u32"),
    (0x10, "TimeStamp", "i64"),
    (0x18, "ProviderId", "guid"),
    (0x28, "Id", "u16"),
    (0x2A, "Version", "u8"),
    (0x2B, "Channel", "u8"),
    (0x2C, "Level", "u8"),
    (0x2D, "Opcode", "u8"),
    (0x2E, "Task", "u16"),
    (0x30, "Keyword", "u64"),
    (0x38, "KernelTime", "u32"),
    (0x3C, "UserTime", "u32"),
    (0x40, "ActivityId", "guid"),
])
EVENT_HEADER_FLAG_EXTENDED_INFO: Final = 0x0001
#   extended item (8-aligned): 0x00 u16 Reserved1 = total item size   0x02 u16 ExtType   0x04 u16 Linkage (bit 0)
#   0x06 u16 DataSize   0x08 data
EXT_ITEM_HEADER = Struct("EVENT_HEADER_EXTENDED_DATA_ITEM", 0x08, [
    (0x00, "ItemSize", "u16"),
    (0x02, "ExtType", "u16"),
    (0x04, "Linkage", "u16"),
    (0x06, "DataSize", "u16"),
])
EXT_TYPE_STACK_TRACE32: Final = 5
EXT_TYPE_STACK_TRACE64: Final = 6

# --- 2.2 TRACE_LOGFILE_HEADER (payload of the header record; 0x110 32-bit, 0x118 64-bit before the strings) -----
#   x86  x64
#   0x00 0x00  u32 BufferSize          0x04 0x04 u32 Version (Major,Minor,Sub,SubMinor bytes)
#   0x08 0x08  u32 ProviderVersion     0x0C 0x0C u32 NumberOfProcessors
#   0x10 0x10  i64 EndTime (FILETIME)  0x18 0x18 u32 TimerResolution   0x1C 0x1C u32 MaximumFileSize
#   0x20 0x20  u32 LogFileMode         0x24 0x24 u32 BuffersWritten    0x28 0x28 u32 StartBuffers
#   0x2C 0x2C  u32 PointerSize         0x30 0x30 u32 EventsLost        0x34 0x34 u32 CpuSpeedInMHz
#   0x38 0x38  ptr LoggerName          0x3C 0x40 ptr LogFileName
#   0x40 0x48  TIME_ZONE_INFORMATION (0xAC) + 4 pad
#   0xF0 0xF8  i64 BootTime            0xF8 0x100 i64 PerfFreq        0x100 0x108 i64 StartTime
#   0x108 0x110 u32 ReservedFlags (clock type)   0x10C 0x114 u32 BuffersLost   0x110 0x118 UTF-16Z names
def _logfile_header(ptr: int) -> Struct:
    d = 0 if ptr == 4 else 8
    return Struct(f"TRACE_LOGFILE_HEADER{ptr * 8}", 0x110 + d, [
        (0x00, "BufferSize", "u32"),
        (0x04, "Version", "u32"),
        (0x08, "ProviderVersion", "u32"),
        (0x0C, "NumberOfProcessors", "u32"),
        (0x10, "EndTime", "i64"),
        (0x18, "TimerResolution", "u32"),
        (0x1C, "MaximumFileSize", "u32"),
        (0x20, "LogFileMode", "u32"),
        (0x24, "BuffersWritten", "u32"),
        (0x28, "StartBuffers", "u32"),
        (0x2C, "PointerSize", "u32"),
        (0x30, "EventsLost", "u32"),
        (0x34, "CpuSpeedInMHz", "u32"),
        (0x38, "LoggerName", "u32" if ptr == 4 else "u64"),
        (0x3C + (d // 2), "LogFileName", "u32" if ptr == 4 else "u64"),
        (0x40 + d, "TimeZoneBias", "i32"),
        (0x44 + d, "TimeZoneRest", "bytes168"),  # 0xAC - 4 bytes of TIME_ZONE_INFORMATION, then 4 pad
        (0xF0 + d, "BootTime", "i64"),
        (0xF8 + d, "PerfFreq", "i64"),
        (0x100 + d, "StartTime", "i64"),
        (0x108 + d, "ReservedFlags", "u32"),
        (0x10C + d, "BuffersLost", "u32"),
    ])


#: 2.2 TIME_ZONE_INFORMATION after its Bias (the ``TimeZoneRest`` bytes of TRACE_LOGFILE_HEADER; offsets from
#: TimeZone+4): StandardName WCHAR[32] @0, StandardDate SYSTEMTIME @0x40, StandardBias i32 @0x50,
#: DaylightName WCHAR[32] @0x54, DaylightDate SYSTEMTIME @0x94, DaylightBias i32 @0xA4
TIME_ZONE_REST = Struct("TIME_ZONE_INFORMATION_after_Bias", 0xA8, [
    (0x00, "StandardName", "bytes64"),
    (0x40, "StandardDate", "bytes16"),
    (0x50, "StandardBias", "i32"),
    (0x54, "DaylightName", "bytes64"),
    (0x94, "DaylightDate", "bytes16"),
    (0xA4, "DaylightBias", "i32"),
])

#: 2.1 hook 0x0005 header "Extension" (and 0x0020 EndExtension): 8 x u32 group masks + u32 KernelEventVersion
HEADER_EXTENSION = Struct("ETW_KERNEL_HEADER_EXTENSION", 0x24, [
    *[(4 * i, f"GroupMask{i + 1}", "u32") for i in range(8)],
    (0x20, "KernelEventVersion", "u32"),
])
#: 2.1 hook 0x0050 PartitionInfoExtension (all zero in real files): Version u16, Reserved u16,
#: PartitionType u32, QpcOffsetFromRoot i64, PartitionId GUID, ParentId GUID
PARTITION_INFO = Struct("PartitionInfoExtension", 0x30, [
    (0x00, "Version", "u16"),
    (0x02, "Reserved", "u16"),
    (0x04, "PartitionType", "u32"),
    (0x08, "QpcOffsetFromRoot", "i64"),
    (0x10, "PartitionId", "guid"),
    (0x20, "ParentId", "guid"),
])

LOGFILE_HEADER32 = _logfile_header(4)
LOGFILE_HEADER64 = _logfile_header(8)
assert LOGFILE_HEADER32.size == 0x110 and LOGFILE_HEADER64.size == 0x118
assert LOGFILE_HEADER64.off("PerfFreq") == 0x100 and LOGFILE_HEADER32.off("PerfFreq") == 0xF8
assert LOGFILE_HEADER64.off("LogFileName") == 0x40

CLOCK_QPC: Final = 1
CLOCK_SYSTEM_TIME: Final = 2
CLOCK_CPU_CYCLES: Final = 3
FILETIME_UNIX_EPOCH: Final = 116444736000000000  # 1970-01-01 in 100 ns ticks since 1601-01-01


# --- pointer-sized packed payloads (4.3, 5.1, 6.1, 6.2) ----------------------------------------------------------
class Payload:
    """A packed event payload whose fields are u32/u64 or pointer-sized ("ptr"): offsets follow the pointer size.

    TraceEvent's HostOffset rule: each pointer before a field moves it by (P - 4). The two concrete layouts are
    computed once per pointer size and the size is asserted against the notes' table in the declaration.
    """

    def __init__(self, name: str, fields: Sequence[tuple[str, str]], size32: int, size64: int) -> None:
        self.name = name
        self.fields = list(fields)
        self.layouts: dict[int, Struct] = {}
        for ptr, expect in ((4, size32), (8, size64)):
            pos = 0
            decl: list[tuple[int, str, str]] = []
            for fname, ftype in fields:
                t = ("u32" if ptr == 4 else "u64") if ftype == "ptr" else ftype
                decl.append((pos, fname, t))
                pos += _SIZES[t]
            if pos != expect:
                raise AssertionError(f"{name}: {ptr * 8}-bit layout is {pos:#x} bytes, notes say {expect:#x}")
            self.layouts[ptr] = Struct(f"{name}{ptr * 8}", pos, decl)

    def __getitem__(self, ptr: int) -> Struct:
        return self.layouts[ptr]


#: 4.3 Alloc (0x1021): HeapHandle ptr @0/0, AllocSize ptr @4/8, AllocAddress ptr @8/0x10, SourceId u32 @0xC/0x18
HEAP_ALLOC = Payload("HeapAlloc", [("HeapHandle", "ptr"), ("AllocSize", "ptr"), ("AllocAddress", "ptr"),
                                   ("SourceId", "u32")], 0x10, 0x1C)
#: 4.3 Free (0x1024): HeapHandle @0/0, FreeAddress @4/8, SourceId u32 @8/0x10
HEAP_FREE = Payload("HeapFree", [("HeapHandle", "ptr"), ("FreeAddress", "ptr"), ("SourceId", "u32")], 0x0C, 0x14)
#: 4.3 ReAlloc (0x1022): HeapHandle @0/0, NewAllocAddress @4/8, OldAllocAddress @8/0x10, NewAllocSize @0xC/0x18,
#: OldAllocSize @0x10/0x20, SourceId u32 @0x14/0x28
HEAP_REALLOC = Payload("HeapReAlloc", [("HeapHandle", "ptr"), ("NewAllocAddress", "ptr"), ("OldAllocAddress", "ptr"),
                                       ("NewAllocSize", "ptr"), ("OldAllocSize", "ptr"), ("SourceId", "u32")],
                       0x18, 0x2C)
#: 4.3 Create (0x1020) v2: HeapHandle @0/0, HeapFlags u32 @4/8
HEAP_CREATE = Payload("HeapCreate", [("HeapHandle", "ptr"), ("HeapFlags", "u32")], 0x08, 0x0C)
#: 4.3 Create v3 adds ReservedSpace @8/0xC, CommittedSpace @0xC/0x14, AllocatedSpace @0x10/0x1C (unaligned)
HEAP_CREATE_V3 = Payload("HeapCreateV3", [("HeapHandle", "ptr"), ("HeapFlags", "u32"), ("ReservedSpace", "ptr"),
                                          ("CommittedSpace", "ptr"), ("AllocatedSpace", "ptr")], 0x14, 0x24)
#: 4.3 Destroy (0x1023), Lock/Unlock/Validate/Walk: HeapHandle only
HEAP_COMMON = Payload("HeapCommon", [("HeapHandle", "ptr")], 0x04, 0x08)
#: 4.3 Expand (0x1025) / Contract (0x102A) v2: 7 pointer-sized fields + NoOfUCRs u32
HEAP_EXPANSION = Payload("HeapExpansion", [("HeapHandle", "ptr"), ("Size", "ptr"), ("Address", "ptr"),
                                           ("FreeSpace", "ptr"), ("CommittedSpace", "ptr"), ("ReservedSpace", "ptr"),
                                           ("NoOfUCRs", "u32")], 0x1C, 0x34)
HEAP_EXPANSION_V3 = Payload("HeapExpansionV3", [*HEAP_EXPANSION.fields, ("AllocatedSpace", "ptr")], 0x20, 0x3C)

#: 4.3 SnapShot (0x1026) v2: HeapHandle ptr, FreeSpace S, CommittedSpace S, ReservedSpace S, HeapFlags u32,
#: ProcessId u32, LargeUCRSpace S, FreeListLength u32, UCRLength u32; v3 adds AllocatedSpace S
HEAP_SNAPSHOT = Payload("HeapSnapShot", [
    ("HeapHandle", "ptr"), ("FreeSpace", "ptr"), ("CommittedSpace", "ptr"), ("ReservedSpace", "ptr"),
    ("HeapFlags", "u32"), ("ProcessId", "u32"), ("LargeUCRSpace", "ptr"), ("FreeListLength", "u32"),
    ("UCRLength", "u32"),
], 0x24, 0x38)
HEAP_SNAPSHOT_V3 = Payload("HeapSnapShotV3", [*HEAP_SNAPSHOT.fields, ("AllocatedSpace", "ptr")], 0x28, 0x40)

#: 5.1 StackWalk (0x1820): EventTimeStamp u64 @0, StackProcess u32 @8, StackThread u32 @0xC, frames ptr[] @0x10
STACK_WALK = Struct("STACK_WALK_EVENT_DATA", 0x10, [
    (0x00, "EventTimeStamp", "u64"),
    (0x08, "StackProcess", "u32"),
    (0x0C, "StackThread", "u32"),
])
#: 5.3 StackKeyKernel/User (0x1825/0x1826): as STACK_WALK then StackKey ptr @0x10
STACK_KEY_REF = Payload("StackKeyRef", [("EventTimeStamp", "u64"), ("StackProcess", "u32"), ("StackThread", "u32"),
                                        ("StackKey", "ptr")], 0x14, 0x18)
#: 5.3 KeyCreate/KeyDelete/KeyRundown (0x1822-0x1824): StackKey ptr @0, then ptr frames
STACK_KEY_DEF = Payload("StackKeyDef", [("StackKey", "ptr")], 0x04, 0x08)

#: 6.1 Image v2/v3: ImageBase ptr @0/0, ImageSize ptr @4/8, ProcessId u32 @8/0x10, ImageChecksum @0xC/0x14,
#: TimeDateStamp @0x10/0x18, SignatureLevel.. u32 @0x14/0x1C, DefaultBase ptr @0x18/0x20, Reserved1..4 @0x1C/0x28,
#: FileName UTF-16Z @0x2C/0x38
IMAGE_LOAD = Payload("ImageLoad", [("ImageBase", "ptr"), ("ImageSize", "ptr"), ("ProcessId", "u32"),
                                   ("ImageChecksum", "u32"), ("TimeDateStamp", "u32"), ("Signature", "u32"),
                                   ("DefaultBase", "ptr"), ("Reserved1", "u32"), ("Reserved2", "u32"),
                                   ("Reserved3", "u32"), ("Reserved4", "u32")], 0x2C, 0x38)
#: 6.1 Image v1: ImageBase ptr, ImageSize ptr, ProcessId u32, FileName @0xC/0x14
IMAGE_LOAD_V1 = Payload("ImageLoadV1", [("ImageBase", "ptr"), ("ImageSize", "ptr"), ("ProcessId", "u32")],
                        0x0C, 0x14)
#: 6.1 Image v0: BaseAddress ptr, ModuleSize u32, FileName @8/0xC
IMAGE_LOAD_V0 = Payload("ImageLoadV0", [("ImageBase", "ptr"), ("ImageSize", "u32")], 0x08, 0x0C)

#: 6.2 Process v3+: UniqueProcessKey ptr @0/0, ProcessId u32 @4/8, ParentId @8/0xC, SessionId @0xC/0x10,
#: ExitStatus i32 @0x10/0x14, DirectoryTableBase ptr @0x14/0x18, [v4+] Flags u32 @0x18/0x20, then the SID
PROCESS_V3 = Payload("ProcessV3", [("UniqueProcessKey", "ptr"), ("ProcessId", "u32"), ("ParentId", "u32"),
                                   ("SessionId", "u32"), ("ExitStatus", "i32"), ("DirectoryTableBase", "ptr")],
                     0x18, 0x20)
PROCESS_V4 = Payload("ProcessV4", [*PROCESS_V3.fields, ("Flags", "u32")], 0x1C, 0x24)
#: 6.2 UserSID, non-NULL form: TOKEN_USER {Sid ptr, Attributes u32} as laid out in memory (2 x P bytes: the
#: 64-bit form has 4 bytes of alignment padding, stale in real files), then the SID itself
TOKEN_USER32 = Struct("TOKEN_USER32", 0x08, [(0x00, "Sid", "u32"), (0x04, "Attributes", "u32")])
TOKEN_USER64 = Struct("TOKEN_USER64", 0x10, [(0x00, "Sid", "u64"), (0x08, "Attributes", "u32")])
#: SID: Revision u8 @0, SubAuthorityCount u8 @1, IdentifierAuthority 6 bytes big-endian @2, then
#: SubAuthorityCount x u32 @8
SID_HEADER = Struct("SID", 0x08, [(0x00, "Revision", "u8"), (0x01, "SubAuthorityCount", "u8"),
                                  (0x02, "IdentifierAuthority", "bytes6")])

#: 6.2 Process v2: UniqueProcessKey ptr, ProcessId, ParentId, SessionId, ExitStatus, then the SID
PROCESS_V2 = Payload("ProcessV2", PROCESS_V3.fields[:5], 0x14, 0x18)

#: 6.3 KernelTraceControl ImageID (opcode 0): ImageBase ptr, ImageSize ptr, ProcessId u32, TimeDateStamp u32,
#: OriginalFileName UTF-16Z @0x10/0x18
IMAGE_ID = Payload("ImageID", [("ImageBase", "ptr"), ("ImageSize", "ptr"), ("ProcessId", "u32"),
                               ("TimeDateStamp", "u32")], 0x10, 0x18)
#: 6.3 DbgID_RSDS (opcode 0x24): ImageBase ptr, ProcessId u32, GuidSig GUID @8/0xC, Age u32 @0x18/0x1C,
#: PdbFileName UTF-8Z @0x1C/0x20
DBGID_RSDS = Payload("DbgID_RSDS", [("ImageBase", "ptr"), ("ProcessId", "u32"), ("GuidSig", "guid"),
                                    ("Age", "u32")], 0x1C, 0x20)
