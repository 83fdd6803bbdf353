"""The inputs the mutator starts from: heapdiff's own written traces, and real samples when they are present.

Written seeds are made by :class:`heapdiff.tracegen.writer.TraceWriter` and :mod:`heapdiff.tracegen.scenario` and are
*clean*: both commands read them with no warning, so that a mutated copy that holds fewer heap events than its seed
and still reads without a warning is a silent loss (the harness's own test checks they stay clean). Building them is
deterministic, so a worker process builds its own copy and a failure replays from (seed name, mutations) alone.

:class:`Seed` also carries the map the structure-aware mutations need: where each buffer starts and ends (by its own
BufferSize, notes 1.2), which buffers are compressed, and where the records are inside each buffer's uncompressed
bytes (the notes' walk of 1.4).
"""

from __future__ import annotations

import io
import struct
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from heapdiff.etl import structs as S
from heapdiff.etl.xpress import decompress
from heapdiff.events import kinds as K
from heapdiff.tracegen.scenario import write_example
from heapdiff.tracegen.writer import TraceWriter

#: ../shared/etl-samples beside the repository; never copied into it
SAMPLES: Final = Path(__file__).resolve().parents[1].parent / "shared" / "etl-samples"
#: small real samples, compressed ones included (read when present; reading them is slow past ~1 MB)
SAMPLE_SEEDS: Final = (
    "microsoft__perfview/SelfDescribingSingleEvent.etl",
    "microsoft__perfview/smallEtlFile.etl",
    "microsoft__perfview/primitive-types.etl",
    "microsoft__perfview/gcrundownevents.etl",
    "airbus-cert__etl-parser/lxcore_kernel.etl",
    "JohnLudlow__MonoGameSamples.TerrainGeneration2D/PerfViewData.etl",
    "microsoft__Tx/WsRm01.etl",
)


@dataclass(frozen=True)
class Record:
    """A record inside a buffer's uncompressed bytes: its offset from the buffer start, size, header type, hook."""

    offset: int
    size: int
    header_type: int
    hook: int


@dataclass(frozen=True)
class Buffer:
    offset: int
    size: int
    compressed: bool
    records: tuple[Record, ...]


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    pointer_size: int
    buffers: tuple[Buffer, ...]
    #: False for real samples, which may warn already: the silent-loss rule is vacuous for them
    clean: bool = True


#: what a compressed stream is decoded into at most when all of it is wanted (a session's buffers are smaller)
STREAM_CAP = 1 << 20


def buffer_body(data: bytes, off: int, whole_stream: bool = False) -> tuple[bytes, bool] | None:
    """The uncompressed bytes of the buffer at ``off`` (header included) and whether it was compressed; None when
    its header does not describe a buffer that decodes. A compressed buffer's stream is decoded to its SavedOffset,
    or with ``whole_stream`` as far as it goes: what a mutation rewrites must keep every byte the stream holds,
    else re-encoding it after a lowered SavedOffset would destroy the records past it without a trace."""
    if off + S.BUFFER_HEADER_SIZE > len(data):
        return None
    h = S.BUFFER_HEADER.unpack(data, off)
    size, saved = int(h["BufferSize"]), int(h["SavedOffset"])
    if size < S.BUFFER_HEADER_SIZE or off + size > len(data) or not S.BUFFER_HEADER_SIZE <= saved <= 1 << 24:
        return None
    head = data[off:off + S.BUFFER_HEADER_SIZE]
    if not int(h["BufferFlag"]) & S.BUFFER_FLAG_COMPRESSED:
        return data[off:off + min(saved, size)], False
    try:
        want = max(saved - S.BUFFER_HEADER_SIZE, STREAM_CAP) if whole_stream else saved - S.BUFFER_HEADER_SIZE
        body = decompress(data[off + S.BUFFER_HEADER_SIZE:off + size], want)
    except Exception:
        return None
    return head + body, True


