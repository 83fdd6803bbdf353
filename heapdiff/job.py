"""The main job as a pure function: opened traces in, the JSON document, the HTML and a summary out.

Each trace is read once (reader -> events -> reducer); the two traces of a diff are read on two threads, and each
trace's reducer folds on a thread of its own while its reader goes on (:class:`_ReducerThread`), since the JIT
kernels release the GIL. Then the outstanding blocks are filtered (--process/--pid), grouped by signature,
diffed, and rendered.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from heapdiff import __version__
from heapdiff.diff import (
    HIST_LABELS,
    DiffRow,
    Group,
    Grouping,
    diff_groupings,
    group_blocks,
    sort_single,
)
from heapdiff.etl.logfile import iso_utc
from heapdiff.etl.sequences import InternedStacks
from heapdiff.etl.trace import TraceFile
from heapdiff.events.images import ImageMap
from heapdiff.events.kinds import HEAP_SOURCES
from heapdiff.events.ops import OpBatch
from heapdiff.events.scan import TraceScan, scan
from heapdiff.reduce import LiveBlocks, Reducer

SCHEMA = "heapdiff/1"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class JobOptions:
    process: str | None = None
    pids: tuple[int, ...] | None = None
    kernel_frames: bool = False
    min_bytes: int = 0
    top: int = 50


@dataclass
class TraceResult:
    role: str
    scan: TraceScan
    live: LiveBlocks
    anomalies: dict[str, int]
    images: ImageMap
    grouping: Grouping
    selected_pids: set[int] | None
    notes: list[str]


@dataclass(frozen=True)
class JobResult:
    doc: dict[str, Any]
    html: str
    summary: str
    growth_bytes: int


class _ReducerThread:
    """The reducer on a thread of its own, fed through a short queue: the reader and the reducer of one trace
    run at the same time.

    Why: each is a JIT kernel that releases the GIL, and the reducer is about a third of a trace's time, so a
    single trace used one core of two. Measured on the 10M benchmark trace, alternated: one trace read in
    3.24 s against 3.99 s (medians of five). A pair, whose two traces already keep both cores busy, reads as
    fast as before (5.3 s, medians of six): the idle core at the end of a pair (the first trace done while the
    other one finishes, 0.4-1.3 s) was not won back. Op batches are fresh arrays made
    for the reducer, so handing them over needs no copy; the queue bounds what waits to a few batches (about
    1 MB each). An error in the reducer is raised in the reading thread at its next hand-over, or when the
    scan ends (the queue is drained meanwhile, so the reader never blocks on a dead consumer).
    """

    #: op batches waiting at most (each a chunk's heap events: ~1 MB)
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


def read_trace(tf: TraceFile, progress: Progress | None = None) -> tuple[TraceScan, LiveBlocks, dict[str, int]]:
    """Scan one trace through the reducer: the scan, the outstanding blocks at its end, the reducer's anomalies."""
    red = Reducer()
    pipe = _ReducerThread(red)
    try:
        result = scan(tf, heap_sink=pipe.put, progress=progress)
    except BaseException:
        pipe.close(raise_error=False)  # the scan's error is the one to report
        raise
    pipe.close()
    red.finish()
    snap = red.snapshot()
    live = LiveBlocks(pid=snap.pid, heap=snap.heap, addr=snap.addr, size=snap.size, ts=snap.ts,
                       source=snap.source, stack=result.resolve_stacks(snap.stack))
    result.release_reader()
    return result, live, dict(red.anomalies)


def _select(s: TraceScan, live: LiveBlocks, process: str | None, pid: int | None) -> tuple[LiveBlocks,
                                                                                            set[int] | None,
                                                                                            list[str]]:
    notes: list[str] = []
    chosen: set[int] | None = None
    if process is not None:
        want = process.lower()
        chosen = {p.pid for p in s.processes
                  if p.image_name.lower() in (want, want + ".exe")}
        if not chosen:
            names = sorted({p.image_name for p in s.processes})
            notes.append(f"no process named {process!r} in {s.path}"
                         + (f" (processes: {', '.join(names[:10])})" if names else " (no process events)"))
    if pid is not None:
        chosen = {pid} if chosen is None else chosen & {pid}
        if not np.any(live.pid == pid) and not any(p.pid == pid for p in s.processes):
            notes.append(f"no process with pid {pid} in {s.path}")
    if chosen is None:
        return live, None, notes
    return live.take(np.isin(live.pid, np.fromiter(chosen, np.int64, len(chosen)))), chosen, notes


