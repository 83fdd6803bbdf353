"""The trace writer against an independent reader (dissect.etl) and against the format notes.

Why these tests matter: every heap scenario of the project is written by :mod:`heapdiff.tracegen.writer`, so a writer
bug would be invisible to every other test. The checks here therefore avoid reusing the writer's own layouts:
the payloads expected are packed with ``struct`` formats written down from the notes' tables (sections 4.3, 5,
6), the buffers are walked with a small walker of the test's own (section 1.4), and dissect.etl frames the
records (its heap and stack *templates* are wrong, notes 4.5, so only framing is used: hook id, version, pid,
tid, raw timestamp, payload bytes). Compressed buffers are opened with dissect.util's Xpress decoder as a
second decoder.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from heapdiff.etl.xpress import decompress as heapdiff_decompress
from heapdiff.tracegen.writer import DEFAULT_START_FILETIME, TraceWriter

dissect_etl = pytest.importorskip("dissect.etl")
lzxpress = pytest.importorskip("dissect.util.compression.lzxpress")

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "etl-samples"

# --- the notes' numbers, written down independently of heapdiff.etl.structs ---------------------------------
BUFFER_HEADER = struct.Struct("<IIIiqqQHHIIHH16s")  # 1.1, 0x48 bytes
assert BUFFER_HEADER.size == 0x48
SID_S_1_5_18 = bytes.fromhex("010100000000000512000000")  # 6.2
NTDLL = "\\Device\\HarddiskVolume3\\Windows\\System32\\ntdll.dll"
CHILD = "\\Device\\HarddiskVolume3\\app\\child.exe"
FILETIME_2026 = 116444736000000000 + 1_767_225_600 * 10_000_000

Check = bytes | Callable[[bytes], None]


@dataclass
class Expected:
    """One record as the test asked for it (pid/tid None: a PERFINFO header; payload bytes or a check)."""

    hook: int | None
    version: int | None
    htype: int
    pid: int | None
    tid: int | None
    ts: int
    payload: Check


@dataclass
class Buf:
    """A buffer as the test's own walker sees it."""

    offset: int
    size: int
    saved: int
    current: int
    ts: int
    seq: int
    cpu: int
    logger: int
    state: int
    filled: int
    flag: int
    btype: int
    disk: bytes      # the buffer's bytes as stored
    body: bytes      # [0x48, SavedOffset) after decompression
    records: list[bytes]


def walk(data: bytes, *, ours: bool = True) -> list[Buf]:
    """Buffers and records by the notes' rules (1.2, 1.3), checking framing on the way.

    ``ours``: also require zero alignment padding (real files may hold stale bytes there, notes 1.3).
    """
    out: list[Buf] = []
    off = 0
    while off < len(data):
        (size, saved, current, _ref, ts, seq, _clock, cpu, logger, state, filled, flag, btype,
         _reftime) = BUFFER_HEADER.unpack_from(data, off)
        assert size >= 0x48 and off + size <= len(data), f"buffer at {off:#x} runs past the file"
        disk = data[off:off + size]
        if flag & 0x40:
            body = lzxpress.decompress(disk[0x48:])
            assert len(body) == saved - 0x48, "decompressed size must be SavedOffset - 0x48 (snail)"
        else:
            assert saved <= size
            body = disk[0x48:saved]
        records = []
        p = 0
        while p < len(body):
            marker = int.from_bytes(body[p:p + 4], "little")
            htype = (marker >> 16) & 0xFF
            assert marker >> 30 == 3, f"record at {p:#x} of buffer {len(out)}: marker {marker:#x}"
            classic = htype in (1, 2, 3, 4, 0x10, 0x11)
            n = int.from_bytes(body[p + 4:p + 6], "little") if classic else marker & 0xFFFF
            assert p + n <= len(body), "record crosses the filled end"
            records.append(body[p:p + n])
            pad = (-n) % 8
            assert not ours or body[p + n:p + n + pad] == bytes(pad), "alignment padding must be zero"
            p += n + pad
        assert p == len(body), "the record walk must end exactly at SavedOffset"
        out.append(Buf(off, size, saved, current, ts, seq, cpu, logger, state, filled, flag, btype, disk,
                       body, records))
        off += size
    return out