def walk_records(buf: bytes) -> Iterator[Record]:
    """The notes' record walk (1.4) over one buffer's uncompressed bytes (header included)."""
    p, end = S.BUFFER_HEADER_SIZE, len(buf)
    while p + 8 <= end:
        (m,) = struct.unpack_from("<I", buf, p)
        if m == 0xFFFFFFFF or not m & 0x80000000:
            return
        htype = (m >> 16) & 0xFF
        classic = (m >> 24) & 0xC0 == 0xC0 and htype in (1, 2, 3, 4, 0x10, 0x11)
        size = struct.unpack_from("<H", buf, p + 4)[0] if classic else m & 0xFFFF
        if size < 8 or p + size > end:
            return
        hook = struct.unpack_from("<H", buf, p + 6)[0] if classic else -1
        yield Record(p, size, htype, hook)
        p += (size + 7) & ~7


def buffers_of(data: bytes) -> tuple[Buffer, ...]:
    """Buffers by their own BufferSize (notes 1.2), up to the first that does not fit."""
    out: list[Buffer] = []
    off = 0
    while off + S.BUFFER_HEADER_SIZE <= len(data):
        (size,) = struct.unpack_from("<I", data, off)
        if size < S.BUFFER_HEADER_SIZE or off + size > len(data):
            break
        got = buffer_body(data, off)
        recs = tuple(walk_records(got[0])) if got else ()
        out.append(Buffer(off, size, bool(got and got[1]), recs))
        off += size
    return tuple(out)


def make_seed(name: str, data: bytes, clean: bool = True) -> Seed:
    ptr = 8
    if len(data) >= 0x48 + 0x20 + 0x30:
        (ptr_field,) = struct.unpack_from("<I", data, 0x48 + 0x20 + S.LOGFILE_HEADER64.off("PointerSize"))
        ptr = 4 if ptr_field == 4 else 8
    return Seed(name, data, ptr, buffers_of(data), clean)


# --- written seeds -----------------------------------------------------------------------------------------
_HEAP_GUID: Final = uuid.UUID("222962ab-6180-4b88-a825-346b75f2a24a").bytes_le
_OTHER_GUID: Final = uuid.UUID("8e805eb3-6a8f-4a1e-b9dd-1111aaaa2222").bytes_le


def _other_kinds(ptr: int, ts: int) -> list[bytes]:
    """Records of header kinds the writer does not make itself (notes 3.4-3.6, 3.1), of another provider so
    they change no heap count: EVENT_TRACE_HEADER, EVENT_HEADER with a stack extended item, a WPP message."""
    t_et = S.HT_FULL_HEADER64 if ptr == 8 else S.HT_FULL_HEADER32
    body = b"classic payload\0"
    et = S.EVENT_TRACE_HEADER.pack({"Size": 0x30 + len(body), "HeaderType": t_et, "MarkerFlags": 0xC0, "Type": 1,
                                    "Level": 4, "Version": 0, "ThreadId": 104, "ProcessId": 100, "TimeStamp": ts,
                                    "Guid": _OTHER_GUID}) + body
    frames = (0x7FF600001000, 0x7FF600002000) if ptr == 8 else (0x401000, 0x402000)
    fmt = "<QQQ" if ptr == 8 else "<QII"
    data = struct.pack(fmt, 7, *frames)
    item = S.EXT_ITEM_HEADER.pack({"ItemSize": 8 + ((len(data) + 7) & ~7), "ExtType": S.EXT_TYPE_STACK_TRACE64
                                   if ptr == 8 else S.EXT_TYPE_STACK_TRACE32, "Linkage": 0,
                                   "DataSize": len(data)}) + data + bytes(-len(data) % 8)
    user = b"userdata"
    t_eh = S.HT_EVENT_HEADER64 if ptr == 8 else S.HT_EVENT_HEADER32
    eh = S.EVENT_HEADER.pack({"Size": 0x50 + len(item) + len(user), "HeaderType": t_eh, "MarkerFlags": 0xC0,
                              "Flags": S.EVENT_HEADER_FLAG_EXTENDED_INFO, "ThreadId": 104, "ProcessId": 100,
                              "TimeStamp": ts + 1, "ProviderId": _OTHER_GUID, "Id": 5, "Level": 4}) + item + user
    # WPP message: Size | 0x90 flags; MessageNumber, OptionFlags 0x0008 (a timestamp first)
    msg = struct.pack("<IHHqI", 0x90000000 | 20, 3, 0x0008, ts + 2, 99)
    return [et, eh, msg]


