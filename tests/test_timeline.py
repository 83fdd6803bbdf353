"""The memory timeline (heapdiff.reduce.timeline): sampled by the fold kernel, checked point by point against plain
replays: the reducer's dict model on random op streams (hypothesis), and the writer's own event log of a written
trace read by the job; the grid's doubling, its saturation, one event, no event, ``stop_at``, many processes.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Set
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CliResult
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nojit import interpreted
from test_reduce import Model, TinyReducer, form_ops, materialise, plain_op, random_trace, to_batch

from heapdiff import _jit
from heapdiff.commands.analyse import Selection, analyse_trace, read_trace
from heapdiff.document import decode_value
from heapdiff.document.build import trace_record
from heapdiff.document.decode import decode
from heapdiff.document.encode import encode
from heapdiff.errors import DocumentError
from heapdiff.etl.trace import open_trace
from heapdiff.events.ops import OP_ALLOC, OP_ATTACH, OP_FREE, OpBatch
from heapdiff.reduce import Reducer
from heapdiff.reduce.timeline import GRID_POINTS, INT64_MAX, Timeline
from heapdiff.report.view_build import build_view
from heapdiff.tracegen.scenario import Module, Process, Scenario
from heapdiff.tracegen.writer import TraceWriter


class TinyTimeline(TinyReducer):
    """Tiny tables and room for one timeline record: every new process and most points grow something."""

    TIMELINE_RECORDS = 1


def _totals(live: dict[tuple[int, int, int], Any], pids: Set[int] | None) -> tuple[int, int]:
    sizes = [b.size if hasattr(b, "size") else b for k, b in live.items() if pids is None or k[0] in pids]
    return len(sizes), sum(sizes)


def _check_grid(tl: Timeline, start: int, t_end: int) -> None:
    """Points evenly spaced from ``start`` by a power of two, the finest step that fits them, then the end."""
    raw = tl.raw.tolist()
    assert len(raw) <= GRID_POINTS + 1
    assert raw[-1] == t_end
    assert all(a < b for a, b in itertools.pairwise(raw))
    grid = raw[:-1]
    if len(grid) >= 2:
        step = grid[1] - grid[0]
        assert step & (step - 1) == 0
        assert grid == [start + k * step for k in range(len(grid))]
        if step > 1:  # half the step would need more points than the grid has
            assert (t_end - start - 1) // (step // 2) + 1 > GRID_POINTS
    elif grid:
        assert grid[0] == start


# ---------------------------------------------------------------------------------------- against the model


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=st.lists(st.one_of(plain_op.map(lambda g: [g]), form_ops), min_size=1, max_size=60),
       cuts=st.lists(st.integers(0, 200), max_size=8), stop=st.one_of(st.none(), st.integers(0, 150)),
       tiny=st.booleans(), scale=st.sampled_from([1, 7, 100, 5000]), start=st.one_of(st.none(), st.integers(0, 40)),
       end_extra=st.one_of(st.none(), st.integers(-50, 400)))
def test_timeline_is_the_models_state_at_every_point(groups: list[list[dict[str, int]]], cuts: list[int],
                                                     stop: int | None, tiny: bool, scale: int, start: int | None,
                                                     end_extra: int | None) -> None:
    """At each point, every process's counts are the model's after the ops up to the point's time; the end point
    is the model after its overlap pass; sums over a subset of processes add up the same way."""
    rows = materialise(groups)
    for r in rows:  # spread the ops in time (scale 5000: the grid doubles several times)
        r["ts"] *= scale
    stop_raw = None if stop is None else stop * scale
    red = (TinyTimeline if tiny else Reducer)(stop_raw, start=None if start is None else start * scale)
    for lo, hi in itertools.pairwise(sorted({0, len(rows), *(c for c in cuts if c < len(rows))})):
        red.feed(to_batch(rows[lo:hi]))
    end = None if end_extra is None else rows[-1]["ts"] + end_extra * scale
    red.finish(end)
    folded = [r for r in rows if r["op"] != OP_ATTACH and (stop_raw is None or r["ts"] <= stop_raw)]
    tl = red.timeline
    if not folded:
        assert tl is None
        return
    assert tl is not None
    last = max(r["ts"] for r in folded)
    t_end = last if end is None else max(last, min(end, stop_raw if stop_raw is not None else end))
    first = folded[0]["ts"] if start is None else start * scale
    _check_grid(tl, first, t_end)
    # replay: the model's state at each point but the last (before the first op past it), then after finish
    model = Model(stop_raw)
    want: dict[frozenset[int] | None, list[tuple[int, int]]] = defaultdict(list)
    subsets: list[frozenset[int] | None] = [None, frozenset({1}), frozenset({2}), frozenset()]
    points = tl.raw.tolist()[:-1]
    j = 0
    for r in rows:
        if r["op"] != OP_ATTACH and (stop_raw is None or r["ts"] <= stop_raw):
            while j < len(points) and points[j] < r["ts"]:
                for sub in subsets:
                    want[sub].append(_totals(model.live, sub))
                j += 1
        model.apply(r)
    while j < len(points):
        for sub in subsets:
            want[sub].append(_totals(model.live, sub))
        j += 1
    model.finish()
    for sub in subsets:
        want[sub].append(_totals(model.live, sub))
        got = tl.totals(sub)
        assert list(zip(got.blocks.tolist(), got.bytes.tolist(), strict=True)) == want[sub], sub
    assert (int(tl.totals().blocks[-1]), int(tl.totals().bytes[-1])) == red.snapshot().totals()


def test_doubling_keeps_every_kept_point_exact() -> None:
    """An alloc every raw unit for 20,000 units from 0: the step doubles from 1 to 32, and each kept point is the
    state at its time (point t holds t + 1 blocks), with records of dropped points moved onto kept ones."""
    n = 20_000
    ts = np.arange(n, dtype=np.int64)
    red = Reducer(start=0)
    for lo in range(0, n, 777):
        hi = min(n, lo + 777)
        red.feed(OpBatch.from_columns(op=np.full(hi - lo, OP_ALLOC, np.uint8), ts=ts[lo:hi],
                                      pid=np.ones(hi - lo, np.int64), serial=ts[lo:hi],
                                      heap=np.full(hi - lo, 0x10000, np.uint64),
                                      addr=(0x1000 + 16 * ts[lo:hi]).astype(np.uint64),
                                      size=np.full(hi - lo, 8, np.uint64)))
    red.finish()
    tl = red.timeline
    assert tl is not None
    _check_grid(tl, 0, n - 1)
    assert tl.raw[1] - tl.raw[0] == 32
    tot = tl.totals()
    assert tot.blocks.tolist() == [t + 1 for t in tl.raw.tolist()]
    assert tot.bytes.tolist() == [8 * (t + 1) for t in tl.raw.tolist()]
    assert tl.point.shape[0] == len(tl)  # one record per point: the doublings merged the dropped ones


def test_a_gap_far_past_the_grid_and_the_step_limit() -> None:
    """Ops at 1, 2**40 and near the largest raw time: the step doubles until the grid covers them, then stops
    doubling where it would overflow; every point is still exact and the end is the last op."""
    times = [1, 1 << 40, INT64_MAX - 5, INT64_MAX - 1]
    red = Reducer(start=0)
    red.feed(OpBatch.from_columns(op=[OP_ALLOC, OP_ALLOC, OP_FREE, OP_ALLOC], ts=times, pid=[1, 1, 1, 1],
                                  serial=[0, 1, 2, 3], heap=[16] * 4, addr=[0x100, 0x200, 0x100, 0x300],
                                  size=[8, 16, 0, 32]))
    red.finish()
    tl = red.timeline
    assert tl is not None
    raw = tl.raw.tolist()
    assert raw[-1] == INT64_MAX - 1 and all(a < b for a, b in itertools.pairwise(raw))
    assert len(raw) <= GRID_POINTS + 1
    state = {1: (1, 8), 1 << 40: (2, 24), INT64_MAX - 5: (1, 16), INT64_MAX - 1: (2, 48)}
    tot = tl.totals()
    for t, b, y in zip(raw, tot.blocks.tolist(), tot.bytes.tolist(), strict=True):
        done = [v for k, v in state.items() if k <= t]
        assert (b, y) == (done[-1] if done else (0, 0)), t


def test_one_event_and_none() -> None:
    """One Alloc: zeros up to it, then the end point with its block. No op, or only Attach ops: no timeline."""
    red = Reducer(start=100)
    red.feed(OpBatch.from_columns(op=[OP_ALLOC], ts=[5000], pid=[3], serial=[0], heap=[16], addr=[0x100],
                                  size=[24]))
    red.finish(end=4000)  # an end before the last op: the op wins
    tl = red.timeline
    assert tl is not None
    _check_grid(tl, 100, 5000)
    tot = tl.totals()
    assert tot.blocks.tolist() == [0] * (len(tl) - 1) + [1] and tot.bytes[-1] == 24
    assert tl.totals(frozenset({4})).bytes.tolist() == [0] * len(tl)
    empty = Reducer(start=0)
    empty.finish(end=10**6)
    assert empty.timeline is None
    attach_only = Reducer()
    attach_only.feed(OpBatch.from_columns(op=[OP_ATTACH], ts=[7], serial=[3], stack=[1]))
    attach_only.finish()
    assert attach_only.timeline is None


def test_stop_at_ends_the_timeline() -> None:
    """Ops past ``stop_at`` are ignored: the timeline ends at ``stop_at`` (the trace goes on), not at the end."""
    red = Reducer(stop_at=250, start=0)
    red.feed(OpBatch.from_columns(op=[OP_ALLOC, OP_ALLOC, OP_FREE], ts=[100, 200, 300], pid=[1, 1, 1],
                                  serial=[0, 1, 2], heap=[16] * 3, addr=[0x100, 0x200, 0x100], size=[8, 8, 0]))
    red.finish(end=1000)
    tl = red.timeline
    assert tl is not None
    _check_grid(tl, 0, 250)
    assert tl.totals().blocks[-1] == 2


def test_a_clock_merges_points_of_one_time_and_clamps_the_start() -> None:
    red = Reducer(start=10)
    red.feed(OpBatch.from_columns(op=[OP_ALLOC, OP_ALLOC], ts=[5, 40], pid=[1, 1], serial=[0, 1], heap=[16, 16],
                                  addr=[0x100, 0x200], size=[8, 8]))
    red.finish()
    tl = red.timeline
    assert tl is not None and tl.raw.tolist() == [*range(10, 40), 40]
    coarse = tl.totals(clock=lambda raw: (raw - 10) // 8)   # 8 raw units per clock unit
    assert coarse.ticks.tolist() == [0, 1, 2, 3]
    assert coarse.raw.tolist() == [17, 25, 33, 40]          # the last raw time of each clock time
    assert coarse.blocks.tolist() == [1, 1, 1, 2]
    early = tl.totals(clock=lambda raw: raw - 20)           # times before the start count as the start
    assert early.ticks[0] == 0 and early.raw[0] == 20


def test_many_processes_grow_the_records() -> None:
    """300 processes in tiny tables with room for one record: the records and the per-process arrays grow."""
    rows = []
    for i in range(3000):
        p = 1 + i % 300
        rows.append({"op": OP_ALLOC if i % 4 else OP_FREE, "ts": 10 * i, "pid": p, "tid": 1, "heap": 0x10000,
                     "addr": 0x1000 + 16 * (i // 4), "size": 8 + i % 7, "old_addr": 0, "source": 3,
                     "serial": i, "stack": -1})
    red = TinyTimeline(start=0)
    red.feed(to_batch(rows))
    red.finish()
    model = Model(None)
    for r in rows:
        model.apply(r)
    model.finish()
    tl = red.timeline
    assert tl is not None
    for pids in (None, frozenset({5}), frozenset(range(1, 300, 2))):
        got = tl.totals(pids)
        assert (int(got.blocks[-1]), int(got.bytes[-1])) == _totals(model.live, None if pids is None else set(pids))


# ------------------------------------------------------------------------------ a written trace, read by the job


class _LoggingWriter(TraceWriter):
    """The writer, logging each heap event and process end it writes: the replay below knows only this log."""

    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self.events: list[tuple[Any, ...]] = []

    def heap_alloc(self, ts: int, cpu: int, pid: int, tid: int, heap: int, size: int, addr: int,
                   *a: Any, **k: Any) -> None:
        self.events.append((ts, "alloc", pid, heap, addr, size))
        super().heap_alloc(ts, cpu, pid, tid, heap, size, addr, *a, **k)

    def heap_free(self, ts: int, cpu: int, pid: int, tid: int, heap: int, addr: int, *a: Any, **k: Any) -> None:
        self.events.append((ts, "free", pid, heap, addr))
        super().heap_free(ts, cpu, pid, tid, heap, addr, *a, **k)

    def heap_realloc(self, ts: int, cpu: int, pid: int, tid: int, heap: int, new_addr: int, old_addr: int,
                     new_size: int, *a: Any, **k: Any) -> None:
        self.events.append((ts, "realloc", pid, heap, new_addr, old_addr, new_size))
        super().heap_realloc(ts, cpu, pid, tid, heap, new_addr, old_addr, new_size, *a, **k)

    def heap_destroy(self, ts: int, cpu: int, pid: int, tid: int, heap: int, ptr: int | None = None) -> None:
        self.events.append((ts, "destroy", pid, heap))
        super().heap_destroy(ts, cpu, pid, tid, heap, ptr)

    def process(self, ts: int, cpu: int, pid: int, parent_pid: int, image_name: str, command_line: str = "",
                *a: Any, **k: Any) -> None:
        if k.get("kind") == "end":
            self.events.append((ts, "end", pid))
        super().process(ts, cpu, pid, parent_pid, image_name, command_line, *a, **k)


def _replay(events: list[tuple[Any, ...]], times: list[int], pids: set[int] | None = None) -> list[tuple[int, int]]:
    """Outstanding (blocks, bytes) of the processes ``pids`` (None: all) at each time: the events up to it,
    applied to a plain dict."""
    live: dict[tuple[int, int, int], int] = {}
    out = []
    ev = iter(sorted(events, key=lambda e: e[0]))
    pending = next(ev, None)
    for t in times:
        while pending is not None and pending[0] <= t:
            kind = pending[1]
            if kind == "alloc":
                live[pending[2:5]] = pending[5]
            elif kind == "free":
                live.pop(pending[2:5], None)
            elif kind == "realloc":
                live.pop((pending[2], pending[3], pending[5]), None)
                live[pending[2:5]] = pending[6]
            elif kind == "destroy":
                for key in [k for k in live if k[:2] == pending[2:4]]:
                    del live[key]
            else:
                for key in [k for k in live if k[0] == pending[2]]:
                    del live[key]
            pending = next(ev, None)
        out.append(_totals(live, pids))
    return out


SITE_A = [("ntdll.dll", 0x3A2F0), ("app.exe", 0x1100), ("app.exe", 0x1200)]
SITE_B = [("ntdll.dll", 0x3A2F0), ("app.exe", 0x1300)]


def _written_trace(path: Path) -> _LoggingWriter:
    """Two processes: allocs, frees, reallocs in place and moving, a heap destroyed, a process ended, frees of
    blocks from before the trace, quiet stretches; about 2,000 events over 5 s (the grid doubles ~16 times)."""
    w = _LoggingWriter(str(path), cpus=2, buffer_size=0x4000)
    sc = Scenario(w)
    mods = {"ntdll.dll": Module("ntdll.dll", "C:\\w\\ntdll.dll", 0x7FFA_0000_0000, 0x200000),
            "app.exe": Module("app.exe", "C:\\x\\app.exe", 0x7FF6_0000_0000, 0x100000)}
    p1 = Process(100, "app.exe", mods, heaps=[0x10000, 0x20000], threads=[8, 9])
    p2 = Process(200, "app.exe", dict(mods), heaps=[0x30000], threads=[12])
    sc.start_process(p1)
    sc.start_process(p2)
    sc.free(p1, 0x0BAD0000)                                   # a block from before the trace
    held: list[int] = []
    for i in range(600):
        held.append(sc.alloc(p1, SITE_A if i % 3 else SITE_B, 16 + (i % 50)))
        if i % 4 == 3:
            sc.free(p1, held.pop(0))
        if i % 25 == 0:
            held.append(sc.realloc(p1, SITE_B, held.pop(), 8, move=False))    # shrinks in place
        if i % 40 == 0:
            held.append(sc.realloc(p1, SITE_A, held.pop(0), 400, move=True))  # moves
        if i == 300:
            sc.tick(20_000_000)                                # 2 s with no event
    for i in range(200):
        sc.alloc(p1, SITE_B, 64, heap=p1.heaps[1])
        sc.alloc(p2, SITE_A, 32 + i)
    sc.free(p2, 0x0BAD1000)
    sc.destroy(p1, p1.heaps[1])
    sc.tick(30_000_000)
    sc.end_process(p2)
    for i in range(50):
        sc.alloc(p1, SITE_A, 100 + i)
    sc.close()
    return w


def test_a_written_trace_read_by_the_job_against_a_replay(tmp_path: Path) -> None:
    path = tmp_path / "t.etl"
    w = _written_trace(path)
    with open(path, "rb") as fh:
        tf = open_trace(fh.read(), str(path))
    scan, live, _, tl = read_trace(tf)
    assert tl is not None
    raw = tl.raw.tolist()
    assert raw[-1] == scan.last_ts and len(raw) > GRID_POINTS // 2  # a grid that doubled is at least half full
    _check_grid(tl, w.t0, raw[-1])
    tot = tl.totals()
    assert list(zip(tot.blocks.tolist(), tot.bytes.tolist(), strict=True)) == _replay(w.events, raw)
    assert (int(tot.blocks[-1]), int(tot.bytes[-1])) == live.totals()
    for pid in (100, 200):  # one process: its own counts
        only = tl.totals(frozenset({pid}))
        assert list(zip(only.blocks.tolist(), only.bytes.tolist(), strict=True)) == _replay(w.events, raw, {pid})


def test_the_document_timeline_of_a_written_trace(tmp_path: Path) -> None:
    """Through the job's analysis: times in microseconds from the start by the header's clock, the last point
    equal to what the trace reports outstanding (after a process filter too), the largest groups' series."""
    path = tmp_path / "t.etl"
    _written_trace(path)
    with open(path, "rb") as fh:
        tf = open_trace(fh.read(), str(path))
    for sel in (Selection(), Selection(pid=200)):
        a = analyse_trace(tf, "trace", sel, kernel_frames=False)
        rec = trace_record(a)
        t = rec.timeline
        assert t is not None and a.timeline is not None
        h = a.scan.header
        assert t.time_us == tuple((h.raw_to_filetime(r) - h.start_filetime) / 10 for r in a.timeline.raw.tolist())
        assert t.time_us[0] == 0.0 and all(x < y for x, y in itertools.pairwise(t.time_us))
        assert t.time_us[-1] == (h.raw_to_filetime(a.scan.last_ts or 0) - h.start_filetime) / 10 > 5e6  # > 5 s
        assert (t.blocks[-1], t.bytes[-1]) == (rec.outstanding.blocks, rec.outstanding.bytes)
        series = a.grouping.alloc_series
        assert len(series) == min(10, len(a.grouping))
        for g, s in series.items():
            assert s.shape[0] == len(t.time_us)
            assert int(s[-1]) == int(a.grouping.bytes[g])
            assert np.all(np.diff(s) >= 0)
    # process 200 ended: nothing of it is outstanding, but it held memory before
    assert rec.timeline is not None and rec.timeline.bytes[-1] == 0 and max(rec.timeline.bytes) > 200 * 32


