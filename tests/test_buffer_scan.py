"""The vectorised buffer scan for uniform files must give exactly what the buffer-by-buffer walk gives."""

from __future__ import annotations

import dataclasses
import io
import pathlib
from collections.abc import Sequence

import numpy as np
import pytest

from heapdiff.errors import Anomalies
from heapdiff.etl import buffer_walk as BW
from heapdiff.etl import buffers as B
from heapdiff.etl import reader as R
from heapdiff.etl import structs as S
from heapdiff.etl.batch import Window
from heapdiff.etl.logfile import filetime_to_utc, iso_utc, iso_utc_filetimes, read_logfile_header
from heapdiff.etl.reader import Reader
from heapdiff.etl.trace import open_trace
from heapdiff.events.layout import KERNEL_GUIDS, layout
from heapdiff.tracegen.writer import TraceWriter

SAMPLES = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "etl-samples"


def _both(data: np.ndarray) -> tuple[B.BufferTable | None, list[B.BufferInfo]]:
    header = read_logfile_header(data)
    nominal = header.buffer_size
    fast = B.scan_uniform(data, nominal, max(1, header.number_of_processors))
    # the walk alone: make the uniform path decline by handing it a size it cannot accept
    slow = BW.scan_buffers_walk(data, header, Anomalies())
    return fast, slow


def _written(**kw: object) -> np.ndarray:
    out = io.BytesIO()
    w = TraceWriter(out, cpus=3, buffer_size=0x1000, **kw)  # type: ignore[arg-type]
    t = w.t0 + 10
    for i in range(3000):
        t += 1
        w.heap_alloc(t, i % 3, 10, 20 + i % 2, 0x10000, 16, 0x20000 + 16 * i)
    w.close()
    return np.frombuffer(out.getvalue(), np.uint8)


def _without_first_ts(bufs: Sequence[B.BufferInfo]) -> list[B.BufferInfo]:
    return [dataclasses.replace(b, first_ts=None, first_ts_known=False) for b in bufs]


@pytest.mark.parametrize("ptr", [4, 8])
def test_uniform_scan_equals_the_walk_on_written_traces(ptr: int) -> None:
    data = _written(pointer_size=ptr)
    fast, slow = _both(data)
    assert fast is not None and _without_first_ts(fast) == slow and len(fast) > 10
    # the first record's timestamp read during the scan is what the reader's own peek finds
    assert all(b.first_ts_known for b in fast)
    assert [b.first_ts for b in fast] == _reader_peek(data, slow)
    assert any(b.first_ts is not None for b in fast)


def _read_at(data: np.ndarray, calls: list[int] | None = None, short: int = -1):  # type: ignore[no-untyped-def]
    """A ``read_at`` over bytes held in memory, as the CLI's is over the open file; ``short``: the read at
    that offset comes back one byte short."""
    raw = data.tobytes()

    def read_at(offset: int, n: int) -> bytes:
        if calls is not None:
            calls.append(offset)
        return raw[offset:offset + n - (1 if offset == short else 0)]
    return read_at


@pytest.mark.parametrize("ptr", [4, 8])
def test_headers_read_with_read_at_give_the_same_buffer_table(ptr: int) -> None:
    """The uniform scan through reads (the CLI's, one per buffer) and through the mapping: the same table."""
    data = _written(pointer_size=ptr)
    header = read_logfile_header(data)
    nominal = header.buffer_size
    mapped = B.scan_uniform(data, nominal, max(1, header.number_of_processors))
    calls: list[int] = []
    read = B.scan_uniform(data, nominal, max(1, header.number_of_processors), None, _read_at(data, calls))
    assert mapped is not None and read is not None and len(read) > 10
    assert list(read) == list(mapped)
    assert calls == [i * nominal for i in range(len(mapped))]  # the reads were used, a header each
    # a short read (a file that shrank under us): the mapping is read instead, same table
    again = B.scan_uniform(data, nominal, max(1, header.number_of_processors), None,
                            _read_at(data, short=3 * nominal))
    assert again is not None and list(again) == list(mapped)
    # and through open_trace, as the CLI calls it
    assert list(open_trace(data, "<built>", None, _read_at(data)).buffers) == list(mapped)


def test_uniform_scan_declines_compressed_and_lossy_files() -> None:
    fast, slow = _both(_written(compress=True))
    assert fast is None and slow
    data = bytearray(_written().tobytes())
    data[0x1000 + 0x34] |= 0x02  # EVENTS_LOST on buffer 1: the walk counts it
    fast, _ = _both(np.frombuffer(bytes(data), np.uint8))
    assert fast is None


@pytest.mark.samples
def test_uniform_scan_equals_the_walk_on_samples() -> None:
    if not SAMPLES.is_dir():
        pytest.skip("../shared/etl-samples is absent")
    used = 0
    for f in sorted(SAMPLES.rglob("*.etl")):
        data = np.fromfile(f, np.uint8)
        if not data.size:
            continue
        fast, slow = _both(data)
        if fast is not None:
            used += 1
            assert _without_first_ts(fast) == slow, f.name
            assert [b.first_ts for b in fast] == _reader_peek(data, slow), f.name
    assert used >= 5  # the fast path is really taken on real files


def _reader_peek(data: np.ndarray, bufs: Sequence[B.BufferInfo]) -> list[int | None]:
    """What the reader's ordering peeks (B.peek_first_ts) for these buffers, None where no record."""
    ts, fits = B.peek_first_ts(data, np.asarray([b.offset for b in bufs], np.int64),
                                        np.asarray([b.filled for b in bufs], np.int64))
    return [int(t) if f else None for t, f in zip(ts.tolist(), fits.tolist(), strict=True)]


