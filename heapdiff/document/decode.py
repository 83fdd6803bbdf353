"""Reading a ``heapdiff/1`` JSON document back into a :class:`Document` (a baseline, a report to render again).

Everything is checked: a field of the wrong type, a missing field, another schema or an unknown mode raises
:class:`~heapdiff.errors.DocumentError` naming the field (``groups[3].after.bytes``), never a silent 0. Fields
this version does not know are ignored (documents only ever gain fields). Documents written before a field
existed still read: a group without ``frames`` gets them from ``stack``/``stack_display`` (a displayed frame that
is not in the signature is a kernel frame), and a diff group without ``runs`` attaches its descriptive fields to
the run it is outstanding in now.

Each field is checked by :mod:`heapdiff.document.fields`; a trace's records are decoded by
:mod:`heapdiff.document.decode_trace`, groups and the document here.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from typing import Any, cast

import orjson

from heapdiff.document.decode_trace import trace_record
from heapdiff.document.fields import (
    as_bool,
    as_counts,
    as_hex,
    as_int,
    as_list,
    as_obj,
    as_str,
    check_delta,
    fail,
    field,
    hexes,
    int_map,
    optional,
    series,
    strs,
)
from heapdiff.document.model import (
    GATE_NAMES,
    SCHEMA,
    STATUSES,
    TREND_CLASSES,
    Counts,
    Document,
    Filters,
    FrameRecord,
    Gate,
    GroupRecord,
    Match,
    Mode,
    RunDetails,
    Status,
    Suppression,
    Totals,
    TraceRecord,
    Trend,
    WindowFilter,
)
from heapdiff.errors import DocumentError
from heapdiff.frames import SourceFrame
from heapdiff.rules import FrameKind, is_allocator_frame, module_of_frame, name_group


def _window_filter(v: Any) -> WindowFilter:
    """``filters.window``; absent in documents made before windows existed."""
    if v is None:
        return WindowFilter()
    where = "filters.window"
    o = as_obj(v, where)
    us = [optional(as_int, o.get(k), f"{where}.{k}") for k in ("from_us", "to_us", "at_us")]
    texts = [optional(as_str, o.get(k), f"{where}.{k}") for k in ("from", "to", "at")]
    return WindowFilter(us[0], us[1], us[2], texts[0], texts[1], texts[2])


def _details(o: Mapping[str, Any], where: str, counts: Counts) -> RunDetails:
    def f(key: str) -> Any:
        return field(o, key, where)

    return RunDetails(
        counts=counts,
        heaps=hexes(f("heaps"), f"{where}.heaps"),
        sources=int_map(f("sources"), f"{where}.sources"),
        size_histogram=int_map(f("size_histogram"), f"{where}.size_histogram"),
        first_alloc_utc=optional(as_str, f("first_alloc_utc"), f"{where}.first_alloc_utc"),
        last_alloc_utc=optional(as_str, f("last_alloc_utc"), f"{where}.last_alloc_utc"),
        sample_addresses=hexes(f("sample_addresses"), f"{where}.sample_addresses"),
        timeline_bytes=series(o.get("timeline_bytes"), f"{where}.timeline_bytes"),
    )


def _source(v: Any, where: str) -> SourceFrame:
    o = as_obj(v, where)
    return SourceFrame(as_str(field(o, "function", where), f"{where}.function"),
                       optional(as_str, o.get("file"), f"{where}.file"),
                       optional(as_int, o.get("line"), f"{where}.line"))


def _frame(v: Any, where: str) -> FrameRecord:
    o = as_obj(v, where)
    return FrameRecord(text=as_str(field(o, "text", where), f"{where}.text"),
                       module=optional(as_str, o.get("module"), f"{where}.module"),
                       rva=optional(as_hex, o.get("rva"), f"{where}.rva"),
                       kernel=as_bool(o.get("kernel", False), f"{where}.kernel"),
                       allocator=as_bool(o.get("allocator", False), f"{where}.allocator"),
                       function=optional(as_str, o.get("function"), f"{where}.function"),
                       offset=optional(as_hex, o.get("offset"), f"{where}.offset"),
                       file=optional(as_str, o.get("file"), f"{where}.file"),
                       line=optional(as_int, o.get("line"), f"{where}.line"),
                       inlined=tuple(_source(x, f"{where}.inlined[{i}]")
                                     for i, x in enumerate(as_list(o.get("inlined", []), f"{where}.inlined"))))


class _Frames:
    """Frames decoded once per distinct frame: a document's groups share most of their frames."""

    def __init__(self) -> None:
        self._memo: dict[Any, FrameRecord] = {}

    def record(self, v: Any, where: str) -> FrameRecord:
        if type(v) is dict and not v.get("inlined"):
            key = (v.get("text"), v.get("module"), v.get("rva"), v.get("kernel"), v.get("allocator"),
                   v.get("function"), v.get("offset"), v.get("file"), v.get("line"))
            got = self._memo.get(key)
            if got is None:
                got = self._memo[key] = _frame(v, where)
            return got
        return _frame(v, where)

    def legacy(self, stack: list[str], display: list[str]) -> tuple[FrameRecord, ...]:
        """Frames of a document written before ``frames`` existed: a displayed frame marked ``[k]`` or missing
        from the signature is a kernel frame."""
        out = []
        j = 0
        for raw in display or stack:
            kernel = raw.startswith("[k] ")
            text = raw[4:] if kernel else raw
            if j < len(stack) and text == stack[j]:  # in the signature (kernel frames are, with --kernel-frames)
                j += 1
            else:  # displayed but left out of the signature: only kernel frames are
                kernel = True
            got = self._memo.get((text, kernel))
            if got is None:
                module = module_of_frame(text)
                rva = None
                if module is not None and "+0x" in text:
                    try:
                        rva = int(text.rsplit("+0x", 1)[1], 16)
                    except ValueError:
                        rva = None
                got = self._memo[(text, kernel)] = FrameRecord(text, module, rva, kernel,
                                                               not kernel and is_allocator_frame(module, None))
            out.append(got)
        return tuple(out)