def analyse_trace(tf: TraceFile, role: str, opts: JobOptions, pid: int | None,
                  progress: Progress | None = None) -> TraceResult:
    """Everything one trace contributes: read, reduce, filter, group. Picklable in and out (a worker process)."""
    s, live_all, red_anoms = read_trace(tf, progress)
    live, chosen, notes = _select(s, live_all, opts.process, pid)
    images = ImageMap(s.images, s.pointer_size)
    grouping = group_blocks(live, s.sequences, images, opts.kernel_frames)
    anomalies = dict(s.anomalies.as_dict())
    for k, v in red_anoms.items():
        if v:
            anomalies[k] = anomalies.get(k, 0) + int(v)
    s.sequences = InternedStacks()  # the frames now live in the groups' strings: let the table go
    return TraceResult(role, s, live, anomalies, images, grouping, chosen, notes)


def run_job(traces: Sequence[TraceFile], opts: JobOptions,
            progress: Sequence[Progress | None] | None = None) -> JobResult:
    """The main job; the two traces of a diff are analysed at the same time (see :func:`_run_all`)."""
    from heapdiff.report.html import render_html
    from heapdiff.report.model import build_view, terminal_summary

    prog: list[Progress | None] = list(progress) if progress is not None else [None] * len(traces)
    roles = ["before", "after"] if len(traces) == 2 else ["trace"]
    pids: list[int | None] = list(opts.pids) if opts.pids is not None else [None] * len(traces)
    results = _run_all(traces, roles, opts, prog, pids)
    doc = build_document(results, opts)
    view = build_view(doc, top=opts.top, min_bytes=opts.min_bytes)
    html = render_html(view)
    summary = terminal_summary(view)
    tot = doc["totals"]
    growth = int(tot["delta"]["bytes"]) if "delta" in tot else int(tot["bytes"])
    return JobResult(doc, html, summary, growth)


def _run_all(traces: Sequence[TraceFile], roles: list[str], opts: JobOptions, prog: list[Progress | None],
             pids: list[int | None]) -> list[TraceResult]:
    """Every trace at once, each on a thread of this process, while this thread compiles the report template.

    The kernels (record walk, matching, ops, reducer) and numpy's sort release the GIL and are most of the time,
    so two threads keep both cores busy. Measured on the 10M benchmark pair against a worker process per trace:
    the same wall time (7.0-8.1 s vs 7.4 s) with one interpreter, numpy and numba instead of two (peak RSS
    ~390 MB against ~540 MB summed).
    """
    from heapdiff.report.html import prepare_html

    with ThreadPoolExecutor(max_workers=len(traces)) as pool:
        futs = [pool.submit(analyse_trace, tf, roles[i], opts, pids[i], prog[i]) for i, tf in enumerate(traces)]
        prepare_html()
        return [f.result() for f in futs]


# ------------------------------------------------------------------------------------------------------------
# the JSON document (schema heapdiff/1; fields are only ever added)
# ------------------------------------------------------------------------------------------------------------
def _bb(blocks: int, nbytes: int) -> dict[str, int]:
    return {"blocks": int(blocks), "bytes": int(nbytes)}


def _trace_doc(r: TraceResult) -> dict[str, Any]:
    s = r.scan
    h = s.header
    live = r.live
    by_pid: dict[str, dict[str, int]] = {}
    if len(live):
        pids, inv = np.unique(live.pid, return_inverse=True)
        blocks = np.bincount(inv)
        nbytes = np.bincount(inv, weights=None if not len(live) else live.size.astype(np.float64))
        # exact sums (float weights could round above 2**53): recompute with integer adds
        sums = np.zeros(len(pids), np.int64)
        np.add.at(sums, inv, live.size.astype(np.int64))
        del nbytes
        for p, b, y in zip(pids.tolist(), blocks.tolist(), sums.tolist(), strict=True):
            by_pid[str(int(p))] = _bb(b, y)
    procs: dict[int, dict[str, Any]] = {}
    for p in s.processes:
        if r.selected_pids is not None and p.pid not in r.selected_pids:
            continue
        procs.setdefault(p.pid, {"pid": p.pid, "image_name": p.image_name, "command_line": p.command_line})
    live_pids = set(int(x) for x in np.unique(live.pid).tolist()) if len(live) else set()
    shown = [procs[p] for p in sorted(procs) if p in live_pids or r.selected_pids is not None]
    return {
        "role": r.role,
        "path": s.path,
        "pointer_size": h.pointer_size,
        "start_utc": iso_utc(h.start_utc),
        "end_utc": iso_utc(h.raw_to_utc(s.last_ts) if s.last_ts is not None else h.end_utc),
        "records": s.records,
        "events": dict(s.events),
        "events_lost": h.events_lost,
        "buffers_lost": h.buffers_lost,
        "stack_refs": s.stack_refs,
        "stacks_matched": s.stacks_matched,
        "outstanding": _bb(len(live), int(live.size.astype(np.int64).sum()) if len(live) else 0),
        "outstanding_by_pid": by_pid,
        "unmatched_frees": int(r.anomalies.get("unmatched_frees", 0)),
        "anomalies": dict(sorted(r.anomalies.items())),
        "processes": shown,
        "unresolved_frames": {"frames": r.grouping.frames, "unresolved": r.grouping.unresolved},
        "notes": r.notes,
    }


