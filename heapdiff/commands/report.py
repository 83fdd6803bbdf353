"""The main job: one trace (what is outstanding at its end) or two (how much more is outstanding in "after").

A short pipeline: read and reduce every trace, filter and group it (:mod:`heapdiff.commands.analyse`), diff the
groupings and build the document (:mod:`heapdiff.document.build`), then the reporters render it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from heapdiff.commands.analyse import Selection, analyse_all
from heapdiff.document.build import build_document
from heapdiff.document.model import Document, Filters, Role
from heapdiff.etl.trace import TraceFile
from heapdiff.events.scan import Progress
from heapdiff.report.html import prepare_html, render_html
from heapdiff.report.terminal import terminal_summary
from heapdiff.report.view import ReportView
from heapdiff.report.view_build import build_view


@dataclass(frozen=True)
class ReportOptions:
    process: str | None = None
    #: one pid (one trace) or one per trace (a diff)
    pids: tuple[int, ...] | None = None
    kernel_frames: bool = False
    #: thinning of the terminal and HTML rows; never of the document
    min_bytes: int = 0
    top: int = 50


@dataclass(frozen=True)
class ReportResult:
    document: Document
    view: ReportView
    html: str
    summary: str


def roles_for(n: int) -> tuple[Role, ...]:
    return ("before", "after") if n == 2 else ("trace",)


def run_report(traces: Sequence[TraceFile], opts: ReportOptions,
               progress: Sequence[Progress | None] | None = None) -> ReportResult:
    """Read, reduce, group and diff ``traces`` (one or two), then render the document."""
    n = len(traces)
    pids: Sequence[int | None] = opts.pids if opts.pids is not None else [None] * n
    selections = [Selection(opts.process, pids[i]) for i in range(n)]
    analyses = analyse_all(traces, roles_for(n), selections, opts.kernel_frames,
                           list(progress) if progress is not None else [None] * n, meanwhile=prepare_html)
    filters = Filters(process=opts.process, pid=opts.pids, kernel_frames=opts.kernel_frames,
                      min_bytes=opts.min_bytes, top=opts.top)
    doc = build_document(analyses, filters)
    view = build_view(doc, top=opts.top, min_bytes=opts.min_bytes)
    return ReportResult(doc, view, render_html(view), terminal_summary(view))