def _group(v: Any, where: str, mode: Mode, frames_of: _Frames) -> GroupRecord:
    o = as_obj(v, where)
    stack = strs(field(o, "stack", where), f"{where}.stack")
    display = strs(field(o, "stack_display", where), f"{where}.stack_display")
    if "frames" in o:
        frames = tuple(frames_of.record(f, f"{where}.frames[{i}]")
                       for i, f in enumerate(as_list(o["frames"], f"{where}.frames")))
    else:
        frames = frames_of.legacy(stack, display)
    module = as_str(field(o, "module", where), f"{where}.module")
    if "label" in o:
        label = as_str(o["label"], f"{where}.label")
    else:
        label = name_group(tuple(FrameKind(f.text, f.module, f.kernel, f.allocator) for f in frames)).label
    label_index = next((i for i, f in enumerate(frames) if f.text == label and not f.kernel), -1)
    status: Status | None = None
    runs: tuple[RunDetails | None, ...]
    trend: Trend | None = None
    if mode == "single":
        runs = (_details(o, where, as_counts(o, where)),)
    elif mode == "trend":
        rw = f"{where}.runs"
        runs = tuple(None if r is None else _details(as_obj(r, f"{rw}[{i}]"), f"{rw}[{i}]", as_counts(r, f"{rw}[{i}]"))
                     for i, r in enumerate(as_list(field(o, "runs", where), rw)))
        tw = f"{where}.trend"
        to = as_obj(field(o, "trend", where), tw)
        klass = as_str(field(to, "class", tw), f"{tw}.class")
        if klass not in TREND_CLASSES:
            raise fail(f"{tw}.class", " or ".join(TREND_CLASSES), klass)
        slope = field(to, "slope_bytes", tw)
        if type(slope) not in (int, float):
            raise fail(f"{tw}.slope_bytes", "a number", slope)
        trend = Trend(float(slope), klass)
    else:
        st = as_str(field(o, "status", where), f"{where}.status")
        if st not in STATUSES:
            raise fail(f"{where}.status", " or ".join(STATUSES), st)
        status = st
        b = as_counts(field(o, "before", where), f"{where}.before")
        a = as_counts(field(o, "after", where), f"{where}.after")
        check_delta(o, where, b, a)
        given = o.get("runs")
        if given is not None:
            rw = f"{where}.runs"
            ro = as_obj(given, rw)
            runs = tuple(None if ro.get(k) is None else _details(as_obj(ro[k], f"{rw}.{k}"), f"{rw}.{k}", c)
                         for k, c in (("before", b), ("after", a)))
        else:  # the first version: one set of facts, from after (else before); the other run's heaps only
            now_after = a.blocks > 0 or b.blocks == 0
            shown = _details(o, where, a if now_after else b)
            other_counts = b if now_after else a
            other_heaps = hexes(o.get("heaps_before", []), f"{where}.heaps_before") if now_after else ()
            other = (RunDetails(other_counts, other_heaps, {}, {}, None, None, ()) if other_counts.blocks
                     else None)
            runs = (other, shown) if now_after else (shown, other)
    return GroupRecord(stack=tuple(stack), frames=frames, module=module, label=label, label_index=label_index,
                       status=status, runs=runs,
                       suppressed_by=optional(as_str, o.get("suppressed_by"), f"{where}.suppressed_by"), trend=trend)


