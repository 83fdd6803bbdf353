"""The main job: one trace (what is outstanding at its end) or two (how much more is outstanding in "after").

A short pipeline: read and reduce every trace, filter and group it (:mod:`heapdiff.commands.analyse`), match the
groups of the inputs, mark suppressed groups, total them and run the gates (:mod:`heapdiff.document.build`), then
the reporters render the document. A baseline (the JSON document of an earlier run) can stand where the "before"
trace stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from heapdiff.commands.analyse import Selection, analyse_all
from heapdiff.document.build import Baseline, BuildOptions, Input, build_document
from heapdiff.document.gates import GateRequest
from heapdiff.document.model import Document, Filters, Match, Role, WindowFilter
from heapdiff.document.suppress import Pattern
from heapdiff.errors import DocumentError
from heapdiff.etl.trace import TraceFile
from heapdiff.events.scan import Progress
from heapdiff.frames import Symbolizer
from heapdiff.report.html import prepare_html, render_html
from heapdiff.report.markdown import markdown_summary
from heapdiff.report.terminal import terminal_summary
from heapdiff.report.view import ReportView
from heapdiff.report.view_build import build_view
from heapdiff.window import NO_WINDOW, TimeSpec, WindowRequest


@dataclass(frozen=True)
class ReportOptions:
    process: str | None = None
    #: one pid (one trace) or one per input (a diff)
    pids: tuple[int, ...] | None = None
    kernel_frames: bool = False
    #: thinning of the terminal, HTML and Markdown rows; never of the document
    min_bytes: int = 0
    top: int = 50
    gates: tuple[GateRequest, ...] = ()
    suppressions: tuple[Pattern, ...] = ()
    #: names frames from PDBs; None: symbols off
    symbolizer: Symbolizer | None = None
    #: the symbol path, as the document records it
    symbol_path: str | None = None
    match: Match = "function"
    #: --from / --to / --at, applied to each trace
    window: WindowRequest = NO_WINDOW


def window_filter(req: WindowRequest) -> WindowFilter:
    """The window as the document records the request."""
    def us(t: TimeSpec | None) -> int | None:
        return t.us if t is not None else None

    def text(t: TimeSpec | None) -> str | None:
        return t.text if t is not None else None

    return WindowFilter(us(req.start), us(req.stop), us(req.at), text(req.start), text(req.stop), text(req.at))


@dataclass(frozen=True)
class ReportResult:
    document: Document
    view: ReportView
    html: str
    summary: str
    markdown: str


def check_baseline(doc: Document, name: str) -> None:
    """A baseline is the document of one trace: what a diff document holds is not one run's outstanding."""
    if doc.mode != "single":
        raise DocumentError(f"{name} is a {doc.mode} document; a baseline is the JSON of one trace "
                            "(heapdiff TRACE --json FILE)")


def run_report(traces: Sequence[TraceFile], opts: ReportOptions, progress: Sequence[Progress | None] | None = None,
               baseline: Document | None = None) -> ReportResult:
    """Read, reduce and group ``traces`` (with ``baseline``, one or two inputs in all), then build and render the
    document."""
    n = len(traces)
    inputs_n = n + (baseline is not None)
    roles: tuple[Role, ...] = ("before", "after") if inputs_n == 2 else ("trace",)
    pids: Sequence[int | None] = opts.pids if opts.pids is not None else [None] * inputs_n
    trace_pids = pids[inputs_n - n:]
    selections = [Selection(opts.process, trace_pids[i], opts.window) for i in range(n)]
    analyses = analyse_all(traces, roles[inputs_n - n:], selections, opts.kernel_frames,
                           list(progress) if progress is not None else [None] * n, meanwhile=prepare_html,
                           symbolizer=opts.symbolizer)
    inputs: list[Input] = ([Baseline(baseline)] if baseline is not None else []) + list(analyses)
    filters = Filters(process=opts.process, pid=opts.pids, kernel_frames=opts.kernel_frames,
                      min_bytes=opts.min_bytes, top=opts.top, match=opts.match,
                      symbols=opts.symbol_path if opts.symbolizer is not None else None,
                      window=window_filter(opts.window))
    doc = build_document(inputs, BuildOptions(filters, opts.suppressions, opts.gates))
    view = build_view(doc, top=opts.top, min_bytes=opts.min_bytes)
    return ReportResult(doc, view, render_html(view), terminal_summary(view), markdown_summary(view))
