"""Reading a ``heapdiff/1`` JSON document back into a :class:`Document` (a baseline, a report to render again).

Everything is checked: a field of the wrong type, a missing field, another schema or an unknown mode raises
:class:`~heapdiff.errors.DocumentError` naming the field (``groups[3].after.bytes``), never a silent 0. Fields
this version does not know are ignored (documents only ever gain fields). Documents written before a field
existed still read: a group without ``frames`` gets them from ``stack``/``stack_display`` (a displayed frame that
is not in the signature is a kernel frame), and a diff group without ``runs`` attaches its descriptive fields to
the run it is outstanding in now.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import orjson

from heapdiff.document.model import (
    GATE_NAMES,
    ROLES,
    SCHEMA,
    STATUSES,
    TREND_CLASSES,
    Counts,
    Document,
    Filters,
    FrameRecord,
    FrameTotals,
    Gate,
    GroupRecord,
    Match,
    Mode,
    ModuleRecord,
    ProcessRecord,
    RunDetails,
    Status,
    Suppression,
    Totals,
    TraceRecord,
    TraceTimeline,
    TraceWindow,
    Trend,
    WindowFilter,
)
from heapdiff.errors import DocumentError
from heapdiff.frames import PdbId, SourceFrame, SymbolStatus
from heapdiff.rules import FrameKind, is_allocator_frame, module_of_frame, name_group

SYMBOL_STATUSES: tuple[SymbolStatus, ...] = ("loaded", "not_found", "mismatch", "error", "off")

T = TypeVar("T")


def _fail(where: str, what: str, value: Any) -> DocumentError:
    shown = repr(value)
    return DocumentError(f"{where}: expected {what}, got {shown[:60] + '…' if len(shown) > 60 else shown}")


def _obj(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise _fail(where, "an object", v)
    return v


def _get(o: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in o:
        raise DocumentError(f"{where}.{key}: missing")
    return o[key]


def _int(v: Any, where: str) -> int:
    if type(v) is not int:
        raise _fail(where, "an integer", v)
    return v


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise _fail(where, "a string", v)
    return v


def _opt(conv: Callable[[Any, str], T], v: Any, where: str) -> T | None:
    return None if v is None else conv(v, where)


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise _fail(where, "true or false", v)
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise _fail(where, "a list", v)
    return v


def _hex(v: Any, where: str) -> int:
    try:
        if not isinstance(v, str) or not v.startswith("0x"):
            raise ValueError
        return int(v, 16)
    except ValueError:
        raise _fail(where, "a hex string (0x...)", v) from None


def _delta(o: Mapping[str, Any], where: str, before: Counts, after: Counts) -> None:
    """A diff's delta is after minus before; a document that says otherwise is refused, not trusted."""
    d = _counts(_get(o, "delta", where), f"{where}.delta")
    if d != after - before:
        raise DocumentError(f"{where}.delta: {d.blocks} blocks, {d.bytes} bytes is not after minus before "
                            f"({after.blocks - before.blocks} blocks, {after.bytes - before.bytes} bytes)")


def _counts(v: Any, where: str) -> Counts:
    o = _obj(v, where)
    return Counts(_int(_get(o, "blocks", where), f"{where}.blocks"), _int(_get(o, "bytes", where), f"{where}.bytes"))


def _int_map(v: Any, where: str) -> dict[str, int]:
    o = _obj(v, where)
    if all(type(x) is int for x in o.values()):
        return dict(o)
    return {k: _int(x, f"{where}.{k}") for k, x in o.items()}


def _naturals(v: Any, where: str) -> tuple[int, ...]:
    """A list of non-negative integers (the path of a bad item is made only when there is one)."""
    items = _list(v, where)
    if all(type(x) is int and x >= 0 for x in items):
        return tuple(items)
    i = next(i for i, x in enumerate(items) if not (type(x) is int and x >= 0))
    raise _fail(f"{where}[{i}]", "a non-negative integer", items[i])


