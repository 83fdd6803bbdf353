"""The reducer: each rule of the spec on hand-built traces fed one op at a time, a plain-dict model of the
spec checked against the kernel on random traces (hypothesis), the compiled and the uncompiled kernel
compared, and a few million ops timed.

The model (:class:`Model`) is the spec in the simplest Python (dicts, linear searches) and shares no code with
the kernel, so a disagreement is a bug in one of them.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nojit import interpreted

from heapdiff import _jit
from heapdiff.events.ops import (
    OP_ALLOC,
    OP_ATTACH,
    OP_CREATE,
    OP_DESTROY,
    OP_FREE,
    OP_PROCESS_END,
    OP_REALLOC,
    OpBatch,
)
from heapdiff.reduce import LiveBlocks, Reducer
from heapdiff.reduce.overlap import find_overlaps
from heapdiff.reduce.reducer import LIVE_COLUMNS
from heapdiff.reduce.tables import BLOCK_DTYPE, PREFETCH_AHEAD, empty_table

H = 0x10000          # a heap handle
H2 = 0x20000
A, B, C = 0x1000, 0x2000, 0x3000


class TinyReducer(Reducer):
    """Smallest tables: every op that adds a thread, heap or pid stops the kernel, every few blocks rehash."""

    BLOCK_SLOTS = 2
    SMALL_SLOTS = 2


# ---------------------------------------------------------------------------------------------- trace builder


@dataclass
class Trace:
    """Builds ops with increasing serials and timestamps; each method returns the op's serial."""

    rows: list[dict[str, int]] = field(default_factory=list)
    clock: int = 0

    def _add(self, op: int, ts: int | None = None, **kw: int) -> int:
        serial = len(self.rows)
        self.clock = self.clock + 1 if ts is None else ts
        row = {"op": op, "ts": self.clock, "serial": serial, "pid": 1, "tid": 1, "heap": H, "addr": 0,
               "size": 0, "old_addr": 0, "source": 0, "stack": -1}
        row.update(kw)
        self.rows.append(row)
        return serial

    def alloc(self, addr: int, size: int, stack: int | None = 7, **kw: int) -> int:
        s = self._add(OP_ALLOC, addr=addr, size=size, **kw)
        if stack is not None:
            self.attach(s, stack)
        return s

    def free(self, addr: int, **kw: int) -> int:
        return self._add(OP_FREE, addr=addr, **kw)

    def realloc(self, old: int, new: int, size: int, stack: int | None = 8, **kw: int) -> int:
        s = self._add(OP_REALLOC, old_addr=old, addr=new, size=size, **kw)
        if stack is not None:
            self.attach(s, stack)
        return s

    def create(self, **kw: int) -> int:
        return self._add(OP_CREATE, **kw)

    def destroy(self, **kw: int) -> int:
        return self._add(OP_DESTROY, **kw)

    def process_end(self, pid: int, **kw: int) -> int:
        return self._add(OP_PROCESS_END, pid=pid, **kw)

    def attach(self, target: int, stack: int, **kw: int) -> int:
        kw.setdefault("ts", self.clock)
        return self._add(OP_ATTACH, serial_override=target, stack=stack, **kw)

    def batch(self, lo: int = 0, hi: int | None = None) -> OpBatch:
        rows = self.rows[lo:hi]
        cols: dict[str, Any] = {}
        for name in OpBatch.COLUMNS:
            if name == "serial":
                vals = [r.get("serial_override", r["serial"]) for r in rows]
            else:
                vals = [r[name] for r in rows]
            cols[name] = np.array(vals, dtype=np.uint64 if name in ("heap", "addr", "size", "old_addr")
                                  else np.int64)
        return OpBatch.from_dict(cols)

    def run(self, stop_at: int | None = None, finish: bool = True, cls: type[Reducer] = Reducer) -> Reducer:
        """Feed the trace one op per batch (the hardest split for the per-thread and growth logic)."""
        red = cls(stop_at)
        for i in range(len(self.rows)):
            red.feed(self.batch(i, i + 1))
        if finish:
            red.finish()
        return red


def live(red: Reducer) -> dict[tuple[int, int, int], tuple[int, int, int]]:
    """(pid, heap, addr) -> (size, serial, stack) of the live blocks."""
    s = red.live_columns()
    return {(int(p), int(h), int(a)): (int(z), int(e), int(k))
            for p, h, a, z, e, k in zip(s["pid"], s["heap"], s["addr"], s["size"], s["serial"], s["stack"],
                                        strict=True)}


# ------------------------------------------------------------------------------------------------- the rules


def test_alloc() -> None:
    t = Trace()
    s = t.alloc(A, 24, stack=3)
    red = t.run(finish=False)
    assert (red.live_blocks, red.live_bytes) == (1, 24)
    red.finish()
    assert live(red) == {(1, H, A): (24, s, 3)}
    assert red.anomalies == {}
    assert red.snapshot().totals() == (1, 24)


def test_free() -> None:
    t = Trace()
    t.alloc(A, 24)
    t.alloc(B, 8)
    t.free(A)
    red = t.run()
    assert (red.live_blocks, red.live_bytes) == (1, 8)
    assert set(live(red)) == {(1, H, B)}
    assert red.anomalies == {}


def test_in_place_realloc() -> None:
    t = Trace()
    t.alloc(A, 16)
    r = t.realloc(A, A, 48, stack=9, tid=2)
    red = t.run()
    assert live(red) == {(1, H, A): (48, r, 9)}
    assert red.live_bytes == 48
    assert red.anomalies == {}


