"""The main job's serial tail, phase by phase: what runs on one thread after both traces are read and grouped.

    python benchmarks/tail_bench.py [--size 10M] [--rounds 5] [--cache DIR]

Reads and groups the pair once (in this process, the job's own threads), then builds from those analyses, each
round again: the document (records of both inputs, matched; the frame table's records made anew), the view (rows,
breakdowns, call trees), the HTML with the terminal and Markdown summaries, and the JSON (written to memory). The
CPU time of each phase is printed per round with its minimum (the tail runs on one thread, so its CPU time is its
wall time), and the JSON's and the HTML's MD5, which must not change when the tail is made faster. The cyclic
collector is off, as in the job.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gen import default_cache, ensure, pair_name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="10M")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=default_cache())
    args = ap.parse_args()
    ensure(args.size, args.cache)
    name = pair_name(args.size, False)

    from heapdiff.cli.inputs import map_all
    from heapdiff.commands.analyse import Selection, analyse_all
    from heapdiff.commands.report import window_filter
    from heapdiff.document import write_document
    from heapdiff.document.build import BuildOptions, build_document
    from heapdiff.document.model import Filters
    from heapdiff.report.html import prepare_html, render_html
    from heapdiff.report.markdown import markdown_summary
    from heapdiff.report.terminal import terminal_summary
    from heapdiff.report.view_build import build_view
    from heapdiff.window import NO_WINDOW

    gc.disable()
    traces = map_all([str(args.cache / f"{name}-before.etl"), str(args.cache / f"{name}-after.etl")])
    analyses = analyse_all(traces, ("before", "after"), [Selection(), Selection()], False, [None, None],
                           meanwhile=prepare_html)
    filters = Filters(process=None, pid=None, kernel_frames=False, min_bytes=0, top=50, match="function",
                      symbols=None, window=window_filter(NO_WINDOW))
    phases: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for a in analyses:  # the frame records are made again, as a fresh job makes them
            a.grouping.table.__post_init__()
        t0 = time.process_time()
        doc = build_document(analyses, BuildOptions(filters, (), ()))
        t1 = time.process_time()
        view = build_view(doc, top=50, min_bytes=0)
        t2 = time.process_time()
        html = render_html(view)
        terminal_summary(view)
        markdown_summary(view)
        t3 = time.process_time()
        out = io.BytesIO()
        write_document(doc, out.write)
        t4 = time.process_time()
        for phase, took in (("document", t1 - t0), ("view", t2 - t1), ("html", t3 - t2), ("json", t4 - t3),
                     ("tail", t4 - t0)):
            phases.setdefault(phase, []).append(took)
        if r == 0:
            print(f"{args.size} pair: {len(doc.groups):,} groups; JSON {len(out.getvalue()):,} bytes, MD5 "
                  f"{hashlib.md5(out.getvalue()).hexdigest()}; HTML {len(html):,} characters, MD5 "
                  f"{hashlib.md5(html.encode('utf-8')).hexdigest()}")
    for k, v in phases.items():
        print(f"{k:9s} min {min(v):.3f} s   " + " ".join(f"{x:.3f}" for x in v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