def _timeline(v: Any, where: str) -> TraceTimeline | None:
    """A trace's timeline: equal-length lists, times increasing from >= 0, counts >= 0; null before timelines."""
    if v is None:
        return None
    o = _obj(v, where)
    times = _list(_get(o, "time_us", where), f"{where}.time_us")
    if not times:
        raise DocumentError(f"{where}.time_us: expected at least one point, got none")
    prev = -1.0
    for i, t in enumerate(times):
        if type(t) not in (int, float) or not math.isfinite(t) or t < 0:
            raise _fail(f"{where}.time_us[{i}]", "a non-negative number", t)
        if t <= prev:
            raise DocumentError(f"{where}.time_us[{i}]: {t} does not come after {prev}: times must increase")
        prev = t
    nbytes = _naturals(_get(o, "bytes", where), f"{where}.bytes")
    blocks = _naturals(_get(o, "blocks", where), f"{where}.blocks")
    for name, col in (("bytes", nbytes), ("blocks", blocks)):
        if len(col) != len(times):
            raise DocumentError(f"{where}.{name}: {len(col)} points, but time_us has {len(times)}")
    return TraceTimeline(tuple(float(t) for t in times), nbytes, blocks)


def _series(v: Any, where: str) -> tuple[int, ...] | None:
    """A group's bytes by allocation time: non-negative and never falling (they are sums up to each point)."""
    if v is None:
        return None
    out = _naturals(v, where)
    for i in range(1, len(out)):
        if out[i] < out[i - 1]:
            raise DocumentError(f"{where}[{i}]: {out[i]} is less than the point before ({out[i - 1]}): "
                                "bytes allocated by a time never fall")
    return out


def _trace(v: Any, where: str) -> TraceRecord:
    o = _obj(v, where)

    def f(key: str) -> Any:
        return _get(o, key, where)

    role = _str(f("role"), f"{where}.role")
    if role not in ROLES:
        raise _fail(f"{where}.role", " or ".join(ROLES), role)
    by_pid: dict[int, Counts] = {}
    for k, c in _obj(f("outstanding_by_pid"), f"{where}.outstanding_by_pid").items():
        if not k.isdigit():
            raise _fail(f"{where}.outstanding_by_pid", "decimal pid keys", k)
        by_pid[int(k)] = _counts(c, f"{where}.outstanding_by_pid.{k}")
    procs = []
    for i, p in enumerate(_list(f("processes"), f"{where}.processes")):
        pw = f"{where}.processes[{i}]"
        po = _obj(p, pw)
        procs.append(ProcessRecord(_int(_get(po, "pid", pw), f"{pw}.pid"),
                                   _str(_get(po, "image_name", pw), f"{pw}.image_name"),
                                   _str(_get(po, "command_line", pw), f"{pw}.command_line")))
    unres = _obj(f("unresolved_frames"), f"{where}.unresolved_frames")
    uw = f"{where}.unresolved_frames"
    return TraceRecord(
        role=role,
        path=_str(f("path"), f"{where}.path"),
        pointer_size=_int(f("pointer_size"), f"{where}.pointer_size"),
        start_utc=_str(f("start_utc"), f"{where}.start_utc"),
        end_utc=_str(f("end_utc"), f"{where}.end_utc"),
        records=_int(f("records"), f"{where}.records"),
        events=_int_map(f("events"), f"{where}.events"),
        events_lost=_int(f("events_lost"), f"{where}.events_lost"),
        buffers_lost=_int(f("buffers_lost"), f"{where}.buffers_lost"),
        stack_refs=_int(f("stack_refs"), f"{where}.stack_refs"),
        stacks_matched=_int(f("stacks_matched"), f"{where}.stacks_matched"),
        outstanding=_counts(f("outstanding"), f"{where}.outstanding"),
        outstanding_by_pid=by_pid,
        unmatched_frees=_int(f("unmatched_frees"), f"{where}.unmatched_frees"),
        anomalies=_int_map(f("anomalies"), f"{where}.anomalies"),
        processes=tuple(procs),
        unresolved_frames=FrameTotals(_int(_get(unres, "frames", uw), f"{uw}.frames"),
                                      _int(_get(unres, "unresolved", uw), f"{uw}.unresolved")),
        notes=tuple(_str(n, f"{where}.notes[{i}]") for i, n in enumerate(_list(f("notes"), f"{where}.notes"))),
        modules=tuple(_module(m, f"{where}.modules[{i}]") for i, m in enumerate(_list(o.get("modules", []),
                                                                                      f"{where}.modules"))),
        window=_trace_window(o.get("window"), f"{where}.window"),
        timeline=_timeline(o.get("timeline"), f"{where}.timeline"),
    )


def _trace_window(v: Any, where: str) -> TraceWindow | None:
    if v is None:
        return None
    o = _obj(v, where)
    got = [_opt(_int, o.get(k), f"{where}.{k}") for k in ("from_us", "to_us", "at_us")]
    for k, x in zip(("from_us", "to_us", "at_us"), got, strict=True):
        if x is not None and x < 0:
            raise _fail(f"{where}.{k}", "microseconds from the trace's start (0 or more)", x)
    return TraceWindow(*got)


