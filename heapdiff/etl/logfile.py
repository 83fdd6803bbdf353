"""The logfile header of a trace (buffer 0's first record, notes 2) and its clock: raw timestamps to UTC.

Every time heapdiff prints is a raw timestamp of the trace turned into a FILETIME by the header's clock rules (2.3),
then into one ISO 8601 text (:func:`iso_utc`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np

from heapdiff.errors import TraceError
from heapdiff.etl import structs as S


@dataclass(frozen=True)
class LogfileHeader:
    """The TRACE_LOGFILE_HEADER of buffer 0 (notes 2.2) plus the header record's own raw timestamp (T0)."""

    pointer_size: int
    buffer_size: int
    version: int
    provider_version: int
    number_of_processors: int
    end_filetime: int
    maximum_file_size: int
    log_file_mode: int
    buffers_written: int
    events_lost: int
    buffers_lost: int
    cpu_speed_mhz: int
    boot_filetime: int
    perf_freq: int
    start_filetime: int
    clock_type: int
    timezone_bias_minutes: int
    logger_name: str
    log_file_name: str
    t0: int
    thread_id: int
    process_id: int

    def raw_to_filetime(self, raw: int) -> int:
        """2.3: FILETIME of a raw timestamp, by the clock type."""
        return self.raws_to_filetimes((raw,))[0]

    def raws_to_filetimes(self, raws: Sequence[int]) -> list[int]:
        """:meth:`raw_to_filetime` of many timestamps, the scale looked up once (a million groups have two times
        each)."""
        num, den = self._scale()
        start, t0 = self.start_filetime, self.t0
        return [start + ((r - t0) * num) // den for r in raws]

    def _scale(self) -> tuple[int, int]:
        """(num, den): a raw delta d is ``d * num // den`` FILETIME units (2.3)."""
        if self.clock_type == S.CLOCK_SYSTEM_TIME:
            return 1, 1
        if self.clock_type == S.CLOCK_CPU_CYCLES and self.cpu_speed_mhz > 0:
            return 10, self.cpu_speed_mhz
        return 10_000_000, self.perf_freq if self.perf_freq > 0 else 10_000_000

    def last_raw_at(self, filetime: int) -> int:
        """The largest raw timestamp whose FILETIME is at most ``filetime``: the inverse of
        :meth:`raw_to_filetime`, for cutting the trace's raw timestamps at a time given in FILETIME units."""
        num, den = self._scale()
        x = filetime - self.start_filetime + 1
        return self.t0 + (-((-x * den) // num)) - 1

    def raw_to_utc(self, raw: int) -> datetime:
        return filetime_to_utc(self.raw_to_filetime(raw))

    def raw_to_iso_many(self, raws: Sequence[int]) -> list[str]:
        """``iso_utc(self.raw_to_utc(r))`` for each of ``raws`` (see :func:`iso_utc_filetimes`)."""
        return iso_utc_filetimes(self.raws_to_filetimes(raws))

    @property
    def start_utc(self) -> datetime:
        return filetime_to_utc(self.start_filetime)

    @property
    def end_utc(self) -> datetime:
        return filetime_to_utc(self.end_filetime)


def filetime_to_utc(ft: int) -> datetime:
    """FILETIME (100 ns since 1601) -> aware UTC datetime, clamped to datetime's range rather than raising."""
    us = (ft - S.FILETIME_UNIX_EPOCH) // 10
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    except OverflowError:
        return datetime(1601, 1, 1, tzinfo=UTC) if us < 0 else datetime(9999, 12, 31, tzinfo=UTC)


def iso_utc(dt: datetime) -> str:
    """ISO 8601 UTC with microseconds and Z, the one time format of heapdiff's outputs."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: microseconds since 1970 of 1601-01-01 (FILETIME 0) and of the last microsecond of 9999
_US_1601: Final = -11_644_473_600_000_000
_US_9999: Final = 253_402_300_799_999_999


def iso_utc_filetimes(fts: Sequence[int]) -> list[str]:
    """``iso_utc(filetime_to_utc(ft))`` of many FILETIMEs, formatted by numpy in one pass.

    Why: the JSON document has two times per group, and a datetime and a strftime each, thousands of times on
    the job's serial path, were a visible part of its end. Values outside 1601..9999 (which the scalar path
    clamps) go the scalar way, so the strings are the same either way."""
    us = [(ft - S.FILETIME_UNIX_EPOCH) // 10 for ft in fts]
    if not us:
        return []
    if min(us) < _US_1601 or max(us) > _US_9999:
        return [iso_utc(filetime_to_utc(ft)) for ft in fts]
    text = np.datetime_as_string(np.asarray(us, np.int64).astype("datetime64[us]"), unit="us")
    return [t + "Z" for t in text.tolist()]


def _read_utf16z(buf: bytes, pos: int, limit: int) -> tuple[str, int]:
    end = pos
    while end + 1 < limit and (buf[end] or buf[end + 1]):
        end += 2
    text = buf[pos:end].decode("utf-16-le", errors="replace")
    return text, min(end + 2, limit)



def read_logfile_header(data: np.ndarray) -> LogfileHeader:
    """The logfile header of a trace held in memory (buffer 0's first record, notes 2.1); :class:`TraceError` if
    there is none."""
    n = int(data.shape[0])
    if n == 0:
        raise TraceError("not a readable trace (empty file)", 0)
    if n < S.BUFFER_HEADER_SIZE + S.SYSTEM_HEADER.size + S.LOGFILE_HEADER32.size:
        raise TraceError(f"not a readable trace (only {n} bytes, shorter than a header buffer)", 0)
    bh = S.BUFFER_HEADER.unpack(bytes(data[:S.BUFFER_HEADER_SIZE]))
    p = S.BUFFER_HEADER_SIZE
    head = bytes(data[p:p + min(n - p, S.MAX_RECORD_SIZE + 1)])
    marker = int.from_bytes(head[0:4], "little")
    htype = (marker >> S.MARKER_TYPE_SHIFT) & S.MARKER_TYPE_MASK
    typed = (marker >> S.MARKER_FLAGS_SHIFT) & S.MARKER_TYPED == S.MARKER_TYPED
    if not typed or htype not in (S.HT_SYSTEM32, S.HT_SYSTEM64):
        raise TraceError(f"not an ETW trace: the first record's marker is {marker:#010x}, "
                         "not a system trace header", p)
    sh = S.SYSTEM_HEADER.unpack(head, 0, p)
    if sh["Group"] != 0 or sh["Type"] != 0:
        raise TraceError(f"not an ETW trace: the first record is hook {sh['Type'] | sh['Group'] << 8:#06x}, "
                         "not the logfile header", p)
    ptr = 8 if htype == S.HT_SYSTEM64 else 4
    decl = S.LOGFILE_HEADER64 if ptr == 8 else S.LOGFILE_HEADER32
    rec_size = int(sh["Size"])
    limit = min(rec_size, len(head))
    rec = S.SYSTEM_HEADER.size  # the logfile header follows the record's SYSTEM header
    if limit < rec + decl.size:
        raise TraceError(f"logfile header record is {rec_size:#x} bytes, needs {rec + decl.size:#x}", p)
    lh = decl.unpack(head, rec, p)
    filled = min(int(bh["SavedOffset"]) or int(bh["Offset"]), n)
    if filled < p + rec + decl.size:
        raise TraceError(f"header buffer's filled size {filled:#x} ends before its logfile header", 4)
    logger, q = _read_utf16z(head, rec + decl.size, limit)
    logfile, _ = _read_utf16z(head, q, limit)
    pointer_size = int(lh["PointerSize"])
    if pointer_size not in (4, 8):
        pointer_size = ptr
    return LogfileHeader(
        pointer_size=pointer_size,
        buffer_size=int(lh["BufferSize"]),
        version=int(lh["Version"]),
        provider_version=int(lh["ProviderVersion"]),
        number_of_processors=int(lh["NumberOfProcessors"]),
        end_filetime=int(lh["EndTime"]),
        maximum_file_size=int(lh["MaximumFileSize"]),
        log_file_mode=int(lh["LogFileMode"]),
        buffers_written=int(lh["BuffersWritten"]),
        events_lost=int(lh["EventsLost"]),
        buffers_lost=int(lh["BuffersLost"]),
        cpu_speed_mhz=int(lh["CpuSpeedInMHz"]),
        boot_filetime=int(lh["BootTime"]),
        perf_freq=int(lh["PerfFreq"]),
        start_filetime=int(lh["StartTime"]),
        clock_type=int(lh["ReservedFlags"]),
        timezone_bias_minutes=int(lh["TimeZoneBias"]),
        logger_name=logger,
        log_file_name=logfile,
        t0=int(sh["SystemTime"]),
        thread_id=int(sh["ThreadId"]),
        process_id=int(sh["ProcessId"]),
    )
