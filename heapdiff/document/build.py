"""From what the pipeline found in each input to the typed :class:`Document`.

An input is a trace the pipeline read (:class:`TraceAnalysis`) or an earlier document standing in its place
(:class:`Baseline`). Each becomes one trace record and one single-run group per signature; the inputs' groups
are then matched by signature (never by address), suppressions mark groups, and the totals and gates are
computed over the groups that are not suppressed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from heapdiff import __version__
from heapdiff.diff import status_of
from heapdiff.document.gates import GateRequest, evaluate
from heapdiff.document.lazy import TraceGroups, groups_of
from heapdiff.document.model import (
    ZERO,
    Counts,
    Document,
    Filters,
    FrameTotals,
    GroupRecord,
    Mode,
    ModuleRecord,
    ProcessRecord,
    Role,
    RunDetails,
    Suppression,
    Totals,
    TraceRecord,
    TraceTimeline,
    TraceWindow,
)
from heapdiff.document.suppress import Pattern, first_match
from heapdiff.document.trend import trend_of
from heapdiff.etl.logfile import iso_utc
from heapdiff.events.images import KERNEL_PIDS
from heapdiff.events.scan import TraceScan
from heapdiff.grouping import SAMPLE_ADDRESSES, Grouping
from heapdiff.reduce import LiveBlocks
from heapdiff.reduce.timeline import TimelineTotals
from heapdiff.symbolize import ModuleOutcome, request_for
from heapdiff.window import FT_PER_US, ResolvedWindow

#: the event kinds whose absence means a trace was recorded without heap tracing
HEAP_EVENT_KINDS = ("heap_alloc", "heap_free", "heap_realloc")


@dataclass(frozen=True)
class TraceAnalysis:
    """Everything one trace contributes to a document."""

    role: Role
    scan: TraceScan
    #: the outstanding blocks after the process filters
    live: LiveBlocks
    #: the reader's and the reducer's counted anomalies
    anomalies: Mapping[str, int]
    grouping: Grouping
    #: the pids the filters kept, None without a filter
    selected_pids: frozenset[int] | None
    notes: tuple[str, ...]
    #: the leak window on this trace (FILETIME units), None without one
    window: ResolvedWindow | None = None
    #: the kept processes' outstanding memory over the trace's time (ticks: FILETIME units from the start)
    timeline: TimelineTotals | None = None


@dataclass(frozen=True)
class Baseline:
    """An earlier single-trace document standing where a trace stands (CI keeps the main branch's)."""

    document: Document


Input = TraceAnalysis | Baseline


@dataclass(frozen=True)
class BuildOptions:
    filters: Filters
    suppressions: tuple[Pattern, ...] = ()
    gates: tuple[GateRequest, ...] = ()
    #: a trend over the inputs (runs in order), not one trace or a diff
    trend: bool = False


def outstanding(live: LiveBlocks) -> Counts:
    """What is outstanding, the bytes exact (never wrapped: :meth:`LiveBlocks.totals`)."""
    return Counts(*live.totals())


def _by_pid(live: LiveBlocks) -> dict[int, Counts]:
    """Per process, the rows in any order (a filter keeps the reducer's pid order, but a taken subset may not)."""
    if not len(live):
        return {}
    if bool(np.all(live.pid[1:] >= live.pid[:-1])):  # sorted, as the reducer gives them: sums over runs
        return {pid: Counts(*c) for pid, c in live.by_pid().items()}
    order = np.argsort(live.pid, kind="stable")
    return {pid: Counts(*c) for pid, c in live.take(order).by_pid().items()}


def _module(m: ModuleOutcome) -> ModuleRecord:
    img, sym = m.image, m.symbols
    request = request_for(img)
    return ModuleRecord(name=img.name, path=img.path, pid=None if img.pid in KERNEL_PIDS else img.pid,
                        base=img.base, size=img.end - img.base, timestamp=img.time_date_stamp or None,
                        pdb=request.pdb or sym.pdb, symbols=sym.status, symbol_file=sym.symbol_file, note=sym.note)


def timeline_record(tl: TimelineTotals | None) -> TraceTimeline | None:
    """The document's timeline: times in microseconds (a FILETIME unit is 0.1 us)."""
    if tl is None or not len(tl):
        return None
    return TraceTimeline(time_us=tuple(t / 10 for t in tl.ticks.tolist()), bytes=tuple(tl.bytes.tolist()),
                         blocks=tuple(tl.blocks.tolist()))


def trace_record(a: TraceAnalysis) -> TraceRecord:
    s = a.scan
    h = s.header
    procs: dict[int, ProcessRecord] = {}
    for p in s.processes:
        if a.selected_pids is not None and p.pid not in a.selected_pids:
            continue
        procs.setdefault(p.pid, ProcessRecord(p.pid, p.image_name, p.command_line))
    by_pid = _by_pid(a.live)
    shown = tuple(procs[p] for p in sorted(procs) if p in by_pid or a.selected_pids is not None)
    return TraceRecord(
        role=a.role, path=s.path, pointer_size=h.pointer_size, start_utc=iso_utc(h.start_utc),
        end_utc=iso_utc(h.raw_to_utc(s.last_ts) if s.last_ts is not None else h.end_utc), records=s.records,
        events=dict(s.events), events_lost=h.events_lost, buffers_lost=h.buffers_lost, stack_refs=s.stack_refs,
        stacks_matched=s.stacks_matched, outstanding=outstanding(a.live), outstanding_by_pid=by_pid,
        unmatched_frees=int(a.anomalies.get("unmatched_frees", 0)), anomalies=dict(sorted(a.anomalies.items())),
        processes=shown, unresolved_frames=FrameTotals(a.grouping.frames, a.grouping.unresolved), notes=a.notes,
        modules=tuple(_module(m) for m in a.grouping.modules), timeline=timeline_record(a.timeline),
        window=_trace_window(a.window, h.start_filetime) if a.window is not None else None)


def _trace_window(w: ResolvedWindow, start: int) -> TraceWindow:
    """Microseconds from the trace's start; a time before the start is recorded as 0."""
    us = [None if v is None else max(0, v - start) // FT_PER_US for v in (w.start, w.stop, w.at)]
    return TraceWindow(us[0], us[1], us[2])


def _input(inp: Input, role: Role) -> tuple[TraceRecord, Sequence[GroupRecord]]:
    if isinstance(inp, TraceAnalysis):
        return trace_record(inp), TraceGroups(inp.grouping, inp.scan.header)
    (t,) = inp.document.traces
    return replace(t, role=role), [replace(g, suppressed_by=None) for g in inp.document.groups]


def _merged(runs: Sequence[RunDetails]) -> RunDetails:
    """One run's facts of several groups that match as one (call sites in the same functions)."""
    if len(runs) == 1:
        return runs[0]
    counts, sources, sizes = ZERO, Counter[str](), Counter[str]()
    for r in runs:
        counts = counts + r.counts
        sources.update(r.sources)
        sizes.update(r.size_histogram)
    firsts = [r.first_alloc_utc for r in runs if r.first_alloc_utc]
    lasts = [r.last_alloc_utc for r in runs if r.last_alloc_utc]
    oldest_first = sorted(runs, key=lambda r: r.first_alloc_utc or "")
    samples = tuple(a for r in oldest_first for a in r.sample_addresses)[:SAMPLE_ADDRESSES]
    # a series sums only when every part has one (one input's parts share its points)
    series = [r.timeline_bytes for r in runs if r.timeline_bytes is not None]
    summed = (tuple(sum(col) for col in zip(*series, strict=True))
              if len(series) == len(runs) and len({len(s) for s in series}) == 1 else None)
    return RunDetails(counts, tuple(sorted({h for r in runs for h in r.heaps})), dict(sources), dict(sizes),
                      min(firsts) if firsts else None, max(lasts) if lasts else None, samples, summed)


def _key(g: GroupRecord, named: frozenset[str], kernel_frames: bool) -> tuple[str, ...]:
    """What a group is matched by: each signature frame as ``module!function`` (inline chain included) where
    every input has the module's symbols, else as ``module+0xrva``."""
    out: list[str] = []
    for f in g.frames:
        if f.kernel and not kernel_frames:
            continue
        out.extend(f.function_keys if f.module in named else (f.plain,))
    return tuple(out)


def _by_key(groups: Sequence[GroupRecord], key: Callable[[GroupRecord], tuple[str, ...]]
            ) -> dict[tuple[str, ...], GroupRecord]:
    """One input's groups by matching key; groups that share a key become one (its frames from the largest)."""
    out: dict[tuple[str, ...], list[GroupRecord]] = {}
    for g in groups:
        out.setdefault(key(g), []).append(g)
    merged = {}
    for k, gs in out.items():
        top = max(gs, key=lambda g: (g.last.bytes, g.last.blocks))
        run = _merged([g.runs[0] for g in gs if g.runs[0] is not None])
        merged[k] = replace(top, stack=k, runs=(run,))
    return merged


def _combine(per_input: Sequence[Sequence[GroupRecord]], key: Callable[[GroupRecord], tuple[str, ...]] | None
             ) -> Sequence[GroupRecord]:
    """The inputs' groups matched by signature (or by ``key``): one group per match with a run per input, its
    frames and names from the last input it is outstanding in; largest growth first (ties: more blocks, then
    signature). One trace's groups stay as they are (sorted already, and made when read)."""
    n = len(per_input)
    if n == 1:
        if isinstance(per_input[0], TraceGroups):
            return per_input[0]
        out = list(per_input[0])
    else:
        runs: dict[tuple[str, ...], list[RunDetails | None]] = {}
        shown: dict[tuple[str, ...], GroupRecord] = {}
        for k, groups in enumerate(per_input):
            keyed = _by_key(groups, key) if key is not None else {g.stack: g for g in groups}
            for stack, g in keyed.items():
                runs.setdefault(stack, [None] * n)[k] = g.runs[0]
                shown[stack] = g
        out = []
        for stack, rs in runs.items():
            g = shown[stack]
            status = (status_of(rs[0].counts if rs[0] else ZERO, rs[1].counts if rs[1] else ZERO) if n == 2
                      else None)
            # (made directly, not by dataclasses.replace: this runs once per matched group)
            out.append(GroupRecord(stack=stack, frames=g.frames, module=g.module, label=g.label,
                                   label_index=g.label_index, status=status, runs=tuple(rs),
                                   suppressed_by=g.suppressed_by, trend=g.trend))
    deltas = [g.delta for g in out]  # (each group's sort key made once)
    keys = [(-d.bytes, -d.blocks, g.stack) for g, d in zip(out, deltas, strict=True)]
    return [out[k] for k in sorted(range(len(out)), key=keys.__getitem__)]


def _named_everywhere(traces: Sequence[TraceRecord]) -> frozenset[str]:
    """The modules whose symbols loaded in every input: only their frames can match by function."""
    sets = [{m.name for m in t.modules if m.symbols == "loaded"} for t in traces]
    return frozenset(set.intersection(*sets)) if sets else frozenset()


def _suppress(groups: Sequence[GroupRecord], patterns: Sequence[Pattern]) -> tuple[Sequence[GroupRecord],
                                                                                    tuple[Suppression, ...]]:
    """Each group's first matching pattern (a lazy sequence keeps them beside its columns), and each pattern's
    count."""
    if not patterns:
        return groups, ()
    used = dict.fromkeys(range(len(patterns)), 0)
    index = {id(p): i for i, p in enumerate(patterns)}
    hits: dict[int, str] = {}
    for k, g in enumerate(groups):
        p = first_match(patterns, g.frames)
        if p is not None:
            used[index[id(p)]] += 1
            hits[k] = p.text
    if isinstance(groups, TraceGroups):
        groups.suppressed.update(hits)
        out: Sequence[GroupRecord] = groups
    else:
        out = [replace(g, suppressed_by=hits.get(k)) for k, g in enumerate(groups)]
    return out, tuple(Suppression(p.text, p.source, p.line, used[i]) for i, p in enumerate(patterns))


def nothing_measured(traces: Sequence[TraceRecord], inputs: Sequence[Input]) -> str | None:
    """Why the inputs held nothing to measure (a gate must not pass on that), or None."""
    for t in traces:
        if not any(t.events.get(k, 0) for k in HEAP_EVENT_KINDS):
            return f"{t.path} holds no heap events: it was recorded without heap tracing for the program"
    for inp in inputs:
        if isinstance(inp, TraceAnalysis) and inp.selected_pids is not None and not len(inp.live) and not any(
                p.pid in inp.selected_pids for p in inp.scan.processes):
            return f"the process filters leave no process in {inp.scan.path}"
    return None


def roles_for(inputs: Sequence[Input], trend: bool = False) -> tuple[Role, ...]:
    if trend:
        run: Role = "run"
        return (run,) * len(inputs)
    if len(inputs) == 1:
        return ("trace",)
    positions: tuple[Role, ...] = ("before", "after")
    return tuple("baseline" if isinstance(i, Baseline) else r for i, r in zip(inputs, positions, strict=True))


def _trended(groups: Sequence[GroupRecord]) -> list[GroupRecord]:
    """Each group with its trend, the steepest growth first (ties: more bytes in the last run, then signature)."""
    out = [replace(g, trend=trend_of(g.series)) for g in groups]
    out.sort(key=lambda g: (-(g.trend.slope_bytes if g.trend else 0.0), -g.last.bytes, g.stack))
    return out


def build_document(inputs: Sequence[Input], opts: BuildOptions) -> Document:
    """The document of one input (its groups largest first), of two (matched, largest growth first), or a trend
    over several (matched, steepest growth first)."""
    made = [_input(inp, role) for inp, role in zip(inputs, roles_for(inputs, opts.trend), strict=True)]
    traces = tuple(t for t, _ in made)
    key = None
    if len(inputs) > 1 and opts.filters.match == "function":
        named = _named_everywhere(traces)
        if named:
            def key(g: GroupRecord) -> tuple[str, ...]:
                return _key(g, named, opts.filters.kernel_frames)
    combined = _combine([g for _, g in made], key)
    if opts.trend:
        combined = _trended(combined)
    groups, used = _suppress(combined, opts.suppressions)
    totals = groups.totals() if isinstance(groups, TraceGroups) else Totals.of(groups, len(inputs))
    diff = len(inputs) == 2 and not opts.trend
    gates = evaluate(opts.gates, groups, totals, diff, nothing_measured(traces, inputs)) if opts.gates else ()
    mode: Mode = "trend" if opts.trend else "diff" if diff else "single"
    return Document(mode=mode, generator=f"heapdiff {__version__}", filters=opts.filters, traces=traces,
                    totals=totals, groups=groups_of(groups), gates=gates, suppressions=used)
