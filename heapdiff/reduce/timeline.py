"""The memory timeline: what each process holds outstanding at evenly spaced points of the trace's time, sampled
by the fold kernel as it goes (the same pass, nothing per event in Python).

**The grid.** Point ``k`` is at raw time ``start + k * step``, :data:`GRID_POINTS` points at most. The end of a
trace is not known until it is read (the header's end time may be 0 or wrong), so the step starts at one raw
unit and doubles whenever an op passes the grid's last point, every other point kept: a kept point is still the
exact state at its time. ``start`` is the header's T0 (or the first op's time when none is given).

**A point's state.** The sample at time ``t`` is the state after every op folded before the first op whose time
is past ``t``: for ops in time order, after every op with ``ts <= t``. Only blocks made live during the trace
count (a Free of an older block changes nothing, as everywhere in the reducer). ATTACH ops change no count and
take no part; ops past ``stop_at`` are ignored, so the timeline ends there. A finished timeline has one more
point, the trace's end, at ``max(last op folded, min(end, stop_at))``: the state after the overlap pass, so that
it equals the live blocks the reducer gives; the points before it know nothing of the Frees that pass infers.

**Per process, sparse.** A record ``(k, pid record, blocks, bytes)`` is written at a point only for a process
whose counts changed since its last record (a doubling moves a dropped point's records to the next kept point),
so memory is bounded by points x processes, and the processes a filter keeps (``--process`` is known only once
the trace is read) are summed afterwards: :meth:`Timeline.totals`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from heapdiff._jit import njit
from heapdiff.reduce.tables import M_HEAPS, M_PIDS, Arr

#: grid points at most (odd: a doubling then moves every dropped point's records onto a kept point); with the
#: end point, a timeline has at most GRID_POINTS + 1 points
GRID_POINTS: Final = 999
#: the record array's columns
R_POINT: Final = 0
R_PREC: Final = 1
R_BLOCKS: Final = 2
R_BYTES: Final = 3
N_RECORD: Final = 4
# the grid state array (int64)
G_START: Final = 0       # raw time of point 0
G_STEP: Final = 1        # raw units between points
G_NEXT: Final = 2        # points recorded so far: the next point to record
G_NEXT_T: Final = 3      # its raw time (INT64_MAX: no further point, before any op or once the step can't double)
G_RECORDS: Final = 4     # records written
G_LAST: Final = 5        # the latest op time folded (INT64_MIN: none yet)
N_GRID: Final = 6

INT64_MAX: Final = (1 << 63) - 1
INT64_MIN: Final = -(1 << 63)
#: the latest start the grid accepts (so that ``start + GRID_POINTS * step`` never overflows)
MAX_START: Final = 1 << 62

_I64_MAX = np.int64(INT64_MAX)


def new_grid() -> Arr:
    """A grid with no start yet: no point is sampled until :func:`start_grid`."""
    g = np.zeros(N_GRID, np.int64)
    g[G_STEP] = 1
    g[G_NEXT_T] = INT64_MAX
    g[G_LAST] = INT64_MIN
    return g


def start_grid(grid: Arr, start: int) -> None:
    """Point 0 at raw time ``start`` (clamped to 0 .. :data:`MAX_START`: times are never negative in a trace)."""
    s = min(max(int(start), 0), MAX_START)
    grid[G_START] = s
    grid[G_NEXT_T] = s


@njit()
def _sample(k: int, grid: Arr, heaps: Arr, meta: Arr, last: Arr, scratch: Arr, rec: Arr) -> bool:
    """Records at point ``k`` for every pid record whose (blocks, bytes) changed since its last record; False,
    with nothing written, when ``rec`` has no room for them."""
    npid = meta[M_PIDS]
    for p in range(npid):
        scratch[p, 0] = 0
        scratch[p, 1] = 0
    for h in range(meta[M_HEAPS]):
        pr = heaps[h]["prec"]
        scratch[pr, 0] += heaps[h]["blocks"]
        scratch[pr, 1] += np.int64(heaps[h]["bytes"])
    n = grid[G_RECORDS]
    changed = 0
    for p in range(npid):
        if scratch[p, 0] != last[p, 0] or scratch[p, 1] != last[p, 1]:
            changed += 1
    if n + changed > rec.shape[0]:
        return False
    for p in range(npid):
        if scratch[p, 0] != last[p, 0] or scratch[p, 1] != last[p, 1]:
            rec[n, R_POINT] = k
            rec[n, R_PREC] = p
            rec[n, R_BLOCKS] = scratch[p, 0]
            rec[n, R_BYTES] = scratch[p, 1]
            n += 1
            last[p, 0] = scratch[p, 0]
            last[p, 1] = scratch[p, 1]
    grid[G_RECORDS] = n
    return True


@njit()
def _double(grid: Arr, scratch: Arr, rec: Arr) -> None:
    """Twice the step, every other point kept: point 2j becomes j; the records of a dropped point 2j+1 move to
    the next kept one (its state holds there unless that point has its own record, which then wins). When the
    step can't double without overflowing, no further point is sampled."""
    start = grid[G_START]
    step = grid[G_STEP]
    if step > (_I64_MAX - start) // (2 * GRID_POINTS):
        grid[G_NEXT_T] = _I64_MAX
        return
    for p in range(scratch.shape[0]):
        scratch[p, 0] = -1              # its last record kept so far
    w = 0
    for r in range(grid[G_RECORDS]):
        nk = (rec[r, R_POINT] + 1) // 2
        p = rec[r, R_PREC]
        j = scratch[p, 0]
        if j >= 0 and rec[j, R_POINT] == nk:
            rec[j, R_BLOCKS] = rec[r, R_BLOCKS]
            rec[j, R_BYTES] = rec[r, R_BYTES]
        else:
            rec[w, R_POINT] = nk
            rec[w, R_PREC] = p
            rec[w, R_BLOCKS] = rec[r, R_BLOCKS]
            rec[w, R_BYTES] = rec[r, R_BYTES]
            scratch[p, 0] = w
            w += 1
    grid[G_RECORDS] = w
    grid[G_STEP] = 2 * step
    grid[G_NEXT] = (grid[G_NEXT] + 1) // 2
    grid[G_NEXT_T] = start + grid[G_NEXT] * 2 * step