def test_a_trace_without_heap_events_has_no_timeline(tmp_path: Path) -> None:
    path = tmp_path / "empty.etl"
    w = TraceWriter(str(path), cpus=1)
    w.process(w.t0 + 10, 0, 100, 4, "app.exe", kind="dcstart")
    w.close()
    with open(path, "rb") as fh:
        tf = open_trace(fh.read(), str(path))
    a = analyse_trace(tf, "trace", Selection(), kernel_frames=False)
    assert a.timeline is None and trace_record(a).timeline is None


# -------------------------------------------------------------------------------- compiled vs interpreted


def fold_timeline(n: int, seed: int, scale: int) -> dict[str, Any]:
    ops = random_trace(n, seed)
    ops = OpBatch(**{**{c: getattr(ops, c) for c in OpBatch.COLUMNS}, "ts": ops.ts * scale})
    red = TinyTimeline(start=0)
    for lo in range(0, len(ops), 333):
        red.feed(ops[lo:lo + 333])
    red.finish()
    tl = red.timeline
    assert tl is not None
    return {"jit": _jit.JIT_ENABLED, "raw": tl.raw.tolist(), "point": tl.point.tolist(), "pid": tl.pid.tolist(),
            "blocks": tl.blocks.tolist(), "bytes": tl.bytes.tolist()}


