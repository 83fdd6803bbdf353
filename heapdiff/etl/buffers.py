"""The buffer map: where each buffer of a trace is, read from the 0x48-byte buffer headers alone (notes 1).

Nothing here looks inside a record except each buffer's first record's timestamp. The map is built from the buffer
headers (a few thousand per GB), so that the record walk can take buffers in any order: the time merge needs them
by CPU and time, not by file position. A clean uncompressed file is mapped at numpy speed (:func:`scan_uniform`);
any other one buffer by buffer, damage stepped over and counted (:func:`scan_buffers_walk`). Either way the buffers
the file should hold by its logfile header and does not are counted (:func:`count_missing`).
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from heapdiff.errors import Anomalies, TraceError
from heapdiff.etl import structs as S
from heapdiff.etl.logfile import LogfileHeader

#: A buffer larger than this is not believed: sessions ask for at most 16 MiB buffers (layout 2.0 is needed past 1
#: MiB already), and a claimed size bounds what one buffer can make the reader allocate.
MAX_BUFFER_SIZE = 16 << 20
#: The shortest Xpress stream that decodes to anything: a flag DWORD and a literal byte (notes 7).
MIN_STREAM = 5
#: How far past a damaged buffer the reader looks for the next plausible buffer header.
MAX_RESYNC_BYTES = 64 << 20


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


class BufferTable(Sequence[BufferInfo]):
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

    @overload
    def __getitem__(self, i: int) -> BufferInfo: ...
    @overload
    def __getitem__(self, i: slice) -> list[BufferInfo]: ...
    def __getitem__(self, i: int | slice) -> BufferInfo | list[BufferInfo]:
        if isinstance(i, slice):
            return self.infos(range(*i.indices(len(self))))
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        return self.info(i % n)

    def __iter__(self) -> Iterator[BufferInfo]:
        for i in range(len(self)):
            yield self.info(i)


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


def _plausible(hdr: dict[str, int | bytes], remaining: int, nominal: int) -> bool:
    """Does this look like a buffer header? Used only to resynchronise after a damaged buffer."""
    size = int(hdr["BufferSize"])
    saved = int(hdr["SavedOffset"])
    flags = int(hdr["BufferFlag"])
    btype = int(hdr["BufferType"])
    if size < S.BUFFER_HEADER_SIZE or (size % 8 and not flags & S.BUFFER_FLAG_COMPRESSED) or size > MAX_BUFFER_SIZE \
            or btype > 7:
        return False
    if saved < S.BUFFER_HEADER_SIZE or saved > max(nominal, size, MAX_BUFFER_SIZE):
        return False
    if not flags & S.BUFFER_FLAG_COMPRESSED and saved > size:
        return False
    return size <= remaining or saved <= remaining


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
    """The session's buffer size from the logfile header, 0 when it cannot be believed (see :data:`MAX_BUFFER_SIZE`)."""
    return header.buffer_size if S.BUFFER_HEADER_SIZE < header.buffer_size <= MAX_BUFFER_SIZE else 0


