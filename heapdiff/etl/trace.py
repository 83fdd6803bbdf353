"""Opening a trace: its bytes, its logfile header (:mod:`heapdiff.etl.logfile`) and its buffer map
(:mod:`heapdiff.etl.buffers`), and letting go of the pages the reader has passed.
"""

from __future__ import annotations

import contextlib
import mmap
from dataclasses import dataclass, field

import numpy as np

from heapdiff.errors import Anomalies, TraceError
from heapdiff.etl import structs as S
from heapdiff.etl.buffers import BufferInfo, BufferTable, ReadAt, release_pages, scan_buffers
from heapdiff.etl.logfile import LogfileHeader, read_logfile_header


@dataclass
class TraceFile:
    """An opened trace: its bytes (memory-mapped), logfile header and buffer map, and what did not fit so far."""

    path: str
    data: np.ndarray
    header: LogfileHeader
    buffers: BufferTable
    anomalies: Anomalies = field(default_factory=Anomalies)
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

    def buffer_bytes(self, b: BufferInfo) -> np.ndarray:
        """The uncompressed bytes of a buffer, header included, ``b.filled`` long.

        A compressed buffer that does not decode raises :class:`TraceError` naming its file offset; callers turn
        that into a counted anomaly for the buffer.
        """
        if not b.compressed:
            return self.data[b.offset:b.offset + b.filled]
        from heapdiff.etl import xpress

        comp = self.data[b.offset + S.BUFFER_HEADER_SIZE:b.offset + b.size]
        want = b.filled - S.BUFFER_HEADER_SIZE
        try:
            body = xpress.decompress(comp, want)
        except TraceError as e:
            raise TraceError(f"compressed buffer {b.index} does not decode: {e.message}",
                             b.offset + S.BUFFER_HEADER_SIZE + e.offset) from None
        out = np.empty(S.BUFFER_HEADER_SIZE + len(body), np.uint8)
        out[:S.BUFFER_HEADER_SIZE] = self.data[b.offset:b.offset + S.BUFFER_HEADER_SIZE]
        out[S.BUFFER_HEADER_SIZE:] = np.frombuffer(body, np.uint8)
        return out



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
    return TraceFile(name, arr, header, buffers, anomalies, closer)
