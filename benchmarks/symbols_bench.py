"""Speed of the native symbol reader on a PDB of 20,000 functions: open it, then resolve 50,000 distinct RVAs.

    .venv/bin/python benchmarks/symbols_bench.py [--functions 20000] [--rvas 50000] [--repeat 3] [--keep DIR]

Writes a C file of ``--functions`` noinline functions, each with a two-level static inline chain and a call,
builds it with Debian's clang (as clang-cl, /O2 /Z7) and lld-link /DEBUG into a temporary folder, and picks RVAs
inside the functions from the image's .pdata table (independent of the reader). Each repetition is a first use: a new
reader opens the PDB (page cache warm) and resolves the whole batch; a second batch on the same reader shows the
cached case. Needs clang and lld (apt-get install clang lld); gcab too for the .pd_ expansion line.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from heapdiff import _native

FUNCTION = """
static inline int mix_{i}(int a) {{ int t = a * {k} + 1; sink = t; return t ^ (t >> 3); }}
static inline int step_{i}(int a) {{ int m = mix_{i}(a); sink = m; return m + mix_{i}(m + {i}); }}
__declspec(noinline) int f_{i}(int x)
{{
    int y = step_{i}(x);
    sink = y;
    return y + f_{j}(x - 1);
}}
"""


def write_source(path: Path, count: int) -> None:
    parts = ["static volatile int sink;\n"]
    parts += [f"__declspec(noinline) int f_{i}(int x);\n" for i in range(count)]
    parts += [FUNCTION.format(i=i, j=(i * 7 + 1) % count, k=i % 97 + 3) for i in range(count)]
    parts.append("int mainCRTStartup(void) { return f_0(3); }\n")
    path.write_text("".join(parts))


def build(work: Path, count: int) -> tuple[Path, Path]:
    src = work / "many.c"
    write_source(src, count)
    started = time.perf_counter()
    subprocess.run(["clang", "--driver-mode=cl", "--target=x86_64-pc-windows-msvc", "/c", "/O2", "/Z7", "/GS-",
                    str(src), f"/Fo{work / 'many.obj'}"], check=True)
    subprocess.run(["lld-link", "/DEBUG", f"/PDB:{work / 'many.pdb'}", f"/OUT:{work / 'many.exe'}",
                    "/ENTRY:mainCRTStartup", "/SUBSYSTEM:CONSOLE", "/NODEFAULTLIB",
                    str(work / "many.obj")], check=True)
    print(f"built {count} functions in {time.perf_counter() - started:.1f} s; "
          f"PDB {(work / 'many.pdb').stat().st_size / 1e6:.1f} MB")
    return work / "many.exe", work / "many.pdb"


def function_ranges(exe: Path) -> list[tuple[int, int]]:
    """(begin, end) RVAs of every function with unwind data: the image's .pdata RUNTIME_FUNCTION table."""
    data = exe.read_bytes()
    (pe,) = struct.unpack_from("<I", data, 0x3C)
    sections, opt_size = struct.unpack_from("<H12xH", data, pe + 6)
    table = pe + 24 + opt_size
    for i in range(sections):
        name, size, _, _, raw_at = struct.unpack_from("<8sIIII", data, table + 40 * i)
        if name.rstrip(b"\0") == b".pdata":
            entries = struct.iter_unpack("<III", data[raw_at:raw_at + size - size % 12])
            return sorted((begin, end) for begin, end, _ in entries if end > begin)
    raise SystemExit("no .pdata section")


def pick_rvas(ranges: list[tuple[int, int]], count: int, rng: random.Random) -> list[int]:
    pool = [rva for start, end in ranges for rva in range(start, end)]
    return rng.sample(pool, min(count, len(pool)))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def first_use(pdb: Path, rvas: list[int]) -> tuple[float, float, float, _native.Resolution]:
    """Seconds to open, to resolve the batch, to resolve it again on the same reader; and the answer."""
    t0 = time.perf_counter()
    reader = _native.PdbReader(str(pdb))
    t1 = time.perf_counter()
    res = reader.resolve(rvas)
    t2 = time.perf_counter()
    reader.resolve(rvas)
    return t1 - t0, t2 - t1, time.perf_counter() - t2, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--functions", type=int, default=20_000)
    ap.add_argument("--rvas", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="build here and keep the files (default: a temporary folder)")
    ap.add_argument("--reuse", action="store_true", help="measure the files an earlier --keep run built")
    args = ap.parse_args()
    for tool in ("clang", "lld-link"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install clang lld")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        exe, pdb = (work / "many.exe", work / "many.pdb") if args.reuse else build(work, args.functions)
        ranges = function_ranges(exe)
        rvas = pick_rvas(ranges, args.rvas, random.Random(1))
        print(f"{len(ranges)} functions in .pdata, {len(rvas)} distinct RVAs inside them")

        rows: dict[str, list[float]] = {k: [] for k in ("pe_identity", "pdb_identity", "open", "resolve (first)",
                                                        "open + resolve (first use)", "resolve again")}
        for _ in range(args.repeat):
            rows["pe_identity"].append(timed(lambda: _native.pe_identity(str(exe))))
            rows["pdb_identity"].append(timed(lambda: _native.pdb_identity(str(pdb))))
            t_open, t_first, t_again, res = first_use(pdb, rvas)
            rows["open"].append(t_open)
            rows["resolve (first)"].append(t_first)
            rows["open + resolve (first use)"].append(t_open + t_first)
            rows["resolve again"].append(t_again)
        resolved = sum(1 for s in res.proc_start if s >= 0)
        frames = res.chain_start[-1]
        inlined = sum(1 for i in range(len(rvas)) if res.chain_start[i + 1] - res.chain_start[i] > 1)
        print(f"resolved {resolved}/{len(rvas)} RVAs, {frames} frames, {inlined} with inline frames, "
              f"{len(res.strings)} strings, failed {res.failed}")
        if shutil.which("gcab"):
            subprocess.run(["gcab", "-c", "-n", "-z", str(work / "many.pd_"), str(pdb)], check=True)
            cab, out = str(work / "many.pd_"), str(work / "out.pdb")
            rows["expand_cab (.pd_ MSZIP)"] = [timed(lambda: _native.expand_cab(cab, out)) for _ in range(args.repeat)]
        print("\n| step | median ms | runs ms |\n|---|---|---|")
        for name, times in rows.items():
            runs = ", ".join(f"{t * 1e3:.0f}" for t in times)
            print(f"| {name} | {statistics.median(times) * 1e3:.1f} | {runs} |")


if __name__ == "__main__":
    main()
