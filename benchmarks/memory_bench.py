"""Peak memory of the main job on a trace that ends with many live blocks: is it bounded by the live blocks?

Writes (once, cached) a trace of one process that allocates ``--blocks`` blocks of 32 bytes from ``--stacks``
distinct call stacks (4 frames each) and frees none of them, then runs ``heapdiff TRACE -o /dev/null -q`` as a
child and reports its peak RSS and peak anonymous RSS (polled every 10 ms, :func:`bench_util.run_child`), per live
block, against the budget of 100 MB + 100 bytes per live block of anonymous memory. ``--stacks`` equal to
``--blocks`` is the "distinct" case: a million groups of one block each, whose budget is 1 GB of peak RSS.

    .venv/bin/python benchmarks/memory_bench.py --blocks 3000000 --stacks 5000
    .venv/bin/python benchmarks/memory_bench.py --blocks 1000000 --stacks 1000000 --repeat 1

Not part of the test command; tests/test_reduce_memory.py guards the same quantity on a small trace with
tracemalloc. The figures of RESULTS.md ("Memory") come from here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import bench_util

from heapdiff.tracegen.scenario import Module, Process, Scenario
from heapdiff.tracegen.writer import TraceWriter

#: the budget: a constant and bytes per live block
BUDGET_MB = 100
BUDGET_PER_BLOCK = 100
#: the budget when every block has a call stack of its own (a group per block): peak RSS of the whole job
DISTINCT_BUDGET_MB = 1000


def write_trace(path: Path, blocks: int, stacks: int, frames: int = 4) -> None:
    """One process, one heap, one thread: ``blocks`` allocations of 32 bytes, 10 raw units apart, none freed;
    block i has call stack i % ``stacks`` (an ntdll frame, then ``frames - 1`` frames of app.exe)."""
    w = TraceWriter(str(path), cpus=2, buffer_size=0x10000)
    sc = Scenario(w, cpus=2)
    base = 0x7FF6_0000_0000
    mods = {"app.exe": Module("app.exe", "C:\\x\\app.exe", base, 0x4000000),
            "ntdll.dll": Module("ntdll.dll", "C:\\w\\ntdll.dll", 0x7FFA_0000_0000, 0x200000)}
    p = Process(1234, "app.exe", mods, heaps=[0x10000], threads=[8])
    sc.start_process(p)
    t = sc.ts
    addr = 0x10000000
    for i in range(blocks):
        s = i % stacks
        t += 10
        w.heap_alloc(t, i & 1, 1234, 8, 0x10000, 32, addr)
        fr = [0x7FFA_0000_0000 + 0x3A2F0] + [base + 0x1000 + ((s * 7 + k * 0x10001) % 0x3FF0000)
                                             for k in range(frames - 1)]
        w.stack(t + 1, i & 1, t, 1234, 8, fr)
        t += 1
        addr += 48
    w.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=3_000_000, help="live blocks at the end (default 3,000,000)")
    ap.add_argument("--stacks", type=int, default=5000, help="distinct call stacks (default 5,000)")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "heapdiff-bench",
                    help="where the trace is written once and kept")
    ap.add_argument("--trace", type=Path, help="measure this trace instead (written by this script before)")
    ap.add_argument("--repeat", type=int, default=3, help="job runs (the peaks: their median)")
    ap.add_argument("--numba-cache", type=Path, help="NUMBA_CACHE_DIR of the measured runs")
    args = ap.parse_args(argv)
    path = args.trace or args.cache / f"live-{args.blocks}-{args.stacks}.etl"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        tmp = path.with_suffix(".part")
        write_trace(tmp, args.blocks, args.stacks)
        tmp.replace(path)
        print(f"wrote {path} ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t0:.0f} s")
    exe = Path(sys.executable).parent / "heapdiff"
    argv_job = [*([str(exe)] if exe.exists() else [bench_util.python(), "-m", "heapdiff.cli"]), str(path), "-o",
                "/dev/null", "-q"]
    env = bench_util.bench_env(args.numba_cache)
    bench_util.run_child(argv_job, env=env)  # warm: the page cache and the JIT cache
    runs = [bench_util.run_child(argv_job, env=env) for _ in range(max(1, args.repeat))]
    for r in runs:
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return 1
    anon = statistics.median(r.anon_peak_mb for r in runs)
    rss = statistics.median(r.maxrss_mb for r in runs)
    wall = statistics.median(r.wall_s for r in runs)
    distinct = args.stacks >= args.blocks
    print(f"{path.name}: {args.blocks:,} live blocks, {args.stacks:,} stacks; {len(runs)} runs, medians")
    print(f"  wall {wall:.1f} s (runs: {', '.join(f'{r.wall_s:.1f}' for r in runs)})")
    print(f"  peak RSS {rss:,.0f} MB, peak anon {anon:,.0f} MB (runs: "
          f"{', '.join(f'{r.anon_peak_mb:.0f}' for r in runs)}); {anon * 1e6 / args.blocks:,.0f} B anon per block")
    if distinct:  # a group per block: the budget is on the whole process, as a user sees it
        print(f"  budget {DISTINCT_BUDGET_MB:,} MB peak RSS: {'PASS' if rss <= DISTINCT_BUDGET_MB else 'FAIL'} "
              f"({rss / DISTINCT_BUDGET_MB:.2f}x)")
    else:
        budget = BUDGET_MB + BUDGET_PER_BLOCK * args.blocks / 1e6
        print(f"  budget {BUDGET_MB} MB + {BUDGET_PER_BLOCK} B/block = {budget:,.0f} MB peak anon: "
              f"{'PASS' if anon <= budget else 'FAIL'} ({anon / budget:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