def test_compiled_and_interpreted_timelines_agree() -> None:
    if not _jit.JIT_ENABLED:
        pytest.skip("numba not available: only the interpreted kernel exists here")
    case = (4000, 11, 3000)
    got = interpreted("test_timeline", f"t.fold_timeline(*{case!r})")
    compiled = fold_timeline(*case)
    assert compiled["jit"] and not got["jit"]
    assert len(compiled["raw"]) > 500 and len(compiled["point"]) > 1000
    assert {k: v for k, v in compiled.items() if k != "jit"} == {k: v for k, v in got.items() if k != "jit"}


# ------------------------------------------------------------------------------------ the document and the view

ROOT = Path(__file__).resolve().parents[1]
BEFORE = ROOT / "fixtures" / "example" / "before.etl"
AFTER = ROOT / "fixtures" / "example" / "after.etl"


def _json(run_cli: Callable[..., CliResult], tmp_path: Path, *inputs: Path | str) -> tuple[bytes, dict[str, Any]]:
    out = tmp_path / f"d{len(list(tmp_path.iterdir()))}.json"
    code, _, err = run_cli(*map(str, inputs), "--json", str(out), "-q", "-o", str(tmp_path / "r.html"))
    assert code == 0, err
    data = out.read_bytes()
    return data, json.loads(data)


