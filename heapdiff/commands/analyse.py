"""Each trace read once, reduced, filtered and grouped: the pipeline's per-trace half, on threads of its own.

The two traces of a diff are analysed at the same time, each on a thread, and each trace's reducer folds on a
further thread while its reader goes on (:class:`_ReducerThread`): the record walk, the matching, the ops and
the reducer are JIT kernels that release the GIL, so the threads keep both cores busy with one interpreter.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from heapdiff.document.build import TraceAnalysis
from heapdiff.document.model import Role
from heapdiff.errors import SelectionError
from heapdiff.etl.sequences import InternedStacks
from heapdiff.etl.trace import TraceFile
from heapdiff.events.images import ImageMap
from heapdiff.events.ops import OpBatch
from heapdiff.events.scan import Progress, TraceScan, scan
from heapdiff.frames import Symbolizer
from heapdiff.grouping import group_blocks
from heapdiff.reduce import LiveBlocks, Reducer
from heapdiff.reduce.timeline import Timeline
from heapdiff.symbolize import FrameNamer
from heapdiff.window import (
    NO_WINDOW,
    ResolvedWindow,
    WindowRequest,
    allocated_in,
    clock_of,
    outside,
    resolve_time,
    resolve_window,
    stop_raw,
)

#: live blocks' stacks resolved at once, at most
_RESOLVE_PART = 1 << 19


@dataclass(frozen=True)
class Selection:
    """Which blocks to keep: of processes by image name (every trace) or pid (one per trace, or None), allocated
    in a window and measured at its ``at`` (heapdiff.window)."""

    process: str | None = None
    pid: int | None = None
    window: WindowRequest = NO_WINDOW


class _ReducerThread:
    """The reducer on a thread of its own, fed through a short queue: the reader and the reducer of one trace run
    at the same time, since each is a JIT kernel that releases the GIL.

    Op batches are fresh arrays made for the reducer, so handing them over needs no copy; the queue bounds what
    waits to a few batches. An error in the reducer is raised in the reading thread at its next hand-over, or
    when the scan ends (the queue is drained meanwhile, so the reader never blocks on a dead consumer).
    """

    #: op batches waiting at most (each a chunk's heap events)
    DEPTH = 4

    def __init__(self, red: Reducer) -> None:
        self._red = red
        self._queue: queue.Queue[OpBatch | None] = queue.Queue(self.DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="heapdiff-reducer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            ops = self._queue.get()
            if ops is None:
                return
            if self._error is None:
                try:
                    self._red.feed(ops)
                except BaseException as e:  # handed to the reading thread by put() or close()
                    self._error = e

    def put(self, ops: OpBatch) -> None:
        """Hand a batch over; raises the reducer's error, if it failed, so that the scan stops early."""
        if self._error is not None:
            raise self._error
        self._queue.put(ops)

    def close(self, raise_error: bool = True) -> None:
        """Wait until every batch is folded; raise the reducer's error, if any and if asked."""
        self._queue.put(None)
        self._thread.join()
        if raise_error and self._error is not None:
            raise self._error


class TraceRead(NamedTuple):
    """One trace read through the reducer."""

    scan: TraceScan
    #: the outstanding blocks at its end (or at ``stop_at``)
    live: LiveBlocks
    #: the reducer's anomalies
    anomalies: dict[str, int]
    #: what each process held over the trace's time, from the header's T0 to its end (None: no heap op)
    timeline: Timeline | None


def read_trace(tf: TraceFile, progress: Progress | None = None, stop_at: int | None = None) -> TraceRead:
    """Scan one trace through the reducer (ops past raw time ``stop_at`` ignored: see :class:`Reducer`)."""
    red = Reducer(stop_at, start=tf.header.t0)
    pipe = _ReducerThread(red)
    try:
        result = scan(tf, heap_sink=pipe.put, progress=progress)
    except BaseException:
        pipe.close(raise_error=False)  # the scan's error is the one to report
        raise
    pipe.close()

    def resolved(stacks: np.ndarray) -> np.ndarray:
        """The live blocks' deferred stack walks interned, a part at a time (interning makes a few columns per
        reference: with millions of live blocks, all at once would be the job's peak), then the reader let go."""
        out = np.empty_like(stacks)
        for lo in range(0, stacks.shape[0], _RESOLVE_PART):
            out[lo:lo + _RESOLVE_PART] = result.resolve_stacks(stacks[lo:lo + _RESOLVE_PART])
        result.release_reader()
        return out

    red.finish(end=result.last_ts, stacks=resolved)
    return TraceRead(result, red.snapshot(), dict(red.anomalies), red.timeline)


