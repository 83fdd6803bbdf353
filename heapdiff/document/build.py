"""From what the pipeline found in each trace (scan, live blocks, grouping) to the typed :class:`Document`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from heapdiff import __version__
from heapdiff.diff import diff_groupings, sort_single
from heapdiff.document.model import (
    Counts,
    Document,
    Filters,
    FrameRecord,
    FrameTotals,
    GroupRecord,
    ProcessRecord,
    Role,
    RunDetails,
    Totals,
    TraceRecord,
)
from heapdiff.etl.trace import iso_utc
from heapdiff.events.kinds import HEAP_SOURCES
from heapdiff.events.scan import TraceScan
from heapdiff.grouping import HIST_LABELS, Group, Grouping, LiveBlocks
from heapdiff.rules import FrameKind


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


def outstanding(live: LiveBlocks) -> Counts:
    return Counts(len(live), int(live.size.astype(np.int64).sum()) if len(live) else 0)


def _by_pid(live: LiveBlocks) -> dict[int, Counts]:
    if not len(live):
        return {}
    pids, inv = np.unique(live.pid, return_inverse=True)
    blocks = np.bincount(inv)
    sums = np.zeros(len(pids), np.int64)
    np.add.at(sums, inv, live.size.astype(np.int64))  # exact: float weights could round above 2**53
    return {int(p): Counts(b, y) for p, b, y in zip(pids.tolist(), blocks.tolist(), sums.tolist(), strict=True)}


def trace_record(a: TraceAnalysis) -> TraceRecord:
    s = a.scan
    h = s.header
    procs: dict[int, ProcessRecord] = {}
    for p in s.processes:
        if a.selected_pids is not None and p.pid not in a.selected_pids:
            continue
        procs.setdefault(p.pid, ProcessRecord(p.pid, p.image_name, p.command_line))
    live_pids = set(np.unique(a.live.pid).tolist()) if len(a.live) else set()
    shown = tuple(procs[p] for p in sorted(procs) if p in live_pids or a.selected_pids is not None)
    return TraceRecord(
        role=a.role,
        path=s.path,
        pointer_size=h.pointer_size,
        start_utc=iso_utc(h.start_utc),
        end_utc=iso_utc(h.raw_to_utc(s.last_ts) if s.last_ts is not None else h.end_utc),
        records=s.records,
        events=dict(s.events),
        events_lost=h.events_lost,
        buffers_lost=h.buffers_lost,
        stack_refs=s.stack_refs,
        stacks_matched=s.stacks_matched,
        outstanding=outstanding(a.live),
        outstanding_by_pid=_by_pid(a.live),
        unmatched_frees=int(a.anomalies.get("unmatched_frees", 0)),
        anomalies=dict(sorted(a.anomalies.items())),
        processes=shown,
        unresolved_frames=FrameTotals(a.grouping.frames, a.grouping.unresolved),
        notes=a.notes,
    )


def _source_name(k: int) -> str:
    name = HEAP_SOURCES.get(k)
    return name if name is not None else f"source {k}"


class _Times:
    """Raw timestamp -> ISO text for every group's first and last Alloc of a trace, formatted in one pass."""

    def __init__(self, a: TraceAnalysis) -> None:
        raws = sorted({t for g in a.grouping for t in (g.first_ts, g.last_ts)})
        self._iso = dict(zip(raws, a.scan.header.raw_to_iso_many(raws), strict=True))

    def __getitem__(self, raw: int) -> str:
        return self._iso[raw]


def _run(g: Group, times: _Times) -> RunDetails:
    return RunDetails(
        counts=g.counts,
        heaps=g.heaps,
        sources={_source_name(k): c for k, c in g.sources},
        size_histogram={HIST_LABELS[i]: c for i, c in enumerate(g.histogram) if c},
        first_alloc_utc=times[g.first_ts],
        last_alloc_utc=times[g.last_ts],
        sample_addresses=g.sample_addresses,
    )


class _Frames:
    """One :class:`FrameRecord` per distinct frame kind: groups share most of their frames."""

    def __init__(self) -> None:
        self._memo: dict[FrameKind, FrameRecord] = {}

    def __call__(self, frames: Sequence[FrameKind]) -> tuple[FrameRecord, ...]:
        out = []
        for f in frames:
            got = self._memo.get(f)
            if got is None:
                rva = None
                if f.module is not None:
                    plus = f.text.rfind("+0x")
                    rva = int(f.text[plus + 3:], 16) if plus > 0 else None
                got = self._memo[f] = FrameRecord(f.text, f.module, rva, f.kernel, f.allocator)
            out.append(got)
        return tuple(out)


def build_document(analyses: Sequence[TraceAnalysis], filters: Filters) -> Document:
    """The document of one trace (its groups largest first) or of two (matched, largest growth first)."""
    frames = _Frames()
    traces = tuple(trace_record(a) for a in analyses)
    groups: list[GroupRecord] = []
    if len(analyses) == 2:
        before, after = analyses
        tb, ta = _Times(before), _Times(after)
        for p in diff_groupings(before.grouping, after.grouping):
            shown = p.after if p.after is not None else p.before
            assert shown is not None
            runs = (_run(p.before, tb) if p.before is not None else None,
                    _run(p.after, ta) if p.after is not None else None)
            groups.append(GroupRecord(stack=p.signature, frames=frames(shown.frames), module=shown.name.module,
                                      label=shown.name.label, label_index=shown.name.label_index,
                                      status=p.status, runs=runs))
    else:
        (only,) = analyses
        times = _Times(only)
        for g in sort_single(only.grouping):
            groups.append(GroupRecord(stack=g.signature, frames=frames(g.frames), module=g.name.module,
                                      label=g.name.label, label_index=g.name.label_index, status=None,
                                      runs=(_run(g, times),)))
    return Document(mode="diff" if len(analyses) == 2 else "single", generator=f"heapdiff {__version__}",
                    filters=filters, traces=traces, totals=Totals(tuple(t.outstanding for t in traces)),
                    groups=tuple(groups))