def test_moving_realloc() -> None:
    t = Trace()
    t.alloc(A, 16)
    r = t.realloc(A, B, 64, tid=2)
    red = t.run()
    assert live(red) == {(1, H, B): (64, r, 8)}
    assert red.anomalies == {}


def test_alloc_realloc_free_form_counts_once() -> None:
    t = Trace()
    t.alloc(A, 16, tid=5)                   # the old block, from another thread
    t.alloc(B, 32, tid=1)                   # the heap logs the new block's Alloc ...
    r = t.realloc(A, B, 32, tid=1)          # ... then the ReAlloc ...
    t.free(A, tid=1)                        # ... then the Free of the old address
    red = t.run()
    assert live(red) == {(1, H, B): (32, r, 8)}
    assert (red.live_blocks, red.live_bytes) == (1, 32)
    assert red.anomalies == {"realloc_pair_free": 1}


def test_form_needs_the_same_thread() -> None:
    t = Trace()
    t.alloc(A, 16, tid=5)
    t.alloc(B, 32, tid=2)                   # another thread's Alloc: not the form
    r = t.realloc(A, B, 32, tid=1)
    t.free(A, tid=1)
    red = t.run()
    assert live(red) == {(1, H, B): (32, r, 8)}
    assert red.anomalies == {"alloc_over_live": 1, "unmatched_frees": 1}


def test_form_needs_the_immediately_preceding_op() -> None:
    t = Trace()
    t.alloc(A, 16, tid=5)
    t.alloc(B, 32, tid=1)
    t.free(C, tid=1)                        # an op of the thread in between
    t.realloc(A, B, 32, tid=1)
    t.free(A, tid=1)
    red = t.run()
    assert red.anomalies == {"alloc_over_live": 1, "unmatched_frees": 2}


def test_form_with_an_old_block_from_before_the_trace() -> None:
    t = Trace()
    t.alloc(B, 32)
    r = t.realloc(A, B, 40)
    t.free(A)
    red = t.run()
    assert live(red) == {(1, H, B): (40, r, 8)}
    assert red.anomalies == {"unmatched_realloc": 1, "realloc_pair_free": 1}


def test_destroy_ends_the_heap_and_the_handle_is_reused() -> None:
    t = Trace()
    t.alloc(A, 16)
    s_b = t.alloc(B, 32, stack=None)        # no stack: counted when the destroy ends it
    s_h2 = t.alloc(A, 8, heap=H2)
    t.destroy()
    t.attach(s_b, 4)                        # too late: the block is gone
    red = t.run(finish=False)
    assert (red.live_blocks, red.live_bytes) == (1, 8)
    t.create()
    s = t.alloc(A, 24)                      # same handle, same address: a new block, nothing lost
    red = t.run()
    assert live(red) == {(1, H, A): (24, s, 7), (1, H2, A): (8, s_h2, 7)}
    assert red.anomalies == {"event_without_stack": 1, "orphan_stack": 1}


def test_create_over_live_heap() -> None:
    t = Trace()
    t.alloc(A, 16)
    t.alloc(B, 16)
    t.create()                              # a Destroy was lost
    t.alloc(A, 4)
    red = t.run()
    assert (red.live_blocks, red.live_bytes) == (1, 4)
    assert red.anomalies == {"create_over_live_heap": 1}


def test_process_end() -> None:
    t = Trace()
    t.alloc(A, 16)
    t.alloc(B, 16, heap=H2)
    t.alloc(C, 16, heap=H2, stack=None)
    s2 = t.alloc(A, 100, pid=2)
    t.process_end(1)
    red = t.run(finish=False)
    assert (red.live_blocks, red.live_bytes) == (1, 100)
    assert red.anomalies == {"freed_by_process_end": 3, "event_without_stack": 1}
    s = t.alloc(A, 5)                       # the pid is reused
    red = t.run()
    assert live(red) == {(1, H, A): (5, s, 7), (2, H, A): (100, s2, 7)}
    assert red.anomalies == {"freed_by_process_end": 3, "event_without_stack": 1}


def test_process_end_forgets_the_threads_previous_op() -> None:
    t = Trace()
    t.alloc(B, 16)
    t.process_end(1)
    t.realloc(A, B, 16)                     # pid reused: no Alloc of this process before it
    t.free(A)
    red = t.run()
    assert red.anomalies == {"freed_by_process_end": 1, "unmatched_realloc": 1, "unmatched_frees": 1}


def test_unmatched_free_and_realloc() -> None:
    t = Trace()
    t.free(A)
    t.free(A, heap=H2, pid=9)               # a heap and a pid never seen
    r = t.realloc(B, C, 12)
    red = t.run()
    assert live(red) == {(1, H, C): (12, r, 8)}
    assert red.anomalies == {"unmatched_frees": 2, "unmatched_realloc": 1}


def test_alloc_over_live() -> None:
    t = Trace()
    t.alloc(A, 16, stack=None)
    s = t.alloc(A, 64)
    red = t.run()
    assert live(red) == {(1, H, A): (64, s, 7)}
    assert red.live_bytes == 64
    assert red.anomalies == {"alloc_over_live": 1, "event_without_stack": 1}


def test_realloc_into_a_live_block_is_alloc_over_live() -> None:
    t = Trace()
    t.alloc(A, 16)
    t.alloc(B, 16, tid=2)
    r = t.realloc(A, B, 48)                 # thread 1's previous op was the Alloc at A, not B
    red = t.run()
    assert live(red) == {(1, H, B): (48, r, 8)}
    assert red.anomalies == {"alloc_over_live": 1}