def _holds(s: TraceScan) -> str:
    procs = sorted({(p.image_name, p.pid) for p in s.processes})
    if not procs:
        return "it holds no process events"
    shown = ", ".join(f"{name} ({pid})" for name, pid in procs[:12])
    return f"it holds {shown}" + (f" and {len(procs) - 12} more" if len(procs) > 12 else "")


def select(s: TraceScan, live: LiveBlocks, sel: Selection) -> tuple[LiveBlocks, frozenset[int] | None]:
    """The blocks of the selected processes and the pids kept (None: no filter). A filter that matches no process
    of the trace raises :class:`SelectionError` naming the processes it holds: an empty report would look clean."""
    chosen: set[int] | None = None
    if sel.process is not None:
        want = sel.process.lower()
        chosen = {p.pid for p in s.processes if p.image_name.lower() in (want, want + ".exe")}
        if not chosen:
            raise SelectionError(f"--process {sel.process}: no such process in {s.path}; {_holds(s)}")
    if sel.pid is not None:
        known = any(p.pid == sel.pid for p in s.processes) or bool(np.any(live.pid == sel.pid))
        if not known:
            raise SelectionError(f"--pid {sel.pid}: no such process in {s.path}; {_holds(s)}")
        if chosen is not None and sel.pid not in chosen:
            raise SelectionError(f"--pid {sel.pid} is not a {sel.process} process in {s.path}; {_holds(s)}")
        chosen = {sel.pid}
    if chosen is None:
        return live, None
    return live.take(np.isin(live.pid, np.fromiter(chosen, np.int64, len(chosen)))), frozenset(chosen)


def analyse_trace(tf: TraceFile, role: Role, sel: Selection, kernel_frames: bool,
                  progress: Progress | None = None, symbolizer: Symbolizer | None = None) -> TraceAnalysis:
    """Everything one trace contributes: read, reduce, filter, name the frames, group."""
    s, live_all, red_anoms, timeline = read_trace(tf, progress, _stop_at(tf, sel.window))
    window: ResolvedWindow | None = None
    notes: tuple[str, ...] = ()
    if sel.window.given:
        clock = clock_of(s.header, s.last_ts, s.marks)
        window = resolve_window(sel.window, clock, s.path)
        notes = tuple(f"{s.path}: {line}" for line in outside(window, clock))
        keep = allocated_in(live_all.ts, window, s.header)
        if keep is not None:
            live_all = live_all.take(keep)
    live, chosen = select(s, live_all, sel)
    h = s.header
    totals = (timeline.totals(chosen, lambda raw: h.raw_to_filetime(raw) - h.start_filetime)
              if timeline is not None else None)
    images = ImageMap(s.images, s.pointer_size, s.image_ids)
    grouping = group_blocks(live, s.sequences, images, kernel_frames, FrameNamer(images, symbolizer),
                            timeline=totals.raw if totals is not None else None)
    anomalies = dict(s.anomalies.as_dict())
    for k, v in red_anoms.items():
        if v:
            anomalies[k] = anomalies.get(k, 0) + int(v)
    s.sequences = InternedStacks()  # the frames now live in the groups' strings: let the table go
    return TraceAnalysis(role, s, live, anomalies, grouping, chosen, tuple(s.notes) + notes, window, totals)


def _stop_at(tf: TraceFile, req: WindowRequest) -> int | None:
    """The reducer's stop for ``--at``. From the end or at a mark, the trace is read once before (without its heap
    events) for its last timestamp and its marks: the reducer must know where to stop before it starts."""
    if req.at is None:
        return None
    if req.at.needs_pass:
        pre = scan(tf)
        pre.release_reader()
        clock = clock_of(pre.header, pre.last_ts, pre.marks)
    else:
        clock = clock_of(tf.header, None, ())
    return stop_raw(resolve_time(req.at, clock, "--at", tf.path), tf.header)


def analyse_all(traces: Sequence[TraceFile], roles: Sequence[Role], selections: Sequence[Selection],
                kernel_frames: bool, progress: Sequence[Progress | None],
                meanwhile: Callable[[], None] | None = None, symbolizer: Symbolizer | None = None
                ) -> list[TraceAnalysis]:
    """Every trace at once, each on a thread of this process; ``meanwhile`` runs on this thread in the meantime
    (the report template compiles while the traces are read). The symbolizer is shared: it reads a PDB that
    both traces need once."""
    with ThreadPoolExecutor(max_workers=max(1, len(traces))) as pool:
        futs = [pool.submit(analyse_trace, tf, roles[i], selections[i], kernel_frames, progress[i], symbolizer)
                for i, tf in enumerate(traces)]
        if meanwhile is not None:
            meanwhile()
        return [f.result() for f in futs]
