"""Memory per live block of the job's analysis of a trace: what each more live block costs at the peak.

Measured with tracemalloc (numpy's buffers are traced too), not wall RSS, so that it is stable: the traced peak of
reading, reducing, grouping and writing the document of two traces that differ only in their live blocks (50,000
and 250,000, from 500 call stacks), the difference divided by the difference in blocks, so that the fixed part (the
reader's buffers, the JIT's caches) cancels out. benchmarks/memory_bench.py measures the RSS of the whole job.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from heapdiff.cli.inputs import map_trace
from heapdiff.commands.analyse import Selection, analyse_trace
from heapdiff.document import write_document
from heapdiff.document.build import BuildOptions, build_document
from heapdiff.document.model import Filters
from heapdiff.tracegen.scenario import Module, Process, Scenario
from heapdiff.tracegen.writer import TraceWriter

#: traced peak bytes per extra live block, at most. Measured: 164 (the block rows and the snapshot's columns
#: both whole for a moment, in tracemalloc's eyes: it counts columns not written yet, which RSS does not); the
#: tables of rows in slots measured 331
PER_BLOCK_BOUND = 230


def _write(path: Path, blocks: int, stacks: int) -> None:
    """One process: ``blocks`` allocations of 32 bytes, none freed, from ``stacks`` call stacks."""
    w = TraceWriter(str(path), cpus=2, buffer_size=0x10000)
    sc = Scenario(w, cpus=2)
    base = 0x7FF6_0000_0000
    sc.start_process(Process(1234, "app.exe", {"app.exe": Module("app.exe", "C:\\x\\app.exe", base, 0x4000000)},
                             heaps=[0x10000], threads=[8]))
    t = sc.ts
    for i in range(blocks):
        t += 10
        w.heap_alloc(t, i & 1, 1234, 8, 0x10000, 32, 0x10000000 + 48 * i)
        w.stack(t + 1, i & 1, t, 1234, 8, [base + 0x1000 + 16 * (i % stacks), base + 0x2000])
        t += 1
    w.close()


def _traced_peak(path: Path) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        a = analyse_trace(map_trace(str(path)), "trace", Selection(), kernel_frames=False)
        doc = build_document([a], BuildOptions(Filters(None, None, False, 0, 50)))
        write_document(doc, lambda b: None)
        assert doc.totals.last.blocks == len(a.live)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_memory_per_live_block(tmp_path: Path) -> None:
    small, big = 50_000, 250_000
    for n in (small, big):
        _write(tmp_path / f"{n}.etl", n, 500)
    analyse_trace(map_trace(str(tmp_path / f"{small}.etl")), "trace", Selection(), kernel_frames=False)  # JIT
    peaks = {n: _traced_peak(tmp_path / f"{n}.etl") for n in (small, big)}
    per_block = (peaks[big] - peaks[small]) / (big - small)
    print(f"\ntraced peak: {peaks[small] / 1e6:.1f} MB ({small:,} live blocks), {peaks[big] / 1e6:.1f} MB "
          f"({big:,}): {per_block:.0f} bytes per live block")
    assert per_block < PER_BLOCK_BOUND