def _window_filter(v: Any) -> WindowFilter:
    """``filters.window``; absent in documents made before windows existed."""
    if v is None:
        return WindowFilter()
    where = "filters.window"
    o = _obj(v, where)
    us = [_opt(_int, o.get(k), f"{where}.{k}") for k in ("from_us", "to_us", "at_us")]
    texts = [_opt(_str, o.get(k), f"{where}.{k}") for k in ("from", "to", "at")]
    return WindowFilter(us[0], us[1], us[2], texts[0], texts[1], texts[2])


def _module(v: Any, where: str) -> ModuleRecord:
    o = _obj(v, where)

    def f(key: str) -> Any:
        return _get(o, key, where)

    pid = _opt(_str, f("pid"), f"{where}.pid")
    if pid is not None and not pid.isdigit():
        raise _fail(f"{where}.pid", "a decimal string or null", pid)
    pdb_raw = f("pdb")
    pdb = None
    if pdb_raw is not None:
        po = _obj(pdb_raw, f"{where}.pdb")
        pdb = PdbId(_str(_get(po, "name", f"{where}.pdb"), f"{where}.pdb.name"),
                    _str(_get(po, "guid", f"{where}.pdb"), f"{where}.pdb.guid"),
                    _int(_get(po, "age", f"{where}.pdb"), f"{where}.pdb.age"))
    status = _str(f("symbols"), f"{where}.symbols")
    if status not in SYMBOL_STATUSES:
        raise _fail(f"{where}.symbols", " or ".join(SYMBOL_STATUSES), status)
    return ModuleRecord(name=_str(f("name"), f"{where}.name"), path=_str(f("path"), f"{where}.path"),
                        pid=None if pid is None else int(pid), base=_hex(f("base"), f"{where}.base"),
                        size=_hex(f("size"), f"{where}.size"),
                        timestamp=_opt(_hex, f("timestamp"), f"{where}.timestamp"),
                        pdb=pdb, symbols=status, symbol_file=_opt(_str, f("symbol_file"), f"{where}.symbol_file"),
                        note=_opt(_str, f("note"), f"{where}.note"))


def _hexes(v: Any, where: str) -> tuple[int, ...]:
    items = _list(v, where)
    try:
        if all(type(x) is str and x.startswith("0x") for x in items):
            return tuple(int(x, 16) for x in items)
    except ValueError:
        pass
    for i, x in enumerate(items):  # name the first bad one
        _hex(x, f"{where}[{i}]")
    raise AssertionError("unreachable: a bad item was found above")


def _strs(v: Any, where: str) -> list[str]:
    """A list of strings, checked in one pass (the path of a bad item is made only when there is one)."""
    items = _list(v, where)
    if not all(type(x) is str for x in items):
        i = next(i for i, x in enumerate(items) if type(x) is not str)
        raise _fail(f"{where}[{i}]", "a string", items[i])
    return items


def _details(o: Mapping[str, Any], where: str, counts: Counts) -> RunDetails:
    def f(key: str) -> Any:
        return _get(o, key, where)

    return RunDetails(
        counts=counts,
        heaps=_hexes(f("heaps"), f"{where}.heaps"),
        sources=_int_map(f("sources"), f"{where}.sources"),
        size_histogram=_int_map(f("size_histogram"), f"{where}.size_histogram"),
        first_alloc_utc=_opt(_str, f("first_alloc_utc"), f"{where}.first_alloc_utc"),
        last_alloc_utc=_opt(_str, f("last_alloc_utc"), f"{where}.last_alloc_utc"),
        sample_addresses=_hexes(f("sample_addresses"), f"{where}.sample_addresses"),
        timeline_bytes=_series(o.get("timeline_bytes"), f"{where}.timeline_bytes"),
    )


def _source(v: Any, where: str) -> SourceFrame:
    o = _obj(v, where)
    return SourceFrame(_str(_get(o, "function", where), f"{where}.function"),
                       _opt(_str, o.get("file"), f"{where}.file"), _opt(_int, o.get("line"), f"{where}.line"))


