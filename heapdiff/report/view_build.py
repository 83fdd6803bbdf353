"""The view of a :class:`~heapdiff.document.Document`: what the page and the terminal show.

* the header facts of every trace; warnings (lost events or buffers, counted anomalies, an unresolved-frame share
  above 5 %, before/after traces of different pointer sizes);
* the totals, as the document has them: thinning the rows never changes them;
* the group rows, thinned to the ``top`` largest growths whose size (``|delta bytes|`` in a diff, ``bytes`` for
  one trace) is at least ``min_bytes``, plus ONE "other" row that sums every group cut, so that the page is
  bounded however many groups the document holds;
* breakdowns by module, by heap and by heap Source, over ALL groups, each capped to its 30 largest keys plus one
  "other" row.

Every string is cleaned here and capped (:func:`~heapdiff.report.text.clean`); lists are capped too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from heapdiff.document.model import Document, GroupRecord, TraceRecord
from heapdiff.grouping import ZERO, Counts
from heapdiff.report.text import clean, plural
from heapdiff.report.view import (
    Breakdown,
    BreakdownRow,
    Figures,
    Frame,
    GroupRow,
    OtherRow,
    ProcessFacts,
    ReportView,
    ReportWarning,
    SourceBreakdown,
    SourceRow,
    TraceFacts,
    ViewFilters,
)
from heapdiff.rules import NO_STACK, UNKNOWN_MODULE

#: each breakdown shows at most this many keys, then one "other" row
BREAKDOWN_CAP: Final = 30
#: a trace whose share of unresolved frames is above this gets a warning
UNRESOLVED_WARN_SHARE: Final = 0.05
SEVERAL_HEAPS: Final = "(several heaps)"
OTHER: Final = "(other)"
TOTAL: Final = "Total"
HEAP_EVENT_KINDS: Final = ("heap_alloc", "heap_free", "heap_realloc")

# caps on what one untrusted string, or one list of them, may add to the page
MAX_FRAME: Final = 512
MAX_PATH: Final = 1024
MAX_COMMAND_LINE: Final = 2048
MAX_NAME: Final = 256
MAX_FRAMES: Final = 256
MAX_PROCESSES: Final = 50
MAX_LIST: Final = 16
MAX_HISTOGRAM: Final = 64


def _duration(start: str, end: str) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (ValueError, TypeError):
        return None


def _trace(t: TraceRecord) -> TraceFacts:
    processes = tuple(
        ProcessFacts(pid=p.pid, image_name=clean(p.image_name, MAX_NAME),
                     command_line=clean(p.command_line, MAX_COMMAND_LINE), outstanding=t.outstanding_by_pid.get(p.pid))
        for p in t.processes[:MAX_PROCESSES])
    start, end = clean(t.start_utc, 64), clean(t.end_utc, 64)
    anomalies = tuple(sorted(((clean(k), v) for k, v in t.anomalies.items() if v), key=lambda kv: (-kv[1], kv[0])))
    return TraceFacts(
        role=t.role, path=clean(t.path, MAX_PATH), pointer_size=t.pointer_size, start_utc=start, end_utc=end,
        duration_s=_duration(start, end), records=t.records,
        events=tuple((clean(k), v) for k, v in t.events.items() if v),
        heap_events=sum(t.events.get(k, 0) for k in HEAP_EVENT_KINDS),
        events_lost=t.events_lost, buffers_lost=t.buffers_lost, outstanding=t.outstanding,
        unmatched_frees=t.unmatched_frees, anomalies=anomalies[:MAX_HISTOGRAM], processes=processes,
        processes_omitted=max(0, len(t.processes) - MAX_PROCESSES), frames=t.unresolved_frames.frames,
        unresolved_frames=t.unresolved_frames.unresolved)


def _warnings(traces: Sequence[TraceFacts]) -> list[ReportWarning]:
    out: list[ReportWarning] = []
    for t in traces:
        if t.events_lost:
            out.append(ReportWarning(t.role, f"{plural(t.events_lost, 'event was', 'events were')} lost while "
                                             "tracing: outstanding blocks may be missing or never freed in "
                                             "this report."))
        if t.buffers_lost:
            out.append(ReportWarning(t.role, f"{plural(t.buffers_lost, 'buffer was', 'buffers were')} lost while "
                                             "tracing: whole stretches of events are missing from this "
                                             "report."))
        n_anomalies = sum(n for _, n in t.anomalies)
        if n_anomalies:
            kinds = ", ".join(f"{k} ({n:,})" for k, n in t.anomalies[:8])
            more = f" and {len(t.anomalies) - 8} more kinds" if len(t.anomalies) > 8 else ""
            out.append(ReportWarning(t.role, f"{plural(n_anomalies, 'anomaly was', 'anomalies were')} counted "
                                             f"while reading: {kinds}{more}."))
        share = t.unresolved_share
        if share is not None and share > UNRESOLVED_WARN_SHARE:
            out.append(ReportWarning(t.role, f"{share:.1%} of stack frames ({t.unresolved_frames:,} of "
                                             f"{t.frames:,}) could not be mapped to a module: call stacks "
                                             "may be split or unreadable."))
    sizes = {t.pointer_size for t in traces if t.role in ("before", "after")}
    if len(sizes) > 1:
        out.append(ReportWarning("", "The before and after traces have different pointer sizes "
                                     f"({' and '.join(f'{s * 8}-bit' for s in sorted(sizes))}): their call "
                                     "stacks rarely match."))
    return out


def _figures(g: GroupRecord, diff: bool) -> Figures:
    if not diff:
        return Figures(g.last)
    return Figures(g.counts(1), g.counts(0), g.delta)


def _pairs(m: Mapping[str, int], limit: int) -> tuple[tuple[str, int], ...]:
    return tuple((clean(k), v) for k, v in list(m.items())[:limit])


class _Frames:
    """One view :class:`Frame` per distinct frame (frames repeat across groups)."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, bool, bool], Frame] = {}

    def __call__(self, text: str, kernel: bool, allocator: bool) -> Frame:
        key = (text, kernel, allocator)
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = Frame(clean(text, MAX_FRAME), kernel, allocator)
        return got


