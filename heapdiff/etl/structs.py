"""The file, buffer and record headers of the .etl format, declared once.

Every structure is written down here with its C layout and hex offsets (from the project's format notes,
``etl-format.md``: section numbers are cited) and its size is asserted (:mod:`heapdiff.etl.cstruct`). The record
walk reads the module-level constants at the end of this file, which are derived from the declarations (the JIT
folds module-level ints into the compiled kernel); the header decoders call :meth:`Struct.unpack` and the trace
writer :meth:`Struct.pack`: a field can only be wrong in one place. Event payloads are in
:mod:`heapdiff.etl.payloads`.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from heapdiff.etl.cstruct import Struct

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
#: 2.2 LogFileMode bits that decide how many buffers a file can hold: a circular file keeps at most its
#: MaximumFileSize (MB, or KB with the KBYTES bit) and overwrites its oldest buffers on purpose; a sequential one
#: keeps every buffer
LOG_FILE_MODE_SEQUENTIAL: Final = 0x00000001
LOG_FILE_MODE_CIRCULAR: Final = 0x00000002
LOG_FILE_MODE_APPEND: Final = 0x00000004
LOG_FILE_MODE_NEWFILE: Final = 0x00000008
LOG_FILE_MODE_KBYTES_FOR_SIZE: Final = 0x00002000
#: the modes a circular file cannot have (Logging Mode Constants: "Do not use with APPEND, NEWFILE, or
#: SEQUENTIAL"): a LogFileMode with circular and one of them is damaged
LOG_FILE_MODES_NOT_CIRCULAR: Final = LOG_FILE_MODE_SEQUENTIAL | LOG_FILE_MODE_APPEND | LOG_FILE_MODE_NEWFILE

# --- 3.1 record markers ----------------------------------------------------------------------------------------
# First dword of every record: byte 3 flags, byte 2 header type; the low word is the record's Size for the
# message and GUID-carrying headers. 0xFFFFFFFF fills a buffer after its last record.
MARKER_FILLER: Final = 0xFFFFFFFF
MARKER_FLAGS_SHIFT: Final = 24
MARKER_TYPE_SHIFT: Final = 16
MARKER_TYPE_MASK: Final = 0xFF
MARKER_SIZE_MASK: Final = 0xFFFF
MARKER_FLAG_TRACE_HEADER: Final = 0x80  # TRACE_HEADER_FLAG: a trace header at all
MARKER_FLAG_EVENT_TRACE: Final = 0x40   # TRACE_HEADER_EVENT_TRACE: with it, the header type says which
MARKER_FLAG_MESSAGE: Final = 0x10       # TRACE_MESSAGE (WPP), with the trace header flag alone
MARKER_TYPED: Final = MARKER_FLAG_TRACE_HEADER | MARKER_FLAG_EVENT_TRACE

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

# header kinds: how the walk reads a header type (the offsets below, per kind)
HK_UNKNOWN: Final = 0
HK_SYSTEM: Final = 1       # SYSTEM_TRACE_HEADER, full or compact (3.2): hook, TID, PID in the header
HK_PERFINFO: Final = 2     # PERFINFO_TRACE_HEADER (3.3): hook, no TID/PID
HK_EVENT_TRACE: Final = 3  # EVENT_TRACE_HEADER, instance header (3.4, 3.5): GUID, opcode
HK_EVENT_HEADER: Final = 4  # EVENT_HEADER and ERROR (3.6): GUID, opcode, extended items

MESSAGE_HEADER_SIZE: Final = 8  # 3.1 MESSAGE_TRACE_HEADER (WPP), Size in the low word
#: where a WPP message's timestamp usually is (its options vary: read only when the record is long enough)
MESSAGE_TS_OFFSET: Final = 0x08
MAX_RECORD_SIZE: Final = 0xFFFF
RECORD_ALIGN: Final = 8  # records start 8-aligned in their buffer (1.3)

# --- 3.2 SYSTEM_TRACE_HEADER (0x20; compact form 0x18 stops before KernelTime) ------------------------------------
#   0x00 u16 Version (& 0xFF; 0x8000 PEBS, 0x0700 PMC count)   0x02 u8 HeaderType   0x03 u8 Flags 0xC0
#   0x04 u16 Size   0x06 u8 Type (opcode)   0x07 u8 Group   0x08 u32 ThreadId   0x0C u32 ProcessId
#   0x10 i64 SystemTime (raw timestamp)   0x18 u32 KernelTime   0x1C u32 UserTime
#: the first 8 bytes of every classic header (3.2, 3.3): Version, type, flags, Size and the HookId
_CLASSIC_FIELDS: Final[list[tuple[int, str, str]]] = [
    (0x00, "Version", "u16"),
    (0x02, "HeaderType", "u8"),
    (0x03, "Flags", "u8"),
    (0x04, "Size", "u16"),
    (0x06, "Type", "u8"),
    (0x07, "Group", "u8"),
]
_COMPACT_FIELDS: Final[list[tuple[int, str, str]]] = [
    *_CLASSIC_FIELDS,
    (0x08, "ThreadId", "u32"),
    (0x0C, "ProcessId", "u32"),
    (0x10, "SystemTime", "i64"),
]
SYSTEM_HEADER = Struct("SYSTEM_TRACE_HEADER", 0x20, [
    *_COMPACT_FIELDS,
    (0x18, "KernelTime", "u32"),
    (0x1C, "UserTime", "u32"),
])
COMPACT_HEADER = Struct("COMPACT_SYSTEM_TRACE_HEADER", 0x18, _COMPACT_FIELDS)

# --- 3.3 PERFINFO_TRACE_HEADER (0x10 + extended items) -------------------------------------------------------------
#   0x00 u16 Version (+0x8000 PEBS u64, +0x0700 count of PMC u64 after the header)   0x02 u8 HeaderType 0x10/0x11
#   0x03 u8 Flags   0x04 u16 Size   0x06 u8 Type   0x07 u8 Group   0x08 i64 SystemTime   0x10 ext items, payload
PERFINFO_HEADER = Struct("PERFINFO_TRACE_HEADER", 0x10, [*_CLASSIC_FIELDS, (0x08, "SystemTime", "i64")])
#: what consumers see as the thread and process of a header without them (PERFINFO, WPP): -1 as a u32
NO_THREAD: Final = 0xFFFFFFFF
VERSION_MASK: Final = 0x00FF
VERSION_PEBS_FLAG: Final = 0x8000
VERSION_PMC_MASK: Final = 0x0700
VERSION_PMC_SHIFT: Final = 8
CLASSIC_EXT_ITEM_SIZE: Final = 8  # a PEBS index or a PMC counter: one u64 each

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
EXT_LINKAGE_MORE: Final = 0x0001  # Linkage bit 0: another item follows
EXT_TYPE_STACK_TRACE32: Final = 5
EXT_TYPE_STACK_TRACE64: Final = 6

#: header type -> (kind, header size, pointer size of the payload) (3.1). ERROR (0x0D) is EVENT_HEADER-shaped and
#: says nothing of its pointer size: 8 is taken.
HEADER_KINDS: Final[dict[int, tuple[int, int, int]]] = {
    HT_SYSTEM32: (HK_SYSTEM, SYSTEM_HEADER.size, 4),
    HT_SYSTEM64: (HK_SYSTEM, SYSTEM_HEADER.size, 8),
    HT_COMPACT32: (HK_SYSTEM, COMPACT_HEADER.size, 4),
    HT_COMPACT64: (HK_SYSTEM, COMPACT_HEADER.size, 8),
    HT_PERFINFO32: (HK_PERFINFO, PERFINFO_HEADER.size, 4),
    HT_PERFINFO64: (HK_PERFINFO, PERFINFO_HEADER.size, 8),
    HT_FULL_HEADER32: (HK_EVENT_TRACE, EVENT_TRACE_HEADER.size, 4),
    HT_FULL_HEADER64: (HK_EVENT_TRACE, EVENT_TRACE_HEADER.size, 8),
    HT_INSTANCE32: (HK_EVENT_TRACE, INSTANCE_HEADER.size, 4),
    HT_INSTANCE64: (HK_EVENT_TRACE, INSTANCE_HEADER.size, 8),
    HT_EVENT_HEADER32: (HK_EVENT_HEADER, EVENT_HEADER.size, 4),
    HT_EVENT_HEADER64: (HK_EVENT_HEADER, EVENT_HEADER.size, 8),
    HT_ERROR: (HK_EVENT_HEADER, EVENT_HEADER.size, 8),
}

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

# --- what the record walk reads (heapdiff.etl.walk), derived from the declarations above ---------------------------
#: per header type (the index): its kind (HK_*), header size and payload pointer size; 0 where the type is unknown
HEADER_KIND_OF: Final = np.full(256, HK_UNKNOWN, np.int64)
HEADER_SIZE_OF: Final = np.zeros(256, np.int64)
HEADER_PTR_OF: Final = np.zeros(256, np.int64)
for _ht, (_kind, _size, _ptr) in HEADER_KINDS.items():
    HEADER_KIND_OF[_ht], HEADER_SIZE_OF[_ht], HEADER_PTR_OF[_ht] = _kind, _size, _ptr

# classic headers (SYSTEM, compact, PERFINFO share their first 8 bytes)
CLASSIC_VERSION: Final = SYSTEM_HEADER.off("Version")
CLASSIC_SIZE: Final = SYSTEM_HEADER.off("Size")
CLASSIC_TYPE: Final = SYSTEM_HEADER.off("Type")
CLASSIC_GROUP: Final = SYSTEM_HEADER.off("Group")
SYSTEM_TID: Final = SYSTEM_HEADER.off("ThreadId")
SYSTEM_PID: Final = SYSTEM_HEADER.off("ProcessId")
SYSTEM_TS: Final = SYSTEM_HEADER.off("SystemTime")
#: a SYSTEM header must hold this much for its TID, PID and timestamp: the compact form's size
SYSTEM_FIELDS_END: Final = COMPACT_HEADER.size
PERFINFO_TS: Final = PERFINFO_HEADER.off("SystemTime")
PERFINFO_SIZE: Final = PERFINFO_HEADER.size
# GUID-carrying headers (EVENT_TRACE, instance, EVENT_HEADER share their TID, PID, timestamp and GUID offsets)
GUID_HEADER_MIN: Final = EVENT_TRACE_HEADER.size
GUID_TID: Final = EVENT_TRACE_HEADER.off("ThreadId")
GUID_PID: Final = EVENT_TRACE_HEADER.off("ProcessId")
GUID_TS: Final = EVENT_TRACE_HEADER.off("TimeStamp")
GUID_LO: Final = EVENT_TRACE_HEADER.off("Guid")
GUID_HI: Final = GUID_LO + 8
EVENT_TRACE_OPCODE: Final = EVENT_TRACE_HEADER.off("Type")
EVENT_TRACE_VERSION: Final = EVENT_TRACE_HEADER.off("Version")
EVENT_HEADER_FLAGS: Final = EVENT_HEADER.off("Flags")
EVENT_HEADER_OPCODE: Final = EVENT_HEADER.off("Opcode")
EVENT_HEADER_VERSION: Final = EVENT_HEADER.off("Version")
EXT_ITEM_SIZE: Final = EXT_ITEM_HEADER.off("ItemSize")
EXT_ITEM_TYPE: Final = EXT_ITEM_HEADER.off("ExtType")
EXT_ITEM_LINKAGE: Final = EXT_ITEM_HEADER.off("Linkage")
EXT_ITEM_MIN: Final = EXT_ITEM_HEADER.size

for _decl in (COMPACT_HEADER, PERFINFO_HEADER):
    assert all(_decl.off(f) == SYSTEM_HEADER.off(f) for f in ("Version", "Size", "Type", "Group"))
for _decl in (INSTANCE_HEADER, EVENT_HEADER):
    assert all(_decl.off(f) == EVENT_TRACE_HEADER.off(f) for f in ("Size", "ThreadId", "ProcessId", "TimeStamp"))
assert EVENT_HEADER.off("ProviderId") == GUID_LO and EVENT_TRACE_HEADER.width("Guid") == 16
assert EVENT_TRACE_HEADER.off("Size") == 0 and EVENT_TRACE_HEADER.width("Size") == 2  # = the marker's low word
assert max(s for _, s, _ in HEADER_KINDS.values()) <= MAX_RECORD_SIZE