def test_overlap_old_block_covering_younger_ones() -> None:
    t = Trace()
    t.alloc(0x100, 0x100)                   # [0x100, 0x200): its Free was lost
    t.alloc(0x120, 0x10)
    t.alloc(0x180, 0x10)
    t.alloc(0x1F0, 0x10)
    t.alloc(0x200, 0x10)                    # touches the end: no overlap
    red = t.run()
    assert sorted(k[2] for k in live(red)) == [0x120, 0x180, 0x1F0, 0x200]
    assert red.anomalies == {"overlap": 1}
    assert red.live_blocks == 4 and red.live_bytes == 0x40


def test_overlap_young_block_covering_older_ones() -> None:
    t = Trace()
    t.alloc(0x120, 0x10)
    t.alloc(0x180, 0x10)
    t.alloc(0x300, 0x10)
    t.alloc(0x100, 0x100)
    red = t.run()
    assert sorted(k[2] for k in live(red)) == [0x100, 0x300]
    assert red.anomalies == {"overlap": 2}


def test_overlap_ties_on_ts_go_by_serial_and_empty_blocks_count() -> None:
    t = Trace()
    t.alloc(0x100, 0x20, ts=5)
    t.alloc(0x110, 0x20, ts=5)              # same ts, larger serial: younger
    t.alloc(0x400, 0x40)
    t.alloc(0x410, 0)                       # a zero-size block still holds its first byte
    t.alloc(0x100, 0x10, heap=H2)           # other heaps never overlap
    red = t.run()
    assert set(live(red)) == {(1, H, 0x110), (1, H, 0x410), (1, H2, 0x100)}
    assert red.anomalies == {"overlap": 2}


def test_two_processes_with_equal_heaps_and_addresses() -> None:
    t = Trace()
    t.alloc(A, 10, pid=1)
    t.alloc(A, 20, pid=2)
    t.alloc(B, 30, pid=2)
    t.free(A, pid=1)
    red = t.run()
    assert set(live(red)) == {(2, H, A), (2, H, B)}
    assert red.snapshot().by_pid() == {2: (2, 50)}
    assert red.anomalies == {}


def test_stack_attach_and_orphans() -> None:
    t = Trace()
    s = t.alloc(A, 16, stack=None)
    t.attach(s, 11)
    t.attach(s, 12)                         # it already has one
    f = t.alloc(B, 16)
    t.free(B)
    t.attach(f, 13)                         # freed already
    t.attach(999, 14)                       # no such event
    t.attach(t.free(C), 15)                 # a Free made nothing live
    red = t.run()
    assert live(red) == {(1, H, A): (16, s, 11)}
    assert red.anomalies == {"orphan_stack": 4, "unmatched_frees": 1}


def test_event_without_stack() -> None:
    t = Trace()
    t.alloc(A, 16, stack=None)              # live at the end without a stack
    t.alloc(B, 16, stack=None)
    t.free(B)                               # ended without a stack
    t.realloc(C, C, 4, stack=None)          # a ReAlloc's block too
    t.alloc(0x5000, 8)
    red = t.run()
    assert red.anomalies == {"event_without_stack": 3, "unmatched_realloc": 1}


def test_stop_at() -> None:
    t = Trace()
    s = t.alloc(A, 16, stack=None, ts=1)
    s_b = t.alloc(B, 16, ts=5)
    t.free(A, ts=10)                        # after stop_at: ignored
    late = t.alloc(C, 16, stack=None, ts=11)
    t.attach(s, 21, ts=12)                  # resolved late: still the stack of a block live at stop_at
    t.attach(late, 22, ts=12)               # its event was ignored: neither attached nor an orphan
    t.process_end(1, ts=13)
    red = t.run(stop_at=5)
    assert live(red) == {(1, H, A): (16, s, 21), (1, H, B): (16, s_b, 7)}
    assert red.anomalies == {}
    red = t.run(stop_at=10)
    assert set(live(red)) == {(1, H, B)}


def test_unknown_op_is_counted() -> None:
    t = Trace()
    t._add(0)
    t._add(42)
    assert t.run().anomalies == {"unknown_op": 2}


def test_feed_after_finish_is_refused() -> None:
    red = Trace().run()
    with pytest.raises(RuntimeError):
        red.feed(OpBatch.empty())


def test_snapshot_views() -> None:
    t = Trace()
    t.alloc(0x300, 0x10)
    t.alloc(0x100, 0x20)
    t.alloc(0x200, 0)
    t.alloc(0x100, 8, heap=H2)
    t.alloc(0x100, 8, pid=2)
    snap = t.run().snapshot()
    assert isinstance(snap, LiveBlocks)
    assert snap.heaps() == [(1, H), (1, H2), (2, H)]
    assert snap.addr[: 3].tolist() == [0x100, 0x200, 0x300]
    view = snap.heap_view(1, H)
    assert list(view.items()) == [(0x100, 0), (0x200, 1), (0x300, 2)]
    assert snap.heap_view(1, H) is view
    assert snap.block_at(1, H, 0x11F) == 0 and snap.block_at(1, H, 0x120) is None
    assert snap.block_at(1, H, 0x200) == 1 and snap.block_at(1, H, 0xFF) is None
    assert snap.heap_rows(2, H) == range(4, 5) and len(snap.heap_view(3, H)) == 0
    assert snap.by_pid() == {1: (4, 0x38), 2: (1, 8)}
    assert snap.totals() == (5, 0x40)