def record_ts(rec: bytes) -> int:
    htype = rec[2]
    return int.from_bytes(rec[8:16] if htype in (0x10, 0x11) else rec[16:24], "little")


def dissect_records(data: bytes) -> tuple[Any, list[tuple[int, dict[str, Any]]]]:
    """(ETL, [(buffer index, framing of one record)]) in dissect's (file) order."""
    etl = dissect_etl.ETL(io.BytesIO(data))
    out = []
    for bi, buffer in enumerate(etl.buffers()):
        for rec in buffer:
            h = rec.header
            out.append((bi, {
                "hook": getattr(h, "hook_id", None),
                "version": h.version,
                "pid": getattr(h, "process_id", None),
                "tid": getattr(h, "thread_id", None),
                "ts": h.time_delta,
                "payload": bytes(h.payload),
                "data": bytes(h.data[:h.size]),
                "is_64bit": h.is_64bit,
            }))
    return etl, out


# --- a scenario with every kind of record -------------------------------------------------------------------

class Scenario:
    """Drives a TraceWriter and records, per CPU, what each call must produce (packed independently)."""

    def __init__(self, w: TraceWriter) -> None:
        self.w = w
        self.expected: dict[int, list[Expected]] = {c: [] for c in range(w.cpus)}
        self.ts = w.t0
        self.marked: tuple[int, int] | None = None  # (cpu, ts of the first record after the mark)

    def tick(self, n: int = 7) -> int:
        self.ts += n
        return self.ts

    def add(self, cpu: int, e: Expected) -> None:
        self.expected[cpu].append(e)


def P(ptr: int) -> str:
    return "Q" if ptr == 8 else "I"


def sys_type(ptr: int) -> int:
    return 2 if ptr == 8 else 1


def perf_type(ptr: int) -> int:
    return 0x11 if ptr == 8 else 0x10


def process_check(ptr: int, pid: int, parent: int, name: str, cmd: str) -> Callable[[bytes], None]:
    def check(pl: bytes) -> None:
        o = 8 if ptr == 8 else 4
        assert struct.unpack_from("<II", pl, o) == (pid, parent)
        sid = (36 if ptr == 8 else 28) + 2 * ptr  # v4: Flags u32 then TOKEN_USER (2 x P) then the SID
        assert pl[sid:sid + 12] == SID_S_1_5_18
        tail = pl[sid + 12:]
        assert tail == name.encode("latin-1") + b"\0" + cmd.encode("utf-16-le") + b"\0\0" + b"\0\0" + b"\0\0"
    return check


def image_check(ptr: int, pid: int, base: int, size: int, name: str) -> Callable[[bytes], None]:
    def check(pl: bytes) -> None:
        f = P(ptr)
        assert struct.unpack_from(f"<{f}{f}I", pl, 0) == (base, size, pid)
        assert struct.unpack_from(f"<{f}", pl, 32 if ptr == 8 else 24)[0] == base  # DefaultBase
        name_off = 56 if ptr == 8 else 44
        assert pl[name_off:] == name.encode("utf-16-le") + b"\0\0"
    return check


