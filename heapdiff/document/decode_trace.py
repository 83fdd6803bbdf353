"""Decoding a document's per-trace records: the trace's facts, its window, its timeline and its modules.

Checked like every record of :mod:`heapdiff.document.decode` (the field checkers of
:mod:`heapdiff.document.fields`); a field added in a later version is read as absent from older documents.
"""

from __future__ import annotations

import math
from typing import Any

from heapdiff.document.fields import (
    Obj,
    as_counts,
    as_hex,
    as_int,
    as_list,
    as_str,
    fail,
    int_map,
    list_of,
    naturals,
)
from heapdiff.document.model import (
    ROLES,
    Counts,
    FrameTotals,
    ModuleRecord,
    ProcessRecord,
    TraceRecord,
    TraceTimeline,
    TraceWindow,
)
from heapdiff.errors import DocumentError
from heapdiff.frames import PdbId, SymbolStatus

SYMBOL_STATUSES: tuple[SymbolStatus, ...] = ("loaded", "not_found", "mismatch", "error", "off")


def trace_timeline(v: Any, where: str) -> TraceTimeline:
    """A trace's timeline: equal-length lists, times increasing from >= 0, counts >= 0 (absent before timelines)."""
    o = Obj(v, where)
    times = o.req("time_us", as_list)
    if not times:
        raise DocumentError(f"{o.where_of('time_us')}: expected at least one point, got none")
    prev = -1.0
    for i, t in enumerate(times):
        if type(t) not in (int, float) or not math.isfinite(t) or t < 0:
            raise fail(f"{o.where_of('time_us')}[{i}]", "a non-negative number", t)
        if t <= prev:
            raise DocumentError(f"{o.where_of('time_us')}[{i}]: {t} does not come after {prev}: times must increase")
        prev = t
    nbytes = o.req("bytes", naturals)
    blocks = o.req("blocks", naturals)
    for name, col in (("bytes", nbytes), ("blocks", blocks)):
        if len(col) != len(times):
            raise DocumentError(f"{o.where_of(name)}: {len(col)} points, but time_us has {len(times)}")
    return TraceTimeline(tuple(float(t) for t in times), nbytes, blocks)


def trace_record(v: Any, where: str) -> TraceRecord:
    o = Obj(v, where)
    role = o.req("role", as_str)
    if role not in ROLES:
        raise fail(o.where_of("role"), " or ".join(ROLES), role)
    return TraceRecord(
        role=role,
        path=o.req("path", as_str),
        pointer_size=o.req("pointer_size", as_int),
        start_utc=o.req("start_utc", as_str),
        end_utc=o.req("end_utc", as_str),
        records=o.req("records", as_int),
        events=o.req("events", int_map),
        events_lost=o.req("events_lost", as_int),
        buffers_lost=o.req("buffers_lost", as_int),
        stack_refs=o.req("stack_refs", as_int),
        stacks_matched=o.req("stacks_matched", as_int),
        outstanding=o.req("outstanding", as_counts),
        outstanding_by_pid=o.req("outstanding_by_pid", _counts_by_pid),
        unmatched_frees=o.req("unmatched_frees", as_int),
        anomalies=o.req("anomalies", int_map),
        processes=o.req("processes", list_of(_process)),
        unresolved_frames=o.req("unresolved_frames", _frame_totals),
        notes=o.req("notes", list_of(as_str)),
        modules=o.get("modules", list_of(module_record), ()),
        window=o.opt("window", trace_window),
        timeline=o.opt("timeline", trace_timeline),
    )


def _counts_by_pid(v: Any, where: str) -> dict[int, Counts]:
    by_pid: dict[int, Counts] = {}
    for k, c in Obj(v, where).raw.items():
        if not k.isdigit():
            raise fail(where, "decimal pid keys", k)
        by_pid[int(k)] = as_counts(c, f"{where}.{k}")
    return by_pid


def _process(v: Any, where: str) -> ProcessRecord:
    o = Obj(v, where)
    return ProcessRecord(o.req("pid", as_int), o.req("image_name", as_str), o.req("command_line", as_str))


def _frame_totals(v: Any, where: str) -> FrameTotals:
    o = Obj(v, where)
    return FrameTotals(o.req("frames", as_int), o.req("unresolved", as_int))


def trace_window(v: Any, where: str) -> TraceWindow:
    o = Obj(v, where)
    got = [o.opt(k, as_int) for k in ("from_us", "to_us", "at_us")]
    for k, x in zip(("from_us", "to_us", "at_us"), got, strict=True):
        if x is not None and x < 0:
            raise fail(o.where_of(k), "microseconds from the trace's start (0 or more)", x)
    return TraceWindow(*got)


def _pdb(v: Any, where: str) -> PdbId:
    o = Obj(v, where)
    return PdbId(o.req("name", as_str), o.req("guid", as_str), o.req("age", as_int))


def module_record(v: Any, where: str) -> ModuleRecord:
    o = Obj(v, where)
    pid = o.nullable("pid", as_str)
    if pid is not None and not pid.isdigit():
        raise fail(o.where_of("pid"), "a decimal string or null", pid)
    pdb = o.nullable("pdb", _pdb)
    status = o.req("symbols", as_str)
    if status not in SYMBOL_STATUSES:
        raise fail(o.where_of("symbols"), " or ".join(SYMBOL_STATUSES), status)
    return ModuleRecord(name=o.req("name", as_str), path=o.req("path", as_str), pid=None if pid is None else int(pid),
                        base=o.req("base", as_hex), size=o.req("size", as_hex),
                        timestamp=o.nullable("timestamp", as_hex), pdb=pdb, symbols=status,
                        symbol_file=o.nullable("symbol_file", as_str), note=o.nullable("note", as_str))