def test_op_batch() -> None:
    e = OpBatch.empty()
    assert len(e) == 0 and e.addr.dtype == np.uint64
    b = OpBatch.from_columns(op=[1, 2], addr=[2**64 - 16, 5])
    assert b.addr.dtype == np.uint64 and b.addr[0] == 2**64 - 16
    assert b.stack.tolist() == [-1, -1] and b.size.tolist() == [0, 0] and b.op.dtype == np.uint8
    c = OpBatch.concat(b, e, b)
    assert len(c) == 4 and c.op.tolist() == [1, 2, 1, 2]
    assert len(OpBatch.concat()) == 0
    assert c[1:3].op.tolist() == [2, 1]
    with pytest.raises(ValueError):
        OpBatch.from_columns(op=[1, 2], addr=[1])
    with pytest.raises(ValueError):
        OpBatch.from_columns(addr=[1])
    with pytest.raises(ValueError):
        OpBatch.from_columns(op=[1], bogus=[1])


def test_tables_grow_and_every_op_still_counts() -> None:
    """Tiny tables: every new thread, heap and pid stops the kernel, blocks rehash all the time."""
    t = Trace()
    for i in range(300):
        t.alloc(0x1000 + 16 * i, 16, pid=i % 40, tid=i % 70, heap=H + (i % 7))
    for i in range(0, 300, 4):
        t.free(0x1000 + 16 * i, pid=i % 40, tid=i % 70, heap=H + (i % 7))
    for p in range(2, 40, 4):
        t.process_end(p)
    ref = Reducer()
    ref.feed(t.batch())
    ref.finish()
    tiny = t.run(cls=TinyReducer)
    assert live(tiny) == live(ref)
    assert tiny.anomalies == ref.anomalies
    assert tiny.rehashes > 5
    assert {k[2] for k in live(ref)} == {0x1000 + 16 * i for i in range(1, 300, 2)}
    assert ref.anomalies == {"freed_by_process_end": 75}