def build(w: TraceWriter, *, wow64: bool = False, rounds: int = 240) -> Scenario:
    """Processes, images, heap events of every kind, both stack forms, stack keys, raw records, lost mark."""
    s = Scenario(w)
    p = w.pointer_size
    f = P(p)
    heap = 0x00000245_6B2A0000 if p == 8 else 0x006B0000
    pid, tid, pid2, tid2 = 4321, 4400, 4500, 4504

    t = s.tick()
    w.process(t, 0, 4, 0, "System")
    s.add(0, Expected(0x0303, 4, perf_type(p), None, None, t, process_check(p, 4, 0, "System", "")))
    t = s.tick()
    w.process(t, 0, pid, 1000, "app.exe", '"C:\\app\\app.exe" --leak')
    s.add(0, Expected(0x0303, 4, perf_type(p), None, None, t,
                      process_check(p, pid, 1000, "app.exe", '"C:\\app\\app.exe" --leak')))
    base = 0x7FF8_1000_0000 if p == 8 else 0x77000000
    t = s.tick()
    w.image(t, 0, pid, base, 0x1F0000, NTDLL)
    s.add(0, Expected(0x1403, 3, perf_type(p), None, None, t, image_check(p, pid, base, 0x1F0000, NTDLL)))
    t = s.tick()
    w.process(t, 1, pid2, pid, "child.exe", "child.exe /x", kind="start", tid=tid)
    s.add(1, Expected(0x0301, 4, sys_type(p), pid, tid, t,
                      process_check(p, pid2, pid, "child.exe", "child.exe /x")))
    t = s.tick()
    w.image(t, 1, pid2, 0x400000, 0x20000, CHILD, kind="load", tid=tid2)
    s.add(1, Expected(0x030A, 3, sys_type(p), pid2, tid2, t, image_check(p, pid2, 0x400000, 0x20000, CHILD)))
    t = s.tick()
    w.heap_create(t, 2, pid, tid, heap)
    s.add(2, Expected(0x1020, 2, sys_type(p), pid, tid, t, struct.pack(f"<{f}I", heap, 2)))

    live: list[tuple[int, int]] = []
    for i in range(rounds):
        cpu = i % w.cpus
        th = tid + 4 * (i % 3)
        addr = heap + 0x1000 + 0x40 * i
        t = s.tick()
        w.heap_alloc(t, cpu, pid, th, heap, 24 + i, addr, source=2)
        s.add(cpu, Expected(0x1021, 2, sys_type(p), pid, th, t,
                            struct.pack(f"<{f}{f}{f}I", heap, 24 + i, addr, 2)))
        frames = [base + 0x100 * k + i for k in range(1 + i % 9)]
        t2 = s.tick(1)
        w.stack(t2, cpu, t, pid, th, frames)
        s.add(cpu, Expected(0x1820, 2, perf_type(p), None, None, t2,
                            struct.pack(f"<QII{len(frames)}{f}", t, pid, th, *frames)))
        live.append((addr, 24 + i))
        if i % 5 == 4:
            old, old_size = live.pop(0)
            new = addr + 0x100000
            t = s.tick()
            w.heap_realloc(t, cpu, pid, th, heap, new, old, old_size * 2, old_size)
            s.add(cpu, Expected(0x1022, 2, sys_type(p), pid, th, t,
                                struct.pack(f"<{f}{f}{f}{f}{f}I", heap, new, old, old_size * 2, old_size, 3)))
            t2 = s.tick(0)  # same timestamp: a stack logged in the same tick as its event
            short = frames[:2]
            w.stack(t2, cpu, t, pid, th, short, header="system")
            s.add(cpu, Expected(0x1820, 2, sys_type(p), pid, th, t2,
                                struct.pack(f"<QII{len(short)}{f}", t, pid, th, *short)))
            live.append((new, old_size * 2))
        if i % 3 == 2:
            victim, _ = live.pop(0)
            t = s.tick()
            w.heap_free(t, cpu, pid, th, heap, victim)
            s.add(cpu, Expected(0x1024, 2, sys_type(p), pid, th, t,
                                struct.pack(f"<{f}{f}I", heap, victim, 3)))
        if wow64 and i % 7 == 0:
            h32, a32 = 0x00A20000, 0x00A30000 + 0x10 * i
            t = s.tick()
            w.heap_alloc(t, cpu, pid2, tid2, h32, 16, a32, ptr=4)
            s.add(cpu, Expected(0x1021, 2, 1, pid2, tid2, t, struct.pack("<IIII", h32, 16, a32, 3)))
            t2 = s.tick(1)
            w.stack(t2, cpu, t, pid2, tid2, [0x00401234, 0x77A01000])  # kernel-logged: 64-bit frames
            s.add(cpu, Expected(0x1820, 2, perf_type(p), None, None, t2,
                                struct.pack(f"<QII2{f}", t, pid2, tid2, 0x00401234, 0x77A01000)))
            t = s.tick()
            w.heap_free(t, cpu, pid2, tid2, h32, a32, ptr=4)
            s.add(cpu, Expected(0x1024, 2, 1, pid2, tid2, t, struct.pack("<III", h32, a32, 3)))
        if i == rounds // 2:
            w.mark_events_lost(1)
            s.marked = (1, s.ts + 1)  # the next record of CPU 1 is written after the mark
        if i == rounds // 3:
            # rare heap events, with payloads sized per the notes (Expand/Contract v2 and v3, SnapShot, Lock)
            e6 = f"<{f * 6}I"  # Expand/Contract v2: 6 pointer-sized fields + NoOfUCRs
            for hook, payload, version in (
                (0x1025, struct.pack(e6, heap, 0x10000, heap + 0x40000, 0x800, 0x50000, 0x100000, 2), 2),
                (0x1025, struct.pack(e6 + f, heap, 0x10000, heap, 0x800, 0x50000, 0x100000, 2, 0x4F000), 3),
                (0x102A, struct.pack(e6, heap, 0x2000, heap + 0x8000, 0x100, 0x4E000, 0x100000, 1), 2),
                (0x1026, struct.pack(f"<{f * 4}II{f}II", heap, 0x800, 0x50000, 0x100000, 2, pid, 0, 5, 1), 2),
                (0x102B, struct.pack(f"<{f}", heap), 2),
            ):
                t = s.tick()
                w.heap_other(t, cpu, pid, th, hook, payload)
                s.add(cpu, Expected(hook, version, sys_type(p), pid, th, t, payload))
            # stack caching (5.3): a definition and references to it
            key = 0xFFFF_9A00_0000_1230 if p == 8 else 0x9A001230
            t = s.tick()
            w.stack_key_create(t, cpu, key, frames)
            s.add(cpu, Expected(0x1822, 2, perf_type(p), None, None, t,
                                struct.pack(f"<{f}{len(frames)}{f}", key, *frames)))
            for user, hook in ((True, 0x1826), (False, 0x1825)):
                t2 = s.tick()
                w.stack_key_ref(t2, cpu, t, pid, th, key, user=user)
                s.add(cpu, Expected(hook, 2, perf_type(p), None, None, t2,
                                    struct.pack(f"<QII{f}", t, pid, th, key)))
            for hook in (0x1824, 0x1823):
                t = s.tick()
                w.stack_key_create(t, cpu, key, frames[:1], hook=hook)
                s.add(cpu, Expected(hook, 2, perf_type(p), None, None, t,
                                    struct.pack(f"<{f}{f}", key, frames[0])))
            # raw records of other header kinds: compact SYSTEM header and a classic EVENT_TRACE_HEADER
            body = struct.pack(f"<{f}{f}{f}I", heap, 8, heap + 8, 1)
            t = s.tick()
            ht = 4 if p == 8 else 3
            compact = struct.pack("<HBBHBBIIq", 2, ht, 0xC0, 0x18 + len(body), 0x21, 0x10, th, pid, t) + body
            w.raw(cpu, compact)
            s.add(cpu, Expected(0x1021, None, ht, pid, th, t, body))
            t = s.tick()
            guid = bytes.fromhex("d75de6b354251f4f830b2762732560de")
            ht = 0x14 if p == 8 else 0x0A
            classic = struct.pack("<HBBBBHIIq16sII", 0x35, ht, 0xC0, 0, 0, 0, th, pid, t, guid, 0, 0)
            classic += b"hello"
            w.raw(cpu, classic)
            s.add(cpu, Expected(None, None, ht, pid, th, t, b"hello"))

    for addr, _size in live:
        t = s.tick()
        w.heap_free(t, 0, pid, tid, heap, addr)
        s.add(0, Expected(0x1024, 2, sys_type(p), pid, tid, t, struct.pack(f"<{f}{f}I", heap, addr, 3)))
    t = s.tick()
    w.heap_destroy(t, 2, pid, tid, heap)
    s.add(2, Expected(0x1023, 2, sys_type(p), pid, tid, t, struct.pack(f"<{f}", heap)))
    t = s.tick()
    w.image(t, 1, pid2, 0x400000, 0x20000, CHILD, kind="unload", tid=tid2)
    s.add(1, Expected(0x1402, 3, sys_type(p), pid2, tid2, t, image_check(p, pid2, 0x400000, 0x20000, CHILD)))
    t = s.tick()
    w.process(t, 1, pid2, pid, "child.exe", "child.exe /x", kind="end", tid=tid2)
    s.add(1, Expected(0x0302, 4, sys_type(p), pid2, tid2, t,
                      process_check(p, pid2, pid, "child.exe", "child.exe /x")))
    t = s.tick()
    w.image(t, 2, pid, base, 0x1F0000, NTDLL, kind="dcend")
    s.add(2, Expected(0x1404, 3, perf_type(p), None, None, t, image_check(p, pid, base, 0x1F0000, NTDLL)))
    t = s.tick()
    w.process(t, 2, pid, 1000, "app.exe", '"C:\\app\\app.exe" --leak', kind="dcend")
    s.add(2, Expected(0x0304, 4, perf_type(p), None, None, t,
                      process_check(p, pid, 1000, "app.exe", '"C:\\app\\app.exe" --leak')))
    return s


