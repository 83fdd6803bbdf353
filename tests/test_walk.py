"""The record walk (heapdiff.etl.walk via the reader) against hand-written bytes, one row per header kind.

Every record here is packed with ``struct`` formats written down from the format notes (``etl-format.md``;
the offsets are cited next to each), not from heapdiff's own declarations, and framed inside a minimal trace
built by this module: a header buffer holding the logfile header record (notes 2) and one event buffer
(notes 1). What the reader reports for the record -- raw timestamp, thread, process, hook, provider, pointer
size, payload length, layout fields -- is compared with what the bytes say.

The second half damages traces (a record running past its buffer, bad markers, absurd buffer sizes,
truncation, random bytes, empty and header-only files): the result must be a :class:`TraceError` (exit 3 and
one stderr line with the byte offset through the CLI) or a result with counted anomalies; never any other
exception.
"""

from __future__ import annotations

import json
import random
import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heapdiff.errors import TraceError
from heapdiff.etl import batch as BT
from heapdiff.etl import sequences as SQ
from heapdiff.etl import walk as F
from heapdiff.etl.layout_table import Layout
from heapdiff.etl.reader import GUID_PROVIDER_BASE, Reader
from heapdiff.etl.trace import open_trace
from heapdiff.etl.walk import ST_BAD_PAYLOAD
from heapdiff.events.layout import KERNEL_GUIDS, layout
from heapdiff.events.scan import scan

# --- the notes' numbers, written down here ------------------------------------------------------------------
HEAP_GUID = "222962ab-6180-4b88-a825-346b75f2a24a"       # 3.7 group 0x10
STACKWALK_GUID = "def2fe46-7bd6-4b80-bd94-f57fe20d0ce3"  # 3.7 group 0x18
HEADER_GUID = "68fdd900-4a3e-11d1-84f4-0000f80464e3"     # 3.7 group 0x00
OTHER_GUID = "8e805eb3-6a8f-4a1e-b9dd-1111aaaa2222"      # a manifest provider nobody knows
T0 = 5_000_000_000                                       # raw timestamp of the header record
START_FT = 116444736000000000 + 1_767_225_600 * 10_000_000  # 2026-01-01 as FILETIME
B = 0x1000                                               # buffer size of the built traces
HOOK_ALLOC, HOOK_REALLOC, HOOK_FREE, HOOK_STACK = 0x1021, 0x1022, 0x1024, 0x1820

# 1.1 WMI_BUFFER_HEADER: BufferSize u32 @0, SavedOffset u32 @4, CurrentOffset u32 @8, ReferenceCount i32 @0xC,
# TimeStamp i64 @0x10, SequenceNumber i64 @0x18, ClockType/.. u64 @0x20, ProcessorIndex u16 @0x28,
# LoggerId u16 @0x2A, State u32 @0x2C, Offset u32 @0x30, BufferFlag u16 @0x34, BufferType u16 @0x36,
# 16 B @0x38
BUFFER_HEADER = struct.Struct("<IIIiqqQHHIIHH16s")
assert BUFFER_HEADER.size == 0x48
# 3.2 SYSTEM_TRACE_HEADER: Version u16 @0, HeaderType u8 @2, Flags u8 @3, Size u16 @4, Type u8 @6,
# Group u8 @7, ThreadId u32 @8, ProcessId u32 @0xC, SystemTime i64 @0x10, KernelTime u32 @0x18,
# UserTime u32 @0x1C (0x20)
SYSTEM = struct.Struct("<HBBHBBIIqII")
assert SYSTEM.size == 0x20
# 3.2 compact form: the same up to SystemTime, 0x18 bytes
COMPACT = struct.Struct("<HBBHBBIIq")
assert COMPACT.size == 0x18
# 3.3 PERFINFO_TRACE_HEADER: Version u16 @0, HeaderType u8 @2, Flags u8 @3, Size u16 @4, Type u8 @6,
# Group u8 @7, SystemTime i64 @8 (0x10), then ext items (PEBS u64 if Version & 0x8000, then
# (Version & 0x700) >> 8 PMC u64)
PERFINFO = struct.Struct("<HBBHBBq")
assert PERFINFO.size == 0x10
# 3.4 EVENT_TRACE_HEADER: Size u16 @0, HeaderType u8 @2, MarkerFlags u8 @3, Class.Type u8 @4,
# Class.Level u8 @5, Class.Version u16 @6, ThreadId u32 @8, ProcessId u32 @0xC, TimeStamp i64 @0x10,
# Guid @0x18 (bytes_le), KernelTime u32 @0x28, UserTime u32 @0x2C (0x30)
EVENT_TRACE = struct.Struct("<HBBBBHIIq16sII")
assert EVENT_TRACE.size == 0x30
# 3.5 EVENT_INSTANCE_GUID_HEADER: EVENT_TRACE_HEADER, InstanceId u32 @0x30, ParentInstanceId u32 @0x34,
# ParentGuid @0x38 (0x48)
INSTANCE = struct.Struct("<HBBBBHIIq16sIIII16s")
assert INSTANCE.size == 0x48
# 3.6 EVENT_HEADER: Size u16 @0, HeaderType u16 @2 (0xC012/0xC013), Flags u16 @4 (1 = EXTENDED_INFO),
# EventProperty u16 @6, ThreadId u32 @8, ProcessId u32 @0xC, TimeStamp i64 @0x10, ProviderId @0x18,
# Id u16 @0x28, Version u8 @0x2A, Channel u8 @0x2B, Level u8 @0x2C, Opcode u8 @0x2D, Task u16 @0x2E,
# Keyword u64 @0x30, KernelTime u32 @0x38, UserTime u32 @0x3C, ActivityId @0x40 (0x50)
EVENT_HEADER = struct.Struct("<HHHHIIq16sHBBBBHQII16s")
assert EVENT_HEADER.size == 0x50
# 3.6 extended item: Reserved1 u16 @0 = total item size (8 + DataSize rounded up to 8), ExtType u16 @2,
# Linkage u16 @4 (bit 0: another item follows), DataSize u16 @6, data @8
EXT_ITEM = struct.Struct("<HHHH")


def le(guid: str) -> bytes:
    return uuid.UUID(guid).bytes_le