def test_memory_is_bounded_by_live_blocks() -> None:
    """Many short-lived blocks and destroyed heaps: the tables stay near the live set, not the events."""
    n = 200_000
    i = np.arange(n, dtype=np.int64)
    op = np.empty(3 * n, np.uint8)
    op[0::3], op[1::3], op[2::3] = OP_ALLOC, OP_FREE, OP_DESTROY
    heap = np.repeat(0x10000 + (i // 50), 3).astype(np.uint64)     # 50 blocks per heap, then it is destroyed
    addr = np.repeat(0x1000 + 16 * (i % 5000), 3).astype(np.uint64)
    addr[2::3] = 0
    keep = np.ones(3 * n, bool)
    keep[1::3] = (i % 2) == 0                                       # half the blocks end by Destroy
    keep[2::3] = (i % 50) == 49
    sel = np.flatnonzero(keep)
    b = OpBatch.from_columns(op=op[sel], ts=np.arange(sel.size), pid=np.ones(sel.size, np.int64),
                             tid=np.ones(sel.size, np.int64), serial=np.arange(sel.size), heap=heap[sel],
                             addr=addr[sel], size=np.full(sel.size, 16, np.uint64))
    red = Reducer()
    for lo in range(0, len(b), 10_000):
        red.feed(b[lo:lo + 10_000])
    assert red.live_blocks == 0
    assert red._blocks.shape[0] <= 1 << 16 and red._pend.shape[0] <= 1 << 16
    red.finish()
    assert red.anomalies == {"event_without_stack": n}


# ----------------------------------------------------------------------------------------------------- model


@dataclass
class MBlock:
    size: int
    ts: int
    serial: int
    stack: int = -1


class Model:
    """The spec, as plainly as Python says it."""

    def __init__(self, stop_at: int | None) -> None:
        self.stop_at = stop_at
        self.live: dict[tuple[int, int, int], MBlock] = {}
        self.prev: dict[tuple[int, int], tuple[Any, ...] | None] = {}   # (pid, tid) -> previous heap op
        self.counts: Counter[str] = Counter()

    def end(self, key: tuple[int, int, int], count: bool = True) -> None:
        block = self.live.pop(key)
        if block.stack < 0 and count:
            self.counts["event_without_stack"] += 1

    def end_heap(self, pid: int, heap: int) -> int:
        keys = [k for k in self.live if k[0] == pid and k[1] == heap]
        for k in keys:
            self.end(k)
        return len(keys)

    def apply(self, r: dict[str, int]) -> None:
        op, pid, tid, heap, addr, serial = r["op"], r["pid"], r["tid"], r["heap"], r["addr"], r["serial"]
        if self.stop_at is not None and r["ts"] > self.stop_at:
            if op == OP_ATTACH:
                self.attach(serial, r["stack"], quiet=True)
            return
        key = (pid, heap, addr)
        prev = self.prev.get((pid, tid))
        if op == OP_ALLOC:
            if key in self.live:
                self.counts["alloc_over_live"] += 1
                self.end(key)
            self.live[key] = MBlock(r["size"], r["ts"], serial)
            self.prev[(pid, tid)] = ("alloc", heap, addr, serial)
        elif op == OP_REALLOC:
            old = (pid, heap, r["old_addr"])
            form = prev is not None and prev[0] == "alloc" and prev[1] == heap and prev[2] == addr
            the_alloc = prev[3] if form and prev is not None else None
            if old in self.live:
                self.end(old, count=self.live[old].serial != the_alloc)
            else:
                self.counts["unmatched_realloc"] += 1
            if key in self.live:
                if self.live[key].serial == the_alloc:
                    self.end(key, count=False)
                else:
                    self.counts["alloc_over_live"] += 1
                    self.end(key)
            self.live[key] = MBlock(r["size"], r["ts"], serial)
            self.prev[(pid, tid)] = ("pair", heap, r["old_addr"]) if form else None
        elif op == OP_FREE:
            if key in self.live:
                self.end(key)
            elif prev == ("pair", heap, addr):
                self.counts["realloc_pair_free"] += 1
            else:
                self.counts["unmatched_frees"] += 1
            self.prev[(pid, tid)] = None
        elif op in (OP_CREATE, OP_DESTROY):
            if self.end_heap(pid, heap) and op == OP_CREATE:
                self.counts["create_over_live_heap"] += 1
            self.prev[(pid, tid)] = None
        elif op == OP_PROCESS_END:
            for h in {k[1] for k in self.live if k[0] == pid}:
                self.counts["freed_by_process_end"] += self.end_heap(pid, h)
            for k in [k for k in self.prev if k[0] == pid]:
                del self.prev[k]
        elif op == OP_ATTACH:
            self.attach(serial, r["stack"], quiet=False)
        else:
            self.counts["unknown_op"] += 1

    def attach(self, serial: int, stack: int, quiet: bool) -> None:
        for block in self.live.values():
            if block.serial == serial and block.stack < 0 and stack >= 0:
                block.stack = stack
                return
        if not quiet:
            self.counts["orphan_stack"] += 1

    def finish(self) -> None:
        def overlap(a: tuple[int, MBlock], b: tuple[int, MBlock]) -> bool:
            return a[0] < b[0] + max(b[1].size, 1) and b[0] < a[0] + max(a[1].size, 1)

        dead = []
        for k, blk in self.live.items():
            others = [(k2[2], b2) for k2, b2 in self.live.items() if k2[:2] == k[:2] and k2 != k]
            if any(overlap((k[2], blk), o) and (o[1].ts, o[1].serial) > (blk.ts, blk.serial) for o in others):
                dead.append(k)
        for k in dead:
            self.counts["overlap"] += 1
            self.end(k)
        self.counts["event_without_stack"] += sum(1 for b in self.live.values() if b.stack < 0)

    def anomalies(self) -> dict[str, int]:
        return {k: v for k, v in self.counts.items() if v}

    def live_set(self) -> dict[tuple[int, int, int], tuple[int, int, int]]:
        return {k: (b.size, b.serial, b.stack) for k, b in self.live.items()}


ADDRS = [0x100 + 0x10 * k for k in range(6)]
SIZES = [0, 1, 0x10, 0x18, 0x30]
plain_op = st.fixed_dictionaries({
    "op": st.sampled_from([OP_ALLOC] * 6 + [OP_FREE] * 5 + [OP_REALLOC] * 4 + [OP_ATTACH] * 5
                          + [OP_CREATE, OP_DESTROY, OP_PROCESS_END, 0]),
    "pid": st.sampled_from([1, 2]), "tid": st.sampled_from([1, 2, 3]), "heap": st.sampled_from([H, H2]),
    "addr": st.sampled_from(ADDRS), "old_addr": st.sampled_from(ADDRS), "size": st.sampled_from(SIZES),
    "dt": st.integers(0, 2), "back": st.integers(-1, 4), "stack": st.integers(-1, 3),
})
def form(p: int, t: int, h: int, old: int, new: int, s1: int, s2: int, between: str) -> list[dict[str, int]]:
    """Alloc(new) + ReAlloc(old -> new) + Free(old) by one thread, maybe with something in between that makes
    it not the form (an op of the same thread, the process ending) or must not (another thread's op, a stack).
    """
    mid = {"none": [],
           "end": [{"op": OP_PROCESS_END, "pid": p, "tid": 9, "heap": 0, "addr": 0}],
           "other": [{"op": OP_ALLOC, "pid": p, "tid": t + 1, "heap": h, "addr": old, "size": s1}],
           "same": [{"op": OP_FREE, "pid": p, "tid": t, "heap": h, "addr": old}],
           "attach": [{"op": OP_ATTACH, "pid": p, "tid": t, "heap": 0, "addr": 0, "back": 0, "stack": 1}],
           }[between]
    return [{"op": OP_ALLOC, "pid": p, "tid": t, "heap": h, "addr": new, "size": s1}, *mid,
            {"op": OP_REALLOC, "pid": p, "tid": t, "heap": h, "addr": new, "old_addr": old, "size": s2},
            {"op": OP_FREE, "pid": p, "tid": t, "heap": h, "addr": old}]


form_ops = st.builds(form, st.sampled_from([1, 2]), st.sampled_from([1, 2, 3]), st.sampled_from([H, H2]),
                     st.sampled_from(ADDRS), st.sampled_from(ADDRS), st.sampled_from(SIZES),
                     st.sampled_from(SIZES),
                     st.sampled_from(["none", "none", "end", "other", "same", "attach"]))


def materialise(groups: list[list[dict[str, int]]]) -> list[dict[str, int]]:
    """Number the ops (serial = index, ts non-decreasing); an Attach targets a recent serial or none."""
    rows: list[dict[str, int]] = []
    ts = 0
    for group in groups:
        for g in group:
            ts += g.get("dt", 1)
            r = {"op": g["op"], "ts": ts, "pid": g["pid"], "tid": g["tid"], "heap": g["heap"],
                 "addr": g["addr"], "size": g.get("size", 0), "old_addr": g.get("old_addr", 0), "source": 3,
                 "serial": len(rows), "stack": -1}
            if g["op"] == OP_ATTACH:
                r["serial"] = len(rows) - 1 - g["back"] if g["back"] >= 0 else 10**9
                r["stack"] = g["stack"]
            rows.append(r)
    return rows


def to_batch(rows: list[dict[str, int]]) -> OpBatch:
    return OpBatch.from_dict({name: np.array([r[name] for r in rows],
                                             dtype=np.uint64 if name in ("heap", "addr", "size", "old_addr")
                                             else np.int64) for name in OpBatch.COLUMNS})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=st.lists(st.one_of(plain_op.map(lambda g: [g]), form_ops), min_size=1, max_size=60),
       cuts=st.lists(st.integers(0, 200), max_size=8), stop=st.one_of(st.none(), st.integers(0, 150)),
       tiny=st.booleans(), ahead=st.sampled_from([0, 1, PREFETCH_AHEAD]))
def test_model(groups: list[list[dict[str, int]]], cuts: list[int], stop: int | None, tiny: bool,
               ahead: int) -> None:
    rows = materialise(groups)
    model = Model(stop)
    red = (TinyReducer if tiny else Reducer)(stop)
    red.ahead = ahead  # a prefetch is only a hint: any distance (or none) folds the same
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    for lo, hi in itertools.pairwise(bounds):
        red.feed(to_batch(rows[lo:hi]))
        for r in rows[lo:hi]:
            model.apply(r)
        assert red.live_blocks == len(model.live)
        assert red.live_bytes == sum(b.size for b in model.live.values())
        assert red.anomalies == model.anomalies()
    red.finish()
    model.finish()
    assert live(red) == model.live_set()
    assert red.anomalies == model.anomalies()
    assert red.snapshot().totals() == (len(model.live), sum(b.size for b in model.live.values()))


def test_model_sees_the_form() -> None:
    """The model test's generator does produce the cases the form rules are about (or it proves nothing)."""
    rows = materialise([[{"op": OP_ALLOC, "pid": 1, "tid": 1, "heap": H, "addr": A, "size": 8}],
                        form(1, 1, H, A, B, 8, 9, "none")])
    model = Model(None)
    for r in rows:
        model.apply(r)
    red = Reducer()
    red.feed(to_batch(rows))
    assert model.anomalies() == red.anomalies == {"realloc_pair_free": 1, "event_without_stack": 1}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 120), st.sampled_from([0, 1, 2, 5, 16, 40, 200]),
                          st.integers(0, 6)), max_size=120, unique_by=lambda b: (b[0], b[1])))