VARIANTS: dict[str, dict[str, Any]] = {
    "64-bit": {"pointer_size": 8},
    "32-bit": {"pointer_size": 4},
    "64-bit+wow64": {"pointer_size": 8, "wow64": True},
    "compressed": {"pointer_size": 8, "wow64": True, "compress": True},
    "compressed-32-bit": {"pointer_size": 4, "compress": True},
}


def write(variant: str, **extra: Any) -> tuple[bytes, TraceWriter, Scenario]:
    opts = dict(VARIANTS[variant])
    wow64 = bool(opts.pop("wow64", False))
    bio = io.BytesIO()
    w = TraceWriter(bio, cpus=3, buffer_size=0x800, keep_log=True, events_lost=3, buffers_lost=1, **opts,
                    **extra)
    s = build(w, wow64=wow64)
    w.close()
    return bio.getvalue(), w, s


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def trace(request: pytest.FixtureRequest) -> tuple[str, bytes, TraceWriter, Scenario]:
    data, w, s = write(request.param)
    return request.param, data, w, s


# --- (1) dissect frames exactly what was written ------------------------------------------------------------

def test_dissect_sees_every_record_in_file_order(trace: tuple[str, bytes, TraceWriter, Scenario]) -> None:
    _, data, w, _ = trace
    assert w.log is not None
    etl, seen = dissect_records(data)
    written = [(b.index, r) for b in w.log for r in b.records]
    assert len(seen) == len(written)
    assert len(list(etl.buffers())) == len(w.log) == w.buffers_written
    for (bi, got), (wi, rec) in zip(seen, written, strict=True):
        assert bi == wi
        assert got["data"] == rec.data
        assert got["ts"] == rec.ts
        if rec.hook is not None:
            assert (got["hook"], got["version"]) == (rec.hook, rec.version)
            assert got["payload"] == rec.payload
            assert got["is_64bit"] == (rec.header_type in (2, 0x11))
        if rec.pid is not None:
            assert (got["pid"], got["tid"]) == (rec.pid, rec.tid)
        else:
            assert got["pid"] is None or rec.hook is None


