"""Opening a trace: its bytes, its logfile header (:mod:`heapdiff.etl.logfile`) and its buffer map
(:mod:`heapdiff.etl.buffers`), and letting go of the pages the reader has passed.
"""

from __future__ import annotations

import contextlib
import mmap
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from heapdiff.errors import Anomalies, TraceError
from heapdiff.etl import structs as S
from heapdiff.etl.buffer_walk import missing_note, scan_buffers, sequence_gap_note
from heapdiff.etl.buffers import MAX_BUFFER_SIZE, BufferInfo, BufferTable, ReadAt, nominal_size, release_pages
from heapdiff.etl.logfile import LogfileHeader, read_logfile_header

#: compressed bytes a stream may leave undecoded once its output is whole: the flag DWORD whose bits end it
#: (real buffers leave 0 or 4); more that is not 0x00/0xFF padding is a stream holding more than SavedOffset says
STREAM_END_SLACK = 4


class BufferBody(NamedTuple):
    """A buffer's uncompressed bytes, header included; ``undecoded_tail``: its compressed stream went on past
    them with bytes that neither decode nor pad (damage: whatever records they held are lost)."""

    data: np.ndarray
    undecoded_tail: bool


@dataclass
class TraceFile:
    """An opened trace: its bytes (memory-mapped), logfile header and buffer map, and what did not fit so far."""

    path: str
    data: np.ndarray
    header: LogfileHeader
    buffers: BufferTable
    anomalies: Anomalies = field(default_factory=Anomalies)
    #: what the anomaly counts alone would not say (one line each), for the trace's notes
    notes: list[str] = field(default_factory=list)
    _mmap: mmap.mmap | None = None

    @property
    def size(self) -> int:
        return int(self.data.shape[0])

    @property
    def compressed_buffers(self) -> int:
        return int(np.count_nonzero(self.buffers.compressed))

    def close(self) -> None:
        self.data = np.zeros(0, np.uint8)
        if self._mmap is not None:
            # arrays may still view the mapping (e.g. from the frames of an exception being raised through
            # ``with``): it is then unmapped when the last of them goes; never replace that exception
            with contextlib.suppress(BufferError):
                self._mmap.close()
            self._mmap = None

    def release(self, offset: int, length: int) -> None:
        """Done with these bytes: drop their pages from this process (they stay in the OS page cache)."""
        release_pages(self._mmap, offset, length)

    def __enter__(self) -> TraceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def buffer_bytes(self, b: BufferInfo) -> BufferBody:
        """The uncompressed bytes of a buffer, header included: ``b.filled`` long, unless it is compressed and its
        stream holds more or less than that (the stream wins: callers compare and count).

        Why: every real compressed buffer decodes to exactly its SavedOffset (the samples'), its stream ending there
        but for the end-of-stream flag DWORD (:data:`STREAM_END_SLACK`). A stream that goes on past what
        SavedOffset says (a damaged SavedOffset, or one the scan could not believe: ``b.filled`` 0) is decoded
        on, as far as the session's buffer size, so its records are read rather than cut at a wrong size.
        A stream that goes on past SavedOffset's part with bytes that neither decode nor pad is damage: the part
        is kept and the buffer marked (``undecoded_tail``) for callers to count. A compressed buffer that does not
        decode at all raises :class:`TraceError` naming its file offset; callers turn that into a counted anomaly
        for the buffer.
        """
        if not b.compressed:
            return BufferBody(self.data[b.offset:b.offset + b.filled], False)
        from heapdiff.etl import xpress

        hsize = S.BUFFER_HEADER_SIZE
        comp = self.data[b.offset + hsize:b.offset + b.size]
        body: bytes | None = None
        failed: TraceError | None = None
        tail = False
        more = True  # b.filled 0: no SavedOffset to believe, the stream alone says
        if b.filled >= hsize:
            try:
                body, used = xpress.decompress_consumed(comp, b.filled - hsize)
                rest = comp[used:]
                more = rest.shape[0] > STREAM_END_SLACK and not bool(
                    np.all((rest[STREAM_END_SLACK:] == 0) | (rest[STREAM_END_SLACK:] == 0xFF)))
            except TraceError as e:  # a match running past SavedOffset's size is a stream holding more, too
                failed = e
        if more:
            try:
                body = xpress.decompress(comp, (nominal_size(self.header) or MAX_BUFFER_SIZE) - hsize)
            except TraceError as e:  # what follows SavedOffset's part is no stream: damage, when that part decoded
                failed = failed or e
                tail = body is not None
        if body is None:
            assert failed is not None
            raise TraceError(f"compressed buffer {b.index} does not decode: {failed.message}",
                             b.offset + hsize + failed.offset) from None
        out = np.empty(hsize + len(body), np.uint8)
        out[:hsize] = self.data[b.offset:b.offset + hsize]
        out[hsize:] = np.frombuffer(body, np.uint8)
        return BufferBody(out, tail)


def open_trace(data: bytes | bytearray | memoryview | np.ndarray, name: str = "<trace>",
               closer: mmap.mmap | None = None, read_at: ReadAt | None = None) -> TraceFile:
    """Read the header and buffer map of a trace held in memory (the CLI maps files; this module never opens one).

    ``read_at``, when the caller has the file open: the buffer headers are read through it instead of through
    the mapping (see :func:`~heapdiff.etl.buffers.scan_uniform`); the bytes are the same.

    :class:`TraceError` only when not even the header buffer can be read.
    """
    arr = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    try:
        header = read_logfile_header(arr)
        anomalies = Anomalies()
        buffers = scan_buffers(arr, header, anomalies, closer, read_at)
    except TraceError as e:
        raise e.with_path(name) from None
    missing, gaps = anomalies["buffers_missing"], anomalies["buffer_sequence_gap"]
    notes = ([missing_note(header, missing, int(arr.shape[0]))] if missing else []) + (
        [sequence_gap_note(gaps)] if gaps else [])
    return TraceFile(name, arr, header, buffers, anomalies, notes, closer)