def test_overlap_kernel_against_all_pairs(blocks: list[tuple[int, int, int, int]]) -> None:
    """Every block overlapped by a younger one of its heap, and no other, on dense random layouts."""
    blocks.sort()
    n = len(blocks)
    heap, addr, size, ts = np.array(blocks, np.int64).reshape(n, 4).T
    cols = {"pid": np.ones(n, np.int64), "heap": heap.astype(np.uint64), "addr": addr.astype(np.uint64),
            "size": size.astype(np.uint64), "ts": ts, "serial": (np.arange(n) * 7919) % 1009}
    got = find_overlaps(cols).tolist() if n else []

    Block = tuple[int, int, int, int]

    def younger_overlaps(x: Block, xs: int, y: Block, ys: int) -> bool:
        return (x[0] == y[0] and x[1] < y[1] + max(y[2], 1) and y[1] < x[1] + max(x[2], 1)
                and (y[3], ys) > (x[3], xs))

    serial = cols["serial"].tolist()
    want = [any(younger_overlaps(blocks[i], serial[i], blocks[j], serial[j]) for j in range(n) if j != i)
            for i in range(n)]
    assert got == want


# ------------------------------------------------------------------------------------ compiled vs interpreted


def random_trace(n: int, seed: int) -> OpBatch:
    """A messy trace (collisions, overlaps, every op kind, many threads/heaps/pids) for comparing kernels."""
    rng = np.random.default_rng(seed)
    op = rng.choice(np.array([OP_ALLOC, OP_ALLOC, OP_ALLOC, OP_FREE, OP_FREE, OP_REALLOC, OP_ATTACH,
                              OP_ATTACH, OP_CREATE, OP_DESTROY, OP_PROCESS_END], np.uint8), n,
                    p=[0.2, 0.1, 0.1, 0.15, 0.1, 0.1, 0.12, 0.1, 0.01, 0.01, 0.01])
    pid = rng.integers(1, 50, n)
    tid = pid * 100 + rng.integers(0, 3, n)
    heap = (0x10000 * rng.integers(1, 4, n)).astype(np.uint64)
    addr = (0x1000 + 16 * rng.integers(0, 3000, n)).astype(np.uint64)
    old = (0x1000 + 16 * rng.integers(0, 3000, n)).astype(np.uint64)
    size = rng.choice(np.array([0, 8, 16, 24, 64, 4096], np.uint64), n)
    serial = np.arange(n, dtype=np.int64)
    att = op == OP_ATTACH
    serial[att] = np.maximum(serial[att] - rng.integers(1, 4, int(att.sum())), 0)
    stack = rng.integers(0, 1000, n)
    ts = np.cumsum(rng.integers(0, 2, n))
    return OpBatch.from_columns(op=op, ts=ts, pid=pid, tid=tid, serial=serial, heap=heap, addr=addr,
                                size=size, old_addr=old, source=np.full(n, 2, np.uint8), stack=stack)


