"""The reducer's shell: feeds op batches to the fold kernel, grows and rebuilds its tables, ends the trace.

Memory is bounded by the live blocks (plus threads and heaps), never by the number of events: before each kernel
call the block index and the pending table are made to stay at most half full even if every Alloc/ReAlloc of the
batch adds an entry, rebuilt without their stale entries when that fails (into a larger power of two only if what
is live still needs it); the block rows grow by a quarter when none is left (in place: a realloc, no second copy),
and the small tables (threads, heap and pid records) cannot be sized from the batch without wasting memory, so the
kernel stops before an op that could need a new entry in a full one and returns its index, and the shell grows
that table and calls again from there. At the end the live rows become the snapshot's columns while the rows
shrink (:meth:`Reducer.finish`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Final

import numpy as np

from heapdiff.events.ops import OP_ALLOC, OP_ATTACH, OP_REALLOC, OpBatch
from heapdiff.reduce.blocks import compact_rows, end_rows, index_rebuild, permute_rows
from heapdiff.reduce.fold import (
    ANOMALY_NAMES,
    K_EVENT_WITHOUT_STACK,
    K_OVERLAP,
    fold_kernel,
    pending_waiting,
)
from heapdiff.reduce.live import LiveBlocks
from heapdiff.reduce.overlap import find_overlaps
from heapdiff.reduce.tables import (
    BLOCK_DTYPE,
    BLOCK_INDEX_DTYPE,
    HEAP_DTYPE,
    HEAP_INDEX_DTYPE,
    M_BLOCKS,
    M_FREE,
    M_FREE_ROWS,
    M_HEAPS,
    M_PENDING,
    M_PIDS,
    M_ROWS,
    M_THREADS,
    N_META,
    PENDING_DTYPE,
    PID_DTYPE,
    PID_INDEX_DTYPE,
    PREFETCH_AHEAD,
    THREAD_DTYPE,
    Arr,
    empty_table,
    rehashed,
)
from heapdiff.reduce.timeline import (
    G_LAST,
    G_NEXT,
    G_RECORDS,
    G_START,
    G_STEP,
    INT64_MIN,
    N_RECORD,
    R_BLOCKS,
    R_BYTES,
    R_POINT,
    R_PREC,
    Timeline,
    advance,
    new_grid,
    sample_end,
    start_grid,
)

_INT64_MAX: Final = (1 << 63) - 1
#: the columns of :meth:`Reducer.live_columns`: a :class:`LiveBlocks` row and its event's serial
LIVE_COLUMNS: Final = ("pid", "heap", "addr", "size", "ts", "source", "serial", "stack")
#: the row columns taken into the snapshot at the end (pid and heap come from the heap records)
_ROW_COLUMNS: Final = ("addr", "size", "ts", "source", "serial", "stack")
#: rows moved into columns at once at the end, at least (the rows shrink after each such part)
_PART_ROWS: Final = 1 << 16


class Reducer:
    """Folds op batches (:meth:`feed`) into the live blocks (:mod:`heapdiff.reduce.fold` says by which rules).

    :meth:`finish` ends the trace, :meth:`snapshot` gives the live blocks and :attr:`timeline` what each process
    held over the trace's time (:mod:`heapdiff.reduce.timeline`, from raw time ``start``: the header's T0, or
    the first op's time when None); :attr:`anomalies`, :attr:`live_blocks` and :attr:`live_bytes` can be read at
    any time (``rehashes`` counts table rebuilds).

    ``stop_at``: ops with ``ts > stop_at`` are ignored (a snapshot at that time), except that an ATTACH past
    it still gives a stack to a block that is live and waiting for one (its event was not past ``stop_at``;
    stack records follow their event and may be resolved late); it is never counted as an orphan, since its
    event may be one of the ignored ones.
    """

    #: initial slots of the block index and the pending table (the block rows: half as many), and of the thread /
    #: heap / pid indexes (powers of two, >= 2; tests shrink them to exercise every growth path)
    BLOCK_SLOTS: ClassVar[int] = 1 << 12
    SMALL_SLOTS: ClassVar[int] = 64
    #: initial timeline records (grown by doubling; a record is a point, a pid record and its two counts)
    TIMELINE_RECORDS: ClassVar[int] = 1 << 10

    def __init__(self, stop_at: int | None = None, start: int | None = None) -> None:
        self.ahead = PREFETCH_AHEAD  # a benchmark may set 0 to measure the kernel without prefetching
        self.stop_at = stop_at
        self._stop = _INT64_MAX if stop_at is None else max(-_INT64_MAX - 1, min(int(stop_at), _INT64_MAX))
        big, small = self.BLOCK_SLOTS, self.SMALL_SLOTS
        self._blocks = empty_table(BLOCK_INDEX_DTYPE, big)
        self._rows = empty_table(BLOCK_DTYPE, max(1, big // 2))
        self._pend = empty_table(PENDING_DTYPE, big)
        self._threads = empty_table(THREAD_DTYPE, small)
        self._hidx = empty_table(HEAP_INDEX_DTYPE, small)
        self._heaps = np.zeros(small // 2, HEAP_DTYPE)
        self._pidx = empty_table(PID_INDEX_DTYPE, small)
        self._pids = np.zeros(small // 2, PID_DTYPE)
        self._meta = np.zeros(N_META, np.int64)
        self._meta[M_FREE] = -1
        self._counts = np.zeros(len(ANOMALY_NAMES), np.int64)
        self._final: dict[str, Arr] | None = None
        self._snapshot: LiveBlocks | None = None
        self.rehashes = 0
        self._grid = new_grid()
        self._started = start is not None
        if start is not None:
            start_grid(self._grid, start)
        self._tl_last = np.zeros((self._pids.shape[0], 2), np.int64)
        self._tl_scratch = np.zeros((self._pids.shape[0], 2), np.int64)
        self._tl_rec = np.zeros((self.TIMELINE_RECORDS, N_RECORD), np.int64)
        self.timeline: Timeline | None = None

    # -- feeding

    def feed(self, ops: OpBatch) -> None:
        """Fold one batch (the next ops in time order)."""
        if self._final is not None:
            raise RuntimeError("Reducer.feed after finish()")
        n = len(ops)
        if not n:
            return
        # inserts[k]: Alloc/ReAlloc ops in ops[:k + 1], each of which may add one block and one pending entry
        inserts = np.cumsum((ops.op == OP_ALLOC) | (ops.op == OP_REALLOC), dtype=np.int64)
        if not self._started:  # the timeline starts at the first op that takes part
            takes_part = np.flatnonzero((ops.op != OP_ATTACH) & (ops.ts <= self._stop))
            if takes_part.shape[0]:
                start_grid(self._grid, int(ops.ts[takes_part[0]]))
                self._started = True
        i = 0
        while i < n:
            self._reserve(int(inserts[-1]) - (int(inserts[i - 1]) if i else 0))
            self._timeline_room()
            j = fold_kernel(ops.op, ops.ts, ops.pid, ops.tid, ops.serial, ops.heap, ops.addr, ops.size,
                            ops.old_addr, ops.source, ops.stack, i, n, self._stop,
                            self._blocks, self._rows, self._pend, self._threads, self._hidx, self._heaps,
                            self._pidx, self._pids, self._meta, self._counts, self.ahead,
                            self._grid, self._tl_last, self._tl_scratch, self._tl_rec)
            if j == i:  # pragma: no cover - _reserve always leaves room for the op the kernel stopped at
                raise AssertionError("reducer kernel made no progress")
            i = int(j)

    def _reserve(self, inserts: int) -> None:
        """Make room before a kernel call that has ``inserts`` Alloc/ReAlloc ops left to fold.

        The block and pending tables stay at most half full (live + stale entries): when the room left is
        less than ``inserts`` and less than 1/8 of the table, the table is rebuilt without its stale entries,
        doubled until what is live fits under 3/8, so the call can take at least 1/8 of the table's slots (or
        all it needs) before the kernel's own half-full check stops it. The tables are thus sized by the live
        blocks, never by the batch: a batch that frees as much as it allocates runs in one call, in a small
        table. The thread, heap and pid tables get room for one more entry each.
        """
        m = self._meta
        blocks, pend, threads = self._blocks, self._pend, self._threads
        if blocks.shape[0] // 2 - int(m[M_BLOCKS]) < min(inserts, max(1, blocks.shape[0] // 8)):
            new = empty_table(BLOCK_INDEX_DTYPE, self._grown(blocks.shape[0], self.live_blocks))
            m[M_BLOCKS] = index_rebuild(blocks, self._rows, self._heaps, new, m)
            self._blocks = new
            self.rehashes += 1
        rows = self._rows
        if rows.shape[0] - int(m[M_ROWS]) + int(m[M_FREE_ROWS]) < 1:
            # in place: for large rows a realloc moves pages, it does not copy them; the new rows are zeros, so
            # they are memory at once: an eighth at a time
            rows.resize(rows.shape[0] + max(rows.shape[0] // 8, 1), refcheck=False)
        if pend.shape[0] // 2 - int(m[M_PENDING]) < min(inserts, max(1, pend.shape[0] // 8)):
            waiting = np.empty(pend.shape[0], np.bool_)
            pending_waiting(pend, self._blocks, self._rows, self._heaps, waiting)
            without_stack = int(self._heaps["nostack"][: m[M_HEAPS]].sum())
            self._pend, m[M_PENDING] = rehashed(pend, waiting, self._grown(pend.shape[0], without_stack))
            self.rehashes += 1
        if m[M_THREADS] >= threads.shape[0] // 2:
            prec = threads["prec"]
            current = (prec >= 0) & (threads["epoch"] == self._pids["epoch"][np.maximum(prec, 0)])
            kept = int(current.sum())
            cap = threads.shape[0] if (kept + 1) * 4 <= threads.shape[0] else self._grown(threads.shape[0], kept + 1)
            self._threads, m[M_THREADS] = rehashed(threads, current, cap)
        if int(m[M_HEAPS]) >= min(self._hidx.shape[0] // 2, self._heaps.shape[0]):
            self._heaps = self._doubled(self._heaps, int(m[M_HEAPS]))
            self._hidx, _ = rehashed(self._hidx, self._hidx["hrec"] >= 0, 2 * self._hidx.shape[0])
        if int(m[M_PIDS]) >= min(self._pidx.shape[0] // 2, self._pids.shape[0]):
            self._pids = self._doubled(self._pids, int(m[M_PIDS]))
            self._pidx, _ = rehashed(self._pidx, self._pidx["prec"] >= 0, 2 * self._pidx.shape[0])
            last = np.zeros((self._pids.shape[0], 2), np.int64)
            last[: self._tl_last.shape[0]] = self._tl_last
            self._tl_last, self._tl_scratch = last, np.zeros_like(last)

    def _timeline_room(self) -> None:
        """Room for one record per pid record: what the first point an op passes may write (the points after it,
        in the same op, repeat its state and write none), so that every kernel call makes progress."""
        rec = self._tl_rec
        used = int(self._grid[G_RECORDS])
        if rec.shape[0] - used < self._pids.shape[0]:
            cap = rec.shape[0]
            while cap - used < self._pids.shape[0]:
                cap *= 2
            grown = np.zeros((cap, N_RECORD), np.int64)
            grown[:used] = rec[:used]
            self._tl_rec = grown

    @staticmethod
    def _grown(cap: int, need: int) -> int:
        """A capacity keeping ``need`` entries under 3/8 load: a rebuild leaves room for >= cap/8 inserts."""
        while need * 8 > cap * 3:
            cap *= 2
        return cap

    @staticmethod
    def _doubled(records: Arr, used: int) -> Arr:
        """A dense record array twice as long, its first ``used`` records kept in place (others name them)."""
        out = np.zeros(2 * records.shape[0], records.dtype)
        out[:used] = records[:used]
        return out

    # -- the end

    def finish(self, end: int | None = None, stacks: Callable[[Arr], Arr] | None = None) -> None:
        """End of trace: end the blocks overlapped by younger ones, count the stackless, freeze the live blocks
        and the timeline (its end at raw time ``end``, the trace's last, or at ``stop_at`` if earlier, and never
        before the last op folded). ``stacks``: maps the live blocks' stack column (as the ops gave it) to the
        snapshot's, once the live blocks are known and before their columns are made (the job resolves deferred
        stack walks there and lets the trace's reader go: its memory is gone before the columns come).

        Idempotent; :meth:`feed` is refused afterwards.
        """
        if self._final is not None:
            return
        t_end = self._timeline_end(end)
        if t_end is not None:
            self._timeline_room()
            if not advance(t_end, self._grid, self._heaps, self._meta, self._tl_last, self._tl_scratch,
                           self._tl_rec):  # pragma: no cover - _timeline_room leaves room for a point
                raise AssertionError("timeline: no room for a point")
        rows, pid, heap = self._live_rows(stacks)
        dead = find_overlaps({"pid": pid, "heap": heap, "addr": rows["addr"], "size": rows["size"],
                              "ts": rows["ts"], "serial": rows["serial"]})
        if dead.any():
            self._counts[K_OVERLAP] += int(dead.sum())
            end_rows(rows, dead, self._heaps, self._counts, K_EVENT_WITHOUT_STACK)
            keep = ~dead
            rows.resize(compact_rows(rows, rows.shape[0], self._heaps, keep), refcheck=False)
            pid, heap = pid[keep], heap[keep]
        if t_end is not None:
            self.timeline = self._timeline(t_end)
        nh = int(self._meta[M_HEAPS])
        self._counts[K_EVENT_WITHOUT_STACK] += int(self._heaps["nostack"][:nh].sum())
        cols = self._columns(rows)
        cols.update(pid=pid, heap=heap)
        self._final = {name: cols[name] for name in LIVE_COLUMNS}
        self._snapshot = LiveBlocks(pid=pid, heap=heap, addr=cols["addr"], size=cols["size"], ts=cols["ts"],
                                    source=cols["source"], stack=cols["stack"])

    def _live_rows(self, stacks: Callable[[Arr], Arr] | None) -> tuple[Arr, Arr, Arr]:
        """The rows of the live blocks, sorted by (pid, heap, addr) in place, their stacks mapped by ``stacks``,
        and each one's pid and heap handle.

        The index and the pending table go first (nothing looks a block up any more); the live rows move to the
        front and the rows shrink to them, then a permutation sorts them where they are.
        """
        m = self._meta
        self._blocks = empty_table(BLOCK_INDEX_DTYPE, 2)
        self._pend = empty_table(PENDING_DTYPE, 2)
        rows = self._rows
        n = compact_rows(rows, int(m[M_ROWS]), self._heaps, np.zeros(0, np.bool_))
        rows.resize(n, refcheck=False)
        m[M_ROWS], m[M_FREE], m[M_FREE_ROWS] = n, -1, 0
        heaps = self._heaps[: int(m[M_HEAPS])]
        rank = np.empty(heaps.shape[0], np.int64)  # heap records in (pid, heap handle) order
        rank[np.lexsort((heaps["heap"], heaps["pid"]))] = np.arange(heaps.shape[0])
        order = np.lexsort((rows["addr"], rank[rows["hrec"]]))
        permute_rows(rows, order, np.zeros(1, BLOCK_DTYPE))
        del order
        if stacks is not None:
            rows["stack"] = stacks(np.ascontiguousarray(rows["stack"]))
        hrec = rows["hrec"]
        return rows, heaps["pid"][hrec], heaps["heap"][hrec]

    @staticmethod
    def _columns(rows: Arr) -> dict[str, Arr]:
        """The rows' columns, taken a part at a time from the end while the rows shrink: rows and columns are
        never both whole."""
        n = rows.shape[0]
        cols = {name: np.empty(n, rows.dtype[name]) for name in _ROW_COLUMNS}
        part = max(_PART_ROWS, n // 16)
        hi = n
        while hi > 0:
            lo = max(0, hi - part)
            for name in _ROW_COLUMNS:
                cols[name][lo:hi] = rows[name][lo:hi]
            rows.resize(lo, refcheck=False)
            hi = lo
        return cols

    def _timeline_end(self, end: int | None) -> int | None:
        """Raw time of the timeline's end point; None when no op took part (no timeline)."""
        last = int(self._grid[G_LAST])
        if last == INT64_MIN:
            return None
        return last if end is None else max(last, min(int(end), self._stop))

    def _timeline(self, t_end: int) -> Timeline:
        """The end point sampled (after the overlap pass), and the finished timeline."""
        self._timeline_room()
        if not sample_end(self._grid, self._heaps, self._meta, self._tl_last, self._tl_scratch,
                          self._tl_rec):  # pragma: no cover - _timeline_room leaves room for a point
            raise AssertionError("timeline: no room for the end point")
        g = self._grid
        points = int(g[G_NEXT])
        raw = np.empty(points + 1, np.int64)
        raw[:points] = int(g[G_START]) + np.arange(points, dtype=np.int64) * int(g[G_STEP])
        raw[points] = t_end
        rec = self._tl_rec[: int(g[G_RECORDS])]
        tl = Timeline(raw=raw, point=rec[:, R_POINT].copy(), pid=self._pids["pid"][rec[:, R_PREC]],
                      blocks=rec[:, R_BLOCKS].copy(), bytes=rec[:, R_BYTES].copy())
        self._tl_rec = self._tl_rec[:0]
        return tl

    def snapshot(self) -> LiveBlocks:
        """The live blocks at the end (calls :meth:`finish` if it was not called yet)."""
        self.finish()
        assert self._snapshot is not None
        return self._snapshot

    def live_columns(self) -> dict[str, Arr]:
        """The live blocks at the end as :data:`LIVE_COLUMNS`: the rows of :meth:`snapshot`, with each block's
        thread and the serial of the event that made it live (what tests compare a model with)."""
        self.finish()
        assert self._final is not None
        return self._final

    # -- results

    @property
    def anomalies(self) -> dict[str, int]:
        """Kind -> count, non-zero kinds only."""
        return {name: int(c) for name, c in zip(ANOMALY_NAMES, self._counts.tolist(), strict=True) if c}

    @property
    def live_blocks(self) -> int:
        return int(self._heaps["blocks"][: self._meta[M_HEAPS]].sum())

    @property
    def live_bytes(self) -> int:
        return sum(self._heaps["bytes"][: self._meta[M_HEAPS]].tolist())