def _match(v: Any) -> Match:
    if v not in ("function", "rva"):
        raise fail("filters.match", "'function' or 'rva'", v)
    return "function" if v == "function" else "rva"


def _gate(v: Any, where: str) -> Gate:
    o = as_obj(v, where)
    name = as_str(field(o, "name", where), f"{where}.name")
    if name not in GATE_NAMES:
        raise fail(f"{where}.name", " or ".join(GATE_NAMES), name)
    return Gate(name=name, threshold=as_int(field(o, "threshold", where), f"{where}.threshold"),
                value=as_int(field(o, "value", where), f"{where}.value"),
                failed=as_bool(field(o, "failed", where), f"{where}.failed"),
                groups=tuple(as_int(x, f"{where}.groups[{i}]")
                             for i, x in enumerate(as_list(field(o, "groups", where), f"{where}.groups"))),
                reason=optional(as_str, o.get("reason"), f"{where}.reason"))


def _suppression(v: Any, where: str) -> Suppression:
    o = as_obj(v, where)
    return Suppression(as_str(field(o, "pattern", where), f"{where}.pattern"),
                       as_str(field(o, "source", where), f"{where}.source"),
                       as_int(field(o, "line", where), f"{where}.line"),
                       as_int(field(o, "groups", where), f"{where}.groups"))


def _check_series(groups: tuple[GroupRecord, ...], traces: tuple[TraceRecord, ...], mode: Mode) -> None:
    """A group's timeline bytes have one value per point of its input's timeline."""
    for i, g in enumerate(groups):
        for k, r in enumerate(g.runs):
            if r is None or r.timeline_bytes is None:
                continue
            where = (f"groups[{i}].timeline_bytes" if mode == "single" else
                     f"groups[{i}].runs.{('before', 'after')[k]}.timeline_bytes" if mode == "diff" else
                     f"groups[{i}].runs[{k}].timeline_bytes")
            tl = traces[k].timeline if k < len(traces) else None
            if tl is None:
                raise DocumentError(f"{where}: the trace it belongs to has no timeline")
            if len(r.timeline_bytes) != len(tl.time_us):
                raise DocumentError(f"{where}: {len(r.timeline_bytes)} points, but the trace's timeline has "
                                    f"{len(tl.time_us)}")


def decode_value(value: Any) -> Document:
    """A document from parsed JSON; see the module docstring for what is checked.

    The cyclic collector is paused meanwhile: decoding makes hundreds of thousands of acyclic records, and the
    collector's full passes over them were more than half of the time for a document of 100,000 groups."""
    was = gc.isenabled()
    gc.disable()
    try:
        return _decode(value)
    finally:
        if was:
            gc.enable()


