"""Leak windows: which blocks count (allocated in ``[from, to)``) and when they are measured (``at``, else the end).

A time ``T`` is given as seconds from the trace's start (``12.5``), a negative number of seconds from its end
(``-2``), an ISO 8601 time (``2026-01-01T10:00:05Z``; without a zone it is UTC), or a mark that xperf or WPR wrote
into the trace (``mark:warm``: the first mark of that name). A trace's start is its header's start time (where
every time of the report counts from); its end is its last event (the end the report shows). Each trace resolves
the times on its own: with two traces, ``-2`` is two seconds before each one's end. Times are resolved to
FILETIME units (100 ns) and then to the trace's raw timestamps, which the reducer and the blocks carry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np

from heapdiff.errors import HeapdiffError
from heapdiff.etl.logfile import LogfileHeader, filetime_to_utc

#: FILETIME units (100 ns) per second and per microsecond
FT_PER_S: Final = 10_000_000
FT_PER_US: Final = 10
MARK_PREFIX: Final = "mark:"
_EPOCH_FILETIME: Final = 116_444_736_000_000_000  # 1970-01-01 in FILETIME units
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class WindowError(HeapdiffError):
    """A window that cannot be used on a trace (a mark it lacks, an empty window): a usage error."""


@dataclass(frozen=True, slots=True)
class TimeSpec:
    """One ``T`` as given: exactly one of ``seconds`` (negative: from the end), ``utc_filetime``, ``mark``."""

    text: str
    seconds: float | None = None
    utc_filetime: int | None = None
    mark: str | None = None

    @property
    def from_end(self) -> bool:
        return self.seconds is not None and (self.seconds < 0 or math.copysign(1.0, self.seconds) < 0)

    @property
    def needs_pass(self) -> bool:
        """Whether resolving it needs what only a read of the whole trace tells: its end or its marks."""
        return self.from_end or self.mark is not None

    @property
    def us(self) -> int | None:
        """As the document records the request: microseconds (negative from the end); None for a mark or a time."""
        return round(self.seconds * 1_000_000) if self.seconds is not None else None


def parse_time(text: str) -> TimeSpec:
    """``T`` from the command line; ValueError with a sentence a user can act on."""
    t = text.strip()
    if t.lower().startswith(MARK_PREFIX):
        name = t[len(MARK_PREFIX):]
        if not name:
            raise ValueError("mark: needs a name (mark:warm)")
        return TimeSpec(text, mark=name)
    if _NUMBER.fullmatch(t):
        secs = float(t)
        if not math.isfinite(secs):
            raise ValueError(f"{text!r} is not a finite number of seconds")
        return TimeSpec(text, seconds=secs)
    try:
        dt = datetime.fromisoformat(t.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{text!r} is not seconds from the start (12.5), from the end (-2), an ISO 8601 time "
                         "(2026-01-01T10:00:05Z) or mark:NAME") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    ft = _EPOCH_FILETIME + (delta.days * 86_400 + delta.seconds) * FT_PER_S + delta.microseconds * FT_PER_US
    if ft < 0:
        raise ValueError(f"{text!r} is before 1601, the start of Windows time")
    return TimeSpec(text, utc_filetime=ft)


@dataclass(frozen=True, slots=True)
class WindowRequest:
    """``--from``, ``--to`` and ``--at`` as given; any may be None."""

    start: TimeSpec | None = None
    stop: TimeSpec | None = None
    at: TimeSpec | None = None

    @property
    def given(self) -> bool:
        return self.start is not None or self.stop is not None or self.at is not None


#: no --from, --to or --at
NO_WINDOW: Final = WindowRequest()


@dataclass(frozen=True, slots=True)
class TraceClock:
    """What times of one trace resolve against: its start and end (FILETIME) and its marks (name, FILETIME), in
    time order."""

    start: int
    end: int
    marks: Sequence[tuple[str, int]] = ()


@dataclass(frozen=True, slots=True)
class ResolvedWindow:
    """A window on one trace, in FILETIME units; None where not given."""

    start: int | None
    stop: int | None
    at: int | None

    def us_from(self, origin: int) -> tuple[int | None, int | None, int | None]:
        """(from, to, at) in microseconds from ``origin`` (the trace's start)."""
        return tuple(None if v is None else (v - origin) // FT_PER_US  # type: ignore[return-value]
                     for v in (self.start, self.stop, self.at))


def resolve_time(spec: TimeSpec, clock: TraceClock, what: str, trace: str) -> int:
    """``spec`` on this trace, in FILETIME units; WindowError when the trace lacks the mark."""
    if spec.mark is not None:
        for name, ft in clock.marks:
            if name == spec.mark:
                return ft
        have = sorted({n for n, _ in clock.marks})
        listed = ", ".join(have[:10]) + (f" and {len(have) - 10} more" if len(have) > 10 else "")
        raise WindowError(f"{what} {spec.text}: {trace} holds no mark of that name"
                          + (f" (its marks: {listed})" if have else " (it holds no marks)"))
    if spec.utc_filetime is not None:
        return spec.utc_filetime
    assert spec.seconds is not None
    offset = round(spec.seconds * FT_PER_S)
    return clock.end + offset if spec.from_end else clock.start + offset


def resolve_window(req: WindowRequest, clock: TraceClock, trace: str) -> ResolvedWindow:
    """The window on one trace; WindowError when it can hold nothing (from >= to, or at before from)."""
    start = resolve_time(req.start, clock, "--from", trace) if req.start is not None else None
    stop = resolve_time(req.stop, clock, "--to", trace) if req.stop is not None else None
    at = resolve_time(req.at, clock, "--at", trace) if req.at is not None else None

    def secs(ft: int) -> str:
        return f"{(ft - clock.start) / FT_PER_S:.3f} s"

    if start is not None and stop is not None and start >= stop:
        raise WindowError(f"--from {req.start.text if req.start else ''} ({secs(start)} into {trace}) is not before "
                          f"--to {req.stop.text if req.stop else ''} ({secs(stop)}): the window holds nothing")
    if start is not None and at is not None and at < start:
        raise WindowError(f"--at {req.at.text if req.at else ''} ({secs(at)} into {trace}) is before --from "
                          f"{req.start.text if req.start else ''} ({secs(start)}): no block of the window is "
                          "allocated by then")
    return ResolvedWindow(start, stop, at)


def outside(window: ResolvedWindow, clock: TraceClock) -> list[str]:
    """The window's times that fall outside the trace: a warning each (the window may still be what is meant)."""
    out = []
    for name, v in (("--from", window.start), ("--to", window.stop), ("--at", window.at)):
        if v is not None and not clock.start <= v <= clock.end:
            where = "before the trace's start" if v < clock.start else "after the trace's end"
            out.append(f"{name} is {where} ({filetime_to_utc(v).isoformat()}; the trace spans "
                       f"{(clock.end - clock.start) / FT_PER_S:.3f} s)")
    return out


def clock_of(header: LogfileHeader, last_ts: int | None, marks: Mapping[int, str] | Sequence[tuple[int, str]]
             ) -> TraceClock:
    """A trace's clock from its header, its last event's raw timestamp and its marks (raw timestamp, name)."""
    pairs = list(marks.items()) if isinstance(marks, Mapping) else list(marks)
    end = header.raw_to_filetime(last_ts) if last_ts is not None else header.end_filetime
    return TraceClock(header.start_filetime, max(end, header.start_filetime),
                      tuple((name, header.raw_to_filetime(ts)) for ts, name in sorted(pairs)))


def allocated_in(ts: np.ndarray, window: ResolvedWindow, header: LogfileHeader) -> np.ndarray | None:
    """Which blocks (by their allocation's raw timestamp) fall in ``[from, to)``; None when the window does not
    bound allocation times. Compared at the FILETIME's 100 ns: a block at exactly ``from`` counts."""
    keep: np.ndarray | None = None
    if window.start is not None:  # FILETIME >= start: past the last raw timestamp before it
        keep = ts > np.int64(header.last_raw_at(window.start - 1))
    if window.stop is not None:  # FILETIME < stop
        before = ts <= np.int64(header.last_raw_at(window.stop - 1))
        keep = before if keep is None else keep & before
    return keep


def stop_raw(window_at: int, header: LogfileHeader) -> int:
    """The reducer's ``stop_at`` for a measurement at FILETIME ``window_at``: every op at or before it counts."""
    return header.last_raw_at(window_at)
