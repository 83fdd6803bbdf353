"""The writer's buffers and file: per-CPU buffers filled in place, flushed to the file in flush order (notes 1, 9.2).

Every CPU fills its own buffer; a full buffer is *flushed* with the next ``SequenceNumber``, so the file is in flush
order, not time order -- exactly the shape a reader must merge (section 8 item 2). Buffer 0 is the header buffer,
written first (a crash leaves a readable prefix) and rewritten at the end with the final counts. Buffers may be
Xpress-compressed (section 7). The records themselves are encoded by :mod:`heapdiff.tracegen.records`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Final

from heapdiff.etl import structs as S
from heapdiff.etl.xpress import compress as xpress_compress

# --- values copied from the real samples (notes Appendix A, section 9) -----------------------------------
_LOGGER_ID: Final = 0x20                   # ETW_BUFFER_CONTEXT.LoggerId, same in every buffer (9.2)
_STATE_FLUSHED: Final = 3                  # ETW_BUFFER_STATE of every real buffer; also XPRESS = 3 (1.1, 7)
_FLAG_FLUSH_MARKER: Final = 0x0001
FLAG_PROC_INDEX: Final = 0x0020
_BUFFER_TYPE_GENERIC: Final = 0


def align8(n: int) -> int:
    """Records start 8-aligned in their buffer (1.3)."""
    return (n + S.RECORD_ALIGN - 1) & ~(S.RECORD_ALIGN - 1)


@dataclass(frozen=True, slots=True)
class WrittenRecord:
    """What the writer put in one record: enough to check a reader's framing against (tests only).

    ``pid``/``tid`` are None for headers that carry none (PERFINFO); ``hook``/``version`` are None for
    :meth:`~heapdiff.tracegen.writer.TraceWriter.raw` records, whose header the writer did not build.
    """

    hook: int | None
    version: int | None
    header_type: int
    pid: int | None
    tid: int | None
    ts: int
    payload: bytes
    data: bytes


@dataclass(slots=True)
class WrittenBuffer:
    """One buffer as written, in file order (tests only)."""

    index: int
    sequence: int
    cpu: int
    flags: int
    timestamp: int
    filled: int
    disk_size: int
    compressed: bool
    records: list[WrittenRecord] = field(default_factory=list)


class CpuBuffer:
    """The buffer one CPU is filling (1.1): preallocated, records packed in place after the buffer header."""

    __slots__ = ("buf", "cpu", "flags", "last_ts", "pos", "records")

    def __init__(self, cpu: int, size: int, t0: int) -> None:
        self.cpu = cpu
        self.buf = bytearray(size)
        self.pos = S.BUFFER_HEADER_SIZE
        self.last_ts = t0
        self.flags = FLAG_PROC_INDEX
        self.records: list[WrittenRecord] = []

    def log(self, pos: int, size: int, head: int, hook: int | None, version: int | None, htype: int,
            pid: int | None, tid: int | None, ts: int) -> None:
        """Keep what the record at ``pos`` is (tests)."""
        data = bytes(self.buf[pos:pos + size])
        self.records.append(WrittenRecord(hook, version, htype, pid, tid, ts, data[head:], data))


def buffer_header(disk_size: int, used: int, ts: int, seq: int, cpu: int, flags: int, btype: int) -> bytes:
    """WMI_BUFFER_HEADER as in real files (9.2): SavedOffset = CurrentOffset = Offset = bytes used."""
    return S.BUFFER_HEADER.pack({
        "BufferSize": disk_size, "SavedOffset": used, "CurrentOffset": used, "ReferenceCount": 0,
        "TimeStamp": ts, "SequenceNumber": seq, "ClockInfo": 0, "ProcessorIndex": cpu,
        "LoggerId": _LOGGER_ID, "State": _STATE_FLUSHED, "Offset": used, "BufferFlag": flags,
        "BufferType": btype,
    })


class BufferFile:
    """The output file and the buffers of every CPU; :meth:`reserve` room for a record, :meth:`close` at the end.

    ``close()`` closes ``out`` only if this opened it (a path); a caller's file object stays open.
    """

    def __init__(self, out: str | os.PathLike[str] | BinaryIO, *, cpus: int, buffer_size: int, t0: int,
                 compress: bool, keep_log: bool) -> None:
        self.cpus = cpus
        self.buffer_size = buffer_size
        self.compressed = compress
        self.t0 = t0
        self.log: list[WrittenBuffer] | None = [] if keep_log else None
        self.cpu: dict[int, CpuBuffer] = {c: CpuBuffer(c, buffer_size, t0) for c in range(cpus)}
        self.max_record = min(S.MAX_RECORD_SIZE, buffer_size - S.BUFFER_HEADER_SIZE)
        self.flushed = 0
        self.closed = False
        self._seq = 0
        self._ff = b"\xff" * buffer_size
        self._out = out
        self._fh: BinaryIO | None = None
        self._own = False
        self._base = 0
        self._header_log: WrittenBuffer | None = None

    def open(self, header: bytes | bytearray) -> None:
        """Open the output and write buffer 0 as it is now (rewritten by :meth:`close` with the final counts)."""
        out = self._out
        if isinstance(out, (str, os.PathLike)):
            self._fh = open(out, "wb")  # noqa: SIM115 - closed by close()
            self._own = True
        else:
            self._fh = out
        self._base = self._fh.tell()
        self._fh.write(header)

    @property
    def last_ts(self) -> int:
        """The latest timestamp written on any CPU."""
        return max(c.last_ts for c in self.cpu.values())

    def buffer_of(self, cpu: int) -> CpuBuffer:
        try:
            return self.cpu[cpu]
        except (KeyError, TypeError):
            raise ValueError(f"cpu {cpu!r} is not in 0..{self.cpus - 1}") from None

    def reserve(self, cpu: int, ts: int, size: int) -> CpuBuffer:
        """The buffer of ``cpu`` with room for an 8-aligned record of ``size`` bytes at ``.pos``.

        Flushes that CPU's buffer first when the record does not fit, as the kernel does (1.3: no record
        crosses a buffer).
        """
        if self.closed:
            raise ValueError("the trace is closed")
        c = self.buffer_of(cpu)
        if ts < c.last_ts:
            if ts < self.t0:
                raise ValueError(f"timestamp {ts} is before the session start t0={self.t0}")
            raise ValueError(f"cpu {cpu}: timestamp {ts} is before the previous record's {c.last_ts}; "
                             "records must come in non-decreasing time order per CPU")
        if size > self.max_record:
            raise ValueError(f"record of {size} bytes exceeds the {self.max_record}-byte limit "
                             "(u16 Size, and no record crosses a buffer)")
        if c.pos + align8(size) > self.buffer_size:
            self.flush(c)
        return c

    def put(self, cpu: int, ts: int, record: bytes, hook: int | None, version: int | None, htype: int,
            pid: int | None, tid: int | None, head: int) -> None:
        """Append a framed record, zero-padded to the 8-byte grid (``head``: its header's size, for the log)."""
        size = len(record)
        c = self.reserve(cpu, ts, size)
        pos = c.pos
        end = pos + align8(size)
        c.buf[pos:pos + size] = record
        c.buf[pos + size:end] = bytes(end - pos - size)
        c.pos = end
        c.last_ts = ts
        if self.log is not None:
            c.log(pos, size, head, hook, version, htype, pid, tid, ts)

    def flush(self, c: CpuBuffer) -> None:
        """Write the CPU's buffer out with the next sequence number (file order = flush order, 1.1)."""
        assert self._fh is not None
        self._seq += 1
        used = c.pos
        buf = c.buf
        flags = c.flags
        disk: bytes | bytearray = buf
        disk_size = self.buffer_size
        packed = False
        if self.compressed and used > S.BUFFER_HEADER_SIZE:
            body = xpress_compress(bytes(buf[S.BUFFER_HEADER_SIZE:used]))
            # A stream that does not shrink is stored plain: readers take min(BufferSize, Offset) - 0x48 bytes
            # (dissect) or reject BufferSize > the header's BufferSize (snail), so it could not be read back.
            if len(body) < used - S.BUFFER_HEADER_SIZE:
                packed = True
                flags |= S.BUFFER_FLAG_COMPRESSED
                disk_size = S.BUFFER_HEADER_SIZE + len(body)
                disk = buffer_header(disk_size, used, c.last_ts, self._seq, c.cpu, flags, _BUFFER_TYPE_GENERIC) + body
        if not packed:
            buf[used:] = self._ff[: self.buffer_size - used]
            buf[: S.BUFFER_HEADER_SIZE] = buffer_header(disk_size, used, c.last_ts, self._seq, c.cpu, flags,
                                                        _BUFFER_TYPE_GENERIC)
        self._fh.write(disk)
        self.flushed += 1
        if self.log is not None:
            self.log.append(WrittenBuffer(self.flushed, self._seq, c.cpu, flags, c.last_ts, used, disk_size,
                                          packed, c.records))
            c.records = []
        c.pos = S.BUFFER_HEADER_SIZE
        c.flags = FLAG_PROC_INDEX

    def header_buffer(self, records: Sequence[tuple[int, bytes, WrittenRecord]]) -> bytearray:
        """Buffer 0 (2.1, 9.3): the header records given (framed bytes and what they are), type 4, flag 0x0021,
        sequence 0."""
        buf = bytearray(self.buffer_size)
        pos = S.BUFFER_HEADER_SIZE
        for _, rec, _ in records:
            if len(rec) > S.MAX_RECORD_SIZE or pos + align8(len(rec)) > self.buffer_size:
                raise ValueError("the header record (logger and log file names) does not fit in buffer 0")
            buf[pos:pos + len(rec)] = rec
            pos += align8(len(rec))
        buf[pos:] = self._ff[: self.buffer_size - pos]
        flags = FLAG_PROC_INDEX | _FLAG_FLUSH_MARKER
        buf[: S.BUFFER_HEADER_SIZE] = buffer_header(self.buffer_size, pos, 0, 0, 0, flags, S.BUFFER_TYPE_HEADER)
        self._header_log = WrittenBuffer(0, 0, 0, flags, 0, pos, self.buffer_size, False,
                                         [written for _, _, written in records])
        return buf

    def flush_all(self) -> None:
        """Flush every CPU's buffer (CPU order; empty ones only if flagged); nothing can be written after it."""
        for cpu in sorted(self.cpu):
            c = self.cpu[cpu]
            if c.pos > S.BUFFER_HEADER_SIZE or c.flags != FLAG_PROC_INDEX:
                self.flush(c)
        self.closed = True

    def close(self, header: bytes | bytearray) -> None:
        """Rewrite buffer 0 as ``header`` (made after :meth:`flush_all`, with the final counts), and close the
        output if this opened it."""
        assert self._fh is not None
        end = self._fh.tell()
        self._fh.seek(self._base)
        self._fh.write(header)
        self._fh.seek(end)
        self._fh.flush()
        if self.log is not None and self._header_log is not None:
            self.log.insert(0, self._header_log)
        if self._own:
            self._fh.close()
