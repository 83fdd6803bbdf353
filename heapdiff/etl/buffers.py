"""The buffer map: where each buffer of a trace is, read from the 0x48-byte buffer headers alone (notes 1).

Nothing here looks inside a record except each buffer's first record's timestamp. The map is built from the buffer
headers (a few thousand per GB), so that the record walk can take buffers in any order: the time merge needs them
by CPU and time, not by file position. A clean uncompressed file is mapped at numpy speed (:func:`scan_uniform`);
any other one buffer by buffer, damage stepped over and counted (:mod:`heapdiff.etl.buffer_walk`, which also counts
the buffers the file should hold by its logfile header and does not).
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from heapdiff._ondemand import MadeOnRead
from heapdiff.etl import structs as S
from heapdiff.etl.logfile import LogfileHeader

#: A buffer larger than this is not believed: sessions ask for at most 16 MiB buffers (layout 2.0 is needed past 1
#: MiB already), and a claimed size bounds what one buffer can make the reader allocate.
MAX_BUFFER_SIZE = 16 << 20
#: Nor a session buffer smaller than this: sessions ask for their buffer size in KB (EVENT_TRACE_PROPERTIES), and a
#: size that bounds how far a compressed buffer decodes must not cut a real one short.
MIN_BUFFER_SIZE = 1 << 10


@dataclass(frozen=True, slots=True)
class BufferInfo:
    """One buffer of the file, from its header (notes 1.1). Slotted: a 5 GB trace has 75,000 of them."""

    index: int          # position in the file, 0 = header buffer
    offset: int         # file offset of its header
    size: int           # on-disk size (BufferSize)
    filled: int         # valid bytes incl. header, uncompressed (SavedOffset), clipped for truncated files
    cpu: int
    seq: int
    flags: int
    type: int
    timestamp: int
    compressed: bool
    truncated: bool = False
    #: raw timestamp of the buffer's first record (None: no record), when the header scan read it on the same
    #: page (uncompressed buffers of uniform files); else the reader peeks it when it orders the buffers
    first_ts: int | None = None
    first_ts_known: bool = False


_BT_INT = ("idx", "offset", "size", "filled", "cpu", "seq", "flags", "type", "timestamp", "first_ts")
_BT_BOOL = ("compressed", "truncated", "first_ts_known", "has_first_ts")


class BufferTable(MadeOnRead[BufferInfo]):
    """The buffer map as numpy columns, read as a sequence of :class:`BufferInfo` made on demand.

    Why columns: a large trace has tens of thousands of buffers, and an object per buffer cost memory for the whole read
    and GIL-holding time to make (benchmarks/profile.md, etl.buffers). The uniform header scan fills the columns with
    numpy; the reader orders buffers on them and makes objects only for the chunk it frames. ``first_ts`` is meaningful
    where ``has_first_ts`` (None otherwise: a buffer without a record, or not peeked yet when not ``first_ts_known``).
    """

    def __init__(self, cols: dict[str, np.ndarray]) -> None:
        n = int(cols["offset"].shape[0])
        self.idx = np.asarray(cols.get("idx", np.arange(n)), np.int64)  # BufferInfo.index (``index`` is Sequence's)
        self.offset = np.asarray(cols["offset"], np.int64)
        self.size = np.asarray(cols["size"], np.int64)
        self.filled = np.asarray(cols["filled"], np.int64)
        self.cpu = np.asarray(cols["cpu"], np.int64)
        self.seq = np.asarray(cols["seq"], np.int64)
        self.flags = np.asarray(cols["flags"], np.int64)
        self.type = np.asarray(cols["type"], np.int64)
        self.timestamp = np.asarray(cols["timestamp"], np.int64)
        self.first_ts = np.asarray(cols.get("first_ts", np.zeros(n, np.int64)), np.int64)
        self.compressed = np.asarray(cols.get("compressed", np.zeros(n, bool)), bool)
        self.truncated = np.asarray(cols.get("truncated", np.zeros(n, bool)), bool)
        self.first_ts_known = np.asarray(cols.get("first_ts_known", np.zeros(n, bool)), bool)
        self.has_first_ts = np.asarray(cols.get("has_first_ts", np.zeros(n, bool)), bool)
        for name in _BT_INT + _BT_BOOL:
            if getattr(self, name).shape != (n,):
                raise ValueError(f"BufferTable.{name}: expected {n} rows")

    @classmethod
    def from_infos(cls, infos: Sequence[BufferInfo]) -> BufferTable:
        cols: dict[str, np.ndarray] = {name: np.asarray([getattr(b, "index" if name == "idx" else name) or 0
                                                         for b in infos], np.int64) for name in _BT_INT}
        for name in _BT_BOOL[:3]:
            cols[name] = np.asarray([getattr(b, name) for b in infos], bool)
        cols["has_first_ts"] = np.asarray([b.first_ts is not None for b in infos], bool)
        return cls(cols)

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    def info(self, i: int) -> BufferInfo:
        return BufferInfo(int(self.idx[i]), int(self.offset[i]), int(self.size[i]), int(self.filled[i]),
                          int(self.cpu[i]), int(self.seq[i]), int(self.flags[i]), int(self.type[i]),
                          int(self.timestamp[i]), bool(self.compressed[i]), bool(self.truncated[i]),
                          int(self.first_ts[i]) if self.has_first_ts[i] else None, bool(self.first_ts_known[i]))

    def infos(self, which: Sequence[int] | np.ndarray) -> list[BufferInfo]:
        return [self.info(int(i)) for i in which]

    _item = info


#: reads ``n`` bytes of the file at ``offset`` (fewer at its end): given by the caller that opened the file
ReadAt = Callable[[int, int], bytes]



#: how many bytes of the mapping the header scan may touch before it lets go of them
RELEASE_EVERY = 64 << 20


def release_pages(mm: mmap.mmap | None, offset: int, length: int) -> None:
    """A mapped file's pages count in the resident set as they are touched, and the kernel maps neighbours of a
    touched page too (fault-around): released as the reader passes them, the resident set follows the buffers in
    flight, not the file size. A no-op where madvise is missing."""
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED") or length <= 0:
        return
    page = mmap.PAGESIZE
    start = (offset + page - 1) // page * page   # only whole pages inside the range
    end = min((offset + length) // page * page, len(mm))
    if end > start:
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(mmap.MADV_DONTNEED, start, end - start)


_BUFFER_DTYPE = S.BUFFER_HEADER.numpy_dtype()


#: bytes of a buffer's first record that hold its timestamp, whatever its header kind (notes 3): the marker at 0,
#: the timestamp at 8 (PERFINFO, WPP message) or at 0x10 (every other kind)
FIRST_RECORD_PEEK = S.SYSTEM_TS + 8
assert S.PERFINFO_TS == S.MESSAGE_TS_OFFSET == 8 and S.SYSTEM_TS == S.GUID_TS == 0x10


def first_record_ts_columns(marker: np.ndarray, ts8: np.ndarray, ts16: np.ndarray,
                            room: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw timestamp of each buffer's first record and whether there is one, from the first 0x18 bytes after the
    buffer header: the record's marker (u32 at 0), the i64 at 8 and the i64 at 0x10, and ``room``, the buffer's
    filled bytes after its header. Where the timestamp is depends on the header kind (notes 3): at 8 in PERFINFO
    and WPP-style headers, else at 0x10. The one rule for the header scan and the reader's peeks."""
    mk = marker.astype(np.int64)
    flags = mk >> S.MARKER_FLAGS_SHIFT
    kind = S.HEADER_KIND_OF[(mk >> S.MARKER_TYPE_SHIFT) & S.MARKER_TYPE_MASK]
    message = (flags & (S.MARKER_TYPED | S.MARKER_FLAG_MESSAGE)) == (S.MARKER_FLAG_TRACE_HEADER | S.MARKER_FLAG_MESSAGE)
    perf = (kind == S.HK_PERFINFO) | message
    ts = np.where(perf, ts8, ts16).astype(np.int64)
    fits = (room >= S.PERFINFO_SIZE) & (mk != S.MARKER_FILLER) & (perf | (room >= S.SYSTEM_FIELDS_END))
    return np.where(fits, ts, 0), fits


