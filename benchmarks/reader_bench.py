"""Reader speed: records/s, MB/s and peak memory of the reader + decoders, without the reducer.

    python benchmarks/reader_bench.py [--cache DIR] [--repeat 3] [--json OUT]

What is timed: ``heapdiff.events.scan.scan`` on a memory-mapped file (``heapdiff.cli.map_trace``) with a heap sink
that only counts the reducer's ops, i.e. buffer map, time-ordered merge, JIT framing into columns, event
classification, stack matching, the reducer's op batches and the decoding of images and processes --
everything the main job does before the reducer, in the job's configuration (stack walks left as deferred
references, heapdiff.etl.sequences). Timed once more: the ``info`` configuration (no sink: every stack interned),
reported as ``info_records_per_s``; its distinct stacks are the trace's. Inputs:

* the largest real sample, ``../shared/etl-samples/Siemens-Healthineers__ETWAnalyzer/TraceLoggingTester.etl``
  (43 MB of TraceLogging events; skipped when absent);
* a written 64-bit trace of 2,000,000 heap records (gen.py's mix: 45/43/7/5, a stack walk of 8-32 frames on
  every Alloc and ReAlloc, 8 CPUs, 64 KiB buffers), about 330 MB.

Each input is measured in a fresh child process, so its peak RSS (``ru_maxrss`` of that child, which includes
the touched pages of the mapped file) is the run's own. In the child: imports, then one scan of the bundled
fixture (loads the JIT cache), then a warm-up scan of the input, then ``--repeat`` timed scans (best is
reported). Start-up = interpreter start + imports + JIT cache load. The numba cache lives in ``<cache>/numba``
(outside the repository) and is primed by a first child whose figures are not used.

Floor to compare with: 5,000,000 records/s framed and decoded on one core."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

T_TOP = time.time()  # before the heavy imports: the child's interpreter start-up ends about here

sys.path.insert(0, str(Path(__file__).resolve().parent))

REAL_SAMPLE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "etl-samples"
    / "Siemens-Healthineers__ETWAnalyzer"
    / "TraceLoggingTester.etl"
)
FLOOR_RECORDS_PER_S = 5_000_000


def child(path: str, repeat: int, warmup: bool, spawn_time: float) -> dict[str, Any]:
    """Runs in the measured process; returns its figures (printed as one JSON line)."""
    import resource

    t_imp0 = time.time()
    from heapdiff.cli import map_trace
    from heapdiff.events.scan import scan

    t_imp1 = time.time()
    from bench_util import FIXTURE

    with map_trace(str(FIXTURE)) as tf:
        scan(tf)
    t_jit = time.time()
    out: dict[str, Any] = {
        "interpreter_s": T_TOP - spawn_time if spawn_time else None,
        "imports_s": t_imp1 - t_imp0,
        "jit_load_s": t_jit - t_imp1,
    }
    runs = []
    first = None
    ops = [0]

    def sink(batch: Any) -> None:
        ops[0] += len(batch)

    for i in range(repeat + (1 if warmup else 0)):
        c0 = time.process_time()
        t0 = time.perf_counter()
        with map_trace(path) as tf:
            s = scan(tf, heap_sink=sink)
            s.release_reader()  # as the job does once the live stacks are interned: its windows go
            size = tf.size
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        if warmup and i == 0:
            first = dt
            continue
        runs.append((dt, cpu))
    best = min(runs)
    t0 = time.perf_counter()
    with map_trace(path) as tf:
        s_info = scan(tf)
        s_info.release_reader()
    info_s = time.perf_counter() - t0
    out.update(
        {
            "path": path,
            "bytes": size,
            "records": s.records,
            "events": s.events,
            "stack_refs": s.stack_refs,
            "stacks_matched": s.stacks_matched,
            "distinct_stacks": len(s_info.sequences),
            "ops_per_run": ops[0] // max(1, len(runs) + (1 if warmup else 0)),
            "info_s": info_s,
            "info_records_per_s": s_info.records / info_s,
            "first_run_s": first,
            "runs_s": [r[0] for r in runs],
            "best_s": best[0],
            "cpu_s_of_best": best[1],
            "records_per_s": s.records / best[0],
            "mb_per_s": size / best[0] / 1e6,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmHWM", "RssAnon", "RssFile")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0]) / 1024
    except OSError:
        pass
    return out


def measure(
    path: str, cache: Path, repeat: int = 3, warmup: bool = True, numba_cache: Path | None = None
) -> dict[str, Any]:
    """One fresh child on ``path``: its figures plus the parent's view (wall, ru_maxrss, polled anon peak)."""
    from bench_util import bench_env, python, run_child

    env = bench_env(numba_cache or cache / "numba")
    argv = [python(), __file__, "--child", path, "--repeat", str(repeat), "--spawn-time", repr(time.time())]
    if not warmup:
        argv.append("--no-warmup")
    r = run_child(argv, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"reader child failed ({r.returncode}) on {path}:\n{r.stderr[-3000:]}")
    d: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    d["child_wall_s"] = r.wall_s
    d["wait4_maxrss_mb"] = r.maxrss_mb
    d["anon_peak_mb"] = r.anon_peak_mb
    d["startup_s"] = (d["interpreter_s"] or 0.0) + d["imports_s"] + d["jit_load_s"]
    return d


def prime(cache: Path) -> None:
    """Fill the numba cache in ``<cache>/numba`` (compiles on the first use), figures discarded."""
    from bench_util import FIXTURE

    measure(str(FIXTURE), cache, repeat=1, warmup=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="write the figures there (default <cache>/reader.json)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--spawn-time", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--no-warmup", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeat, not args.no_warmup, args.spawn_time)))
        return 0

    import gen
    from bench_util import fmt_rate, machine

    cache = args.cache or gen.default_cache()
    inputs: list[tuple[str, str]] = []
    if REAL_SAMPLE.exists() and REAL_SAMPLE.stat().st_size:
        inputs.append(("TraceLoggingTester.etl (real, 43 MB)", str(REAL_SAMPLE)))
    else:
        print(f"reader_bench: {REAL_SAMPLE} absent: skipped", file=sys.stderr)
    st = gen.ensure("2M", cache, runs=(0,))
    inputs.append(("written 2M heap records (64-bit)", st["traces"]["0"]["path"]))
    prime(cache)
    results = []
    for label, path in inputs:
        d = measure(path, cache, args.repeat)
        d["label"] = label
        results.append(d)
    print(
        f"{'input':40s} {'MB':>7s} {'records':>11s} {'best s':>7s} {'records/s':>11s} {'MB/s':>7s} "
        f"{'cpu/wall':>8s} {'peak RSS MB':>11s} {'anon MB':>8s} {'start-up s':>10s} {'vs floor':>8s}"
    )
    for d in results:
        print(
            f"{d['label']:40s} {d['bytes'] / 1e6:7.0f} {d['records']:11,d} {d['best_s']:7.3f} "
            f"{fmt_rate(d['records_per_s']):>11s} {d['mb_per_s']:7.0f} "
            f"{d['cpu_s_of_best'] / d['best_s']:8.2f} "
            f"{d['wait4_maxrss_mb']:11.0f} {d['anon_peak_mb']:8.0f} {d['startup_s']:10.2f} "
            f"{d['records_per_s'] / FLOOR_RECORDS_PER_S:7.2f}x"
        )
    out = args.json or cache / "reader.json"
    out.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    print(f"figures: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
