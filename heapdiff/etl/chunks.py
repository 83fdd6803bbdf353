"""The bytes the reader frames: a chunk of buffers (the mapped file itself, or decompressed copies glued
together), and the decompressed copies kept between ordering the buffers and framing them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from heapdiff.errors import TraceError
from heapdiff.etl import structs as S
from heapdiff.etl.buffers import BufferInfo, peek_first_ts
from heapdiff.etl.trace import TraceFile

#: decompressed buffers kept between ordering and framing (beyond this, a buffer is decoded twice)
DECOMPRESSED_CACHE_BYTES = 64 << 20


@dataclass
class Chunk:
    """The buffers of one kernel call: their bytes (the file itself, or decompressed copies glued together) and
    where each one is."""

    data: np.ndarray
    start: np.ndarray        # of each buffer in ``data``, header included
    end: np.ndarray
    cpu: np.ndarray
    base: np.ndarray         # the file offset each buffer's start stands for
    framed: np.ndarray       # positions (buffer table) of the buffers in it
    is_file: bool            # ``data`` is the file: tails may be deferred
    total: int               # bytes framed
    biggest: int             # the largest buffer's size


class BufferBytes:
    """The bytes of a trace's buffers for the reader: decompressed copies kept from ordering to framing while
    :data:`DECOMPRESSED_CACHE_BYTES` allows, chunks to frame, and a stream that disagrees with its SavedOffset
    counted once (through ``anomaly``: kind and file offset)."""

    def __init__(self, trace: TraceFile, anomaly: Callable[[str, int], None]) -> None:
        self.trace = trace
        self._anomaly = anomaly
        self._decompressed: dict[int, np.ndarray] = {}
        self._mismatched: set[int] = set()  # buffers counted as buffer_saved_offset_mismatch
        self._cached_bytes = 0

    def first_ts(self, b: BufferInfo) -> int | None:
        """Raw timestamp of a compressed buffer's first record (None: no record); the buffer is decoded once
        and kept for framing while the cache has room. Decoded whatever its SavedOffset says: the stream may
        hold records that a damaged SavedOffset denies (:meth:`TraceFile.buffer_bytes`)."""
        try:
            whole, tail = self.trace.buffer_bytes(b)
        except TraceError:
            return -1  # decoded (and counted) when loaded
        self._check_length(b, whole, tail)  # (a buffer without a record is never loaded)
        if self._cached_bytes + whole.shape[0] <= DECOMPRESSED_CACHE_BYTES:
            self._decompressed[b.index] = whole  # decoded once, framed later
            self._cached_bytes += int(whole.shape[0])
        ts, fits = peek_first_ts(whole, np.zeros(1, np.int64), np.asarray([whole.shape[0]], np.int64))
        return int(ts[0]) if fits[0] else None

    def chunk(self, pos: np.ndarray) -> Chunk:
        """The bytes of the buffers at positions ``pos`` of the buffer table. Uncompressed buffers are framed in
        the file itself, read from the table's columns alone (no BufferInfo per buffer on this path); a chunk
        with a compressed buffer is framed in decompressed copies (an undecodable one is counted and left out)."""
        bt = self.trace.buffers
        if not bool(bt.compressed[pos].any()):
            offs, fill = bt.offset[pos], bt.filled[pos]
            return Chunk(self.trace.data, offs, offs + fill, bt.cpu[pos].astype(np.int32), offs, pos, True,
                          int(fill.sum()), int(fill.max(initial=0)))
        parts: list[np.ndarray] = []
        start: list[int] = []
        end: list[int] = []
        cpu: list[int] = []
        base: list[int] = []
        kept: list[int] = []
        total = 0
        for at, b in zip(pos.tolist(), bt.infos(pos), strict=True):
            try:
                cached = self._decompressed.pop(b.index, None)
                if cached is not None:
                    self._cached_bytes -= int(cached.shape[0])
                body, tail = (cached, False) if cached is not None else self.trace.buffer_bytes(b)
            except TraceError as e:
                self._anomaly("undecodable_compressed_buffer", e.offset)
                continue
            self._check_length(b, body, tail)
            start.append(total)
            end.append(total + int(body.shape[0]))
            pad = -int(body.shape[0]) % S.RECORD_ALIGN  # each copy starts 8-aligned, as buffers do in the file
            parts.append(body if not pad else np.concatenate((body, np.full(pad, 0xFF, np.uint8))))
            total += int(body.shape[0]) + pad
            cpu.append(b.cpu)
            base.append(b.offset)
            kept.append(at)
        starts, ends = np.asarray(start, np.int64), np.asarray(end, np.int64)
        return Chunk(np.concatenate(parts) if parts else np.zeros(0, np.uint8), starts, ends,
                      np.asarray(cpu, np.int32), np.asarray(base, np.int64), np.asarray(kept, np.int64), False,
                      total, int((ends - starts).max(initial=0)))

    def _check_length(self, b: BufferInfo, body: np.ndarray, undecoded_tail: bool) -> None:
        """A compressed buffer whose stream holds more or less than its SavedOffset says is read by what it holds,
        and one whose stream goes on past it with bytes that do not decode keeps what decoded: counted once,
        whether it was decoded to order the buffers, to frame them, or both."""
        if (body.shape[0] != b.filled or undecoded_tail) and b.index not in self._mismatched:
            self._mismatched.add(b.index)
            self._anomaly("buffer_saved_offset_mismatch", b.offset + S.BUFFER_HEADER.off("SavedOffset"))
