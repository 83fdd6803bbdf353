"""The view of a :class:`~heapdiff.document.Document`: what the page and the terminal show.

* the header facts of every trace; warnings (lost events or buffers, counted anomalies, an unresolved-frame share
  above 5 %, before/after traces of different pointer sizes);
* the totals, as the document has them: thinning the rows never changes them;
* the group rows, thinned to the ``top`` largest growths whose size (``|delta bytes|`` in a diff, ``bytes`` for
  one trace) is at least ``min_bytes``, plus ONE "other" row that sums every group cut, so that the page is
  bounded however many groups the document holds;
* breakdowns by module, by heap and by heap Source, over ALL groups, each capped to its 30 largest keys plus one
  "other" row;
* one timeline per input that has one: its outstanding bytes and blocks over its time, and the lines of its first
  five groups in the report's order that carry bytes by allocation time (the document gives them to an input's
  largest groups), at most 1,000 points each.

Every string is cleaned here and capped (:func:`~heapdiff.report.text.clean`); lists are capped too.
"""

from __future__ import annotations

import ntpath
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Final

import numpy as np

from heapdiff.document.lazy import TraceGroups
from heapdiff.document.model import (
    TREND_CLASSES,
    Document,
    FrameRecord,
    Gate,
    GroupRecord,
    RunDetails,
    TraceTimeline,
    TraceWindow,
)
from heapdiff.grouping import ZERO
from heapdiff.report.breakdowns import BREAKDOWN_CAP, GroupSums, SourceSums, breakdown, heap_key
from heapdiff.report.flame import call_trees
from heapdiff.report.text import MAX_FRAME, MAX_FRAMES, MAX_HISTOGRAM, MAX_LIST, MAX_PATH, clean
from heapdiff.report.trace_facts import report_title, trace_facts, trace_notices, trace_warnings, window_sentences
from heapdiff.report.view import (
    Figures,
    Frame,
    GateFacts,
    GroupRow,
    Headline,
    OtherRow,
    ReportView,
    RunFacts,
    Series,
    TimelineView,
    ViewFilters,
)
from heapdiff.rules import NO_STACK, UNKNOWN_MODULE

__all__ = ["BREAKDOWN_CAP", "build_view"]  # the cap is re-exported: callers learn the view's limits here

#: suppressed groups listed on their own, at most
MAX_SUPPRESSED_ROWS: Final = 20
#: a timeline chart draws this many call stacks' lines at most, each of this many points at most
TIMELINE_LINES: Final = 5
MAX_TIMELINE_POINTS: Final = 1000
GATE_WORDS: Final = {
    "growth": ("--fail-on-growth", "total growth"),
    "stack_growth": ("--fail-on-stack-growth", "largest growth of one call stack"),
    "new": ("--fail-on-new", "largest call stack new in after"),
    "trend": ("--fail-on-trend", "steepest slope per run of a growing call stack"),
}


def _figures(g: GroupRecord, compare: bool) -> Figures:
    """One input: what is outstanding; a diff or a trend: the last input against the first."""
    if not compare:
        return Figures(g.last)
    return Figures(g.last, g.counts(0), g.delta)


def _pairs(m: Mapping[str, int], limit: int) -> tuple[tuple[str, int], ...]:
    return tuple((clean(k), v) for k, v in list(m.items())[:limit])


def _position(function: str, file: str | None, line: int | None) -> str:
    where = ntpath.basename(file.replace("/", "\\")) if file else None
    return f"{function} ({where}:{line})" if where and line else function


class _Frames:
    """One view :class:`Frame` per distinct frame (frames repeat across groups)."""

    def __init__(self) -> None:
        self._memo: dict[FrameRecord, Frame] = {}

    def __call__(self, f: FrameRecord) -> Frame:
        got = self._memo.get(f)
        if got is None:
            inlined: tuple[str, ...] = ()
            if f.inlined and f.function is not None:  # the callees inlined at this address, innermost first
                chain = [(f.function, f.file, f.line), *((s.function, s.file, s.line) for s in f.inlined[:-1])]
                inlined = tuple(clean(_position(*c), MAX_FRAME) for c in chain)
            got = self._memo[f] = Frame(clean(f.text, MAX_FRAME), f.kernel, f.allocator, inlined)
        return got


def _run_facts(role: str, r: RunDetails) -> RunFacts:
    heaps = [f"0x{h:x}" for h in r.heaps]
    return RunFacts(
        role=role, counts=r.counts, heaps=tuple(heaps[:MAX_LIST]), heaps_omitted=max(0, len(heaps) - MAX_LIST),
        sources=_pairs(r.sources, MAX_LIST), size_histogram=_pairs(r.size_histogram, MAX_HISTOGRAM),
        first_alloc_utc=clean(r.first_alloc_utc, 64) if r.first_alloc_utc else None,
        last_alloc_utc=clean(r.last_alloc_utc, 64) if r.last_alloc_utc else None,
        sample_addresses=tuple(f"0x{a:x}" for a in r.sample_addresses[:MAX_LIST]))