def _source_name(k: int) -> str:
    name = HEAP_SOURCES.get(k)
    return name if name is not None else f"source {k}"


def _group_common(g: Group, times: dict[int, str]) -> dict[str, Any]:
    hist = g.histogram.tolist()
    return {
        "stack": list(g.signature),
        "stack_display": list(g.display),
        "module": g.module,
        "heaps": [f"0x{x:x}" for x in sorted(g.heaps)],
        "sources": {_source_name(k): int(v) for k, v in sorted(g.sources.items())},
        "size_histogram": {HIST_LABELS[i]: c for i, c in enumerate(hist) if c},
        "first_alloc_utc": times[g.first_ts],
        "last_alloc_utc": times[g.last_ts],
        "sample_addresses": [f"0x{a:x}" for a in g.sample_addresses],
    }


def _group_times(r: TraceResult) -> dict[int, str]:
    """Raw timestamp -> ISO text of every group's first and last Alloc in a trace, formatted in one pass."""
    raws = sorted({t for g in r.grouping.groups.values() for t in (g.first_ts, g.last_ts)})
    return dict(zip(raws, r.scan.header.raw_to_iso_many(raws), strict=True))


def _diff_group(row: DiffRow, times_before: dict[int, str], times_after: dict[int, str]) -> dict[str, Any]:
    # descriptive fields from the run where the group is outstanding now (after), else before
    if row.after is not None:
        d = _group_common(row.after, times_after)
        if row.before is not None:
            d["heaps_before"] = [f"0x{x:x}" for x in sorted(row.before.heaps)]
    else:
        assert row.before is not None
        d = _group_common(row.before, times_before)
    b = row.before
    a = row.after
    bb, by = (b.blocks, b.bytes) if b is not None else (0, 0)
    ab, ay = (a.blocks, a.bytes) if a is not None else (0, 0)
    d["before"] = {"blocks": bb, "bytes": by}
    d["after"] = {"blocks": ab, "bytes": ay}
    d["delta"] = {"blocks": ab - bb, "bytes": ay - by}
    d["status"] = row.status
    return d


def build_document(results: list[TraceResult], opts: JobOptions) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "mode": "diff" if len(results) == 2 else "single",
        "generator": f"heapdiff {__version__}",
        "filters": {"process": opts.process, "pid": list(opts.pids) if opts.pids else None,
                    "kernel_frames": opts.kernel_frames, "min_bytes": opts.min_bytes, "top": opts.top},
        "traces": [_trace_doc(r) for r in results],
    }
    if len(results) == 2:
        before, after = results
        rows = diff_groupings(before.grouping, after.grouping)
        tb_, ta_ = _group_times(before), _group_times(after)
        groups = [_diff_group(r, tb_, ta_) for r in rows]
        tb = _bb(len(before.live), int(before.live.size.astype(np.int64).sum()) if len(before.live) else 0)
        ta = _bb(len(after.live), int(after.live.size.astype(np.int64).sum()) if len(after.live) else 0)
        doc["totals"] = {"before": tb, "after": ta,
                         "delta": _bb(ta["blocks"] - tb["blocks"], ta["bytes"] - tb["bytes"])}
    else:
        (only,) = results
        groups = []
        times = _group_times(only)
        for g in sort_single(only.grouping):
            d = _group_common(g, times)
            d["blocks"] = g.blocks
            d["bytes"] = g.bytes
            groups.append(d)
        doc["totals"] = _bb(len(only.live), int(only.live.size.astype(np.int64).sum()) if len(only.live) else 0)
    doc["groups"] = groups
    return doc