def _row(rank: int, g: GroupRecord, figures: Figures, diff: bool, frames_of: _Frames) -> GroupRow:
    frames = [frames_of(f.text, f.kernel, f.allocator) for f in g.frames[:MAX_FRAMES]]
    d = g.details
    heaps = [f"0x{h:x}" for h in d.heaps]
    label_index = g.label_index if g.label_index < len(frames) else -1
    return GroupRow(
        rank=rank, figures=figures, status=g.status if diff else None,
        module=clean(g.module) or UNKNOWN_MODULE, label=clean(g.label, MAX_FRAME) if g.label else NO_STACK,
        label_index=label_index, frames=tuple(frames), frames_omitted=max(0, len(g.frames) - MAX_FRAMES),
        heaps=tuple(heaps[:MAX_LIST]), heaps_omitted=max(0, len(heaps) - MAX_LIST),
        sources=_pairs(d.sources, MAX_LIST), size_histogram=_pairs(d.size_histogram, MAX_HISTOGRAM),
        first_alloc_utc=clean(d.first_alloc_utc, 64) if d.first_alloc_utc else None,
        last_alloc_utc=clean(d.last_alloc_utc, 64) if d.last_alloc_utc else None,
        sample_addresses=tuple(f"0x{a:x}" for a in d.sample_addresses[:MAX_LIST]),
    )


def _heap_key(g: GroupRecord) -> str:
    heaps = g.details.heaps
    if not heaps:
        return UNKNOWN_MODULE
    if len(set(heaps)) > 1:
        return SEVERAL_HEAPS
    return f"0x{heaps[0]:x}"


class _Sums:
    """Groups summed per key: how many, and their figures (after, before, delta)."""

    def __init__(self) -> None:
        self.n: Counter[str] = Counter()
        self.sums: dict[str, tuple[Counts, Counts, Counts]] = {}

    def add(self, key: str, g: GroupRecord, diff: bool) -> None:
        self.n[key] += 1
        a, b, d = self.sums.get(key, (ZERO, ZERO, ZERO))
        if diff:
            self.sums[key] = (a + g.counts(1), b + g.counts(0), d + g.delta)
        else:
            self.sums[key] = (a + g.last, b, d)

    def figures(self, key: str, diff: bool) -> Figures:
        a, b, d = self.sums[key]
        return Figures(a, b, d) if diff else Figures(a)


def _sum_rows(rows: Sequence[BreakdownRow], key: str, diff: bool) -> BreakdownRow:
    a = b = d = ZERO
    for r in rows:
        a = a + r.figures.after
        if diff and r.figures.before is not None and r.figures.delta is not None:
            b = b + r.figures.before
            d = d + r.figures.delta
    return BreakdownRow(key, sum(r.groups for r in rows), Figures(a, b, d) if diff else Figures(a))


