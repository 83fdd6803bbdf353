"""Round trip: every heap event, stack and image the writer was given comes back from the reader identical.

Both pointer sizes, compressed or not, CPUs whose buffers reach the file out of time order, stacks that land in
another CPU's (later) buffer, WOW64 events in a 64-bit trace, and events of different threads sharing a timestamp.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np
import pytest

from heapdiff.etl.trace import open_trace
from heapdiff.events.ops import OP_ALLOC, OP_ATTACH, OP_FREE, OP_REALLOC, OpBatch
from heapdiff.events.scan import scan
from heapdiff.tracegen.writer import TraceWriter


@dataclass(frozen=True)
class Given:
    kind: int
    ts: int
    pid: int
    tid: int
    heap: int
    addr: int
    size: int
    old_addr: int
    source: int
    frames: tuple[int, ...]


def _write(pointer_size: int, compress: bool, seed: int, wow64: bool = False,
           stack_elsewhere: bool = False) -> tuple[bytes, list[Given], list[tuple[int, int, int, str]]]:
    rng = random.Random(seed)
    out = io.BytesIO()
    cpus = 4
    w = TraceWriter(out, pointer_size=pointer_size, cpus=cpus, buffer_size=0x1000, compress=compress)
    given: list[Given] = []
    images = []
    ts = w.t0 + 100
    top = (1 << (8 * pointer_size)) - 1
    for pid, base in ((100, 0x7FF6_0000_0000 & top), (200, 0x7FF7_0000_0000 & top)):
        w.process(ts, 0, pid, 4, f"p{pid}.exe", f"p{pid}.exe --x")
        ts += 1
        w.image(ts, 0, pid, base, 0x100000, f"\\Device\\HarddiskVolume3\\app\\p{pid}.exe")
        images.append((pid, base, 0x100000, f"\\Device\\HarddiskVolume3\\app\\p{pid}.exe"))
        ts += 1
    cpu_ts = [ts] * cpus
    taken: set[tuple[int, int]] = set()  # one event per (timestamp, thread), as a thread logs them (notes 9.4)
    for _ in range(600):
        cpu = rng.randrange(cpus)
        t = max(cpu_ts[cpu] + rng.randrange(0, 3), max(cpu_ts) - 50)  # shared timestamps across threads
        pid = rng.choice((100, 200))
        tid = pid * 10 + rng.randrange(3)
        while (t, tid) in taken:
            t += 1
        taken.add((t, tid))
        ptr = 4 if (wow64 and pid == 200) else None
        pmask = 0xFFFFFFFF if (ptr == 4 or pointer_size == 4) else top
        heap = (0x10000 * (1 + rng.randrange(2))) & pmask
        kind = rng.choice((OP_ALLOC, OP_ALLOC, OP_FREE, OP_REALLOC))
        addr = rng.randrange(1, 1 << 31) & pmask & ~7
        size = rng.randrange(1, 1 << 20) & pmask
        old = rng.randrange(1, 1 << 31) & pmask & ~7
        src = rng.randrange(1, 7)
        frames: tuple[int, ...] = ()
        if kind == OP_ALLOC:
            w.heap_alloc(t, cpu, pid, tid, heap, size, addr, src, ptr=ptr)
        elif kind == OP_FREE:
            w.heap_free(t, cpu, pid, tid, heap, addr, src, ptr=ptr)
            size = 0
            old = 0
        else:
            w.heap_realloc(t, cpu, pid, tid, heap, addr, old, size, size // 2, src, ptr=ptr)
        if kind == OP_ALLOC:
            old = 0
        cpu_ts[cpu] = t
        if kind != OP_FREE:
            frames = tuple(rng.randrange(0x7FF6_0000_0000 & top, (0x7FF6_0000_0000 & top) + 0x100000)
                           for _ in range(rng.randrange(1, 33)))
            scpu = (cpu + 1) % cpus if stack_elsewhere else cpu
            st = max(t, cpu_ts[scpu]) + (1 if stack_elsewhere else 0)
            w.stack(st, scpu, t, pid, tid, frames)
            cpu_ts[scpu] = st
        given.append(Given(kind, t, pid, tid, heap, addr, size, old, src, frames))
    w.close()
    return out.getvalue(), given, images


def _read(data: bytes) -> tuple[list[Given], list[tuple[int, int, int, str]], dict[str, int]]:
    ops: list[OpBatch] = []
    res = scan(open_trace(np.frombuffer(data, np.uint8), "mem"), heap_sink=ops.append)
    b = OpBatch.concat(*ops)
    stacks: dict[int, tuple[int, ...]] = {}
    # a stack comes on its Alloc/ReAlloc op when its walk was in the same batch, else in an ATTACH op; walks in
    # uncompressed buffers come as deferred references, interned here
    sids = res.resolve_stacks(b.stack)
    for j in np.flatnonzero((b.op == OP_ATTACH) | (b.stack >= 0)).tolist():
        stacks[int(b.serial[j])] = tuple(int(x) for x in res.sequences.get(int(sids[j])).tolist())
    got = []
    for j in np.flatnonzero(b.op != OP_ATTACH).tolist():
        kind = int(b.op[j])
        got.append(Given(kind, int(b.ts[j]), int(b.pid[j]), int(b.tid[j]), int(b.heap[j]), int(b.addr[j]),
                         int(b.size[j]), int(b.old_addr[j]), int(b.source[j]), stacks.get(int(b.serial[j]), ())))
    images = [(i.pid, i.base, i.size, i.file_name) for i in res.images]
    return got, images, dict(res.anomalies.as_dict())


def _key(g: Given) -> tuple[int, ...]:
    return (g.ts, g.pid, g.tid, g.kind, g.addr, g.heap)


@pytest.mark.parametrize("pointer_size", [4, 8])
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("stack_elsewhere", [False, True])
def test_every_event_stack_and_image_comes_back(pointer_size: int, compress: bool, stack_elsewhere: bool) -> None:
    data, given, images = _write(pointer_size, compress, seed=pointer_size * 10 + compress,
                                 stack_elsewhere=stack_elsewhere)
    got, got_images, anomalies = _read(data)
    assert anomalies == {}
    # the reader's order is time order; events sharing a timestamp may come in any order
    assert sorted(got, key=_key) == sorted(given, key=_key)
    assert [g.ts for g in got] == sorted(g.ts for g in got)
    # free events carry no size/old address; the source id of a free is kept by the writer but not by the ops
    assert got_images == images


def test_wow64_events_in_a_64_bit_trace() -> None:
    data, given, _ = _write(8, False, seed=7, wow64=True)
    got, _, anomalies = _read(data)
    assert anomalies == {}
    assert sorted(got, key=_key) == sorted(given, key=_key)


def test_a_changed_byte_changes_the_result() -> None:
    """The round trip compares real content: flip one heap address and the test data disagree."""
    data, given, _ = _write(8, False, seed=3)
    some = next(g for g in given if g.kind == OP_ALLOC)
    pos = data.find(some.addr.to_bytes(8, "little"))
    assert pos > 0
    bad = bytearray(data)
    bad[pos] ^= 0x10
    got_bad, _, _ = _read(bytes(bad))
    assert sorted(got_bad, key=_key) != sorted(given, key=_key)