def _row(rank: int, g: GroupRecord, figures: Figures, diff: bool, frames_of: _Frames,
         roles: Sequence[str]) -> GroupRow:
    frames = [frames_of(f) for f in g.frames[:MAX_FRAMES]]
    label_index = g.label_index if g.label_index < len(frames) else -1
    runs = [_run_facts(role, r) for role, r in zip(roles, g.runs, strict=True) if r is not None]
    if g.trend is not None:  # a trend's runs are its series; the facts are the last run's that holds it
        runs = runs[-1:]
    return GroupRow(
        rank=rank, figures=figures, status=g.status if diff else None,
        module=clean(g.module) or UNKNOWN_MODULE, label=clean(g.label, MAX_FRAME) if g.label else NO_STACK,
        label_index=label_index, frames=tuple(frames), frames_omitted=max(0, len(g.frames) - MAX_FRAMES),
        runs=tuple(runs),
        suppressed_by=clean(g.suppressed_by, MAX_FRAME) if g.suppressed_by is not None else None,
        series=g.series if g.trend is not None else (),
        slope_bytes=g.trend.slope_bytes if g.trend is not None else None,
        trend=g.trend.klass if g.trend is not None else None,
    )


def _gates(gates: Sequence[Gate], rank_of: dict[int, int], groups: Sequence[GroupRecord]) -> tuple[GateFacts, ...]:
    out = []
    for g in gates:
        option, measures = GATE_WORDS[g.name]
        tripped = tuple((rank_of.get(i, 0), clean(groups[i].label, MAX_FRAME) or NO_STACK) for i in g.groups
                        if 0 <= i < len(groups))
        out.append(GateFacts(option, measures, g.threshold, g.value, g.failed,
                             clean(g.reason, MAX_PATH) if g.reason else None, tripped,
                             "/run" if g.name == "trend" else ""))
    return tuple(out)


def _thinned(n: int) -> list[int]:
    """At most :data:`MAX_TIMELINE_POINTS` indices of ``n`` points, evenly spread, the first and last kept."""
    if n <= MAX_TIMELINE_POINTS:
        return list(range(n))
    return sorted({round(k * (n - 1) / (MAX_TIMELINE_POINTS - 1)) for k in range(MAX_TIMELINE_POINTS)})


def _timeline(role: str, tl: TraceTimeline, window: TraceWindow | None,
              lines: Sequence[tuple[str, tuple[int, ...]]]) -> TimelineView:
    """One input's chart, thinned to the chart's points, its leak window (if any) in seconds."""
    pick = _thinned(len(tl.time_us))
    w = window if window is not None else TraceWindow(None, None, None)
    return TimelineView(role=role, time_s=tuple(tl.time_us[j] / 1e6 for j in pick),
                        bytes=tuple(tl.bytes[j] for j in pick), blocks=tuple(tl.blocks[j] for j in pick),
                        groups=tuple(Series(label, tuple(v[j] for j in pick)) for label, v in lines),
                        window_from_s=_seconds(w.from_us), window_to_s=_seconds(w.to_us), at_s=_seconds(w.at_us))


def _seconds(us: int | None) -> float | None:
    return None if us is None else us / 1e6