def written(pointer_size: int, compress: bool) -> bytes:
    """A small clean trace: two CPUs, heap create/alloc/free/realloc/destroy each with its stack (walks and
    stack-key references), image and process rundowns, a WOW64 process in the 64-bit one, other header kinds."""
    fh = io.BytesIO()
    w = TraceWriter(fh, pointer_size=pointer_size, cpus=2, buffer_size=0x1000, compress=compress)
    ptr = pointer_size
    base = 0x7FF6_0000_0000 if ptr == 8 else 0x0040_0000
    t = w.t0 + 1000
    pid, tid, heap = 100, 104, 0x1F0000
    w.process(t, 0, pid, 4, "app.exe", "app.exe --leak", kind="dcstart")
    w.image(t + 1, 0, pid, base, 0x20000, "\\Device\\HarddiskVolume3\\app\\app.exe")
    w.image(t + 2, 0, pid, base + 0x100000, 0x80000, "\\Device\\HarddiskVolume3\\Windows\\System32\\ntdll.dll",
            kind="load")
    w.heap_create(t + 3, 0, pid, tid, 0x2A0000)
    ts = t + 10
    live: list[int] = []
    for i in range(160):
        cpu = i % 2
        ts += 10
        addr = 0x0200_0000 + i * 0x100
        frames = [base + 0x100 + (i % 5) * 8, base + 0x100000 + 0x40, base + 0x200]
        w.heap_alloc(ts, cpu, pid, tid, heap, 0x20 + i, addr)
        if i % 4 == 0:
            # stack caching (notes 5.3): the key is defined before its reference; a block whose stack is a key
            # reference stays live (one freed before its reference resolves counts as an event without stack)
            key = (0xFFFF_C000_0000_0000 if ptr == 8 else 0x8000_0000) + (i % 3) * 0x100
            w.stack_key_create(ts + 1, cpu, key, frames)
            w.stack_key_ref(ts + 2, cpu, ts, pid, tid, key)
        else:
            w.stack(ts + 1, cpu, ts, pid, tid, frames)
            live.append(addr)
        if i % 3 == 0 and live:
            w.heap_free(ts + 3, cpu, pid, tid, heap, live.pop(0))
        if i % 7 == 0 and live:
            old = live.pop()
            new = old + 0x10000
            w.heap_realloc(ts + 4, cpu, pid, tid, heap, new, old, 0x100, 0x20 + i)
            w.stack(ts + 5, cpu, ts + 4, pid, tid, frames[1:])
            live.append(new)
        if i == 50 and ptr == 8:
            w.heap_alloc(ts + 6, cpu, 200, 204, 0x00A0_0000, 0x10, 0x00B0_0000, ptr=4)  # a WOW64 process
            w.stack(ts + 7, cpu, ts + 6, 200, 204, [0x401000, 0x402000], ptr=4)
            for rec in _other_kinds(ptr, ts + 8):
                w.raw(cpu, rec)
    w.heap_alloc(ts + 20, 1, pid, tid, 0x2A0000, 0x40, 0x2B0000)
    w.stack(ts + 21, 1, ts + 20, pid, tid, [base + 0x300])
    w.heap_destroy(ts + 22, 1, pid, tid, 0x2A0000)
    w.close()
    return fh.getvalue()


def _example(compress: bool) -> bytes:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(suffix=".etl")
    os.close(fd)
    try:
        write_example(tmp, 1, compress=compress)
        return Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)


#: name -> how to write it; every one is deterministic
WRITTEN: Final[dict[str, Callable[[], bytes]]] = {
    "w64": lambda: written(8, False),
    "w64z": lambda: written(8, True),
    "w32": lambda: written(4, False),
    "w32z": lambda: written(4, True),
    "example": lambda: _example(False),
    "examplez": lambda: _example(True),
}


def written_seeds() -> list[Seed]:
    return [make_seed(name, make()) for name, make in WRITTEN.items()]


def sample_seeds() -> list[Seed]:
    """The real samples that are present (none when ../shared is absent)."""
    return [make_seed(n.rsplit("/", 1)[-1], (SAMPLES / n).read_bytes(), clean=False)
            for n in SAMPLE_SEEDS if (SAMPLES / n).is_file()]


def heap_hooks() -> frozenset[int]:
    return frozenset({K.HOOK_HEAP_ALLOC, K.HOOK_HEAP_FREE, K.HOOK_HEAP_REALLOC})