def _breakdown(title: str, key_label: str, sums: _Sums, diff: bool) -> Breakdown:
    rows = [BreakdownRow(k, sums.n[k], sums.figures(k, diff)) for k in sums.n]
    rows.sort(key=lambda r: (-r.figures.growth, r.key))
    shown, rest = rows[:BREAKDOWN_CAP], rows[BREAKDOWN_CAP:]
    return Breakdown(title, key_label, tuple(shown), _sum_rows(rest, OTHER, diff) if rest else None, len(rest),
                     _sum_rows(rows, TOTAL, diff))


def _source_breakdown(groups: Counter[str], counts: Counter[str], with_sources: int) -> SourceBreakdown:
    ordered = sorted(counts, key=lambda k: (-counts[k], k))
    rows = tuple(SourceRow(k, groups[k], counts[k]) for k in ordered[:BREAKDOWN_CAP])
    rest = ordered[BREAKDOWN_CAP:]
    other = SourceRow(OTHER, sum(groups[k] for k in rest), sum(counts[k] for k in rest)) if rest else None
    return SourceBreakdown("By heap Source", rows, other, len(rest),
                           SourceRow(TOTAL, with_sources, sum(counts.values())))


def _title(doc: Document, traces: Sequence[TraceFacts]) -> str:
    def base(t: TraceFacts) -> str:
        return t.path.replace("\\", "/").rsplit("/", 1)[-1] or t.path or "?"

    if doc.is_diff and len(traces) == 2:
        return f"Heap growth: {base(traces[0])} → {base(traces[1])}"
    if traces:
        return f"Outstanding heap: {base(traces[0])}"
    return "heapdiff report"


def build_view(doc: Document, *, top: int = 50, min_bytes: int = 0) -> ReportView:
    """The view of ``doc``: see the module docstring. ``top`` rows at most (0: none), among the groups whose size
    is at least ``min_bytes``; every other group goes to the single ``other`` row."""
    diff = doc.is_diff
    top, min_bytes = max(0, top), max(0, min_bytes)
    traces = tuple(_trace(t) for t in doc.traces)
    t = doc.totals
    totals = Figures(t.runs[1], t.runs[0], t.delta) if diff else Figures(t.last)
    figures = [_figures(g, diff) for g in doc.groups]
    # stable, so the document's order breaks ties (it is sorted already; sorting again makes it a fact here)
    order = sorted(range(len(figures)), key=lambda i: -figures[i].growth)
    rows: list[GroupRow] = []
    cut_n, cut_status, eligible = 0, Counter[str](), 0
    cut_a = cut_b = cut_d = ZERO
    modules, heaps = _Sums(), _Sums()
    src_groups: Counter[str] = Counter()
    src_counts: Counter[str] = Counter()
    with_sources = 0
    frames_of = _Frames()
    for rank, i in enumerate(order, 1):
        g, f = doc.groups[i], figures[i]
        size = abs(f.growth)
        eligible += size >= min_bytes
        if size >= min_bytes and len(rows) < top:
            rows.append(_row(rank, g, f, diff, frames_of))
        else:
            cut_n += 1
            cut_a = cut_a + f.after
            if diff and f.before is not None and f.delta is not None:
                cut_b, cut_d = cut_b + f.before, cut_d + f.delta
                cut_status[g.status or ""] += 1
        modules.add(clean(g.module) or UNKNOWN_MODULE, g, diff)
        heaps.add(_heap_key(g), g, diff)
        sources = g.details.sources
        for src, count in sources.items():
            if count:
                key = clean(src)
                src_groups[key] += 1
                src_counts[key] += count
        with_sources += any(sources.values())
    statuses = tuple(sorted(cut_status.items(), key=lambda kv: (-kv[1], kv[0])))
    other = (OtherRow(cut_n, Figures(cut_a, cut_b, cut_d) if diff else Figures(cut_a), statuses) if cut_n
             else None)
    fl = doc.filters
    filters = ViewFilters(process=clean(fl.process) if fl.process is not None else None,
                          pids=fl.pid[:MAX_LIST] if fl.pid is not None else None, kernel_frames=fl.kernel_frames,
                          doc_min_bytes=fl.min_bytes, doc_top=fl.top, top=top, min_bytes=min_bytes)
    return ReportView(
        title=_title(doc, traces), mode=doc.mode, generator=clean(doc.generator, 64), schema=doc.schema,
        traces=traces, warnings=tuple(_warnings(traces)), totals=totals, filters=filters, rows=tuple(rows),
        other=other, group_count=len(doc.groups), eligible_count=eligible,
        by_module=_breakdown("By module", "Module", modules, diff),
        by_heap=_breakdown("By heap", "Heap", heaps, diff),
        by_source=_source_breakdown(src_groups, src_counts, with_sources),
    )