def _frame(v: Any, where: str) -> FrameRecord:
    o = _obj(v, where)
    return FrameRecord(text=_str(_get(o, "text", where), f"{where}.text"),
                       module=_opt(_str, o.get("module"), f"{where}.module"),
                       rva=_opt(_hex, o.get("rva"), f"{where}.rva"),
                       kernel=_bool(o.get("kernel", False), f"{where}.kernel"),
                       allocator=_bool(o.get("allocator", False), f"{where}.allocator"),
                       function=_opt(_str, o.get("function"), f"{where}.function"),
                       offset=_opt(_hex, o.get("offset"), f"{where}.offset"),
                       file=_opt(_str, o.get("file"), f"{where}.file"),
                       line=_opt(_int, o.get("line"), f"{where}.line"),
                       inlined=tuple(_source(x, f"{where}.inlined[{i}]")
                                     for i, x in enumerate(_list(o.get("inlined", []), f"{where}.inlined"))))


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
    o = _obj(v, where)
    stack = _strs(_get(o, "stack", where), f"{where}.stack")
    display = _strs(_get(o, "stack_display", where), f"{where}.stack_display")
    if "frames" in o:
        frames = tuple(frames_of.record(f, f"{where}.frames[{i}]")
                       for i, f in enumerate(_list(o["frames"], f"{where}.frames")))
    else:
        frames = frames_of.legacy(stack, display)
    module = _str(_get(o, "module", where), f"{where}.module")
    if "label" in o:
        label = _str(o["label"], f"{where}.label")
    else:
        label = name_group(tuple(FrameKind(f.text, f.module, f.kernel, f.allocator) for f in frames)).label
    label_index = next((i for i, f in enumerate(frames) if f.text == label and not f.kernel), -1)
    status: Status | None = None
    runs: tuple[RunDetails | None, ...]
    trend: Trend | None = None
    if mode == "single":
        c = Counts(_int(_get(o, "blocks", where), f"{where}.blocks"), _int(_get(o, "bytes", where), f"{where}.bytes"))
        runs = (_details(o, where, c),)
    elif mode == "trend":
        rw = f"{where}.runs"
        runs = tuple(None if r is None else _details(_obj(r, f"{rw}[{i}]"), f"{rw}[{i}]", _counts(r, f"{rw}[{i}]"))
                     for i, r in enumerate(_list(_get(o, "runs", where), rw)))
        tw = f"{where}.trend"
        to = _obj(_get(o, "trend", where), tw)
        klass = _str(_get(to, "class", tw), f"{tw}.class")
        if klass not in TREND_CLASSES:
            raise _fail(f"{tw}.class", " or ".join(TREND_CLASSES), klass)
        slope = _get(to, "slope_bytes", tw)
        if type(slope) not in (int, float):
            raise _fail(f"{tw}.slope_bytes", "a number", slope)
        trend = Trend(float(slope), klass)
    else:
        st = _str(_get(o, "status", where), f"{where}.status")
        if st not in STATUSES:
            raise _fail(f"{where}.status", " or ".join(STATUSES), st)
        status = st
        b = _counts(_get(o, "before", where), f"{where}.before")
        a = _counts(_get(o, "after", where), f"{where}.after")
        _delta(o, where, b, a)
        given = o.get("runs")
        if given is not None:
            rw = f"{where}.runs"
            ro = _obj(given, rw)
            runs = tuple(None if ro.get(k) is None else _details(_obj(ro[k], f"{rw}.{k}"), f"{rw}.{k}", c)
                         for k, c in (("before", b), ("after", a)))
        else:  # the first version: one set of facts, from after (else before); the other run's heaps only
            now_after = a.blocks > 0 or b.blocks == 0
            shown = _details(o, where, a if now_after else b)
            other_counts = b if now_after else a
            other_heaps = _hexes(o.get("heaps_before", []), f"{where}.heaps_before") if now_after else ()
            other = (RunDetails(other_counts, other_heaps, {}, {}, None, None, ()) if other_counts.blocks
                     else None)
            runs = (other, shown) if now_after else (shown, other)
    return GroupRecord(stack=tuple(stack), frames=frames, module=module, label=label, label_index=label_index,
                       status=status, runs=runs,
                       suppressed_by=_opt(_str, o.get("suppressed_by"), f"{where}.suppressed_by"), trend=trend)


def _match(v: Any) -> Match:
    if v not in ("function", "rva"):
        raise _fail("filters.match", "'function' or 'rva'", v)
    return "function" if v == "function" else "rva"