@njit()
def advance(t: int, grid: Arr, heaps: Arr, meta: Arr, last: Arr, scratch: Arr, rec: Arr) -> bool:
    """Record every grid point before raw time ``t`` not recorded yet (the state now is theirs), doubling the step
    as often as the grid needs. False when ``rec`` lacks room for a point's records: the caller makes room (one
    record per pid record is always enough) and calls again. Only the first of the points can hold records: the
    others repeat its state."""
    while grid[G_NEXT_T] < t:
        k = grid[G_NEXT]
        if k >= GRID_POINTS:
            _double(grid, scratch, rec)
            continue
        if not _sample(k, grid, heaps, meta, last, scratch, rec):
            return False
        start = grid[G_START]
        step = grid[G_STEP]
        before_t = (t - start - 1) // step + 1          # grid points before t
        grid[G_NEXT] = min(before_t, GRID_POINTS)
        grid[G_NEXT_T] = start + grid[G_NEXT] * step
    return True


@njit()
def sample_end(grid: Arr, heaps: Arr, meta: Arr, last: Arr, scratch: Arr, rec: Arr) -> bool:
    """The end point's records (point ``grid[G_NEXT]``, at the end's time); False when ``rec`` lacks room."""
    return _sample(grid[G_NEXT], grid, heaps, meta, last, scratch, rec)


@dataclass(frozen=True)
class _Points:
    """Values at points in time; ``raw`` is each point's raw time, increasing."""

    raw: np.ndarray

    def __len__(self) -> int:
        return int(self.raw.shape[0])


@dataclass(frozen=True)
class TimelineTotals(_Points):
    """The outstanding blocks and bytes of the chosen processes at each point: ``ticks`` (the clock's units from
    the trace's start, 100 ns for a trace's FILETIME, never negative, increasing), ``blocks`` and ``bytes``."""

    ticks: np.ndarray
    blocks: np.ndarray
    bytes: np.ndarray


@dataclass(frozen=True)
class Timeline(_Points):
    """A finished timeline: the points (the last is the trace's end) and the records of every process: per
    record, its point, its process, the process's outstanding blocks and bytes from that point on."""

    point: np.ndarray
    pid: np.ndarray
    blocks: np.ndarray
    bytes: np.ndarray

    def totals(self, pids: frozenset[int] | None = None,
               clock: Callable[[int], int] | None = None) -> TimelineTotals:
        """The chosen processes' sums (None: every process) at each point, by whole-column steps over the
        records. ``clock`` maps a raw time to the trace's clock units since its start (default: raw units
        since point 0); points that fall on one clock time are one (the last: the state after more ops), and a
        time before the start counts as the start."""
        n = len(self)
        order = np.argsort(self.pid, kind="stable")        # each process's records, in the order written
        pid = self.pid[order]
        first = np.ones(pid.shape[0], np.bool_)
        first[1:] = pid[1:] != pid[:-1]
        out = []
        for col in (self.blocks, self.bytes):
            v = col[order]
            prev = np.empty_like(v)
            prev[1:] = v[:-1]
            prev[first] = 0
            delta = v - prev                                  # each record's change of its process
            chosen = np.ones(pid.shape[0], np.bool_) if pids is None else np.isin(pid, np.fromiter(
                pids, np.int64, len(pids)))
            acc = np.zeros(n, np.int64)
            np.add.at(acc, self.point[order][chosen], delta[chosen])
            out.append(np.cumsum(acc))
        if clock is None:
            ticks = self.raw - self.raw[0] if n else self.raw.copy()
        else:
            # a damaged header's clock (a PerfFreq of 1) can map a raw time past int64: the end of time, kept
            ticks = np.fromiter((min(clock(int(r)), INT64_MAX) for r in self.raw.tolist()), np.int64, n)
        ticks = np.maximum(ticks, 0)
        keep = np.ones(n, np.bool_)
        keep[:-1] = ticks[1:] != ticks[:-1]                  # the last of each run of equal times
        return TimelineTotals(self.raw[keep], ticks[keep], out[0][keep], out[1][keep])