def test_dissect_sees_what_each_call_asked_for(trace: tuple[str, bytes, TraceWriter, Scenario]) -> None:
    """Per CPU (buffers in sequence order), dissect's records equal the independently packed expectations."""
    _, data, _, s = trace
    etl, seen = dissect_records(data)
    cpu_of = [b.header.ProcessorIndex for b in etl.buffers()]
    seq_of = [b.header.SequenceNumber for b in etl.buffers()]
    per_cpu: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for bi, got in seen:
        if bi:
            per_cpu.setdefault(cpu_of[bi], []).append((seq_of[bi], got))
    for cpu, expected in s.expected.items():
        got_list = [g for _, g in sorted(per_cpu.get(cpu, []), key=lambda x: x[0])]
        assert len(got_list) == len(expected), f"cpu {cpu}"
        for got, e in zip(got_list, expected, strict=True):
            assert got["data"][2] == e.htype
            assert got["ts"] == e.ts
            if e.hook is not None:
                assert got["hook"] == e.hook
            if e.version is not None:
                assert got["version"] == e.version
            if e.pid is not None:
                assert (got["pid"], got["tid"]) == (e.pid, e.tid)
            if e.htype in (0x10, 0x11):
                assert got["pid"] is None and got["tid"] is None
            if isinstance(e.payload, bytes):
                assert got["payload"] == e.payload
            else:
                e.payload(got["payload"])