def test_json_round_trip_and_what_it_says(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    """Each trace's timeline ends at its outstanding counts; the largest groups (10 at most) carry their bytes by
    allocation time under their run, ending at their bytes there; decoding and encoding again gives the same
    text; a one-trace document used as a baseline keeps its timeline and series."""
    data, d = _json(run_cli, tmp_path, BEFORE, AFTER)
    assert encode(decode(data)) == data
    for k, t in enumerate(d["traces"]):
        tl = t["timeline"]
        assert len(tl["time_us"]) == len(tl["bytes"]) == len(tl["blocks"]) > 500
        assert tl["time_us"][0] == 0 and tl["bytes"][0] == 0
        assert [tl["blocks"][-1], tl["bytes"][-1]] == [t["outstanding"]["blocks"], t["outstanding"]["bytes"]]
        role = ("before", "after")[k]
        with_series = [g for g in d["groups"] if g["runs"][role] and "timeline_bytes" in g["runs"][role]]
        assert 0 < len(with_series) <= 10
        for g in with_series:
            s = g["runs"][role]["timeline_bytes"]
            assert len(s) == len(tl["time_us"]) and s[-1] == g[role]["bytes"]
            assert all(a <= b <= c for a, b, c in zip(s, tl["bytes"], tl["bytes"], strict=True))
        assert not any("timeline_bytes" in g for g in d["groups"])  # not repeated at the top of a diff group
    single, s = _json(run_cli, tmp_path, BEFORE)
    assert encode(decode(single)) == single
    assert s["traces"][0]["timeline"] == d["traces"][0]["timeline"]
    tops = sorted(g["timeline_bytes"] for g in s["groups"] if "timeline_bytes" in g)
    assert len(tops) == min(10, len(s["groups"]))
    base = tmp_path / "base.json"
    base.write_bytes(single)
    _, b = _json(run_cli, tmp_path, base, AFTER)
    assert b["traces"][0]["role"] == "baseline" and b["traces"][0]["timeline"] == s["traces"][0]["timeline"]
    kept = sorted(g["runs"]["before"]["timeline_bytes"] for g in b["groups"]
                  if g["runs"]["before"] and "timeline_bytes" in g["runs"]["before"])
    assert kept == tops  # (the diff matches groups by function, so their keys are not the trace's signatures)


def test_documents_without_timelines_still_read(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    _, d = _json(run_cli, tmp_path, BEFORE, AFTER)
    for t in d["traces"]:
        del t["timeline"]
    for g in d["groups"]:
        for r in g["runs"].values():
            if r is not None:
                r.pop("timeline_bytes", None)
    doc = decode_value(d)
    assert all(t.timeline is None for t in doc.traces)
    assert build_view(doc).timelines == ()
    d["traces"][0]["timeline"] = None
    assert decode_value(d).traces[0].timeline is None


def _set(d: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    where: Any = d
    for k in path[:-1]:
        where = where[k]
    where[path[-1]] = value


TL = ("traces", 1, "timeline")


@pytest.mark.parametrize(("path", "value", "message"), [
    ((*TL, "time_us", 3), -1.0, r"traces\[1\]\.timeline\.time_us\[3\]: expected a non-negative number"),
    ((*TL, "time_us", 3), "5", r"traces\[1\]\.timeline\.time_us\[3\]: expected a non-negative number"),
    ((*TL, "time_us", 3), float("nan"), r"traces\[1\]\.timeline\.time_us\[3\]: expected a non-negative number"),
    ((*TL, "time_us", 3), 0.0, r"traces\[1\]\.timeline\.time_us\[3\]: 0\.0 does not come after"),
    ((*TL, "time_us"), [], r"traces\[1\]\.timeline\.time_us: expected at least one point"),
    ((*TL, "time_us"), {}, r"traces\[1\]\.timeline\.time_us: expected a list"),
    ((*TL, "bytes", 2), -5, r"traces\[1\]\.timeline\.bytes\[2\]: expected a non-negative integer"),
    ((*TL, "blocks", 0), 1.5, r"traces\[1\]\.timeline\.blocks\[0\]: expected a non-negative integer"),
    ((*TL, "blocks"), [0], r"traces\[1\]\.timeline\.blocks: 1 points, but time_us has"),
    (TL, [1, 2], r"traces\[1\]\.timeline: expected an object"),
    (("groups", 0, "runs", "after", "timeline_bytes"), [1, 2],
     r"groups\[0\]\.runs\.after\.timeline_bytes: 2 points, but the trace's timeline has"),
    (("groups", 0, "runs", "after", "timeline_bytes", 5), -1,
     r"groups\[0\]\.runs\.after\.timeline_bytes\[5\]: expected a non-negative integer"),
    (("groups", 0, "runs", "after", "timeline_bytes", -1), 0,
     r"groups\[0\]\.runs\.after\.timeline_bytes\[\d+\]: 0 is less than the point before"),
])
def test_a_bad_timeline_is_named(run_cli: Callable[..., CliResult], tmp_path: Path, path: tuple[Any, ...],
                                 value: Any, message: str) -> None:
    _, d = _json(run_cli, tmp_path, BEFORE, AFTER)
    _set(d, path, value)
    with pytest.raises(DocumentError, match=message):
        decode_value(d)


def test_a_series_needs_its_traces_timeline(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    _, d = _json(run_cli, tmp_path, AFTER)
    d["traces"][0]["timeline"] = None
    with pytest.raises(DocumentError, match=r"groups\[0\]\.timeline_bytes: the trace it belongs to has no "):
        decode_value(d)
    _, d = _json(run_cli, tmp_path, AFTER)
    d["groups"][0]["timeline_bytes"] = d["groups"][0]["timeline_bytes"][:-1]
    with pytest.raises(DocumentError, match=r"groups\[0\]\.timeline_bytes: \d+ points, but the trace's"):
        decode_value(d)


def test_the_view_of_a_real_diff(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    """One timeline per input, in seconds; its lines are the report's first groups with a series in that input,
    at most five, labelled as their rows."""
    _, d = _json(run_cli, tmp_path, BEFORE, AFTER)
    doc = decode_value(d)
    view = build_view(doc)
    assert [tv.role for tv in view.timelines] == ["before", "after"]
    for k, (tv, t) in enumerate(zip(view.timelines, doc.traces, strict=True)):
        assert t.timeline is not None
        assert tv.time_s == tuple(x / 1e6 for x in t.timeline.time_us)
        assert tv.bytes == t.timeline.bytes and tv.blocks == t.timeline.blocks
        want = [(g.label, r.timeline_bytes) for g in doc.groups
                if (r := g.runs[k]) is not None and r.timeline_bytes is not None][:5]
        assert [(s.label, s.bytes) for s in tv.groups] == want
        assert 1 <= len(tv.groups) <= 5
    assert view.timelines[1].groups[0].label == view.rows[0].label


def test_a_long_timeline_is_thinned_for_the_view(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    _, d = _json(run_cli, tmp_path, AFTER)
    n = 2500
    d["traces"][0]["timeline"] = {"time_us": [float(i) for i in range(n)], "bytes": list(range(n)),
                                  "blocks": list(range(n))}
    for g in d["groups"]:
        if "timeline_bytes" in g:
            g["timeline_bytes"] = list(range(n))
    (tv,) = build_view(decode_value(d)).timelines
    assert len(tv.time_s) == len(tv.bytes) == 1000 and all(len(s.bytes) == 1000 for s in tv.groups)
    assert tv.bytes[0] == 0 and tv.bytes[-1] == n - 1 and tv.time_s[-1] == (n - 1) / 1e6
    assert all(a < b for a, b in itertools.pairwise(tv.bytes))
