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
from typing import Any, cast

import orjson

from heapdiff.document.decode_trace import trace_record
from heapdiff.document.fields import (
    Obj,
    as_bool,
    as_counts,
    as_hex,
    as_int,
    as_number,
    as_str,
    check_delta,
    fail,
    hexes,
    int_map,
    list_of,
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


def _window_filter(v: Any, where: str) -> WindowFilter:
    """``filters.window``; absent (or null) in documents made before windows existed."""
    if v is None:
        return WindowFilter()
    o = Obj(v, where)
    return WindowFilter(o.opt("from_us", as_int), o.opt("to_us", as_int), o.opt("at_us", as_int),
                        o.opt("from", as_str), o.opt("to", as_str), o.opt("at", as_str))


def _details(o: Obj, counts: Counts) -> RunDetails:
    return RunDetails(
        counts=counts,
        heaps=o.req("heaps", hexes),
        sources=o.req("sources", int_map),
        size_histogram=o.req("size_histogram", int_map),
        first_alloc_utc=o.nullable("first_alloc_utc", as_str),
        last_alloc_utc=o.nullable("last_alloc_utc", as_str),
        sample_addresses=o.req("sample_addresses", hexes),
        timeline_bytes=o.opt("timeline_bytes", series),
    )


def _source(v: Any, where: str) -> SourceFrame:
    o = Obj(v, where)
    return SourceFrame(o.req("function", as_str), o.opt("file", as_str), o.opt("line", as_int))


def _frame(v: Any, where: str) -> FrameRecord:
    o = Obj(v, where)
    return FrameRecord(text=o.req("text", as_str), module=o.opt("module", as_str), rva=o.opt("rva", as_hex),
                       kernel=o.get("kernel", as_bool, False), allocator=o.get("allocator", as_bool, False),
                       function=o.opt("function", as_str), offset=o.opt("offset", as_hex),
                       file=o.opt("file", as_str), line=o.opt("line", as_int),
                       inlined=o.get("inlined", list_of(_source), ()))


class _Frames:
    """Frames decoded once per distinct frame: a document's groups share most of their frames."""

    def __init__(self) -> None:
        self._memo: dict[Any, FrameRecord] = {}

    def record(self, v: Any, where: str) -> FrameRecord:
        if type(v) is dict and not v.get("inlined"):
            key = (v.get("text"), v.get("module"), v.get("rva"), v.get("kernel"), v.get("allocator"),
                   v.get("function"), v.get("offset"), v.get("file"), v.get("line"))
            try:
                got = self._memo.get(key)
            except TypeError:  # a list or an object where a value belongs: _frame names it
                return _frame(v, where)
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
    o = Obj(v, where)
    stack = o.req("stack", strs)
    display = o.req("stack_display", strs)
    frames = o.req("frames", list_of(frames_of.record)) if "frames" in o else frames_of.legacy(stack, display)
    module = o.req("module", as_str)
    if "label" in o:
        label = o.req("label", as_str)
    else:
        label = name_group(tuple(FrameKind(f.text, f.module, f.kernel, f.allocator) for f in frames)).label
    label_index = next((i for i, f in enumerate(frames) if f.text == label and not f.kernel), -1)
    status: Status | None = None
    runs: tuple[RunDetails | None, ...]
    trend: Trend | None = None
    if mode == "single":
        runs = (_details(o, as_counts(v, where)),)
    elif mode == "trend":
        runs = o.req("runs", list_of(_trend_run))
        trend = o.req("trend", _trend)
    else:
        st = o.req("status", as_str)
        if st not in STATUSES:
            raise fail(o.where_of("status"), " or ".join(STATUSES), st)
        status = st
        b = o.req("before", as_counts)
        a = o.req("after", as_counts)
        check_delta(o, b, a)
        ro = o.opt("runs", Obj)
        if ro is not None:
            runs = (_diff_run(ro, "before", b), _diff_run(ro, "after", a))
        else:  # the first version: one set of facts, from after (else before); the other run's heaps only
            now_after = a.blocks > 0 or b.blocks == 0
            shown = _details(o, a if now_after else b)
            other_counts = b if now_after else a
            other_heaps: tuple[int, ...] = o.get("heaps_before", hexes, ()) if now_after else ()
            other = (RunDetails(other_counts, other_heaps, {}, {}, None, None, ()) if other_counts.blocks
                     else None)
            runs = (other, shown) if now_after else (shown, other)
    return GroupRecord(stack=tuple(stack), frames=frames, module=module, label=label, label_index=label_index,
                       status=status, runs=runs, suppressed_by=o.opt("suppressed_by", as_str), trend=trend)


def _diff_run(runs: Obj, key: str, counts: Counts) -> RunDetails | None:
    """A diff group's facts in one run (its counts are the group's before or after); null where it holds none."""
    o = runs.opt(key, Obj)
    return None if o is None else _details(o, counts)


def _trend_run(v: Any, where: str) -> RunDetails | None:
    """A trend group's run, its counts among its facts; null where it holds nothing in that run."""
    return None if v is None else _details(Obj(v, where), as_counts(v, where))


def _trend(v: Any, where: str) -> Trend:
    o = Obj(v, where)
    klass = o.req("class", as_str)
    if klass not in TREND_CLASSES:
        raise fail(o.where_of("class"), " or ".join(TREND_CLASSES), klass)
    return Trend(o.req("slope_bytes", as_number), klass)


def _match(v: Any, where: str) -> Match:
    if v not in ("function", "rva"):
        raise fail(where, "'function' or 'rva'", v)
    return "function" if v == "function" else "rva"


def _gate(v: Any, where: str) -> Gate:
    o = Obj(v, where)
    name = o.req("name", as_str)
    if name not in GATE_NAMES:
        raise fail(o.where_of("name"), " or ".join(GATE_NAMES), name)
    return Gate(name=name, threshold=o.req("threshold", as_int), value=o.req("value", as_int),
                failed=o.req("failed", as_bool), groups=o.req("groups", list_of(as_int)),
                reason=o.opt("reason", as_str))


def _suppression(v: Any, where: str) -> Suppression:
    o = Obj(v, where)
    return Suppression(o.req("pattern", as_str), o.req("source", as_str), o.req("line", as_int),
                       o.req("groups", as_int))


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
    o = Obj(value, "document", root=True)
    schema = o.raw.get("schema")
    if schema != SCHEMA:
        raise DocumentError(f"not a {SCHEMA} document (schema {str(schema)[:40]!r})")
    mode_raw = o.req("mode", as_str)
    if mode_raw not in ("single", "diff", "trend"):
        raise fail("mode", "'single', 'diff' or 'trend'", mode_raw)
    mode = cast(Mode, mode_raw)
    fo = o.req("filters", Obj)
    pid = fo.nullable("pid", list_of(as_int))
    filters = Filters(process=fo.nullable("process", as_str), pid=pid, kernel_frames=fo.req("kernel_frames", as_bool),
                      min_bytes=fo.req("min_bytes", as_int), top=fo.req("top", as_int),
                      match=fo.get("match", _match, "rva"), symbols=fo.opt("symbols", as_str),
                      window=fo.get("window", _window_filter, WindowFilter()))
    traces = o.req("traces", list_of(trace_record))
    if mode != "trend" and len(traces) != (2 if mode == "diff" else 1):
        raise DocumentError(f"traces: a {mode} document has {2 if mode == 'diff' else 1} trace(s), "
                            f"this one {len(traces)}")
    frames_of = _Frames()
    groups = o.req("groups", list_of(lambda g, where: _group(g, where, mode, frames_of)))
    if mode == "trend":
        for i, g in enumerate(groups):
            if len(g.runs) != len(traces):
                raise DocumentError(f"groups[{i}].runs: {len(g.runs)} runs for {len(traces)} traces")
    _check_series(groups, traces, mode)
    to = o.req("totals", Obj)
    runs: tuple[Counts, ...]
    if mode == "trend":
        runs = to.req("runs", list_of(as_counts))
        if len(runs) != len(traces):
            raise DocumentError(f"totals.runs: {len(runs)} runs for {len(traces)} traces")
    elif mode == "diff":
        before = to.req("before", as_counts)
        after = to.req("after", as_counts)
        check_delta(to, before, after)
        runs = (before, after)
    else:
        runs = (as_counts(to.raw, to.where),)
    derived = Totals.of(groups, len(runs))  # documents before growth and shrink existed
    totals = Totals(runs, to.get("growth", as_counts, derived.growth), to.get("shrink", as_counts, derived.shrink),
                    to.get("suppressed", as_counts, derived.suppressed))
    return Document(mode=mode, generator=o.req("generator", as_str), filters=filters, traces=traces, totals=totals,
                    groups=groups, gates=o.get("gates", list_of(_gate), ()),
                    suppressions=o.get("suppressions", list_of(_suppression), ()))


def decode(data: bytes | str) -> Document:
    """A document from its JSON text; :class:`DocumentError` for text that is not JSON or not such a document."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise DocumentError(f"not JSON: {e}") from None
    return decode_value(value)