def test_header_buffer_and_logfile_header(trace: tuple[str, bytes, TraceWriter, Scenario]) -> None:
    variant, data, w, s = trace
    bufs = walk(data)
    b0 = bufs[0]
    assert (b0.btype, b0.flag, b0.seq, b0.ts, b0.cpu, b0.state) == (4, 0x21, 0, 0, 0, 3)
    assert b0.size == 0x800
    header, *ext = b0.records
    ptr = w.pointer_size
    marker = int.from_bytes(header[:4], "little")
    assert marker == (0xC0020002 if ptr == 8 else 0xC0010002)
    assert struct.unpack_from("<HH", header, 4)[1] == 0x0000
    assert struct.unpack_from("<q", header, 0x10)[0] == w.t0
    lf = header[0x20:]
    d = 0 if ptr == 8 else -8
    (bsize, version, _prov, ncpu, end_time, _res, _maxsize, mode, written, _start_buffers, psize,
     lost) = struct.unpack_from("<IIIIqIIIIIII", lf, 0)
    boot, freq, start, clock, blost = struct.unpack_from("<qqqII", lf, 0xF8 + d)
    assert bsize == 0x800 and ncpu == 3 and psize == ptr and lost == 3 and blost == 1
    assert written == len(bufs)
    assert (freq, start, clock) == (10_000_000, FILETIME_2026, 1) and DEFAULT_START_FILETIME == FILETIME_2026
    assert boot == start - w.t0  # QPC at 10 MHz counts 100 ns ticks since boot
    last = max(e.ts for es in s.expected.values() for e in es)
    assert end_time == start + (last - w.t0)
    if "compressed" in variant:
        assert version == 0x0002000A and mode == 0x04000001 and b0.state & 0xFFFF == 3
    else:
        assert version == 0x0501000A and mode == 0x00000001
    names = lf[0x118 + d:].decode("utf-16-le").split("\0")
    assert names[:2] == ["heapdiff writer", "C:\\traces\\heap.etl"]
    assert [struct.unpack_from("<HH", r, 4)[1] for r in ext] == [0x0005, 0x0050]
    assert [len(r) - 0x20 for r in ext] == [36, 48]
    etl = dissect_etl.ETL(io.BytesIO(data))
    assert etl.pointer_size == ptr
    assert etl.logfile_header.logger_name == "heapdiff writer"
    assert str(etl.start) == "2026-01-01 00:00:00+00:00"


# --- (2) compressed buffers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ptr", [8, 4])
def test_compressed_buffers_hold_the_same_bytes(ptr: int) -> None:
    plain, _, _ = write("64-bit+wow64" if ptr == 8 else "32-bit")
    packed, _, _ = write("compressed" if ptr == 8 else "compressed-32-bit")
    a, b = walk(plain), walk(packed)
    assert len(a) == len(b)
    # buffer 0 is never compressed and differs only in TRACE_LOGFILE_HEADER Version (@0x68+4) and LogFileMode
    # (@0x68+0x20)
    assert not b[0].flag & 0x40 and b[0].size == a[0].size
    differ = {i for i, (u, v) in enumerate(zip(a[0].disk, b[0].disk, strict=True)) if u != v}
    assert differ and differ <= set(range(0x6C, 0x70)) | set(range(0x88, 0x8C))
    n_packed = 0
    for x, y in zip(a[1:], b[1:], strict=True):
        assert (x.seq, x.cpu, x.saved, x.filled, x.ts) == (y.seq, y.cpu, y.saved, y.filled, y.ts)
        if y.flag & 0x40:
            n_packed += 1
            assert y.flag == x.flag | 0x40
            assert y.size < y.saved and y.size == 0x48 + len(y.disk) - 0x48
            assert lzxpress.decompress(y.disk[0x48:]) == x.disk[0x48:x.saved]
            assert heapdiff_decompress(y.disk[0x48:], y.saved - 0x48) == x.disk[0x48:x.saved]
        else:
            assert y.disk == x.disk  # stored plain: only when compression would not shrink it
    assert n_packed == len(a) - 1


