"""Profile of the main job on one pair (default 10M): where the wall time goes; writes benchmarks/profile.md.

    python benchmarks/profile_job.py [--size 10M] [--cache DIR] [--rate 100]

Uses py-spy (``pip install py-spy``: a benchmark-only tool, not a dependency of heapdiff) to sample the job
``heapdiff before.etl after.etl -o out.html --json out.json -q`` in its own process, every thread of every
process (``--subprocesses``: the job may fork a worker per trace), idle threads left out. Time spent inside a
numba kernel is charged to the Python line that called it (the kernels have no Python frames), so "self" time
on such a line is the kernel's time. Without py-spy, cProfile is used instead (one thread only, the reading
threads' kernels show as single calls).

A section ``## Reading`` at the end of an existing profile.md (hand-written notes) is kept.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen
from bench_util import REPO, bench_env, machine
from run import heapdiff_cmd

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> tuple[str, str]:
    """(function with its file, the same with the line) of a py-spy frame ``func (path:line)``."""
    m = FRAME.match(frame)
    if not m:
        return frame, frame
    f = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in f:
            f = f.split(marker, 1)[1]
    fn = f"{m.group('func')} ({f})"
    return fn, f"{m.group('func')} ({f}:{m.group('line')})" if m.group("line") else fn


def pyspy(argv: list[str], rate: int, env: dict[str, str]) -> tuple[list[tuple[list[str], int]], float]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "raw.txt"
        t0 = time.perf_counter()
        cmd = [exe, "record", "--format", "raw", "--threads", "--subprocesses", "-r", str(rate), "-o", str(out)]
        subprocess.run([*cmd, "--", *argv], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        stacks = []
        for line in out.read_text().splitlines():
            path, _, n = line.rpartition(" ")
            if path:
                stacks.append((path.split(";"), int(n)))
    return stacks, wall


def tables(stacks: list[tuple[list[str], int]], rate: int, wall: float) -> list[str]:
    total = sum(n for _, n in stacks)
    per_thread: collections.Counter[str] = collections.Counter()
    self_line: collections.Counter[str] = collections.Counter()
    self_fn: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    for frames, n in stacks:
        k = 0
        while k < len(frames) and frames[k].startswith(("thread ", "process ")):
            k += 1
        thread = " / ".join(re.sub(r'^(process \d+):".*"$', r"\1", x) for x in frames[:k]) or "?"
        body = frames[k:]
        per_thread[thread] += n
        if not body:
            continue
        fn, ln = short(body[-1])
        self_line[ln] += n
        self_fn[fn] += n
        seen = set()
        for fr in body:
            f, _ = short(fr)
            if f not in seen and ("heapdiff/" in f or "json/" in f or "jinja2" in f):
                seen.add(f)
                incl[f] += n
    s_per = 1.0 / rate
    out = [
        f"{total:,} samples at {rate} Hz over {wall:.1f} s of wall time "
        f"(each sample = {s_per * 1000:.0f} ms of one busy thread; idle threads are not sampled).",
        "",
        "Busy time per thread:",
        "",
        "| thread | samples | seconds |",
        "|---|---|---|",
    ]
    for t, n in per_thread.most_common():
        out.append(f"| {t} | {n:,} | {n * s_per:.1f} |")
    out += [
        "",
        "### Top self costs (function and line; a numba kernel's time is on the line calling it)",
        "",
        "| # | where | seconds | % of samples |",
        "|---|---|---|---|",
    ]
    for i, (where, n) in enumerate(self_line.most_common(25), 1):
        out.append(f"| {i} | `{where}` | {n * s_per:.1f} | {100 * n / total:.1f} |")
    out += ["", "### Top self costs by function", "", "| # | function | seconds | % |", "|---|---|---|---|"]
    for i, (fn, n) in enumerate(self_fn.most_common(15), 1):
        out.append(f"| {i} | `{fn}` | {n * s_per:.1f} | {100 * n / total:.1f} |")
    out += [
        "",
        "### Inclusive costs (heapdiff, json and jinja2 functions)",
        "",
        "| # | function | seconds | % |",
        "|---|---|---|---|",
    ]
    for i, (fn, n) in enumerate(incl.most_common(30), 1):
        out.append(f"| {i} | `{fn}` | {n * s_per:.1f} | {100 * n / total:.1f} |")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="10M")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "profile.md")
    args = ap.parse_args()
    cache = args.cache or gen.default_cache()
    st = gen.ensure(args.size, cache)
    b, a = st["traces"]["0"]["path"], st["traces"]["1"]["path"]
    outdir = cache / "outputs"
    outdir.mkdir(parents=True, exist_ok=True)
    argv = [*heapdiff_cmd(), b, a, "-o", str(outdir / "profile.html"), "--json", str(outdir / "profile.json"), "-q"]
    env = bench_env(cache / "numba")
    m = machine()
    head = [
        "# Profile of the main job",
        "",
        f"`heapdiff {args.size}-before.etl {args.size}-after.etl -o out.html --json out.json -q` "
        f"({os.path.getsize(b) / 1e9 + os.path.getsize(a) / 1e9:.2f} GB, "
        f"{2 * gen.parse_size(args.size):,} heap events), written by "
        f"`python benchmarks/profile_job.py --size {args.size}` on {m['date']}; "
        f"{m['cpu']}, {m['cores']}, Python {m['python']}, numba {m['numba']}. "
        "Warm JIT cache, warm page cache.",
        "",
    ]
    subprocess.run(argv, env=env, check=True)  # warm the page cache and the JIT cache
    if shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists():
        stacks, wall = pyspy(argv, args.rate, env)
        body = ["Sampled with py-spy (all threads).", "", *tables(stacks, args.rate, wall)]
    else:
        import cProfile
        import io
        import pstats

        from heapdiff.cli import main as cli_main

        prof = cProfile.Profile()
        t0 = time.perf_counter()
        with contextlib.suppress(SystemExit):
            prof.runcall(cli_main, argv[len(heapdiff_cmd()) :])
        wall = time.perf_counter() - t0
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
        body = [
            f"cProfile (py-spy not installed), {wall:.1f} s; numba kernels show as single calls, "
            "and only the main thread is seen.",
            "",
            "```",
            s.getvalue(),
            "```",
        ]
    keep = ""
    if args.out.exists():
        old = args.out.read_text()
        i = old.find("\n## Reading")
        if i >= 0:
            keep = old[i:]
    args.out.write_text("\n".join(head + body) + "\n" + keep)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