def _peek_one(data: np.ndarray, b: B.BufferInfo) -> int | None:
    """The rule written out for one buffer (notes 3): the first record's marker says its header kind; PERFINFO
    and WPP-style headers have the timestamp at 8, the others at 0x10."""
    p = b.offset + S.BUFFER_HEADER_SIZE
    head = bytes(data[p:p + min(0x18, b.filled - S.BUFFER_HEADER_SIZE)])
    if len(head) < 0x10:
        return None
    m = int.from_bytes(head[:4], "little")
    if m == 0xFFFFFFFF:
        return None
    ht = (m >> 16) & 0xFF
    tpos = 8 if ht in (S.HT_PERFINFO32, S.HT_PERFINFO64) or (m >> 24) & 0xD0 == 0x90 else 0x10
    if len(head) < tpos + 8:
        return None
    return int.from_bytes(head[tpos:tpos + 8], "little", signed=True)


def test_vectorised_first_timestamps_equal_the_one_buffer_peek() -> None:
    files = [_written()]
    if SAMPLES.is_dir():
        files += [np.fromfile(f, np.uint8) for f in sorted(SAMPLES.rglob("*.etl")) if f.stat().st_size]
    for data in files:
        tf = open_trace(data, "t")
        plain = [b for b in tf.buffers if not b.compressed]
        assert _reader_peek(data, plain) == [_peek_one(data, b) for b in plain]


@pytest.mark.parametrize("cpus", [1, 8])
def test_framed_pages_are_let_go_in_a_sweep_that_never_passes_an_unframed_buffer(cpus: int) -> None:
    """The reader releases a mapped file's pages as it frames (memory follows the buffers in flight): in a few
    sweeps, never over a buffer it has yet to frame, and the whole file by the end."""
    out = io.BytesIO()
    w = TraceWriter(out, cpus=cpus, buffer_size=0x1000)
    t = w.t0 + 10
    for i in range(40_000):
        t += 1
        w.heap_alloc(t, i % cpus, 10, 20, 0x10000, 16, 0x20000 + 16 * i)
    w.close()
    data = np.frombuffer(out.getvalue(), np.uint8)
    tf = open_trace(data, "<built>")
    released: list[tuple[int, int]] = []
    def release(offset: int, length: int) -> None:
        released.append((offset, offset + length))

    tf.release = release  # type: ignore[method-assign]
    rd = Reader(tf, layout(), KERNEL_GUIDS, chunk_bytes=0x4000)
    old_sweep, old_step = R.RELEASE_SWEEP, R.RELEASE_FAR
    R.RELEASE_SWEEP, R.RELEASE_FAR = 0x10000, 0x40000
    try:
        framed: set[int] = set()
        real_frame = rd._frame

        def frame(pos: np.ndarray, held: int) -> tuple[Window, int]:
            framed.update(b.index for b in tf.buffers.infos(pos))
            before = len(released)
            got = real_frame(pos, held)
            for lo, hi in released[before:]:
                for b in tf.buffers:
                    if b.index not in framed and b.filled > S.BUFFER_HEADER_SIZE:
                        assert hi <= b.offset or lo >= b.offset + b.size, (lo, hi, b)
            return got

        rd._frame = frame  # type: ignore[method-assign]
        n = sum(len(b) for b in rd.batches())
    finally:
        R.RELEASE_SWEEP, R.RELEASE_FAR = old_sweep, old_step
    assert n > 40_000
    covered = 0
    for lo, hi in sorted(released):
        if lo <= covered:
            covered = max(covered, hi)
    assert covered >= tf.size  # everything was let go
    assert len(released) < len(tf.buffers) // 4  # in sweeps, not buffer by buffer


def test_buffer_table_reads_back_what_it_was_made_from() -> None:
    """The columnar buffer map gives back equal BufferInfo objects by index, slice, negative index and
    iteration, None first timestamps included; out of range is an IndexError; the uniform scan's table
    equals the walk's objects (see above) through the same accessors."""
    infos = [B.BufferInfo(index=i, offset=0x10000 * i, size=0x10000, filled=0x48 + 8 * i, cpu=i % 3, seq=100 + i,
                          flags=0, type=i % 2, timestamp=(1 << 40) + i, compressed=i == 2, truncated=i == 3,
                          first_ts=None if i == 1 else (1 << 50) + i, first_ts_known=i != 2)
             for i in range(5)]
    bt = B.BufferTable.from_infos(infos)
    assert len(bt) == 5 and list(bt) == infos
    assert bt[1] == infos[1] and bt[1].first_ts is None and bt[-1] == infos[-1]
    assert bt[1:4] == infos[1:4] and bt[::2] == infos[::2]
    assert bt.infos([4, 0]) == [infos[4], infos[0]]
    assert int(bt.compressed.sum()) == 1 and bt.offset.tolist() == [b.offset for b in infos]
    with pytest.raises(IndexError):
        bt[5]
    with pytest.raises(IndexError):
        bt[-6]


@pytest.mark.parametrize("ft", [0, 1, 9, 10, 116444736000000000, 116444736000000009, 133_000_000_123_456_789,
                                2_650_467_743_999_999_999, 2_650_467_744_000_000_000, -10, -(1 << 62), 1 << 63])
def test_iso_times_in_one_pass_are_the_scalar_ones(ft: int) -> None:
    """The vectorised FILETIME formatting gives the scalar path's text, clamped values included (alone and
    among in-range ones, which then go the scalar way too)."""
    want = iso_utc(filetime_to_utc(ft))
    assert iso_utc_filetimes([ft]) == [want]
    assert iso_utc_filetimes([133_000_000_000_000_000, ft]) == [
        iso_utc(filetime_to_utc(133_000_000_000_000_000)), want]
    assert iso_utc_filetimes([]) == []