#: bytes of a buffer's start that the uniform scan reads: its header and its first record's timestamp
HEAD_PEEK = S.BUFFER_HEADER_SIZE + FIRST_RECORD_PEEK


def _first_record_ts(data: np.ndarray, start: int, k: int, nominal: int,
                     filled: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`first_record_ts_columns` of ``k`` uniform buffers from ``start``, read through strided views on the
    header's page while the scan has it mapped (saves the reader a second page fault per buffer). None when the
    buffers are too small to hold the peek."""
    h = S.BUFFER_HEADER_SIZE
    if nominal < h + FIRST_RECORD_PEEK:
        return None

    def at(dtype: str, pos: int) -> np.ndarray:
        return np.ndarray(shape=(k,), dtype=dtype, buffer=data, offset=start + h + pos, strides=(nominal,))

    return first_record_ts_columns(at("<u4", 0), at("<i8", S.PERFINFO_TS), at("<i8", S.SYSTEM_TS), filled - h)


def _heads_read(read_at: ReadAt, count: int, nominal: int) -> np.ndarray | None:
    """The first :data:`HEAD_PEEK` bytes of each of ``count`` buffers of ``nominal`` bytes, read with ``read_at``
    into one array (row i at ``i * HEAD_PEEK``); None if a read comes back short or fails."""
    try:
        blob = b"".join([read_at(i * nominal, HEAD_PEEK) for i in range(count)])
    except OSError:
        return None
    if len(blob) != count * HEAD_PEEK:
        return None
    return np.frombuffer(blob, np.uint8)


def scan_uniform(data: np.ndarray, nominal: int, ncpu: int, mm: mmap.mmap | None = None,
                  read_at: ReadAt | None = None) -> BufferTable | None:
    """The common case at numpy speed: an uncompressed file of whole buffers that all have the session's size.

    Reads the buffer headers through strided views, a window at a time (touching a header maps its neighbours
    too, so a window's pages are let go before the next one); returns None unless every header is clean by the
    same rules as the walk below (then the walk decides, buffer by buffer, and counts what does not fit).

    With ``read_at`` the headers (and each first record's timestamp) are read into one small array first, a
    read per buffer, and the strided views are over that array: touching one page per buffer of the mapping
    cost a page fault each (and the release of what the fault mapped around it), several times the reads.
    """
    n = int(data.shape[0])
    if nominal < S.BUFFER_HEADER_SIZE or nominal % 8 or n % nominal or n < nominal:
        return None
    count = n // nominal
    heads = _heads_read(read_at, count, nominal) if read_at is not None and nominal >= HEAD_PEEK else None
    src, stride, release = (heads, HEAD_PEEK, None) if heads is not None else (data, nominal, mm)
    per = max(1, RELEASE_EVERY // nominal)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("filled", "cpu", "seq", "flags", "type",
                                                               "timestamp", "first_ts", "has_first_ts")}
    known = True
    for first in range(0, count, per):
        k = min(per, count - first)
        h = np.ndarray(shape=(k,), dtype=_BUFFER_DTYPE, buffer=src, offset=first * stride, strides=(stride,))
        size = h["BufferSize"].astype(np.int64)
        saved = h["SavedOffset"].astype(np.int64)
        field = h["Offset"].astype(np.int64)
        flags = h["BufferFlag"].astype(np.int64)
        # relogged header buffers move only Offset@0x30; old writers leave SavedOffset 0 there
        filled = np.where((saved < field) | (saved == 0), field, saved)
        cpu = h["ProcessorIndex"].astype(np.int64) & S.PROCESSOR_INDEX_MASK
        ok = ((size == nominal) & ((flags & S.BUFFER_FLAG_COMPRESSED) == 0) & (filled >= S.BUFFER_HEADER_SIZE)
              & (filled <= nominal) & ((saved == field) | (saved == 0) | (saved < field))
              & ((flags & (S.BUFFER_FLAG_EVENTS_LOST | S.BUFFER_FLAG_BUFFER_LOST)) == 0) & (cpu < ncpu))
        if not bool(np.all(ok)):
            release_pages(release, 0, n)
            return None
        parts["filled"].append(filled)
        parts["cpu"].append(cpu)
        parts["seq"].append(h["SequenceNumber"].astype(np.int64))
        parts["flags"].append(flags)
        parts["type"].append(h["BufferType"].astype(np.int64))
        parts["timestamp"].append(h["TimeStamp"].astype(np.int64))
        firsts = _first_record_ts(src, first * stride, k, stride, filled)
        if firsts is None:
            known = False
            firsts = (np.zeros(k, np.int64), np.zeros(k, bool))
        parts["first_ts"].append(firsts[0])
        parts["has_first_ts"].append(firsts[1])
        del h
        release_pages(release, first * nominal, k * nominal)
    cols = {name: np.concatenate(v) for name, v in parts.items()}
    cols["offset"] = np.arange(count, dtype=np.int64) * nominal
    cols["size"] = np.full(count, nominal, np.int64)
    cols["first_ts_known"] = np.full(count, known, bool)
    return BufferTable(cols)


def nominal_size(header: LogfileHeader) -> int:
    """The session's buffer size from the logfile header, 0 when it cannot be believed (:data:`MIN_BUFFER_SIZE`,
    :data:`MAX_BUFFER_SIZE`)."""
    return header.buffer_size if MIN_BUFFER_SIZE <= header.buffer_size <= MAX_BUFFER_SIZE else 0


def peek_first_ts(data: np.ndarray, offset: np.ndarray, filled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`first_record_ts_columns` of the buffers at ``offset`` in ``data`` (``filled`` bytes each, header
    included), read with one gather."""
    h = S.BUFFER_HEADER_SIZE
    off = offset + h
    room = filled - h
    ok = (room >= S.PERFINFO_SIZE) & (off + FIRST_RECORD_PEEK <= data.shape[0])
    head = np.zeros((offset.shape[0], FIRST_RECORD_PEEK), np.uint8)
    head[ok] = data[(off[:, None] + np.arange(FIRST_RECORD_PEEK)[None, :])[ok]]
    perf, other = S.PERFINFO_TS, S.SYSTEM_TS
    return first_record_ts_columns(head[:, :4].copy().view("<u4")[:, 0],
                                   head[:, perf:perf + 8].copy().view("<i8")[:, 0],
                                   head[:, other:other + 8].copy().view("<i8")[:, 0], np.where(ok, room, 0))
