"""What naming the frames from a PDB adds to the main job: a PDB of 20,000 functions, 50,000 distinct frames.

    .venv/bin/python benchmarks/symbols_job_bench.py [--functions 20000] [--frames 50000] [--repeat 5]
                                                     [--cache DIR]

Builds an image and its PDB as ``symbols_bench.py`` does (Debian's clang as clang-cl, lld-link /DEBUG), then writes
one trace with the project's writer: the image is loaded with its TimeDateStamp and its PDB identity (the trace
carries DbgID_RSDS, as a merged trace does), and its outstanding blocks' stacks hold ``--frames`` distinct return
addresses inside the image's functions (picked from its .pdata table), 5-10 frames a stack. The image and PDB sit
beside the trace, where heapdiff always looks. Then the whole job (``heapdiff TRACE -o out.html --json out.json
-q``, a child process each run) is timed three ways, alternated round by round: ``--no-symbols``; symbols with an
empty ``HEAPDIFF_CACHE_DIR`` (first use: the PDB is found, opened and asked about every address); symbols with the
warm parsed-symbols cache. Wall time and CPU time (user + sys of the child) are reported as medians with every run.
Each symbol run's JSON is checked: every one of the frames is named, and the cold and warm runs name them alike.

Files go to ``<cache>/symbols-job`` (``~/.cache/heapdiff-bench`` or ``$HEAPDIFF_BENCH_CACHE``), kept and reused
while their parameters match. Needs clang and lld (apt-get install clang lld).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench_util import bench_env, machine, python, run_child
from symbols_bench import build, function_ranges

from heapdiff import _native
from heapdiff.tracegen.scenario import Module, Process, Scenario
from heapdiff.tracegen.writer import TraceWriter

#: what the files in the work folder were made from; a change rebuilds them
STAMP_VERSION = 1
IMAGE = "many.exe"
BASE = 0x7FF6_4000_0000
MODES = ("no-symbols", "symbols, empty cache", "symbols, warm cache")


def heapdiff_command() -> list[str]:
    exe = Path(python()).parent / "heapdiff"
    return [str(exe)] if exe.exists() else [python(), "-m", "heapdiff.cli"]


def pick_lookups(ranges: list[tuple[int, int]], count: int, rng: random.Random) -> list[int]:
    """``count`` distinct RVAs to look up, each with the next byte still in its function (so that a return
    address ``rva + 1``, looked up one byte back, lands on it)."""
    pool = [rva for start, end in ranges for rva in range(start, end - 1)]
    if len(pool) < count:
        raise SystemExit(f"only {len(pool)} addresses in the functions, {count} wanted")
    return rng.sample(pool, count)


def plan_stacks(lookups: list[int], rng: random.Random) -> list[list[int]]:
    """The lookups cut into stacks of 5-10 frames, as frame RVAs: the innermost frame is looked up at its own
    address, every other one (a return address) one byte back, so each lookup is asked exactly once."""
    stacks: list[list[int]] = []
    i = 0
    while i < len(lookups):
        n = min(rng.randint(5, 10), len(lookups) - i)
        chunk = lookups[i:i + n]
        stacks.append([chunk[0]] + [rva + 1 for rva in chunk[1:]])
        i += n
    return stacks


def write_trace(path: Path, exe: Path, stacks: list[list[int]], rng: random.Random) -> int:
    """One process with the image loaded; per stack 1-3 blocks left outstanding and one freed. Returns the
    outstanding blocks."""
    ident = _native.pe_identity(str(exe))
    cv = ident.codeview
    if cv is None:
        raise SystemExit(f"{exe} has no CodeView record")
    pdb_name = cv.pdb_name.replace("\\", "/").rpartition("/")[2]
    mod = Module(IMAGE, "\\Device\\HarddiskVolume3\\Program Files\\Bench\\" + IMAGE, BASE, ident.size_of_image,
                 ident.timestamp, (pdb_name, cv.guid, cv.age))
    w = TraceWriter(str(path), pointer_size=8, cpus=2, logger_name="heapdiff symbols bench")
    sc = Scenario(w)
    p = Process(pid=5120, image=IMAGE, modules={IMAGE: mod}, heaps=[0x1F0000], threads=[7000, 7004])
    sc.start_process(p)
    for rvas in stacks:
        site = [(IMAGE, rva) for rva in rvas]
        for _ in range(rng.randint(1, 3)):
            sc.alloc(p, site, rng.randint(16, 4096))
        sc.free(p, sc.alloc(p, site, 64))
    sc.close()
    return len(sc.live)


def prepare(work: Path, functions: int, frames: int) -> dict[str, Any]:
    """The image, PDB and trace in ``work``: each reused while the parameters it was made from match."""
    stamp_file = work / "stamp.json"
    want = {"version": STAMP_VERSION, "functions": functions, "frames": frames}
    old: dict[str, Any] = json.loads(stamp_file.read_text()) if stamp_file.exists() else {}
    if old.get("params") == want and (work / "trace.etl").exists():
        return old
    work.mkdir(parents=True, exist_ok=True)
    exe, pdb = work / IMAGE, work / "many.pdb"
    if old.get("built_functions") != functions or not (exe.exists() and pdb.exists()):
        stamp_file.unlink(missing_ok=True)
        exe, pdb = build(work, functions)
        stamp_file.write_text(json.dumps({"built_functions": functions}))
    rng = random.Random(7)
    ranges = function_ranges(exe)
    lookups = pick_lookups(ranges, frames, rng)
    stacks = plan_stacks(lookups, rng)
    live = write_trace(work / "trace.etl", exe, stacks, rng)
    stamp = {"params": want, "built_functions": functions, "functions_in_pdata": len(ranges),
             "stacks": len(stacks), "frames": len(lookups), "outstanding_blocks": live,
             "pdb_mb": round(pdb.stat().st_size / 1e6, 1),
             "trace_mb": round((work / "trace.etl").stat().st_size / 1e6, 2)}
    stamp_file.write_text(json.dumps(stamp, indent=1))
    return stamp


def check(doc: dict[str, Any], symbols: bool, expected_frames: int) -> dict[tuple[int, int], str | None]:
    """Every frame of the image, by (rva, position 0 or not) -> function; raises when the run is not what it
    claims (a frame unnamed with symbols on, or named with them off)."""
    (trace,) = doc["traces"]
    mods = [m for m in trace["modules"] if m["name"] == IMAGE]
    status = mods[0]["symbols"] if mods else None
    if status != ("loaded" if symbols else "off"):
        raise SystemExit(f"{IMAGE}: symbols {status!r} ({mods[0]['note'] if mods else 'not among the modules'})")
    named: dict[tuple[int, int], str | None] = {}
    for g in doc["groups"]:
        for i, f in enumerate(g["frames"]):
            if f["module"] == IMAGE:
                named[(f["rva"], i > 0)] = f["function"]
    if len(named) != expected_frames:
        raise SystemExit(f"{len(named)} distinct frames in the JSON, {expected_frames} written")
    unnamed = sum(1 for fn in named.values() if fn is None)
    if symbols and unnamed:
        raise SystemExit(f"{unnamed} of {len(named)} frames were not named")
    if not symbols and unnamed != len(named):
        raise SystemExit("frames were named with --no-symbols")
    return named


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--functions", type=int, default=20_000)
    ap.add_argument("--frames", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=5, help="rounds; each round runs every mode once")
    ap.add_argument("--cache", type=Path,
                    default=Path(os.environ.get("HEAPDIFF_BENCH_CACHE", "~/.cache/heapdiff-bench")).expanduser())
    ap.add_argument("--heapdiff", default=None, help="the heapdiff command to time (default: this checkout's)")
    args = ap.parse_args()
    for tool in ("clang", "lld-link"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install clang lld")
    work = args.cache / "symbols-job"
    stamp = prepare(work, args.functions, args.frames)
    print(f"{stamp['functions_in_pdata']} functions (PDB {stamp['pdb_mb']} MB), trace {stamp['trace_mb']} MB: "
          f"{stamp['stacks']} stacks, {stamp['frames']} distinct frames, {stamp['outstanding_blocks']} "
          f"outstanding blocks")

    env = bench_env(args.cache / "numba")
    for var in ("_NT_SYMBOL_PATH", "_NT_ALT_SYMBOL_PATH"):
        env.pop(var, None)
    warm_cache = work / "warm-cache"
    shutil.rmtree(warm_cache, ignore_errors=True)
    out = work / "out"
    out.mkdir(exist_ok=True)
    cmd = [args.heapdiff] if args.heapdiff else heapdiff_command()

    def job(mode: str) -> tuple[Any, dict[str, Any]]:
        run_env = dict(env)
        flags = ["--no-symbols"] if mode == MODES[0] else []
        with tempfile.TemporaryDirectory(dir=work) as empty:
            run_env["HEAPDIFF_CACHE_DIR"] = empty if mode == MODES[1] else str(warm_cache)
            r = run_child([*cmd, str(work / "trace.etl"), "-o", str(out / "out.html"), "--json",
                           str(out / "out.json"), "-q", *flags], env=run_env)
        if r.returncode != 0:
            sys.exit(f"{mode}: exit {r.returncode}\n{r.stderr}")
        return r, json.loads((out / "out.json").read_text())

    # warm-up: the JIT cache, the page cache, and the warm symbol cache filled once
    for mode in MODES:
        job(mode)
    names: dict[str, dict[tuple[int, int], str | None]] = {}
    runs: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
    for rnd in range(args.repeat):
        order = MODES[rnd % 3:] + MODES[:rnd % 3]  # rotated: no mode always runs after the same one
        for mode in order:
            r, doc = job(mode)
            runs[mode].append((r.wall_s, r.user_s + r.sys_s))
            names[mode] = check(doc, mode != MODES[0], stamp["frames"])
        print(f"round {rnd + 1}: " + ", ".join(f"{m} {runs[m][-1][0]:.2f} s" for m in MODES), flush=True)
    if names[MODES[1]] != names[MODES[2]]:
        sys.exit("the warm cache named frames differently from the PDB")

    def med(mode: str, k: int) -> float:
        return statistics.median(r[k] for r in runs[mode])

    print(f"\nmachine: {machine()['cpu']}, {machine()['cores']}; load average {os.getloadavg()}")
    print(f"all {stamp['frames']} frames named in every symbol run; cold and warm runs name them alike\n")
    print("| mode | wall s (median) | runs | CPU s (median) | runs |\n|---|---|---|---|---|")
    for m in MODES:
        print(f"| {m} | {med(m, 0):.3f} | {', '.join(f'{w:.2f}' for w, _ in runs[m])} | {med(m, 1):.3f} | "
              f"{', '.join(f'{c:.2f}' for _, c in runs[m])} |")
    print("\n| added by symbols | wall s | CPU s | target |\n|---|---|---|---|")
    for m, target in ((MODES[1], 1.0), (MODES[2], 0.2)):
        wall, cpu = med(m, 0) - med(MODES[0], 0), med(m, 1) - med(MODES[0], 1)
        verdict = "PASS" if wall < target else "FAIL"
        print(f"| {m} | {wall:+.3f} | {cpu:+.3f} | < {target} s: {verdict} |")
    print("\n(per round, paired: " + "; ".join(
        f"{m}: " + ", ".join(f"{a[0] - b[0]:+.2f}" for a, b in zip(runs[m], runs[MODES[0]], strict=True))
        for m in MODES[1:]) + ")")


if __name__ == "__main__":
    main()
