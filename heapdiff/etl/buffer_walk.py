"""Buffers of any file, one by one, and the buffers the file lacks (notes 1.2, 8 item 5).

The buffer map (:mod:`heapdiff.etl.buffers`) maps a clean uncompressed file at numpy speed; every other file is walked
here, buffer by buffer, following each buffer's own size. What does not fit is counted and read as far as it can be:
blank runs are stepped over, a header whose BufferSize or valid-bytes size is damaged is read by the other, one with
nothing left to believe is stepped over to the next plausible header. Either way the buffers the logfile header says
were written and the file does not hold are counted (:func:`count_missing`).
"""

from __future__ import annotations

import mmap

import numpy as np

from heapdiff.errors import Anomalies, TraceError
from heapdiff.etl import structs as S
from heapdiff.etl.buffers import (
    MAX_BUFFER_SIZE,
    RELEASE_EVERY,
    BufferInfo,
    BufferTable,
    ReadAt,
    nominal_size,
    release_pages,
    scan_uniform,
)
from heapdiff.etl.logfile import LogfileHeader

#: The shortest Xpress stream that decodes to anything: a flag DWORD and a literal byte (notes 7).
MIN_STREAM = 5
#: How far past a damaged buffer the reader looks for the next plausible buffer header.
MAX_RESYNC_BYTES = 64 << 20
#: BufferSize and SavedOffset of a blank header (what makes the walk look at the whole header)
_BLANK_SIZES = (bytes(8), b"\xff" * 8)
#: bytes the resynchronising scan looks at first (then four times more each time, up to MAX_RESYNC_BYTES)
RESYNC_WINDOW = 256 << 10


def expected_buffers(header: LogfileHeader) -> int | None:
    """How many buffers the file should hold, buffer 0 included, by its logfile header; None when it cannot say.

    BuffersWritten counts every buffer the logger wrote (notes 2.2, [obs] on the real samples), so fewer in the file
    means buffers were lost after recording: a copy cut short, a disk that filled up, buffers dropped. A header the
    logger never rewrote says fewer than the file holds (no claim then), and a circular file overwrites its oldest
    buffers on purpose: it can hold at most its MaximumFileSize, whatever BuffersWritten says (unknown in a
    compressed file, whose buffers are smaller than the session's size). A LogFileMode circular and also
    sequential, appending or new-file is damaged (never together) and excuses nothing."""
    written = header.buffers_written
    if written <= 0:
        return None
    mode = header.log_file_mode
    if not mode & S.LOG_FILE_MODE_CIRCULAR or mode & S.LOG_FILE_MODES_NOT_CIRCULAR:
        return written  # (circular with sequential, append or new-file: a damaged LogFileMode claims nothing away)
    nominal = nominal_size(header)
    if not header.maximum_file_size or not nominal or mode & S.LOG_FILE_MODE_COMPRESSED:
        return None
    unit = 1 << 10 if mode & S.LOG_FILE_MODE_KBYTES_FOR_SIZE else 1 << 20
    return min(written, header.maximum_file_size * unit // nominal)


def distinct_buffers(table: BufferTable) -> int:
    """The buffers of the table, a buffer copied twice once: what tells one apart is its header's sequence number,
    CPU and flush time (two loggers merged into one file may share sequence numbers, not all three)."""
    if not len(table):
        return 0
    return int(np.unique(np.stack((table.seq, table.cpu, table.timestamp), axis=1), axis=0).shape[0])


def count_missing(header: LogfileHeader, held: int, anomalies: Anomalies) -> None:
    """``buffers_missing``: buffers the logfile header says were written that the file does not hold (``held``:
    the buffers begun in the file, read, cut, or stepped over as blank or damaged)."""
    expected = expected_buffers(header)
    if expected is not None and expected > held:
        anomalies.add("buffers_missing", expected - held)


#: a run of sequence numbers is trusted to be one logger's when it spans at most this many times the buffers held
#: (plus a margin): damaged numbers, or two loggers' in a merged file, are sparser
_DENSE = 2


def count_sequence_gaps(header: LogfileHeader, table: BufferTable, anomalies: Anomalies) -> None:
    """``buffer_sequence_gap``: when the logfile header cannot vouch for the buffers (it claims none, fewer than the
    file holds because the logger never rewrote it, or its LogFileMode is damaged), their sequence numbers can: a
    logger numbers its buffers one by one, so a number missing between the first and the last held is a buffer
    missing. Buffers already counted as stepped over (blank, damaged, cut) are not counted again."""
    if anomalies["buffers_missing"] or len(table) < 2:
        return
    expected = expected_buffers(header)
    if expected is not None and expected >= distinct_buffers(table):
        return  # the header vouches: nothing missing, or counted by count_missing
    seqs = np.unique(table.seq)
    span = int(seqs[-1] - seqs[0]) + 1
    gaps = span - int(seqs.shape[0])
    if gaps <= 0 or span > _DENSE * int(seqs.shape[0]) + 16:
        return
    stepped = anomalies["blank_buffer"] + anomalies["damaged_buffer"] + anomalies["truncated_buffer"]
    if gaps > stepped:
        anomalies.add("buffer_sequence_gap", gaps - stepped)


def sequence_gap_note(missing: int) -> str:
    are = "is" if missing == 1 else "are"
    return (f"{missing:,} buffer{'' if missing == 1 else 's'} {are} missing between the ones the file holds (their "
            "sequence numbers skip, and the logfile header cannot say how many were written): counts and "
            "outstanding blocks may be short")


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
        count_missing(header, distinct_buffers(fast), anomalies)
        table = fast
    else:
        table = BufferTable.from_infos(scan_buffers_walk(data, header, anomalies, mm))
    count_sequence_gaps(header, table, anomalies)
    return table


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
    held = 0  # buffers begun in the file: read (each once), cut, or stepped over
    seen: set[tuple[int, int, int]] = set()
    off = 0
    hsize = S.BUFFER_HEADER_SIZE
    released = 0
    mv = memoryview(data.data)
    while off + hsize <= n:
        if off - released >= RELEASE_EVERY:
            release_pages(mm, released, off - released)
            released = off
        if bytes(data[off:off + 8]) in _BLANK_SIZES and _blank(data, off, off + hsize):
            nxt = _next_header(data, off, nominal, uniform)
            stop = n if nxt is None else nxt
            if _blank(data, off, min(stop, off + MAX_RESYNC_BYTES)):
                k = _buffers_in(stop - off, nominal)
                if nxt is None and not _stale(header, expected, held):
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
        key = (int(h["SequenceNumber"]), int(h["ProcessorIndex"]), int(h["TimeStamp"]))
        held += key not in seen  # a buffer copied twice holds no buffer the file lacks
        seen.add(key)
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
    if 0 < n - off < hsize:
        # the file ends inside a buffer's header (blank or not: a header's first bytes often are): none of its
        # records is there; a whole blank run at the end was taken as a tail above
        anomalies.add("truncated_buffer")
        held += 1
    release_pages(mm, 0, n)
    if not out:
        raise TraceError("not a readable trace (no buffer)", 0)
    count_missing(header, held, anomalies)
    return out


def _stale(header: LogfileHeader, expected: int | None, held: int) -> bool:
    """A logfile header that says fewer buffers were written than the file holds before a blank tail (none at all
    is what no logger that closed its file writes: buffer 0 counts): the logger did not finish its file, so a blank
    tail is not known to be preallocated space, and is counted as blank buffers (the trace may end early)."""
    return header.buffers_written <= 0 or (expected is not None and expected < held)


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
