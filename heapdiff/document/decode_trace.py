"""Decoding a document's per-trace records: the trace's facts, its window, its timeline and its modules.

Checked like every record of :mod:`heapdiff.document.decode` (the field checkers of
:mod:`heapdiff.document.fields`); a field added in a later version is read as absent from older documents.
"""

from __future__ import annotations

import math
from typing import Any

from heapdiff.document.fields import (
    as_counts,
    as_hex,
    as_int,
    as_list,
    as_obj,
    as_str,
    fail,
    field,
    int_map,
    naturals,
    optional,
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


def trace_timeline(v: Any, where: str) -> TraceTimeline | None:
    """A trace's timeline: equal-length lists, times increasing from >= 0, counts >= 0; null before timelines."""
    if v is None:
        return None
    o = as_obj(v, where)
    times = as_list(field(o, "time_us", where), f"{where}.time_us")
    if not times:
        raise DocumentError(f"{where}.time_us: expected at least one point, got none")
    prev = -1.0
    for i, t in enumerate(times):
        if type(t) not in (int, float) or not math.isfinite(t) or t < 0:
            raise fail(f"{where}.time_us[{i}]", "a non-negative number", t)
        if t <= prev:
            raise DocumentError(f"{where}.time_us[{i}]: {t} does not come after {prev}: times must increase")
        prev = t
    nbytes = naturals(field(o, "bytes", where), f"{where}.bytes")
    blocks = naturals(field(o, "blocks", where), f"{where}.blocks")
    for name, col in (("bytes", nbytes), ("blocks", blocks)):
        if len(col) != len(times):
            raise DocumentError(f"{where}.{name}: {len(col)} points, but time_us has {len(times)}")
    return TraceTimeline(tuple(float(t) for t in times), nbytes, blocks)


def trace_record(v: Any, where: str) -> TraceRecord:
    o = as_obj(v, where)

    def f(key: str) -> Any:
        return field(o, key, where)

    role = as_str(f("role"), f"{where}.role")
    if role not in ROLES:
        raise fail(f"{where}.role", " or ".join(ROLES), role)
    by_pid: dict[int, Counts] = {}
    for k, c in as_obj(f("outstanding_by_pid"), f"{where}.outstanding_by_pid").items():
        if not k.isdigit():
            raise fail(f"{where}.outstanding_by_pid", "decimal pid keys", k)
        by_pid[int(k)] = as_counts(c, f"{where}.outstanding_by_pid.{k}")
    procs = []
    for i, p in enumerate(as_list(f("processes"), f"{where}.processes")):
        pw = f"{where}.processes[{i}]"
        po = as_obj(p, pw)
        procs.append(ProcessRecord(as_int(field(po, "pid", pw), f"{pw}.pid"),
                                   as_str(field(po, "image_name", pw), f"{pw}.image_name"),
                                   as_str(field(po, "command_line", pw), f"{pw}.command_line")))
    unres = as_obj(f("unresolved_frames"), f"{where}.unresolved_frames")
    uw = f"{where}.unresolved_frames"
    return TraceRecord(
        role=role,
        path=as_str(f("path"), f"{where}.path"),
        pointer_size=as_int(f("pointer_size"), f"{where}.pointer_size"),
        start_utc=as_str(f("start_utc"), f"{where}.start_utc"),
        end_utc=as_str(f("end_utc"), f"{where}.end_utc"),
        records=as_int(f("records"), f"{where}.records"),
        events=int_map(f("events"), f"{where}.events"),
        events_lost=as_int(f("events_lost"), f"{where}.events_lost"),
        buffers_lost=as_int(f("buffers_lost"), f"{where}.buffers_lost"),
        stack_refs=as_int(f("stack_refs"), f"{where}.stack_refs"),
        stacks_matched=as_int(f("stacks_matched"), f"{where}.stacks_matched"),
        outstanding=as_counts(f("outstanding"), f"{where}.outstanding"),
        outstanding_by_pid=by_pid,
        unmatched_frees=as_int(f("unmatched_frees"), f"{where}.unmatched_frees"),
        anomalies=int_map(f("anomalies"), f"{where}.anomalies"),
        processes=tuple(procs),
        unresolved_frames=FrameTotals(as_int(field(unres, "frames", uw), f"{uw}.frames"),
                                      as_int(field(unres, "unresolved", uw), f"{uw}.unresolved")),
        notes=tuple(as_str(n, f"{where}.notes[{i}]") for i, n in enumerate(as_list(f("notes"), f"{where}.notes"))),
        modules=tuple(module_record(m, f"{where}.modules[{i}]") for i, m in enumerate(as_list(o.get("modules", []),
                                                                                      f"{where}.modules"))),
        window=trace_window(o.get("window"), f"{where}.window"),
        timeline=trace_timeline(o.get("timeline"), f"{where}.timeline"),
    )


def trace_window(v: Any, where: str) -> TraceWindow | None:
    if v is None:
        return None
    o = as_obj(v, where)
    got = [optional(as_int, o.get(k), f"{where}.{k}") for k in ("from_us", "to_us", "at_us")]
    for k, x in zip(("from_us", "to_us", "at_us"), got, strict=True):
        if x is not None and x < 0:
            raise fail(f"{where}.{k}", "microseconds from the trace's start (0 or more)", x)
    return TraceWindow(*got)


def module_record(v: Any, where: str) -> ModuleRecord:
    o = as_obj(v, where)

    def f(key: str) -> Any:
        return field(o, key, where)

    pid = optional(as_str, f("pid"), f"{where}.pid")
    if pid is not None and not pid.isdigit():
        raise fail(f"{where}.pid", "a decimal string or null", pid)
    pdb_raw = f("pdb")
    pdb = None
    if pdb_raw is not None:
        po = as_obj(pdb_raw, f"{where}.pdb")
        pdb = PdbId(as_str(field(po, "name", f"{where}.pdb"), f"{where}.pdb.name"),
                    as_str(field(po, "guid", f"{where}.pdb"), f"{where}.pdb.guid"),
                    as_int(field(po, "age", f"{where}.pdb"), f"{where}.pdb.age"))
    status = as_str(f("symbols"), f"{where}.symbols")
    if status not in SYMBOL_STATUSES:
        raise fail(f"{where}.symbols", " or ".join(SYMBOL_STATUSES), status)
    return ModuleRecord(name=as_str(f("name"), f"{where}.name"), path=as_str(f("path"), f"{where}.path"),
                        pid=None if pid is None else int(pid), base=as_hex(f("base"), f"{where}.base"),
                        size=as_hex(f("size"), f"{where}.size"),
                        timestamp=optional(as_hex, f("timestamp"), f"{where}.timestamp"),
                        pdb=pdb, symbols=status, symbol_file=optional(as_str, f("symbol_file"), f"{where}.symbol_file"),
                        note=optional(as_str, f("note"), f"{where}.note"))