# --- (3) buffer invariants ----------------------------------------------------------------------------------

def test_buffer_invariants(trace: tuple[str, bytes, TraceWriter, Scenario]) -> None:
    variant, data, w, _ = trace
    bufs = walk(data)
    assert sum(b.size for b in bufs) == len(data)
    assert [b.seq for b in bufs] == list(range(len(bufs)))
    last_ts: dict[int, int] = {}
    for b in bufs:
        assert b.saved == b.filled == b.current, "SavedOffset, CurrentOffset and Offset@0x30 agree"
        assert b.saved % 8 == 0
        assert b.offset % 8 == 0 or "compressed" in variant  # compressed buffers have any on-disk size
        assert b.logger == 0x20 and b.state == 3
        assert b.cpu < w.cpus
        if b.flag & 0x40:
            assert b.size == len(b.disk) < w.buffer_size
        else:
            assert b.size == w.buffer_size
            assert b.disk[b.saved:] == b"\xff" * (b.size - b.saved), "filler is 0xFF"
        if b.seq == 0:
            continue
        assert b.btype == 0 and b.flag & ~(0x40 | 0x02) == 0x20
        stamps = [record_ts(r) for r in b.records]
        assert stamps == sorted(stamps)
        assert stamps[0] >= last_ts.get(b.cpu, w.t0)
        assert b.ts == stamps[-1], "buffer TimeStamp = its last record's"
        last_ts[b.cpu] = stamps[-1]


def test_events_lost_flag_marks_the_right_buffer(trace: tuple[str, bytes, TraceWriter, Scenario]) -> None:
    _, data, _, s = trace
    assert s.marked is not None
    cpu, after = s.marked
    flagged = [b for b in walk(data) if b.flag & 0x02]
    assert len(flagged) == 1
    (b,) = flagged
    assert b.cpu == cpu
    assert any(record_ts(r) >= after for r in b.records)


# --- (4) file order is flush order, not time order ----------------------------------------------------------

def test_file_order_differs_from_time_order(trace: tuple[str, bytes, TraceWriter, Scenario]) -> None:
    _, data, _, _ = trace
    stamps = [record_ts(r) for b in walk(data)[1:] for r in b.records]
    assert stamps != sorted(stamps)
    assert sorted(stamps) == sorted(e.ts for es in trace[3].expected.values() for e in es)


# --- API contract -------------------------------------------------------------------------------------------

