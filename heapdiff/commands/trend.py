"""``heapdiff trend``: how each call stack's outstanding bytes move over N runs (N >= 3), in run order.

Each input is one run: a trace, or the JSON document of one earlier trace (CI keeps those). A trace is read,
reduced, grouped and turned into its one-trace document right away, and its blocks are let go before the next
one is read: memory grows with the groups of the runs, not with their blocks. Then the runs' groups are matched
as a diff's are (by ``module!function`` where every run has the module's symbols), and each group gets its series,
slope and class (:mod:`heapdiff.document.trend`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from heapdiff.commands.analyse import Selection, analyse_trace
from heapdiff.commands.report import ReportOptions, ReportResult, window_filter
from heapdiff.document.build import Baseline, BuildOptions, build_document
from heapdiff.document.model import Document, Filters
from heapdiff.errors import DocumentError
from heapdiff.etl.trace import TraceFile
from heapdiff.events.scan import Progress
from heapdiff.frames import Symbolizer
from heapdiff.report.html import prepare_html, render_html
from heapdiff.report.markdown import markdown_summary
from heapdiff.report.terminal import terminal_summary
from heapdiff.report.view_build import build_view

#: the fewest runs a trend is drawn from: two runs are a diff
MIN_RUNS = 3
#: traces read at once: two keep both cores busy; more would hold more traces' blocks at once for no gain
WORKERS = 2

#: a run: a trace to read, or the document of one that was read before
RunInput = TraceFile | Document


def check_run_document(doc: Document, name: str) -> None:
    """A run of a trend is one trace: a diff's or a trend's document holds no one run's outstanding blocks."""
    if doc.mode != "single":
        raise DocumentError(f"{name} is a {doc.mode} document; a run of a trend is a trace or the JSON of one "
                            "trace (heapdiff TRACE --json FILE)")


def _one_run(tf: TraceFile, opts: ReportOptions, filters: Filters, progress: Progress | None,
             symbolizer: Symbolizer | None) -> Baseline:
    """One trace as the document of that trace alone, its blocks let go once its groups are records."""
    analysis = analyse_trace(tf, "trace", Selection(opts.process, None, opts.window), opts.kernel_frames, progress,
                             symbolizer)
    doc = build_document([analysis], BuildOptions(filters))
    return Baseline(Document(mode=doc.mode, generator=doc.generator, filters=doc.filters, traces=doc.traces,
                             totals=doc.totals, groups=list(doc.groups), gates=(), suppressions=()))


def run_trend(runs: Sequence[RunInput], opts: ReportOptions,
              progress: Sequence[Progress | None] | None = None,
              meanwhile: Callable[[], None] | None = prepare_html) -> ReportResult:
    """The trend document of ``runs`` (in run order) and its renderings."""
    if len(runs) < MIN_RUNS:
        raise DocumentError(f"a trend needs at least {MIN_RUNS} runs, got {len(runs)}")
    filters = Filters(process=opts.process, pid=None, kernel_frames=opts.kernel_frames, min_bytes=opts.min_bytes,
                      top=opts.top, match=opts.match,
                      symbols=opts.symbol_path if opts.symbolizer is not None else None,
                      window=window_filter(opts.window))
    steps = list(progress) if progress is not None else [None] * len(runs)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futs = {k: pool.submit(_one_run, r, opts, filters, steps[k], opts.symbolizer)
                for k, r in enumerate(runs) if isinstance(r, TraceFile)}
        if meanwhile is not None:
            meanwhile()
        inputs = [Baseline(r) if isinstance(r, Document) else futs[k].result() for k, r in enumerate(runs)]
    doc = build_document(inputs, BuildOptions(filters, opts.suppressions, opts.gates, trend=True))
    view = build_view(doc, top=opts.top, min_bytes=opts.min_bytes)
    return ReportResult(doc, view, render_html(view), terminal_summary(view), markdown_summary(view))