def fold(n: int, seed: int, tiny: bool, stop_at: int | None) -> dict[str, Any]:
    """Reduce ``random_trace`` in uneven batches; the result as plain JSON-able data."""
    ops = random_trace(n, seed)
    red = (TinyReducer if tiny else Reducer)(stop_at)
    lo = 0
    step = 1
    while lo < len(ops):
        red.feed(ops[lo:lo + step])
        lo += step
        step = step * 3 % 1999 + 1
    cols = red.live_columns()
    return {"anomalies": red.anomalies, "jit": _jit.JIT_ENABLED,
            "live": {name: cols[name].tolist() for name in LIVE_COLUMNS}}


CASES = [(20_000, 1, False, None), (5_000, 2, True, None), (20_000, 3, False, 7_000)]


def test_compiled_and_interpreted_kernels_agree() -> None:
    if not _jit.JIT_ENABLED:
        pytest.skip("numba not available: only the interpreted kernel exists here")
    for case, got in zip(CASES, interpreted("test_reduce", f"[t.fold(*c) for c in {CASES!r}]"), strict=True):
        compiled = fold(*case)
        assert compiled["jit"] and not got["jit"]
        assert len(compiled["live"]["addr"]) > 100
        assert compiled["anomalies"] == got["anomalies"], case
        assert compiled["live"] == got["live"], case


# ------------------------------------------------------------------------------------------------------ speed