def build_view(doc: Document, *, top: int = 50, min_bytes: int = 0) -> ReportView:
    """The view of ``doc``: see the module docstring. ``top`` rows at most (0: none), among the groups whose size
    is at least ``min_bytes``; every other group goes to the single ``other`` row. Suppressed groups are listed
    on their own and counted in no total. Long because it is one pass over all groups that feeds every row,
    the "other" row and every breakdown at once."""
    diff = doc.is_diff
    # a trend compares its first run with its last (and adds each group's series and slope)
    compare = diff or doc.is_trend
    top, min_bytes = max(0, top), max(0, min_bytes)
    traces = tuple(trace_facts(t) for t in doc.traces)
    if doc.is_trend:  # a trend's runs by their number
        traces = tuple(replace(t, role=f"run {k + 1}") for k, t in enumerate(traces))
    roles = [t.role for t in traces]
    t = doc.totals
    totals = Figures(t.last, t.runs[0], t.delta) if compare else Figures(t.last)
    groups = doc.groups
    # stable, so the document's order breaks ties (it is sorted already; sorting again makes it a fact here)
    if doc.is_trend:  # the steepest growth first
        growth = np.asarray([g.trend.slope_bytes if g.trend is not None else 0.0 for g in groups], np.float64)
    else:
        growth = (groups.growth_bytes() if isinstance(groups, TraceGroups)
                  else np.asarray([g.delta.bytes for g in groups], np.int64))
    order = np.argsort(-growth, kind="stable").tolist()
    wanted = {i for gate in doc.gates for i in gate.groups}  # the ranks only gates name
    rank_of: dict[int, int] = {}
    rows: list[GroupRow] = []
    hidden: list[GroupRow] = []
    cut_n, cut_status, eligible, n_hidden = 0, Counter[str](), 0, 0
    growing = shrinking = 0
    classes = Counter[str]()
    cut_a = cut_b = cut_d = ZERO
    modules = GroupSums(compare)
    heaps = [GroupSums(False) for _ in roles]
    sources = [SourceSums() for _ in roles]
    frames_of = _Frames()
    # per input with a timeline: the lines of its first groups (in this order) that carry bytes by allocation
    points = [len(t.timeline.time_us) if t.timeline is not None else -1 for t in doc.traces]
    lines: list[list[tuple[str, tuple[int, ...]]]] = [[] for _ in doc.traces]
    rank = 0
    for i in order:
        g = groups[i]
        f = _figures(g, compare)
        if g.suppressed_by is not None:
            n_hidden += 1
            if len(hidden) < MAX_SUPPRESSED_ROWS:
                hidden.append(_row(0, g, f, diff, frames_of, roles))
            continue
        rank += 1
        if i in wanted:
            rank_of[i] = rank
        d = g.delta
        if g.trend is not None:
            classes[g.trend.klass] += 1
        growing += d.bytes > 0 or d.blocks > 0
        shrinking += d.bytes < 0 or d.blocks < 0
        size = abs(f.growth)
        eligible += size >= min_bytes
        if size >= min_bytes and len(rows) < top:
            rows.append(_row(rank, g, f, diff, frames_of, roles))
        else:
            cut_n += 1
            cut_a = cut_a + f.after
            if compare and f.before is not None and f.delta is not None:
                cut_b, cut_d = cut_b + f.before, cut_d + f.delta
                cut_status[g.status or ""] += 1
        modules.add(clean(g.module) or UNKNOWN_MODULE, f.after, f.before or ZERO, f.delta or ZERO)
        for k, r in enumerate(g.runs):
            if r is not None:
                heaps[k].add(heap_key(r), r.counts)
                sources[k].add(r)
                if (r.timeline_bytes is not None and k < len(points) and len(r.timeline_bytes) == points[k]
                        and len(lines[k]) < TIMELINE_LINES):
                    lines[k].append((clean(g.label, MAX_FRAME) if g.label else NO_STACK, r.timeline_bytes))
    statuses = tuple(sorted(cut_status.items(), key=lambda kv: (-kv[1], kv[0])))
    other = (OtherRow(cut_n, Figures(cut_a, cut_b, cut_d) if compare else Figures(cut_a), statuses) if cut_n
             else None)
    fl = doc.filters
    filters = ViewFilters(process=clean(fl.process) if fl.process is not None else None,
                          pids=fl.pid[:MAX_LIST] if fl.pid is not None else None, kernel_frames=fl.kernel_frames,
                          doc_min_bytes=fl.min_bytes, doc_top=fl.top, top=top, min_bytes=min_bytes,
                          window=window_sentences(doc.traces, roles))
    suffix = [f" ({role})" if diff or doc.is_trend else "" for role in roles]
    shown_runs = [len(roles) - 1] if doc.is_trend else list(range(len(roles)))  # a trend: the last run's
    return ReportView(
        title=report_title(doc, traces), mode=doc.mode, generator=clean(doc.generator, 64), schema=doc.schema,
        traces=traces, warnings=tuple(trace_warnings(traces)), notices=tuple(trace_notices(traces)),
        empty_traces=tuple(tf for tf in traces if not tf.heap_events),
        totals=totals, headline=Headline(t.growth, growing, t.shrink, shrinking, t.delta, t.suppressed, n_hidden),
        gates=_gates(doc.gates, rank_of, doc.groups), filters=filters, rows=tuple(rows), other=other,
        group_count=rank, eligible_count=eligible,
        suppressed_rows=tuple(hidden), suppressed_count=n_hidden,
        unused_suppressions=tuple(clean(f"{u.source}:{u.line}: {u.pattern}", MAX_PATH) for u in doc.suppressions
                                  if not u.groups),
        by_module=breakdown("By module", "Module", modules),
        by_heap=tuple(breakdown(f"By heap{suffix[k]}", "Heap", heaps[k]) for k in shown_runs),
        by_source=tuple(sources[k].breakdown(f"By heap Source{suffix[k]}") for k in shown_runs),
        timelines=tuple(_timeline(traces[k].role, t.timeline, t.window, lines[k]) for k, t in enumerate(doc.traces)
                        if t.timeline is not None),
        call_trees=call_trees(doc),
        trend_classes=tuple((k, classes[k]) for k in TREND_CLASSES if classes[k]),
    )