def expected_buffers(header: LogfileHeader) -> int | None:
    """How many buffers the file should hold, buffer 0 included, by its logfile header; None when it cannot say.

    BuffersWritten counts every buffer the logger wrote (notes 2.2, [obs] on the real samples), so fewer in the file
    means buffers were lost after recording: a copy cut short, a disk that filled up, buffers dropped. A header the
    logger never rewrote says fewer than the file holds (no claim then), and a circular file overwrites its oldest
    buffers on purpose: it can hold at most its MaximumFileSize, whatever BuffersWritten says (unknown in a
    compressed file, whose buffers are smaller than the session's size)."""
    written = header.buffers_written
    if written <= 0:
        return None
    if not header.log_file_mode & S.LOG_FILE_MODE_CIRCULAR:
        return written
    nominal = nominal_size(header)
    if not header.maximum_file_size or not nominal or header.log_file_mode & S.LOG_FILE_MODE_COMPRESSED:
        return None
    unit = 1 << 10 if header.log_file_mode & S.LOG_FILE_MODE_KBYTES_FOR_SIZE else 1 << 20
    return min(written, header.maximum_file_size * unit // nominal)


def count_missing(header: LogfileHeader, held: int, anomalies: Anomalies) -> None:
    """``buffers_missing``: buffers the logfile header says were written that the file does not hold (``held``:
    the buffers begun in the file, read, cut, or stepped over as blank or damaged)."""
    expected = expected_buffers(header)
    if expected is not None and expected > held:
        anomalies.add("buffers_missing", expected - held)


def missing_note(header: LogfileHeader, missing: int, file_size: int) -> str:
    """The one line that says what ``buffers_missing`` means for this file."""
    expected = expected_buffers(header) or missing
    are, their = ("is", "its") if missing == 1 else ("are", "their")
    return (f"{missing:,} of the {expected:,} buffers the logfile header says were written {are} not in the file "
            f"({file_size:,} bytes): {their} records are missing, so counts and outstanding blocks may be short")


def scan_buffers(data: np.ndarray, header: LogfileHeader, anomalies: Anomalies,
                  mm: mmap.mmap | None = None, read_at: ReadAt | None = None) -> BufferTable:
    """Walk the file by each buffer's own BufferSize (notes 1.2), stepping over damage where a next start is found,
    and count the buffers the logfile header says are missing."""
    fast = scan_uniform(data, nominal_size(header), max(1, header.number_of_processors), mm, read_at)
    if fast is not None:
        count_missing(header, len(fast), anomalies)
        return fast
    return BufferTable.from_infos(scan_buffers_walk(data, header, anomalies, mm))


def _blank(data: np.ndarray, start: int, stop: int) -> bool:
    """Only 0x00 and 0xFF bytes in ``data[start:stop]``: never written (preallocated), wiped, or buffer filler."""
    seg = data[start:stop]
    return bool(np.all((seg == 0) | (seg == 0xFF)))


def _buffers_in(span: int, nominal: int) -> int:
    """How many buffers ``span`` bytes stepped over held, at least one (a compressed buffer is smaller than the
    session's size: then at least one is all that is known)."""
    return max(1, -(-span // nominal)) if nominal else 1


def _looks_like_records(data: np.ndarray, off: int, n: int) -> bool:
    """Does the buffer at ``off`` begin with a record (a trace header's marker) or with the filler (notes 3.1)?
    What lets a buffer whose BufferSize or valid-bytes field is damaged still be read by the other."""
    p = off + S.BUFFER_HEADER_SIZE
    if p + 4 > n:
        return False
    m = int(data[p]) | int(data[p + 1]) << 8 | int(data[p + 2]) << 16 | int(data[p + 3]) << 24
    flags = m >> S.MARKER_FLAGS_SHIFT
    message = (flags & (S.MARKER_TYPED | S.MARKER_FLAG_MESSAGE)) == (S.MARKER_FLAG_TRACE_HEADER | S.MARKER_FLAG_MESSAGE)
    return m == S.MARKER_FILLER or (flags & S.MARKER_TYPED) == S.MARKER_TYPED or message


def _grid_goes_on(data: np.ndarray, pos: int, nominal: int) -> bool:
    """Is there a plausible buffer header at ``pos`` (or the file's end)?"""
    n = int(data.shape[0])
    if pos == n:
        return True
    if pos + S.BUFFER_HEADER_SIZE > n:
        return False
    return _plausible(S.BUFFER_HEADER.unpack(bytes(data[pos:pos + S.BUFFER_HEADER_SIZE]), 0, pos), n - pos, nominal)


def _valid_bytes(saved: int, field: int, size: int, anomalies: Anomalies) -> int | None:
    """The valid bytes of an uncompressed buffer of ``size`` bytes from SavedOffset and Offset@0x30 (notes 1.1), or
    None when neither fits."""
    hsize = S.BUFFER_HEADER_SIZE
    if hsize <= saved < field <= size:
        return field  # the relogger appends to the header buffer and moves only Offset@0x30
    if hsize <= saved <= size:
        return saved
    # SavedOffset and Offset agree in every real buffer; take the plausible one
    if hsize <= field <= size:
        if saved:  # old writers leave SavedOffset 0 in the header buffer: not worth a warning
            anomalies.add("buffer_saved_offset_mismatch")
        return field
    return None


def scan_buffers_walk(data: np.ndarray, header: LogfileHeader, anomalies: Anomalies,
                       mm: mmap.mmap | None = None) -> list[BufferInfo]:
    """Buffer by buffer: any file, damaged, truncated or compressed ones included.

    What is not a clean buffer is counted, and kept as far as it can be: a blank run (all 0x00 or 0xFF) is stepped
    over to the next buffer header; a buffer whose BufferSize or whose valid-bytes size cannot be right is read by
    the other one (``buffer_size_damaged``, ``buffer_saved_offset_mismatch``); one whose header holds neither is
    stepped over (``damaged_buffer``). Every buffer begun in the file is counted, so that the buffers the logfile
    header says were written and the file lacks are counted too (``buffers_missing``). Long because each branch
    is one kind of damage and what is kept of it.
    """
    n = int(data.shape[0])
    nominal = nominal_size(header)
    # every buffer of an uncompressed session has the session's size (notes 1.2); a compressed session's vary
    uniform = 0 if header.log_file_mode & S.LOG_FILE_MODE_COMPRESSED else nominal
    cap = nominal or MAX_BUFFER_SIZE  # a buffer holds at most the session's size, uncompressed
    expected = expected_buffers(header)
    ncpu = max(1, header.number_of_processors)
    out: list[BufferInfo] = []
    held = 0  # buffers begun in the file: read, cut, or stepped over
    off = 0
    hsize = S.BUFFER_HEADER_SIZE
    released = 0
    mv = memoryview(data.data)
    while off + hsize <= n:
        if off - released >= RELEASE_EVERY:
            release_pages(mm, released, off - released)
            released = off
        if data[off] in (0, 0xFF) and _blank(data, off, off + hsize):
            nxt = _next_header(data, off, nominal, uniform)
            stop = n if nxt is None else nxt
            if _blank(data, off, min(stop, off + MAX_RESYNC_BYTES)):
                k = _buffers_in(stop - off, nominal)
                if nxt is None:
                    # a blank tail: a preallocated file's unwritten end, unless the header says buffers were there
                    k = min(k, max(0, (expected or 0) - held))
                anomalies.add("blank_buffer", k)
                held += k
                if nxt is None:
                    break
                off = nxt
                continue
        h = S.BUFFER_HEADER.unpack(mv, off, 0)
        size = int(h["BufferSize"])
        flags = int(h["BufferFlag"])
        compressed = bool(flags & S.BUFFER_FLAG_COMPRESSED)
        size_ok = hsize <= size <= MAX_BUFFER_SIZE and (compressed or not size % 8)
        nxt = None
        if size_ok and uniform and not compressed and size != uniform and _grid_goes_on(data, off + uniform, nominal):
            size_ok = False  # the next buffer is where the session's one buffer size says
        elif compressed and size < hsize + MIN_STREAM and int(h["SavedOffset"]) > hsize:
            size_ok = False  # no stream, yet records to decode
        span = size
        if not size_ok:
            nxt = nxt if nxt is not None else _next_header(data, off, nominal, uniform)
            span = (nxt if nxt is not None else min(n, off + cap)) - off
        saved = int(h["SavedOffset"])
        if compressed:
            # the uncompressed size; 0: not believable, the stream's own end decides (counted when decoded)
            filled = saved if hsize <= saved <= cap else 0
            filled_ok = filled > 0
        else:
            valid = _valid_bytes(saved, int(h["Offset"]), span, anomalies)
            filled_ok = valid is not None
            filled = valid if valid is not None else span  # read to the filler (0xFF, notes 1.3)
        if not (size_ok and filled_ok):
            if (size_ok or filled_ok) and (compressed or _looks_like_records(data, off, n)):
                if not size_ok:
                    anomalies.add("buffer_size_damaged")
                elif not compressed:
                    anomalies.add("buffer_saved_offset_mismatch")
            else:
                anomalies.add("damaged_buffer")
                held += 1
                if size_ok:
                    nxt = _next_header(data, off, nominal, uniform)
                if nxt is None:
                    break
                anomalies.add("resync")
                held += _buffers_in(nxt - off, nominal) - 1
                off = nxt
                continue
        held += 1
        truncated = off + span > n
        if truncated:
            anomalies.add("truncated_buffer")
            if compressed:
                break  # a cut compressed stream cannot be decoded to its end; its records are lost
            filled = min(filled, n - off)
        cpu = int(h["ProcessorIndex"]) & S.PROCESSOR_INDEX_MASK
        if cpu >= ncpu and header.number_of_processors:
            anomalies.add("buffer_cpu_out_of_range")
        if flags & S.BUFFER_FLAG_EVENTS_LOST:
            anomalies.add("buffer_events_lost_flag")
        if flags & S.BUFFER_FLAG_BUFFER_LOST:
            anomalies.add("buffer_lost_flag")
        out.append(BufferInfo(
            index=len(out), offset=off, size=span, filled=filled, cpu=cpu,
            seq=int(h["SequenceNumber"]), flags=flags, type=int(h["BufferType"]),
            timestamp=int(h["TimeStamp"]), compressed=compressed, truncated=truncated,
        ))
        off += span
    if 0 < n - off < hsize and not _blank(data, off, n):
        anomalies.add("truncated_buffer")  # the file ends inside a buffer's header: none of its records is there
        held += 1
    release_pages(mm, 0, n)
    if not out:
        raise TraceError("not a readable trace (no buffer)", 0)
    count_missing(header, held, anomalies)
    return out


def _next_header(data: np.ndarray, off: int, nominal: int, uniform: int) -> int | None:
    """Where the next buffer starts after a blank or damaged buffer at ``off``, or None.

    A session whose buffers all have one size (``uniform``, notes 1.2) has the next one that far on, which is tried
    first; otherwise (compressed buffers, bytes inserted or lost) the nearest position that looks like a buffer
    header, up to :data:`MAX_RESYNC_BYTES` away, a window at a time (a damaged header is usually followed closely by
    the next one). Compressed buffers have any size, so every byte position is a candidate, not only 8-aligned ones.
    """
    n = int(data.shape[0])
    hsize = S.BUFFER_HEADER_SIZE
    if uniform and off + uniform + hsize <= n:
        h = S.BUFFER_HEADER.unpack(bytes(data[off + uniform:off + uniform + hsize]), 0, off + uniform)
        if _plausible(h, n - off - uniform, nominal):
            return off + uniform
    start = off + 1
    last = min(n - hsize, off + MAX_RESYNC_BYTES)
    window = RESYNC_WINDOW
    while start <= last:
        stop = min(last, start + window - 1)
        hit = _first_header_like(data, start, stop, nominal)
        if hit is not None:
            return hit
        start = stop + 1
        window *= 4
    return None


#: bytes the resynchronising scan looks at first (then four times more each time, up to MAX_RESYNC_BYTES)
RESYNC_WINDOW = 256 << 10


def _first_header_like(data: np.ndarray, start: int, stop: int, nominal: int) -> int | None:
    """The first position in ``start..stop`` whose 0x48 bytes look like a buffer header (the vectorised form of
    :func:`_plausible`, plus ReferenceCount 0 and a known State), or None."""
    hsize = S.BUFFER_HEADER_SIZE
    best: int | None = None
    for phase in range(8):  # a Python loop over the positions would look like a hang: numpy, 8-aligned per phase
        first = start + phase
        if first > stop:
            break
        span = data[first:stop + hsize]
        words = span[: (len(span) // 8) * 8].view(np.uint32)
        cand = np.arange(0, (stop - first) // 8 + 1) * 2
        cand = cand[cand + hsize // 4 <= len(words)]
        size = words[cand].astype(np.int64)
        saved = words[cand + 1].astype(np.int64)
        refc = words[cand + 3]
        state = words[cand + 0x2C // 4]
        flagtype = words[cand + 0x34 // 4]
        btype = flagtype >> 16
        comp = (flagtype & S.BUFFER_FLAG_COMPRESSED) != 0
        ok = ((size >= hsize) & (comp | (size % 8 == 0)) & (size <= MAX_BUFFER_SIZE) & (btype <= 7) & (refc == 0)
              & (state <= 4) & (saved >= hsize) & (saved <= max(nominal, MAX_BUFFER_SIZE)) & (comp | (saved <= size)))
        hits = np.flatnonzero(ok)
        if len(hits):
            pos = first + int(cand[hits[0]]) * 4
            best = pos if best is None else min(best, pos)
    return best


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