def steady_trace(n_blocks: int, window: int) -> OpBatch:
    """Alloc + stack of block i, an in-place ReAlloc of block i - window/2 every 4th, a Free of block
    i - window, and a second (orphan) stack for block i."""
    i = np.arange(n_blocks, dtype=np.int64)
    pid = 1000 + i % 4
    tid = pid * 10 + (i // 4) % 8
    heap = (0x10000 * (1 + i % 3)).astype(np.uint64)
    addr = (0x100000 + 4096 * ((i * 0x9E3779B1) % (1 << 36))).astype(np.uint64)   # distinct, not overlapping
    size = (16 + (i % 200) * 8).astype(np.uint64)
    ra = (i % 4 == 0) & (i >= window // 2)
    j = i - window // 2
    fr = i >= window
    k = i - window
    per = 3 + 2 * ra.astype(np.int64) + fr.astype(np.int64)         # ops emitted for block i
    start = np.concatenate(([0], np.cumsum(per)[:-1]))
    n = int(per.sum())
    cols: dict[str, np.ndarray[Any, Any]] = {
            "op": np.zeros(n, np.uint8), "pid": np.zeros(n, np.int64), "tid": np.zeros(n, np.int64),
            "heap": np.zeros(n, np.uint64), "addr": np.zeros(n, np.uint64), "size": np.zeros(n, np.uint64),
            "old_addr": np.zeros(n, np.uint64), "serial": np.arange(n, dtype=np.int64),
            "stack": np.full(n, -1, np.int64), "ts": np.arange(n, dtype=np.int64)}

    def put(pos: np.ndarray, **vals: Any) -> None:
        for name, v in vals.items():
            cols[name][pos] = v

    put(start, op=OP_ALLOC, pid=pid, tid=tid, heap=heap, addr=addr, size=size)
    put(start + 1, op=OP_ATTACH, serial=start, stack=i % 5000)
    pos = start[ra] + 2
    put(pos, op=OP_REALLOC, pid=pid[j[ra]], tid=tid[ra], heap=heap[j[ra]], addr=addr[j[ra]],
        old_addr=addr[j[ra]], size=size[j[ra]] + 8)
    put(pos + 1, op=OP_ATTACH, serial=pos, stack=7)
    pos = start[fr] + 2 + 2 * ra[fr]
    put(pos, op=OP_FREE, pid=pid[k[fr]], tid=tid[fr], heap=heap[k[fr]], addr=addr[k[fr]])
    put(start + per - 1, op=OP_ATTACH, serial=start, stack=1)   # a second stack for block i: an orphan
    return OpBatch.from_dict(cols)


def lifetime_trace(n_blocks: int, seed: int) -> tuple[OpBatch, int]:
    """Allocs each followed by its stack; 90% of blocks die within ~50 allocs, 9% within ~20k, 1% never.

    Closer to a real program than :func:`steady_trace`: most frees hit recently touched slots. Returns the ops
    and how many blocks are still live at the end.
    """
    rng = np.random.default_rng(seed)
    i = np.arange(n_blocks, dtype=np.int64)
    kind = rng.random(n_blocks)
    life = np.where(kind < 0.9, rng.geometric(1 / 50, n_blocks), rng.geometric(1 / 20_000, n_blocks))
    life[kind > 0.99] = n_blocks
    freed = i + life < n_blocks
    pid = 1000 + i % 4
    tid = pid * 10 + rng.integers(0, 8, n_blocks)
    heap = (0x10000 * (1 + rng.integers(0, 3, n_blocks))).astype(np.uint64)
    addr = (0x100000 + 64 * i).astype(np.uint64)
    size = rng.integers(8, 65, n_blocks).astype(np.uint64)
    f = np.flatnonzero(freed)
    order = np.argsort(np.concatenate((4 * i, 4 * i + 1, 4 * (f + life[f]) + 2)), kind="stable")
    block = np.concatenate((i, i, f))[order]
    op = np.concatenate((np.full(n_blocks, OP_ALLOC, np.uint8), np.full(n_blocks, OP_ATTACH, np.uint8),
                         np.full(f.size, OP_FREE, np.uint8)))[order]
    serial = np.arange(op.size, dtype=np.int64)
    alloc_at = np.empty(n_blocks, np.int64)
    alloc_at[block[op == OP_ALLOC]] = np.flatnonzero(op == OP_ALLOC)
    att = op == OP_ATTACH
    serial[att] = alloc_at[block[att]]
    ops = OpBatch.from_columns(op=op, ts=np.arange(op.size), pid=pid[block], tid=tid[block], serial=serial,
                               heap=heap[block], addr=addr[block],
                               size=np.where(op == OP_ALLOC, size[block], 0).astype(np.uint64),
                               stack=np.where(att, block % 5000, -1))
    return ops, int((~freed).sum())


def timed_fold(ops: OpBatch, batch: int = 1 << 18) -> tuple[Reducer, float]:
    """Fold in scan-sized batches; returns the reducer and the CPU seconds it took (the CPU may be shared)."""
    red = Reducer()
    t0 = time.process_time()
    for lo in range(0, len(ops), batch):
        red.feed(ops[lo:lo + batch])
    return red, time.process_time() - t0


def test_prefetch_compiles_and_is_only_a_hint() -> None:
    """The prefetch intrinsic builds under this numba/LLVM (its name depends on the pointer type) and never
    changes what a kernel computes; without the JIT it is a no-op function."""
    data = np.arange(64, dtype=np.uint64)
    table = empty_table(BLOCK_DTYPE, 16)

    @_jit.njit(cache=False)
    def touch(a: np.ndarray, t: np.ndarray) -> int:
        s = 0
        for i in range(a.shape[0]):
            _jit.prefetch(a, (i + 7) % a.shape[0])
            _jit.prefetch(t, i % t.shape[0])
            s += int(a[i])
        return s

    assert touch(data, table) == 63 * 64 // 2


def test_borrowed_arrays_are_the_same_memory() -> None:
    """A borrowed array (no owner, so no reference counting) reads and writes its caller's memory with the
    same shape and strides: record, 2-d, read-only and strided arrays; without the JIT it is the array."""
    table = empty_table(BLOCK_DTYPE, 8)
    grid = np.arange(12, dtype=np.int64).reshape(3, 4)
    ro = np.arange(10, dtype=np.uint32)
    ro.flags.writeable = False
    strided = np.arange(20, dtype=np.int64)[::3]

    @_jit.njit(cache=False)
    def use(t: np.ndarray, g: np.ndarray, r: np.ndarray, s: np.ndarray) -> int:
        total = 0
        for _ in range(1000):  # borrowed again and again: nothing to count, nothing to leak
            t2, g2, r2, s2 = _jit.borrow(t), _jit.borrow(g), _jit.borrow(r), _jit.borrow(s)
            t2[3]["addr"] = np.uint64(0xABC)
            t2[5]["hrec"] = np.int32(7)
            g2[2, 1] += 1
            total = int(r2[9]) + int(s2[2]) + g2.shape[0] * 10 + g2.shape[1] + s2.shape[0] * 100
        return total

    assert use(table, grid, ro, strided) == 9 + 6 + 34 + 700
    assert int(table[3]["addr"]) == 0xABC and int(table[5]["hrec"]) == 7
    assert grid[2, 1] == 9 + 1000  # each borrow's write went to the caller's cell
    if not _jit.JIT_ENABLED:
        assert _jit.borrow(grid) is grid


@pytest.mark.slow
def test_throughput() -> None:
    """A few million ops through the compiled kernel; prints ops/s (pytest -s). Checks results, not time."""
    if not _jit.JIT_ENABLED:
        pytest.skip("numba not available: the interpreted kernel is not timed")
    Reducer().feed(steady_trace(1000, 100))      # compile (or load the cache) outside the timing

    ops, still_live = lifetime_trace(1_000_000, 5)
    red, dt = timed_fold(ops)
    print(f"\nreducer, short-lived blocks: {len(ops):,} ops in {dt:.2f} s CPU = "
          f"{len(ops) / dt / 1e6:.1f} M ops/s")
    assert len(ops) > 2_900_000
    assert red.live_blocks == still_live and red.anomalies == {}
    red.finish()
    assert red.anomalies == {} and len(red.snapshot()) == still_live

    window = 200_000
    ops = steady_trace(800_000, window)
    red, dt = timed_fold(ops)
    print(f"reducer, every free a cold block among {window:,} live: {len(ops):,} ops in {dt:.2f} s CPU = "
          f"{len(ops) / dt / 1e6:.1f} M ops/s ({red.rehashes} rehashes, {red._blocks.shape[0]:,} slots)")
    assert len(ops) > 3_000_000
    assert red.live_blocks == window
    assert red.anomalies == {"orphan_stack": 800_000}
    red.finish()
    assert red.anomalies == {"orphan_stack": 800_000}
    assert red._blocks.shape[0] <= 8 * window


def test_a_stack_on_the_alloc_op_needs_no_attach() -> None:
    """The events layer puts a same-batch stack on the Alloc/ReAlloc op: live with it at once, nothing pending."""
    r = Reducer()
    r.feed(OpBatch.from_columns(op=[OP_ALLOC, OP_REALLOC], ts=[1, 2], pid=[7, 7], tid=[1, 1], serial=[10, 11],
                                heap=[0x10, 0x10], addr=[0x100, 0x200], size=[8, 16], old_addr=[0, 0x999],
                                source=[3, 3], stack=[5, 6]))
    r.feed(OpBatch.from_columns(op=[OP_ATTACH], serial=[10], stack=[9]))  # its walk already came: an orphan
    r.finish()
    snap = r.snapshot()
    assert sorted(zip(snap.addr.tolist(), snap.stack.tolist(), strict=True)) == [(0x100, 5), (0x200, 6)]
    assert r.anomalies.get("event_without_stack", 0) == 0
    assert r.anomalies["orphan_stack"] == 1
    assert r.anomalies["unmatched_realloc"] == 1