def test_rejects_out_of_order_and_impossible_records() -> None:
    w = TraceWriter(io.BytesIO(), pointer_size=4, cpus=2)
    t = w.t0 + 100
    w.heap_alloc(t, 0, 1, 2, 0x10000, 8, 0x20000)
    with pytest.raises(ValueError, match="non-decreasing"):
        w.heap_free(t - 1, 0, 1, 2, 0x10000, 0x20000)
    w.heap_free(t - 1, 1, 1, 2, 0x10000, 0x20000)  # another CPU has its own order
    with pytest.raises(ValueError, match="t0"):
        w.stack(w.t0 - 1, 1, t, 1, 2, [1])
    with pytest.raises(ValueError, match="cpu"):
        w.heap_alloc(t, 2, 1, 2, 0x10000, 8, 0x20000)
    with pytest.raises(ValueError, match="cpu"):
        w.heap_alloc(t, -1, 1, 2, 0x10000, 8, 0x20000)
    with pytest.raises(ValueError, match="pointer size 8"):
        w.heap_alloc(t, 0, 1, 2, 0x10000, 8, 0x20000, ptr=8)
    with pytest.raises(ValueError, match="does not fit"):
        w.heap_alloc(t, 0, 1, 2, 0x1_0000_0000, 8, 0x20000)
    with pytest.raises(ValueError, match="payload must be"):
        w.heap_other(t, 0, 1, 2, 0x1025, b"\0" * 52)
    with pytest.raises(ValueError, match="heap group"):
        w.heap_other(t, 0, 1, 2, 0x1820, b"")
    with pytest.raises(ValueError, match="kind"):
        w.process(t, 0, 1, 0, "x.exe", kind="begin")
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.heap_alloc(t + 1, 0, 1, 2, 0x10000, 8, 0x20000)


def test_writes_to_a_path_and_works_as_a_context_manager(tmp_path: Path) -> None:
    path = tmp_path / "t.etl"
    with TraceWriter(path, cpus=1) as w:
        w.heap_alloc(w.t0 + 1, 0, 1, 2, 0x10000, 8, 0x20000)
    data = path.read_bytes()
    assert len(data) == 2 * 0x10000
    _, seen = dissect_records(data)
    assert [g["hook"] for _, g in seen] == [0x0000, 0x0005, 0x0050, 0x1021]


def test_header_extensions_can_be_left_out() -> None:
    bio = io.BytesIO()
    TraceWriter(bio, cpus=1, header_extensions=False).close()
    (b0,) = walk(bio.getvalue())
    assert len(b0.records) == 1


def test_millions_path_flushes_full_buffers() -> None:
    """Many small records: every full buffer is flushed without a gap larger than one record."""
    bio = io.BytesIO()
    with TraceWriter(bio, cpus=2, buffer_size=0x1000) as w:
        t = w.t0
        for i in range(5000):
            t += 1
            w.heap_alloc(t, i & 1, 10, 20, 0x10000, 16, 0x100000 + 16 * i)
    bufs = walk(bio.getvalue())
    assert sum(len(b.records) for b in bufs[1:]) == 5000
    assert all(b.saved > 0x1000 - 0x40 for b in bufs[1:-2])


@pytest.mark.samples
def test_field_values_match_a_real_trace() -> None:
    """The constant fields the writer copies from real files are those of a real Windows 10 file."""
    real_path = SAMPLES / "airbus-cert__etl-parser" / "ShutdownPerfDiagLogger.etl"
    if not real_path.exists():
        pytest.skip("real samples not present")
    real = walk(real_path.read_bytes(), ours=False)
    bio = io.BytesIO()
    with TraceWriter(bio, cpus=2) as w:
        w.heap_alloc(w.t0 + 1, 1, 10, 20, 0x10000, 16, 0x100000)
    ours = walk(bio.getvalue())
    for r, o in ((real[0], ours[0]), (real[1], ours[1])):
        assert (r.btype, r.flag, r.state, r.size) == (o.btype, o.flag, o.state, o.size)
    rh, oh = real[0].records[0], ours[0].records[0]
    assert rh[:4] == oh[:4]  # marker 0xC0020002
    # Version, TimerResolution, StartBuffers, PointerSize, PerfFreq, ReservedFlags
    for fmt, off in (("<I", 0x24), ("<I", 0x38), ("<I", 0x48), ("<I", 0x4C), ("<q", 0x120), ("<I", 0x130)):
        assert struct.unpack_from(fmt, rh, off) == struct.unpack_from(fmt, oh, off), hex(off)
    assert [struct.unpack_from("<H", r, 6)[0] for r in real[0].records] == [0x0000, 0x0005, 0x0050]
    assert [r[:4] for r in real[0].records[1:]] == [r[:4] for r in ours[0].records[1:]]
    assert real[0].records[1][0x20:] == ours[0].records[1][0x20:]  # same 0x0005 extension payload