def _gate(v: Any, where: str) -> Gate:
    o = _obj(v, where)
    name = _str(_get(o, "name", where), f"{where}.name")
    if name not in GATE_NAMES:
        raise _fail(f"{where}.name", " or ".join(GATE_NAMES), name)
    return Gate(name=name, threshold=_int(_get(o, "threshold", where), f"{where}.threshold"),
                value=_int(_get(o, "value", where), f"{where}.value"),
                failed=_bool(_get(o, "failed", where), f"{where}.failed"),
                groups=tuple(_int(x, f"{where}.groups[{i}]")
                             for i, x in enumerate(_list(_get(o, "groups", where), f"{where}.groups"))),
                reason=_opt(_str, o.get("reason"), f"{where}.reason"))


def _suppression(v: Any, where: str) -> Suppression:
    o = _obj(v, where)
    return Suppression(_str(_get(o, "pattern", where), f"{where}.pattern"),
                       _str(_get(o, "source", where), f"{where}.source"),
                       _int(_get(o, "line", where), f"{where}.line"), _int(_get(o, "groups", where), f"{where}.groups"))


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
    o = _obj(value, "document")
    schema = o.get("schema")
    if schema != SCHEMA:
        raise DocumentError(f"not a {SCHEMA} document (schema {str(schema)[:40]!r})")
    mode_raw = _str(_get(o, "mode", "document"), "mode")
    if mode_raw not in ("single", "diff", "trend"):
        raise _fail("mode", "'single', 'diff' or 'trend'", mode_raw)
    mode = cast(Mode, mode_raw)
    fo = _obj(_get(o, "filters", "document"), "filters")
    pid_raw = _get(fo, "pid", "filters")
    filters = Filters(process=_opt(_str, _get(fo, "process", "filters"), "filters.process"),
                      pid=None if pid_raw is None else tuple(_int(p, f"filters.pid[{i}]")
                                                              for i, p in enumerate(_list(pid_raw, "filters.pid"))),
                      kernel_frames=_bool(_get(fo, "kernel_frames", "filters"), "filters.kernel_frames"),
                      min_bytes=_int(_get(fo, "min_bytes", "filters"), "filters.min_bytes"),
                      top=_int(_get(fo, "top", "filters"), "filters.top"),
                      match=_match(fo.get("match", "rva")),
                      symbols=_opt(_str, fo.get("symbols"), "filters.symbols"),
                      window=_window_filter(fo.get("window")))
    traces = tuple(_trace(t, f"traces[{i}]") for i, t in enumerate(_list(_get(o, "traces", "document"), "traces")))
    if mode != "trend" and len(traces) != (2 if mode == "diff" else 1):
        raise DocumentError(f"traces: a {mode} document has {2 if mode == 'diff' else 1} trace(s), "
                            f"this one {len(traces)}")
    frames_of = _Frames()
    groups = tuple(_group(g, f"groups[{i}]", mode, frames_of)
                   for i, g in enumerate(_list(_get(o, "groups", "document"), "groups")))
    _check_series(groups, traces, mode)
    to = _obj(_get(o, "totals", "document"), "totals")
    runs: tuple[Counts, ...]
    if mode == "trend":
        runs = tuple(_counts(c, f"totals.runs[{i}]") for i, c in enumerate(_list(_get(to, "runs", "totals"),
                                                                                 "totals.runs")))
        if len(runs) != len(traces):
            raise DocumentError(f"totals.runs: {len(runs)} runs for {len(traces)} traces")
    elif mode == "diff":
        before = _counts(_get(to, "before", "totals"), "totals.before")
        after = _counts(_get(to, "after", "totals"), "totals.after")
        _delta(to, "totals", before, after)
        runs = (before, after)
    else:
        runs = (_counts(to, "totals"),)
    derived = Totals.of(groups, len(runs))  # documents before growth and shrink existed
    totals = Totals(runs,
                    _counts(to["growth"], "totals.growth") if "growth" in to else derived.growth,
                    _counts(to["shrink"], "totals.shrink") if "shrink" in to else derived.shrink,
                    _counts(to["suppressed"], "totals.suppressed") if "suppressed" in to else derived.suppressed)
    gates = tuple(_gate(g, f"gates[{i}]") for i, g in enumerate(_list(o.get("gates", []), "gates")))
    used = tuple(_suppression(x, f"suppressions[{i}]")
                 for i, x in enumerate(_list(o.get("suppressions", []), "suppressions")))
    return Document(mode=mode, generator=_str(_get(o, "generator", "document"), "generator"), filters=filters,
                    traces=traces, totals=totals, groups=groups, gates=gates, suppressions=used)


def decode(data: bytes | str) -> Document:
    """A document from its JSON text; :class:`DocumentError` for text that is not JSON or not such a document."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise DocumentError(f"not JSON: {e}") from None
    return decode_value(value)