def pad8(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


def utf16z(s: str) -> bytes:
    return s.encode("utf-16-le") + b"\0\0"


# --- records ------------------------------------------------------------------------------------------------
def system(ptr: int, hook: int, ts: int, tid: int, pid: int, payload: bytes, *, version: int = 2,
           compact: bool = False) -> bytes:
    """3.2 SYSTEM (types 1/2, 0x20) or compact (types 3/4, 0x18) header; Version may carry PEBS/PMC bits."""
    ht = (3 if ptr == 4 else 4) if compact else (1 if ptr == 4 else 2)
    st = COMPACT if compact else SYSTEM
    args = [version, ht, 0xC0, st.size + len(payload), hook & 0xFF, hook >> 8, tid, pid, ts]
    if not compact:
        args += [0, 0]
    return st.pack(*args) + payload


def perfinfo(ptr: int, hook: int, ts: int, payload: bytes, *, version: int = 2, ext: bytes = b"") -> bytes:
    """3.3 PERFINFO (types 0x10/0x11, 0x10 bytes), ``ext`` = the PEBS/PMC u64s the Version bits announce."""
    ht = 0x10 if ptr == 4 else 0x11
    return PERFINFO.pack(version, ht, 0xC0, 0x10 + len(ext) + len(payload), hook & 0xFF, hook >> 8, ts) \
        + ext + payload


def event_trace(ptr: int, guid: str, opcode: int, ts: int, tid: int, pid: int, payload: bytes,
                *, version: int = 2, instance: bool = False) -> bytes:
    """3.4 EVENT_TRACE_HEADER (0x0A/0x14, 0x30) or 3.5 instance header (0x0B/0x15, 0x48), GUID in it."""
    if instance:
        ht = 0x0B if ptr == 4 else 0x15
        return INSTANCE.pack(0x48 + len(payload), ht, 0xC0, opcode, 4, version, tid, pid, ts, le(guid), 0, 0,
                             7, 0, le(OTHER_GUID)) + payload
    ht = 0x0A if ptr == 4 else 0x14
    return EVENT_TRACE.pack(0x30 + len(payload), ht, 0xC0, opcode, 4, version, tid, pid, ts, le(guid), 0, 0) \
        + payload


def ext_item(ext_type: int, data: bytes, last: bool) -> bytes:
    """3.6 one extended data item: total size 8 + DataSize rounded up to 8."""
    return EXT_ITEM.pack(8 + len(pad8(data)), ext_type, 0 if last else 1, len(data)) + pad8(data)


def event_header(ptr: int, guid: str, opcode: int, ts: int, tid: int, pid: int, payload: bytes,
                 *, items: Sequence[bytes] = (), event_id: int = 7, version: int = 1) -> bytes:
    """3.6 EVENT_HEADER (0xC012/0xC013, 0x50), extended items (Flags bit 0) before the user data."""
    ext = b"".join(items)
    size = 0x50 + len(ext) + len(payload)
    return EVENT_HEADER.pack(size, 0xC012 if ptr == 4 else 0xC013, 1 if items else 0, 0, tid, pid, ts,
                             le(guid), event_id, version, 0, 4, opcode, 0, 0, 0, 0, le(OTHER_GUID)) \
        + ext + payload


def message(ts: int, args: bytes) -> bytes:
    """3.1 MESSAGE_TRACE_HEADER (WPP): Marker = Size u16 @0 | byte 3 0x90 (TRACE_HEADER_FLAG | TRACE_MESSAGE);
    MessageNumber u16 @4, OptionFlags u16 @6 = 0x0008 TIMESTAMP: the timestamp is the first optional item,
    @8."""
    size = 8 + 8 + len(args)
    return struct.pack("<IHHq", 0x90000000 | size, 12, 0x0008, ts) + args


# --- 4.3 heap payloads, packed (pack 1), P = pointer size ---------------------------------------------------
def w(ptr: int) -> str:
    return "I" if ptr == 4 else "Q"


def alloc_payload(ptr: int, heap: int, size: int, addr: int, source: int) -> bytes:
    # HeapHandle ptr @0, AllocSize ptr @4/8, AllocAddress ptr @8/0x10, SourceId u32 @0xC/0x18 -> 0x10/0x1C
    p = struct.pack(f"<{w(ptr) * 3}I", heap, size, addr, source)
    assert len(p) == (0x10 if ptr == 4 else 0x1C)
    return p


def free_payload(ptr: int, heap: int, addr: int, source: int) -> bytes:
    # HeapHandle ptr @0, FreeAddress ptr @4/8, SourceId u32 @8/0x10 -> 0x0C/0x14
    p = struct.pack(f"<{w(ptr) * 2}I", heap, addr, source)
    assert len(p) == (0x0C if ptr == 4 else 0x14)
    return p


def realloc_payload(ptr: int, heap: int, new: int, old: int, new_size: int, old_size: int,
                    source: int) -> bytes:
    # HeapHandle @0, NewAllocAddress @4/8, OldAllocAddress @8/0x10, NewAllocSize @0xC/0x18,
    # OldAllocSize @0x10/0x20, SourceId u32 @0x14/0x28 -> 0x18/0x2C
    p = struct.pack(f"<{w(ptr) * 5}I", heap, new, old, new_size, old_size, source)
    assert len(p) == (0x18 if ptr == 4 else 0x2C)
    return p


def stack_payload(ptr: int, event_ts: int, pid: int, tid: int, frames: Sequence[int]) -> bytes:
    # 5.1 EventTimeStamp u64 @0, StackProcess u32 @8, StackThread u32 @0xC, frames ptr[] @0x10
    return struct.pack(f"<QII{len(frames)}{w(ptr)}", event_ts, pid, tid, *frames)


# --- traces -------------------------------------------------------------------------------------------------
def buffer(records: Sequence[bytes], *, size: int = B, cpu: int = 0, seq: int = 1, btype: int = 0,
           flags: int = 0x20, saved: int | None = None, buffer_size: int | None = None) -> bytes:
    """1.1/1.3 one buffer: header, 8-aligned records, 0xFF filler up to ``size``."""
    body = b"".join(pad8(r) for r in records)
    filled = 0x48 + len(body)
    hdr = BUFFER_HEADER.pack(size if buffer_size is None else buffer_size, filled if saved is None else saved,
                             filled, 0, 0, seq, 0, cpu, 0x20, 3, filled if saved is None else saved, flags,
                             btype, bytes(16))
    out = hdr + body
    assert len(out) <= size, "records do not fit the buffer"
    return out + b"\xff" * (size - len(out))


def logfile_record(ptr: int, buffers: int, *, ncpu: int = 2) -> bytes:
    """2.1/2.2 the header record: SYSTEM header (hook 0, SystemTime = T0) + TRACE_LOGFILE_HEADER32/64 + names.

    Offsets (x86 / x64): BufferSize @0, Version @4, ProviderVersion @8, NumberOfProcessors @0xC,
    EndTime @0x10, TimerResolution @0x18, LogFileMode @0x20, BuffersWritten @0x24, StartBuffers @0x28,
    PointerSize @0x2C, BootTime @0xF0/0xF8, PerfFreq @0xF8/0x100, StartTime @0x100/0x108,
    ReservedFlags @0x108/0x110, names @0x110/0x118.
    """
    d = 0 if ptr == 4 else 8
    lh = bytearray(0x110 + d)
    struct.pack_into("<IIIIqI", lh, 0, B, 0x0501000A, 19041, ncpu, START_FT + 10**8, 156250)
    struct.pack_into("<IIII", lh, 0x20, 1, buffers, 1, ptr)
    struct.pack_into("<qqqI", lh, 0xF0 + d, START_FT - 10**9, 10_000_000, START_FT, 1)
    payload = bytes(lh) + utf16z("frame test") + utf16z("C:\\t\\frame.etl")
    return system(ptr, 0x0000, T0, 0x100, 0x200, payload)


def trace(records: Sequence[bytes], *, ptr: int = 8, extra: Sequence[bytes] = ()) -> bytes:
    """Header buffer + one event buffer holding ``records`` (+ further ready-made buffers)."""
    n = 2 + len(extra)
    head = buffer([logfile_record(ptr, n)], btype=4, flags=0x21, seq=0)
    return head + buffer(records) + b"".join(extra)


@dataclass
class Rec:
    """What the reader says about one record of the event buffer."""

    ts: int
    tid: int
    pid: int
    hook: int
    provider: str
    ptr: int
    htype: int | None      # optional columns: checked while the reader's batches carry them
    paylen: int | None
    status: int
    f: list[int]
    frames: list[int] | None
    pos: int


@dataclass
class Framed:
    records: list[Rec]
    reader: Reader
    anomalies: dict[str, int] = field(default_factory=dict)


def _opt(b: Any, col: str, i: int) -> int | None:
    c = b.cols.get(col)
    return None if c is None else int(c[i])


def frame(data: bytes) -> Framed:
    """Every record after the header buffer, in time order, as the reader frames it."""
    tf = open_trace(data, "<built>")
    rd = Reader(tf, layout(), KERNEL_GUIDS)
    out: list[Rec] = []
    for b in rd.batches():
        for i in range(len(b)):
            if int(b.pos[i]) < B:
                continue  # the header buffer
            prov = int(b.prov[i])
            if prov == -1:
                pname = "message"
            elif prov < GUID_PROVIDER_BASE:
                pname = KERNEL_GUIDS_BY_GROUP.get(prov, f"group:{prov:#x}")
            else:
                pname = rd.providers[prov - GUID_PROVIDER_BASE]
            tail = int(b.tail[i])
            out.append(Rec(int(b.ts[i]), int(b.tid[i]), int(b.pid[i]), int(b.hook[i]), pname, int(b.ptr[i]),
                           _opt(b, "htype", i), _opt(b, "paylen", i), int(b.status[i]), [int(x) for x in b.f[i]],
                           rd.sequences.get(tail).tolist() if tail >= 0 else None, int(b.pos[i])))
    return Framed(out, rd, dict(rd.anomalies))


KERNEL_GUIDS_BY_GROUP = {grp: g for g, (grp, prov) in KERNEL_GUIDS.items() if prov >= 0}

# ------------------------------------------------------------------------------------------------------------
# header kinds (notes 3.1-3.6)
# ------------------------------------------------------------------------------------------------------------
NOT = 0xFFFFFFFF   # the thread/process of a header without them (PERFINFO, WPP)
FR64 = [0x7FF6_1234_5678, 0x7FF6_1234_0000, 0xFFFF_F800_0000_1000]
FR32 = [0x0040_1000, 0x7700_2000, 0x8000_0000]


@dataclass
class Case:
    id: str
    record: bytes
    want: dict[str, Any]          # Rec attributes to compare
    counters: dict[str, int] = field(default_factory=dict)   # ReadStats attributes


def _cases() -> list[Case]:
    c: list[Case] = []
    # SYSTEM full, 32/64 (3.2: header 0x20, TID @8, PID @0xC, SystemTime @0x10; Type @6 + Group @7 = hook)
    for ptr, ht in ((4, 0x01), (8, 0x02)):
        pay = alloc_payload(ptr, 0x1000, 0x40, 0x2000, 3)
        c.append(Case(f"system{ptr * 8}", system(ptr, HOOK_ALLOC, T0 + 10, 0x44, 0x88, pay),
                      dict(ts=T0 + 10, tid=0x44, pid=0x88, hook=HOOK_ALLOC, provider=HEAP_GUID, ptr=ptr,
                           htype=ht, paylen=len(pay), f=[0x1000, 0x40, 0x2000, 3])))
    # compact SYSTEM, 32/64 (3.2: types 3/4, header 0x18 stops before KernelTime)
    for ptr, ht in ((4, 0x03), (8, 0x04)):
        pay = free_payload(ptr, 0x1000, 0x2000, 2)
        c.append(Case(f"compact{ptr * 8}", system(ptr, HOOK_FREE, T0 + 11, 0x48, 0x8C, pay, compact=True),
                      dict(ts=T0 + 11, tid=0x48, pid=0x8C, hook=HOOK_FREE, provider=HEAP_GUID, ptr=ptr,
                           htype=ht, paylen=len(pay), f=[0x1000, 0x2000, 2])))
    # PERFINFO 32/64 (3.3: header 0x10, SystemTime @8, no TID/PID) carrying a stack walk (5.1)
    for ptr, ht, fr in ((4, 0x10, FR32), (8, 0x11, FR64)):
        pay = stack_payload(ptr, T0 + 5, 0x88, 0x44, fr)
        c.append(Case(f"perfinfo{ptr * 8}", perfinfo(ptr, HOOK_STACK, T0 + 12, pay),
                      dict(ts=T0 + 12, tid=NOT, pid=NOT, hook=HOOK_STACK, provider=STACKWALK_GUID, ptr=ptr,
                           htype=ht, paylen=len(pay), frames=fr, f=[T0 + 5, 0x88, 0x44])))
    # PERFINFO with extended items announced in the Version word (3.3): 0x8000 -> one PEBS u64, then
    # (Version & 0x0700) >> 8 PMC u64s; the payload starts after them
    # (the items are u64 whatever the pointer size)
    for ptr, name, ver, n_ext in ((8, "pebs", 0x8002, 1), (8, "pmc2", 0x0202, 2), (8, "pebs_pmc3", 0x8302, 4),
                                  (4, "pebs_pmc1", 0x8102, 2), (4, "pmc7", 0x0702, 7)):
        ext = struct.pack(f"<{n_ext}Q", *range(0xAAAA0000, 0xAAAA0000 + n_ext))
        fr = FR64 if ptr == 8 else FR32
        pay = stack_payload(ptr, T0 + 6, 0x90, 0x50, fr)
        c.append(Case(f"perfinfo{ptr * 8}_{name}", perfinfo(ptr, HOOK_STACK, T0 + 13, pay, version=ver, ext=ext),
                      dict(ts=T0 + 13, tid=NOT, pid=NOT, hook=HOOK_STACK, ptr=ptr, paylen=len(pay), frames=fr,
                           f=[T0 + 6, 0x90, 0x50])))
    # the same bits in a SYSTEM header (3.3: "sechost also recognises these flags in a SYSTEM_TRACE_HEADER")
    pay = alloc_payload(8, 0x3000, 0x10, 0x4000, 1)
    ext = struct.pack("<2Q", 1, 2)
    c.append(Case("system64_pebs_pmc1", system(8, HOOK_ALLOC, T0 + 14, 0x4C, 0x90, ext + pay, version=0x8102),
                  dict(ts=T0 + 14, tid=0x4C, pid=0x90, hook=HOOK_ALLOC, ptr=8, paylen=len(pay),
                       f=[0x3000, 0x10, 0x4000, 1])))
    # EVENT_TRACE_HEADER 32/64 (3.4: Size @0, type 0x0A/0x14, Class.Type @4 = opcode, TID @8, PID @0xC,
    # TimeStamp @0x10, Guid @0x18, payload @0x30), a provider nobody maps: counted under its GUID
    for ptr, ht in ((4, 0x0A), (8, 0x14)):
        pay = b"classic mof payload\0"
        c.append(Case(f"event_trace{ptr * 8}", event_trace(ptr, OTHER_GUID, 5, T0 + 15, 0x54, 0x94, pay),
                      dict(ts=T0 + 15, tid=0x54, pid=0x94, hook=-1, provider=OTHER_GUID, ptr=ptr, htype=ht,
                           paylen=len(pay))))
    # EVENT_INSTANCE_GUID_HEADER 32/64 (3.5: 0x0B/0x15, header 0x48), with the heap GUID: a free, by GUID
    for ptr, ht in ((4, 0x0B), (8, 0x15)):
        pay = free_payload(ptr, 0x5000, 0x6000, 4)
        c.append(Case(f"instance{ptr * 8}", event_trace(ptr, HEAP_GUID, 0x24, T0 + 16, 0x58, 0x98, pay,
                                                        instance=True),
                      dict(ts=T0 + 16, tid=0x58, pid=0x98, hook=HOOK_FREE, provider=HEAP_GUID, ptr=ptr,
                           htype=ht, paylen=len(pay), f=[0x5000, 0x6000, 4])))
    # EVENT_HEADER 32/64 without extended items (3.6: 0xC012/0xC013, Opcode @0x2D, user data @0x50)
    for ptr, ht in ((4, 0x12), (8, 0x13)):
        pay = b"tracelogging data"
        c.append(Case(f"event_header{ptr * 8}", event_header(ptr, OTHER_GUID, 11, T0 + 17, 0x5C, 0x9C, pay),
                      dict(ts=T0 + 17, tid=0x5C, pid=0x9C, hook=-1, provider=OTHER_GUID, ptr=ptr, htype=ht,
                           paylen=len(pay))))
    # EVENT_HEADER with extended items: RELATED_ACTIVITYID (1, a GUID) then STACK_TRACE64 (6: u64 MatchId +
    # u64 frames) / STACK_TRACE32 (5: u64 MatchId + u32 frames); the heap GUID and opcode 0x21 make the user
    # data an Alloc, so the layout fields prove where the payload starts (after the last item, Linkage 0)
    for ptr, ht, st_type, fr in ((8, 0x13, 6, FR64), (4, 0x12, 5, FR32)):
        items = [ext_item(1, le(OTHER_GUID), last=False),
                 ext_item(st_type, struct.pack(f"<Q{len(fr)}{w(ptr)}", 0x1234, *fr), last=True)]
        pay = alloc_payload(ptr, 0x7000, 0x20, 0x8000, 6)
        c.append(Case(f"event_header{ptr * 8}_ext_stack",
                      event_header(ptr, HEAP_GUID, 0x21, T0 + 18, 0x60, 0xA0, pay, items=items),
                      dict(ts=T0 + 18, tid=0x60, pid=0xA0, hook=HOOK_ALLOC, provider=HEAP_GUID, ptr=ptr,
                           htype=ht, paylen=len(pay), f=[0x7000, 0x20, 0x8000, 6]),
                      counters={"ext_stacks": 1}))
    # a single PROCESS_START_KEY item (0xD, u64), Linkage 0
    pay = b"x" * 12
    c.append(Case("event_header64_ext_one",
                  event_header(8, OTHER_GUID, 1, T0 + 19, 0x64, 0xA4, pay,
                               items=[ext_item(0xD, struct.pack("<Q", 42), last=True)]),
                  dict(ts=T0 + 19, hook=-1, provider=OTHER_GUID, ptr=8, paylen=len(pay)),
                  counters={"ext_stacks": 0}))
    # WPP message (3.1: byte 3 & 0xC0 == 0x80 and & 0x10; Size in the low word; 8-byte header)
    args = struct.pack("<II", 7, 9)
    c.append(Case("wpp_message", message(T0 + 20, args),
                  dict(ts=T0 + 20, tid=NOT, pid=NOT, hook=-1, provider="message", paylen=8 + len(args))))
    return c


CASES = _cases()


def _check(rec: Rec, want: dict[str, Any]) -> None:
    for k, v in want.items():
        got = getattr(rec, k)
        if got is None and k in ("htype", "paylen"):
            continue   # a column the batches no longer carry; framing is checked by the positions
        if k == "f":   # the columns the layout declares for the kind (events/layout.py); the rest unspecified
            got = got[:len(v)]
        assert got == v, f"{k}: {got!r} != {v!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_header_kind(case: Case) -> None:
    # the record under test sits between two plain SYSTEM records: framing must step exactly over it
    before = system(8, 0x0F44, T0 + 1, 1, 2, b"\0" * 12)        # PerfInfo group, any hook
    after = system(8, 0x0F45, T0 + 100, 3, 4, b"\0" * 4)
    fr = frame(trace([before, case.record, after]))
    assert fr.anomalies == {}
    assert len(fr.records) == 3, fr.records
    assert [r.hook for r in (fr.records[0], fr.records[2])] == [0x0F44, 0x0F45]
    # where each record starts: the record's Size was used, and rounded up to 8 (1.3)
    assert [r.pos for r in fr.records] == [REC0, REC0 + len(pad8(before)),
                                           REC0 + len(pad8(before)) + len(pad8(case.record))]
    assert fr.records[2].ts == T0 + 100 and fr.records[2].tid == 3
    rec = fr.records[1]
    _check(rec, case.want)
    assert rec.status & ST_BAD_PAYLOAD == 0
    for k, v in case.counters.items():
        assert getattr(fr.reader.stats, k) == v, k


# --- heap Alloc/Free/ReAlloc: SYSTEM header and the relogged form (EVENT_TRACE_HEADER with the heap GUID) ---
HEAP_KINDS: dict[str, tuple[int, Callable[[int], bytes], list[int]]] = {
    # name: (hook, payload builder, expected layout columns -- events/layout.py docstring)
    "alloc": (HOOK_ALLOC, lambda p: alloc_payload(p, 0x00A0_0000, 0x123, 0x00A0_1000, 2),
              [0x00A0_0000, 0x123, 0x00A0_1000, 2]),
    "free": (HOOK_FREE, lambda p: free_payload(p, 0x00A0_0000, 0x00A0_1000, 3),
             [0x00A0_0000, 0x00A0_1000, 3]),
    "realloc": (HOOK_REALLOC,
                lambda p: realloc_payload(p, 0x00A0_0000, 0x00A0_2000, 0x00A0_1000, 0x200, 0x123, 4),
                [0x00A0_0000, 0x00A0_2000, 0x00A0_1000, 0x200, 0x123, 4]),
}
BIG = {  # 64-bit values that need all 8 bytes, so a 32-bit read would show
    "alloc": [0x0000_01F0_0000_0000, 0x1_0000_0010, 0x0000_01F0_0001_0000, 1],
    "free": [0x0000_01F0_0000_0000, 0x0000_01F0_0001_0000, 1],
    "realloc": [0x0000_01F0_0000_0000, 0x0000_01F0_0002_0000, 0x0000_01F0_0001_0000, 0x1_0000_0020,
                0x1_0000_0010, 5],
}


@pytest.mark.parametrize("framing", ["system", "event_trace"])
@pytest.mark.parametrize("ptr", [4, 8])
@pytest.mark.parametrize("kind", sorted(HEAP_KINDS))
def test_heap_record_fields(kind: str, ptr: int, framing: str) -> None:
    hook, build, cols = HEAP_KINDS[kind]
    pay = build(ptr)
    if ptr == 8:  # use values wider than 32 bits
        cols = BIG[kind]
        fmt = {"alloc": "<QQQI", "free": "<QQI", "realloc": "<QQQQQI"}[kind]
        pay = struct.pack(fmt, *cols)
    if framing == "system":
        rec = system(ptr, hook, T0 + 50, 0x1234, 0x5678, pay)
        htype = 1 if ptr == 4 else 2
    else:
        # relogged: EVENT_TRACE_HEADER, Guid = HeapGuid, Class.Type = opcode (hook & 0xFF)
        rec = event_trace(ptr, HEAP_GUID, hook & 0xFF, T0 + 50, 0x1234, 0x5678, pay)
        htype = 0x0A if ptr == 4 else 0x14
    fr = frame(trace([rec], ptr=8))
    assert fr.anomalies == {}
    (r,) = fr.records
    _check(r, dict(ts=T0 + 50, tid=0x1234, pid=0x5678, hook=hook, provider=HEAP_GUID, ptr=ptr, htype=htype,
                   paylen=len(pay), status=0, f=cols))
    s = scan(trace([rec], ptr=8))
    assert s.events[f"heap_{kind}"] == 1
    assert s.providers.get(HEAP_GUID) == 1


PROCESS_GUID = "3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c"  # 3.7 group 0x03
IMAGE_GUID = "2cb15d1d-5fc1-11d2-abe1-00a0c911f518"    # 3.7 group 0x14


def test_a_process_group_image_load_is_framed_as_it_is_and_counted_under_image() -> None:
    """3.7: hook 0x030A (Process group, type 10) is an image load that consumers see under the Image provider.
    The walk reports what the bytes say (the Process group); the events layer counts it as an Image record."""
    rec = system(8, 0x030A, T0 + 5, 0x10, 0x20, b"\0" * 0x40, version=3)
    (r,) = frame(trace([rec])).records
    assert (r.hook, r.provider) == (0x030A, PROCESS_GUID)
    s = scan(trace([rec]))
    assert s.providers.get(IMAGE_GUID) == 1 and PROCESS_GUID not in s.providers
    assert s.events["image"] == 1 and s.events["process"] == 0


def test_32bit_trace_header() -> None:
    """A 32-bit session: SYSTEM32 header record and the 0x110-byte TRACE_LOGFILE_HEADER32 (2.1, 2.2)."""
    data = trace([system(4, HOOK_ALLOC, T0 + 3, 8, 9, alloc_payload(4, 1, 2, 3, 4))], ptr=4)
    tf = open_trace(data, "<32>")
    h = tf.header
    assert (h.pointer_size, h.buffer_size, h.perf_freq, h.start_filetime, h.t0) \
        == (4, B, 10_000_000, START_FT, T0)
    assert (h.logger_name, h.log_file_name, h.number_of_processors) == ("frame test", "C:\\t\\frame.etl", 2)
    fr = frame(data)
    assert fr.records[0].f[:4] == [1, 2, 3, 4] and fr.records[0].ptr == 4


def test_stack_walk_attributed_to_heap_event() -> None:
    """5.2: a PERFINFO stack walk names its heap event by raw timestamp and thread."""
    ev = system(8, HOOK_ALLOC, T0 + 40, 0x44, 0x88, alloc_payload(8, 1, 2, 3, 4))
    other = system(8, HOOK_ALLOC, T0 + 40, 0x48, 0x88, alloc_payload(8, 1, 2, 5, 4))  # same ts, other thread
    sw = perfinfo(8, HOOK_STACK, T0 + 41, stack_payload(8, T0 + 40, 0x88, 0x44, FR64))
    s = scan(trace([ev, other, sw]))
    assert (s.stack_refs, s.stacks_matched) == (1, 1)
    assert s.anomalies == {}


# ------------------------------------------------------------------------------------------------------------
# payloads that do not fit their layout
# ------------------------------------------------------------------------------------------------------------
def test_bad_payload_size_is_counted_not_decoded() -> None:
    good = system(8, HOOK_ALLOC, T0 + 1, 1, 2, alloc_payload(8, 1, 2, 3, 4))
    long_ = system(8, HOOK_ALLOC, T0 + 2, 1, 2, alloc_payload(8, 1, 2, 3, 4) + b"\0" * 4)
    short = system(8, HOOK_ALLOC, T0 + 3, 1, 2, alloc_payload(4, 1, 2, 3, 4))  # 32-bit payload, 64-bit header
    data = trace([good, long_, short])
    fr = frame(data)
    assert [r.status & ST_BAD_PAYLOAD for r in fr.records] == [0, ST_BAD_PAYLOAD, ST_BAD_PAYLOAD]
    assert fr.records[0].f[:4] == [1, 2, 3, 4]
    s = scan(data)
    assert s.anomalies["bad_payload_size:heap_alloc"] == 2
    assert s.events["heap_alloc"] == 3           # still counted as records of their kind
    assert s.first_anomaly_offset["bad_payload_size:heap_alloc"] == B + 0x48 + len(pad8(good))


def test_bad_stack_tail_is_counted() -> None:
    """A stack walk whose frames are not whole pointers (5.1: N = (size - 16) / P) is not interned."""
    pay = stack_payload(8, T0, 1, 2, FR64) + b"\0" * 4
    fr = frame(trace([perfinfo(8, HOOK_STACK, T0 + 1, pay)]))
    (r,) = fr.records
    assert r.status & ST_BAD_PAYLOAD and r.frames is None
    assert fr.anomalies == {"stack_payload_not_whole_frames": 1}


# ------------------------------------------------------------------------------------------------------------
# damaged traces: TraceError (exit 3, one line with the byte offset) or counted anomalies, nothing else
# ------------------------------------------------------------------------------------------------------------
def _alloc(i: int) -> bytes:
    return system(8, HOOK_ALLOC, T0 + 10 + i, 4, 8, alloc_payload(8, 1, 0x10, 0x1000 + i, 3))


def _two_buffers(first: Sequence[bytes], second: Sequence[bytes] | None = None) -> bytes:
    extra = [buffer(second if second is not None else [_alloc(100)], cpu=1, seq=2)]
    return trace(first, extra=extra)


def _corrupt(data: bytes, off: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


REC0 = B + 0x48           # file offset of the first record of the event buffer
REC1 = REC0 + 0x40        # the second (64-bit Alloc: 0x3C bytes, 8-aligned 0x40)


@dataclass
class Damage:
    id: str
    data: bytes
    anomalies: dict[str, int] | None   # None: TraceError
    records: int = -1                  # event records still read (outside the header buffer)


def _damages() -> list[Damage]:
    ok = _two_buffers([_alloc(0), _alloc(1), _alloc(2)])
    d: list[Damage] = []
    # a record whose Size (SYSTEM: u16 @4) runs past the filled end of its buffer
    d.append(Damage("record_overruns_buffer", _corrupt(ok, REC1 + 4, "<H", 0x800),
                    {"buffer_record_overruns_buffer": 1}, records=2))
    # the same record in an EVENT_HEADER form whose extended items claim to run past the buffer
    eh = event_header(8, OTHER_GUID, 1, T0 + 11, 1, 2, b"", items=[ext_item(0xD, b"\0" * 8, last=True)])
    bad_eh = bytearray(eh)
    struct.pack_into("<H", bad_eh, 0, 0xFFF0)   # Size far past the buffer (and past the file)
    d.append(Damage("ext_items_past_buffer_end", trace([_alloc(0), bytes(bad_eh)]),
                    {"buffer_record_overruns_buffer": 1}, records=1))
    # the same at the very end of a (truncated) file, the item's Linkage saying that another item follows:
    # the walk of the item chain must stop at the end of the data, not read past it
    chained = bytearray(event_header(8, OTHER_GUID, 1, T0 + 11, 1, 2, b"",
                                     items=[ext_item(0xD, b"\0" * 8, last=False)]))
    struct.pack_into("<H", chained, 0, 0xFFF0)
    cut = trace([_alloc(0), bytes(chained)])
    d.append(Damage("ext_items_past_file_end", cut[:REC1 + 0x60],
                    {"buffer_record_overruns_buffer": 1, "truncated_buffer": 1}, records=1))
    # an extended item whose size is 0 / runs past the record
    bad_item = bytearray(eh)
    struct.pack_into("<H", bad_item, 0x50, 0)
    d.append(Damage("bad_extended_item", trace([_alloc(0), bytes(bad_item), _alloc(2)]),
                    {"buffer_bad_extended_item": 1}, records=1))
    # a marker with bit 31 clear (3.1: not a trace header)
    d.append(Damage("bad_marker", _corrupt(ok, REC1, "<I", 0x0002_0003), {"buffer_bad_marker": 1}, records=2))
    # flags 0xC0 but an unknown header type (0x0C TIMED, "not used")
    d.append(Damage("unknown_header_type", _corrupt(ok, REC1 + 2, "<B", 0x0C),
                    {"buffer_unknown_header_type": 1}, records=2))
    # Size smaller than the header
    d.append(Damage("record_shorter_than_header", _corrupt(ok, REC1 + 4, "<H", 0x10),
                    {"buffer_record_shorter_than_header": 1}, records=2))
    # absurd BufferSize (1.1 @0) of the event buffer: read by its SavedOffset up to the next buffer, found by the
    # nominal size
    d.append(Damage("absurd_buffer_size", _corrupt(ok, B, "<I", 0xFFFF_FFF0), {"buffer_size_damaged": 1}, records=4))
    d.append(Damage("zero_buffer_size", _corrupt(ok, B, "<I", 0x40), {"buffer_size_damaged": 1}, records=4))
    # a BufferSize that would step over the next buffer: every uncompressed buffer has the session's size (1.2)
    d.append(Damage("buffer_size_past_the_next_buffer", _corrupt(ok, B, "<I", 2 * B), {"buffer_size_damaged": 1},
                    records=4))
    # SavedOffset/Offset (1.1 @4/@0x30) past the buffer: read by its BufferSize, to the filler
    past = _corrupt(_corrupt(ok, B + 4, "<I", 0x10_0000), B + 0x30, "<I", 0x10_0000)
    d.append(Damage("filled_past_buffer", past, {"buffer_saved_offset_mismatch": 1}, records=4))
    # both: nothing in the header to read it by
    d.append(Damage("size_and_filled_damaged", _corrupt(past, B, "<I", 0x40), {"damaged_buffer": 1, "resync": 1},
                    records=1))
    # a header wiped over its records, and a whole buffer wiped (blank: all 0x00 or all 0xFF)
    d.append(Damage("header_zeroed", ok[:B] + bytes(0x48) + ok[B + 0x48:], {"damaged_buffer": 1, "resync": 1},
                    records=1))
    d.append(Damage("zeroed_buffer", ok[:B] + bytes(B) + ok[2 * B:], {"blank_buffer": 1}, records=1))
    d.append(Damage("ff_buffer", ok[:B] + b"\xff" * B + ok[2 * B:], {"blank_buffer": 1}, records=1))
    d.append(Damage("zeroed_last_buffer", ok[:2 * B] + bytes(B), {"blank_buffer": 1}, records=3))
    # a buffer missing (BuffersWritten counts it), and bytes lost at a buffer's start (the grid found again)
    d.append(Damage("dropped_buffer", ok[:B] + ok[2 * B:], {"buffers_missing": 1}, records=1))
    d.append(Damage("bytes_lost", ok[:B] + ok[B + 0x100:], {"damaged_buffer": 1, "resync": 1}, records=1))
    # ProcessorIndex (1.1 @0x28) beyond NumberOfProcessors
    d.append(Damage("cpu_out_of_range", _corrupt(ok, B + 0x28, "<H", 0x7FF),
                    {"buffer_cpu_out_of_range": 1}, records=4))
    # truncated in the middle of the first record of the second buffer / of the event buffer
    d.append(Damage("truncated_in_second_buffer", ok[:2 * B + 0x48 + 0x20],
                    {"truncated_buffer": 1, "buffer_record_overruns_buffer": 1}, records=3))
    d.append(Damage("truncated_between_buffers", ok[:2 * B + 0x48 + 0x40], {"truncated_buffer": 1},
                    records=4))
    d.append(Damage("truncated_in_first_buffer", ok[:REC1 + 0x10],
                    {"truncated_buffer": 1, "buffer_record_overruns_buffer": 1, "buffers_missing": 1}, records=1))
    # cut inside a buffer's header: that buffer is cut, none of its records is there
    d.append(Damage("truncated_in_a_buffer_header", ok[:2 * B + 0x20], {"truncated_buffer": 1}, records=3))
    # a buffer duplicated (the same SequenceNumber twice): read twice, nothing else
    d.append(Damage("duplicated_buffer", ok + ok[B:2 * B], {}, records=7))
    # a header-only file: nothing but buffer 0, whose logfile header says 3 buffers were written
    d.append(Damage("header_only", ok[:B], {"buffers_missing": 2}, records=0))
    # unreadable: empty, random bytes, header buffer cut inside the logfile header, not a header record,
    # SavedOffset of buffer 0 ending inside the logfile header
    d.append(Damage("empty", b"", None))
    d.append(Damage("random_bytes", random.Random(7).randbytes(3 * B), None))
    d.append(Damage("cut_in_logfile_header", ok[:0x48 + 0x80], None))
    d.append(Damage("first_record_not_header", _corrupt(ok, 0x48 + 6, "<H", 0x1021), None))
    d.append(Damage("first_marker_not_system", _corrupt(ok, 0x48, "<I", 0xC0130000), None))
    d.append(Damage("header_saved_offset_too_small", _corrupt(_corrupt(ok, 4, "<I", 0x50), 0x30, "<I", 0x50),
                    None))
    d.append(Damage("all_ff", b"\xff" * (2 * B), None))
    d.append(Damage("all_zero", b"\0" * (2 * B), None))
    return d


DAMAGES = _damages()


@pytest.mark.parametrize("case", DAMAGES, ids=[c.id for c in DAMAGES])
def test_damaged_trace_scan(case: Damage) -> None:
    if case.anomalies is None:
        with pytest.raises(TraceError) as ei:
            scan(case.data)
        assert "byte offset" in str(ei.value)
        return
    s = scan(case.data)
    assert s.anomalies.as_dict() == case.anomalies
    fr = frame(case.data)
    assert len(fr.records) == case.records


@pytest.mark.parametrize("case", DAMAGES, ids=[c.id for c in DAMAGES])
def test_damaged_trace_cli(case: Damage, tmp_path: Path,
                           run_cli: Callable[..., tuple[int, str, str]]) -> None:
    path = tmp_path / f"{case.id}.etl"
    path.write_bytes(case.data)
    code, out, err = run_cli("info", "--json", str(path))
    lines = err.splitlines()
    if case.anomalies is None:
        assert code == 3 and out == ""
        assert len(lines) == 1 and str(path) in lines[0] and "byte offset" in lines[0], err
        return
    assert code == 0, err
    d = json.loads(out)
    assert d["anomalies"] == case.anomalies
    assert all(ln.startswith("heapdiff: warning: ") for ln in lines), err
    assert len(lines) == (1 if case.anomalies else 0)
    # every counted anomaly names where it was first met
    assert set(d["anomaly_first_offsets"]) <= set(d["anomalies"])


def test_anomaly_offsets_point_at_the_damage() -> None:
    ok = _two_buffers([_alloc(0), _alloc(1), _alloc(2)])
    bad = _corrupt(ok, REC1 + 4, "<H", 0x800)
    fr = frame(bad)
    assert fr.reader.first_anomaly_offset["buffer_record_overruns_buffer"] == REC1
    bad = _corrupt(ok, REC1, "<I", 0x0002_0003)
    assert frame(bad).reader.first_anomaly_offset["buffer_bad_marker"] == REC1


def test_records_out_of_order_within_a_buffer_are_sorted() -> None:
    """Within one buffer events are in non-decreasing time order in real files (1.3); if not, the reader still
    delivers every record, in time order."""
    recs = [_alloc(5), _alloc(1), _alloc(3)]
    fr = frame(trace(recs))
    assert [r.ts for r in fr.records] == sorted(r.ts for r in fr.records)
    assert len(fr.records) == 3


def test_numpy_input_and_bytes_agree() -> None:
    data = _two_buffers([_alloc(0), _alloc(1)])
    a = scan(data)
    b = scan(np.frombuffer(data, np.uint8))
    assert (a.records, a.providers, a.events) == (b.records, b.providers, b.events)


def test_an_error_inside_an_open_trace_is_not_replaced(tmp_path: Path) -> None:
    """Closing a mapped trace while arrays still view it (an exception on its way out of ``with``, e.g.
    Ctrl-C during a scan) must let that exception through, not raise BufferError from ``close``."""
    from heapdiff.cli import map_trace

    path = tmp_path / "t.etl"
    path.write_bytes(_two_buffers([_alloc(0)]))

    class Boom(Exception):
        pass

    with pytest.raises(Boom), map_trace(str(path)) as tf:
        view = tf.data[8:16]
        assert view.shape == (8,)
        raise Boom


def _compressed_buffer(body: bytes, *, seq: int = 2) -> bytes:
    """7: a compressed buffer: plain header, BufferSize = on-disk size, SavedOffset = Offset = uncompressed
    filled size (0x48 + body), Xpress stream after the header, flag 0x40."""
    from heapdiff.etl.xpress import compress

    comp = compress(body)
    disk = 0x48 + len(comp) + (-len(comp) % 8)
    filled = 0x48 + len(body)
    hdr = BUFFER_HEADER.pack(disk, filled, filled, 0, 0, seq, 0, 0, 0x20, 3, filled, 0x60, 0, bytes(16))
    return hdr + comp + b"\xff" * (disk - 0x48 - len(comp))


def test_compressed_buffer_is_read() -> None:
    body = b"".join(pad8(_alloc(i)) for i in range(20))
    fr = frame(trace([_alloc(-5)], extra=[_compressed_buffer(body)]))
    assert fr.anomalies == {}
    assert len(fr.records) == 21 and [r.f[2] for r in fr.records[1:]] == [0x1000 + i for i in range(20)]


def test_compressed_bomb_is_a_damaged_buffer() -> None:
    """A few hundred bytes on disk claiming (and decoding to) far more than a buffer can hold: a buffer holds
    at most the session's BufferSize uncompressed. Decoded no further than that, so it does not decode, and is
    counted, not framed (a 64 KB file claiming 60 MiB per buffer took 1.1 GB of memory before)."""
    body = pad8(perfinfo(8, 0x0F44, T0 + 7, b"")) * (B // 2)   # 16 x B/2 = 8 x BufferSize of records
    bomb = _compressed_buffer(body)
    assert len(bomb) < B // 4
    data = trace([_alloc(0)], extra=[bomb])
    s = scan(data)
    assert s.anomalies.as_dict() == {"undecodable_compressed_buffer": 1}
    assert s.records == 1 + 1 + 0       # header record, the alloc; none of the bomb's
    assert len(frame(data).records) == 1


# ------------------------------------------------------------------------------------------------------------
# deferred tails (etl/walk.py docstring): walks left in the file until their frames are asked for
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ptr", [4, 8])
@pytest.mark.parametrize("compress", [False, True])
def test_deferred_walks_intern_to_the_same_frames(tmp_path: Any, ptr: int, compress: bool) -> None:
    from heapdiff.events.images import kernel_floor
    from heapdiff.tracegen.writer import TraceWriter

    kfl = kernel_floor(ptr)
    user = [0x401000, 0x402000, 0x403000] if ptr == 4 else [0x7FF6_1234_5678, 0x7FF6_1234_0000]
    kern = [kfl + 0x1000, kfl + 0x2000]
    walks = [user, kern, user, user + kern, [user[0]] * 40]
    path = tmp_path / "t.etl"
    w = TraceWriter(str(path), pointer_size=ptr, cpus=2, buffer_size=0x2000, compress=compress)
    for i, frames in enumerate(walks):
        w.stack(T0 + 10 * i, i % 2, T0 + 10 * i - 1, 0x88, 0x44, frames)
    w.close()
    data = path.read_bytes()

    def tails(defer: bool) -> tuple[Reader, np.ndarray]:
        rd = Reader(open_trace(data, "<built>"), layout(), KERNEL_GUIDS, defer_tails=defer)
        got = [b.tail[b.hook == 0x1820] for b in rd.batches()]
        return rd, np.concatenate(got)

    plain_rd, plain = tails(False)
    rd, refs = tails(True)
    assert plain.shape == refs.shape == (len(walks),)
    assert (plain < SQ.DEFERRED).all()
    if compress:  # a decompressed copy is not the file: nothing to point at, interned at once
        assert np.array_equal(refs, plain)
        return
    assert (refs >= SQ.DEFERRED).all() and len(rd.sequences) == 0
    off, cnt, width, flag = SQ.deferred_parts(refs)
    assert cnt.tolist() == [len(f) for f in walks]
    assert width.tolist() == [ptr] * len(walks)
    # the flag: the outermost frame is a kernel address (a kernel-only fragment)
    assert flag.tolist() == [0, 1, 0, 1, 0]
    for o, frames in zip(off.tolist(), walks, strict=True):
        assert [int.from_bytes(data[o + ptr * k:o + ptr * (k + 1)], "little") for k in range(len(frames))] == frames
    sids = rd.intern_deferred(np.concatenate((refs, [-1, 0])))
    assert sids[-2] == -1  # "no stack" stays; so does an id that was never deferred
    assert sids[-1] == 0
    assert sids[0] == sids[2]  # the same frames: one sequence
    assert len(rd.sequences) == 4
    for sid, frames in zip(sids[:-2].tolist(), walks, strict=True):
        assert rd.sequences.get(sid).tolist() == frames
    assert [plain_rd.sequences.get(int(s)).tolist() for s in plain] == walks


def test_the_hold_kernel_takes_the_batch_columns_in_their_order() -> None:
    """The reader passes its columns to :func:`heapdiff.etl.batch.hold_kernel` by position."""
    import inspect

    from heapdiff.etl.batch import BATCH_COLUMNS

    fn = getattr(BT.hold_kernel, "py_func", BT.hold_kernel)
    names = list(inspect.signature(fn).parameters)
    n = len(BATCH_COLUMNS)
    assert names[1:n + 1] == [f"s_{c}" for c in BATCH_COLUMNS] and names[n + 1] == "s_f"
    assert names[n + 2:2 * n + 2] == [f"d_{c}" for c in BATCH_COLUMNS] and names[-1] == "d_f"


def test_held_rows_keep_every_column(tmp_path: Any) -> None:
    """Read in small chunks (so that most chunks hold rows back for the next one) and in one chunk (nothing
    held): the same records with the same columns, in the same order."""
    from heapdiff.tracegen.writer import TraceWriter

    path = tmp_path / "t.etl"
    w = TraceWriter(str(path), pointer_size=8, cpus=4, buffer_size=0x1000)
    rng = random.Random(5)
    t = T0 + 10
    for i in range(6000):
        t += rng.randint(2, 4)
        cpu = rng.randrange(4)
        if i % 4 == 3:
            w.heap_free(t, cpu, 10 + cpu, 20 + i % 7, 0x10000, 0x20000 + 16 * (i - 1))
        else:
            w.heap_alloc(t, cpu, 10 + cpu, 20 + i % 7, 0x10000, 16 + i % 9, 0x20000 + 16 * i)
        if i % 5 == 0:
            w.stack(t + 1, (cpu + 1) % 4, t, 10 + cpu, 20 + i % 7, [0x7FF6_0000_1000 + i % 30])
    w.close()
    data = path.read_bytes()

    def read(chunk: int) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
        rd = Reader(open_trace(data, "<built>"), layout(), KERNEL_GUIDS, chunk_bytes=chunk)
        cols: dict[str, list[np.ndarray]] = {c: [] for c in ("ts", "cpu", "tid", "pid", "hook", "prov", "ver", "ptr",
                                                             "status", "pos", "tail")}
        fs: list[np.ndarray] = []
        for b in rd.batches():
            for c in cols:
                cols[c].append(b.column(c))
            # the fields each kind declares (the other columns of a row are unspecified)
            declared = np.where(b.hook == HOOK_ALLOC, 4, np.where(np.isin(b.hook, [HOOK_FREE, HOOK_STACK]), 3, 0))
            fs.append(np.where(np.arange(4)[None, :] < declared[:, None], b.f[:, :4], 0))
        return {c: np.concatenate(v) for c, v in cols.items()}, np.concatenate(fs), rd.stats.buffers_read

    small, small_f, nbuf = read(0x2000)
    whole, whole_f, _ = read(1 << 30)
    assert nbuf > 8
    for c in whole:
        assert np.array_equal(small[c], whole[c]), c
    assert np.array_equal(small_f, whole_f)


def test_a_batch_stays_readable_until_two_more_chunks_are_framed(tmp_path: Any) -> None:
    """Batches are views of the reader's two alternating windows: a batch read one step late (the next batch
    already handed out) must still hold its own records (field columns compared where every kind here declares
    them: the others are unspecified)."""
    from heapdiff.tracegen.writer import TraceWriter

    path = tmp_path / "t.etl"
    w = TraceWriter(str(path), pointer_size=8, cpus=4, buffer_size=0x1000)
    t = T0 + 10
    for i in range(20_000):
        t += 1
        w.heap_alloc(t, i % 4, 10, 20, 0x10000, 16 + i % 7, 0x20000 + 16 * i)
        if i % 3 == 0:
            w.stack(t + 1, i % 4, t, 10, 20, [0x7FF6_0000_1000 + i % 50, 0x7FF6_0000_2000])
            t += 1
    w.close()
    data = path.read_bytes()

    def fields(b: Any) -> np.ndarray:
        known = np.isin(b.hook, [HOOK_ALLOC, 0x1820])
        return np.where(known[:, None], b.f[:, :3], 0)

    def read(late: bool) -> list[tuple[np.ndarray, ...]]:
        rd = Reader(open_trace(data, "<built>"), layout(), KERNEL_GUIDS, chunk_bytes=0x2000)
        out: list[tuple[np.ndarray, ...]] = []
        previous = None
        for b in rd.batches():
            if late and previous is not None:
                out.append((previous.ts, previous.serial, previous.hook, fields(previous), previous.tail))
            if not late:
                out.append((b.ts, b.serial, b.hook, fields(b), b.tail))
            previous = b
        if late and previous is not None:
            out.append((previous.ts, previous.serial, previous.hook, fields(previous), previous.tail))
        return out

    now, later = read(False), read(True)
    assert len(now) == len(later) > 5
    for a, b in zip(now, later, strict=True):
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(x, y)
    ts = np.concatenate([a[0] for a in now])
    assert (np.diff(ts) >= 0).all() and len(np.unique(np.concatenate([a[1] for a in now]))) == ts.shape[0]


# ------------------------------------------------------------------------------------------------------------
# linked records (etl/walk.py docstring): a walk's deferred tail put on the row of the event it follows
# ------------------------------------------------------------------------------------------------------------
_PID, _TA, _TB = 0x88, 0x44, 0x48
_USER = [0x7FF6_0000_1000, 0x7FF6_0000_2000]
_USER2 = [0x7FF6_0000_3000]


def _kern() -> list[int]:
    from heapdiff.events.images import kernel_floor
    return [kernel_floor(8) + 0x1000, kernel_floor(8) + 0x2000]


def _al(ts: int, tid: int = _TA, addr: int = 0x1000, payload_extra: bytes = b"") -> bytes:
    return system(8, HOOK_ALLOC, T0 + ts, tid, _PID, alloc_payload(8, 1, 0x10, addr, 3) + payload_extra)


def _walk(ts: int, event_ts: int, frames: Sequence[int], tid: int = _TA) -> bytes:
    return perfinfo(8, HOOK_STACK, T0 + ts, stack_payload(8, T0 + event_ts, _PID, tid, frames))


@dataclass
class LinkCase:
    name: str
    records: list[bytes]
    rows: list[int]                      # hooks of the rows in the batches, in time order
    frames: list[list[int] | None]       # the frames each heap row carries in its tail (None: no tail)
    linked: int
    extra: list[bytes] = field(default_factory=list)
    defer: bool = True
    last_linked: int = 11                # timestamp (after T0) of the latest linked walk


def _link_cases() -> list[LinkCase]:
    K_ = _kern()
    A, S_, FR = HOOK_ALLOC, HOOK_STACK, HOOK_FREE
    free = system(8, HOOK_FREE, T0 + 10, _TA, _PID, free_payload(8, 1, 0x1000, 3))
    same_ts_b = [_al(10, _TB, 0x2000 + 16 * i) for i in range(F.LINK_BACK)]
    return [
        LinkCase("a walk after its Alloc", [_al(10), _walk(11, 10, _USER)], [A], [_USER], 1),
        LinkCase("kernel fragment, then user part: the user part wins",
                 [_al(10), _walk(11, 10, K_), _walk(12, 10, _USER)], [A], [_USER], 2, last_linked=12),
        LinkCase("user part, then kernel fragment: absorbed", [_al(10), _walk(11, 10, _USER), _walk(12, 10, K_)],
                 [A], [_USER], 2, last_linked=12),
        LinkCase("a second user walk stays a row", [_al(10), _walk(11, 10, _USER), _walk(12, 10, _USER2)],
                 [A, S_], [_USER, None], 1),
        LinkCase("a Free takes no tail", [free, _walk(11, 10, _USER)], [FR, S_], [None, None], 0),
        LinkCase("the record of the walk's thread, past another thread's",
                 [_al(10, _TA, 0x1000), _al(10, _TB, 0x2000), _walk(11, 10, _USER)], [A, A], [_USER, None], 1),
        LinkCase("the nearest one back", [_al(10, _TA, 0x1000), _al(10, _TA, 0x2000), _walk(11, 10, _USER)],
                 [A, A], [None, _USER], 1),
        LinkCase("another thread's walk", [_al(10), _walk(11, 10, _USER, _TB)], [A, S_], [None, None], 0),
        LinkCase("a walk older than its event", [_al(10), _walk(9, 10, _USER)], [S_, A], [None, None], 0),
        LinkCase("an Alloc whose payload does not fit", [_al(10, payload_extra=b"\0" * 8), _walk(11, 10, _USER)],
                 [A, S_], [None, None], 0),
        LinkCase(f"{F.LINK_BACK - 1} rows between: linked",
                 [_al(10), *same_ts_b[1:], _walk(11, 10, _USER)], [A] * F.LINK_BACK, [_USER] + [None] * 15, 1),
        LinkCase(f"{F.LINK_BACK} rows between: a row", [_al(10), *same_ts_b, _walk(11, 10, _USER)],
                 [A] * (F.LINK_BACK + 1) + [S_], [None] * (F.LINK_BACK + 2), 0),
        LinkCase("the event in another buffer", [_al(10)], [A, S_], [None, None], 0,
                 extra=[buffer([_walk(11, 10, _USER)], cpu=1, seq=2)]),
        LinkCase("user walks in two buffers: the one in the event's buffer wins (linked before the merge)",
                 [_al(10), _walk(13, 10, _USER2)], [A, S_], [_USER2, None], 1,
                 extra=[buffer([_walk(12, 10, _USER)], cpu=1, seq=2)], last_linked=13),
        LinkCase("tails not deferred: nothing linked", [_al(10), _walk(11, 10, _USER)], [A, S_], [None, None], 0,
                 defer=False),
    ]


@pytest.mark.parametrize("case", _link_cases(), ids=lambda c: c.name)
def test_linked_records(case: LinkCase) -> None:
    data = trace(case.records, extra=case.extra)
    rd = Reader(open_trace(data, "<built>"), layout(), KERNEL_GUIDS, defer_tails=case.defer)
    hooks: list[int] = []
    frames: list[list[int] | None] = []
    for b in rd.batches():
        for i in range(len(b)):
            if int(b.pos[i]) < B:
                continue  # the header buffer
            hooks.append(int(b.hook[i]))
            t = int(b.tail[i])
            if int(b.hook[i]) == HOOK_STACK or t == -1:
                frames.append(None)
                continue
            assert t >= SQ.DEFERRED
            off, cnt, _, _ = SQ.deferred_parts(np.array([t], np.int64))
            o, c = int(off[0]), int(cnt[0])
            frames.append([int.from_bytes(data[o + 8 * k:o + 8 * (k + 1)], "little") for k in range(c)])
    assert hooks == case.rows
    assert frames == case.frames
    assert rd.stats.linked == case.linked
    assert rd.linked() == ([(0x18, HOOK_STACK, case.linked)] if case.linked else [])
    assert rd.stats.records == 1 + len(case.records) + len(case.extra)  # linked ones still counted
    assert rd.stats.link_last_ts == (T0 + case.last_linked if case.linked else None)


def _unlinked_layout() -> Layout:
    import dataclasses

    from heapdiff.events.images import kernel_floor
    from heapdiff.events.layout import build_rows
    rows = [dataclasses.replace(r, link=None, link_target=False) for r in build_rows()]
    return Layout(rows, tail_marks=(kernel_floor(4), kernel_floor(8)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_linking_changes_no_result(seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The main job's read with walks linked by the reader and with every walk a row of its own (matched by the
    events layer) agree on everything: outstanding blocks with their frames, counts, anomalies. The trace has
    what makes linking decline: walks in the next buffer of their CPU, walks of Frees, second user walks,
    kernel fragments before and after the user part, walks of another thread, stacks of ReAllocs.

    Two things the generator leaves out, since there the two can differ by design: two events of one thread at
    one timestamp, and two user walks of one event in two buffers (the one in the event's buffer wins when
    linked, the first in time order when not: see the "user walks in two buffers" case above)."""
    import heapdiff.events.scan as scan_mod
    from heapdiff.commands.analyse import read_trace
    from heapdiff.events.images import kernel_floor
    from heapdiff.tracegen.writer import TraceWriter

    rng = random.Random(seed)
    path = tmp_path / "t.etl"
    w = TraceWriter(str(path), pointer_size=8, cpus=3, buffer_size=0x1000)
    kfl = kernel_floor(8)
    t = T0 + 100
    live: list[tuple[int, int, int]] = []  # (tid, heap, addr)
    for _ in range(6000):
        t += rng.randint(1, 2)
        cpu = rng.randrange(3)
        tid = 0x40 + rng.randrange(6)
        heap = 0x10000 * (1 + rng.randrange(2))
        r = rng.random()
        user = [0x7FF6_0000_0000 + 0x100 * rng.randrange(40), 0x7FF6_1000_0000 + 0x10 * rng.randrange(5)]
        kern = [kfl + 0x1000 * rng.randrange(3)]
        if r < 0.5 or not live:
            addr = 0x100000 + 16 * rng.randrange(4000)
            w.heap_alloc(t, cpu, 8, tid, heap, 16 + rng.randrange(100), addr)
            live.append((tid, heap, addr))
        elif r < 0.85:
            tid, heap, addr = live.pop(rng.randrange(len(live)))
            w.heap_free(t, cpu, 8, tid, heap, addr)
        else:
            tid, heap, old = live.pop(rng.randrange(len(live)))
            new = old if rng.random() < 0.5 else 0x100000 + 16 * rng.randrange(4000)
            w.heap_realloc(t, cpu, 8, tid, heap, new, old, 32, 16)
            live.append((tid, heap, new))
        ev = t
        kinds = rng.choice([["u"], ["u"], ["k", "u"], ["u", "k"], ["u", "u2"], [], ["other"]])
        for kind in kinds:
            t += rng.randint(0, 1)
            frames = kern if kind == "k" else user if kind != "u2" else user[::-1]
            # now and then on another CPU (another buffer): the events layer matches it
            wcpu = cpu if rng.random() < 0.9 or "u2" in kinds else (cpu + 1) % 3
            w.stack(t, wcpu, ev, 8, tid if kind != "other" else tid + 100, frames)
    w.close()

    def read(unlinked: bool) -> tuple[Any, ...]:
        if unlinked:
            monkeypatch.setattr(scan_mod, "layout", _unlinked_layout)
        else:
            monkeypatch.undo()
        with open(path, "rb") as fh:
            tf = open_trace(fh.read(), str(path))
        s, live_cols, anomalies, _ = read_trace(tf)
        order = np.lexsort((live_cols.addr, live_cols.heap, live_cols.pid))
        blocks = [(int(live_cols.pid[i]), int(live_cols.heap[i]), int(live_cols.addr[i]), int(live_cols.size[i]),
                   int(live_cols.ts[i]),
                   None if live_cols.stack[i] < 0 else tuple(s.sequences.get(int(live_cols.stack[i])).tolist()))
                  for i in order.tolist()]
        return (blocks, anomalies, s.records, s.providers, s.events, s.stack_refs, s.stacks_matched,
                s.anomalies.as_dict(), s.last_ts)

    linked = read(False)
    unlinked = read(True)
    assert linked == unlinked
    assert any(b[-1] is not None for b in linked[0]) and any(b[-1] is None for b in linked[0])