def _decode(value: Any) -> Document:
    o = as_obj(value, "document")
    schema = o.get("schema")
    if schema != SCHEMA:
        raise DocumentError(f"not a {SCHEMA} document (schema {str(schema)[:40]!r})")
    mode_raw = as_str(field(o, "mode", "document"), "mode")
    if mode_raw not in ("single", "diff", "trend"):
        raise fail("mode", "'single', 'diff' or 'trend'", mode_raw)
    mode = cast(Mode, mode_raw)
    fo = as_obj(field(o, "filters", "document"), "filters")
    pid_raw = field(fo, "pid", "filters")
    filters = Filters(process=optional(as_str, field(fo, "process", "filters"), "filters.process"),
                      pid=None if pid_raw is None else tuple(as_int(p, f"filters.pid[{i}]")
                                                              for i, p in enumerate(as_list(pid_raw, "filters.pid"))),
                      kernel_frames=as_bool(field(fo, "kernel_frames", "filters"), "filters.kernel_frames"),
                      min_bytes=as_int(field(fo, "min_bytes", "filters"), "filters.min_bytes"),
                      top=as_int(field(fo, "top", "filters"), "filters.top"),
                      match=_match(fo.get("match", "rva")),
                      symbols=optional(as_str, fo.get("symbols"), "filters.symbols"),
                      window=_window_filter(fo.get("window")))
    traces = tuple(trace_record(t, f"traces[{i}]")
                   for i, t in enumerate(as_list(field(o, "traces", "document"), "traces")))
    if mode != "trend" and len(traces) != (2 if mode == "diff" else 1):
        raise DocumentError(f"traces: a {mode} document has {2 if mode == 'diff' else 1} trace(s), "
                            f"this one {len(traces)}")
    frames_of = _Frames()
    groups = tuple(_group(g, f"groups[{i}]", mode, frames_of)
                   for i, g in enumerate(as_list(field(o, "groups", "document"), "groups")))
    _check_series(groups, traces, mode)
    to = as_obj(field(o, "totals", "document"), "totals")
    runs: tuple[Counts, ...]
    if mode == "trend":
        runs = tuple(as_counts(c, f"totals.runs[{i}]") for i, c in enumerate(as_list(field(to, "runs", "totals"),
                                                                                 "totals.runs")))
        if len(runs) != len(traces):
            raise DocumentError(f"totals.runs: {len(runs)} runs for {len(traces)} traces")
    elif mode == "diff":
        before = as_counts(field(to, "before", "totals"), "totals.before")
        after = as_counts(field(to, "after", "totals"), "totals.after")
        check_delta(to, "totals", before, after)
        runs = (before, after)
    else:
        runs = (as_counts(to, "totals"),)
    derived = Totals.of(groups, len(runs))  # documents before growth and shrink existed
    totals = Totals(runs,
                    as_counts(to["growth"], "totals.growth") if "growth" in to else derived.growth,
                    as_counts(to["shrink"], "totals.shrink") if "shrink" in to else derived.shrink,
                    as_counts(to["suppressed"], "totals.suppressed") if "suppressed" in to else derived.suppressed)
    gates = tuple(_gate(g, f"gates[{i}]") for i, g in enumerate(as_list(o.get("gates", []), "gates")))
    used = tuple(_suppression(x, f"suppressions[{i}]")
                 for i, x in enumerate(as_list(o.get("suppressions", []), "suppressions")))
    return Document(mode=mode, generator=as_str(field(o, "generator", "document"), "generator"), filters=filters,
                    traces=traces, totals=totals, groups=groups, gates=gates, suppressions=used)


def decode(data: bytes | str) -> Document:
    """A document from its JSON text; :class:`DocumentError` for text that is not JSON or not such a document."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise DocumentError(f"not JSON: {e}") from None
    return decode_value(value)
