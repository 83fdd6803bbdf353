"""The report's view: what the HTML page and the terminal summary show, built from a ``heapdiff/1`` document.

:func:`build_view` turns the JSON document the rest of the tool builds into frozen dataclasses, so that the
templates only lay out facts and never compute or decide anything:

* the header facts of every trace (file, pointer size, time span, records and events read, processes);
* warnings: lost events or buffers, counted anomalies, an unresolved-frame share above 5 %, before/after
  traces of different pointer sizes;
* the totals (before / after / delta in diff mode, one figure in single mode), taken from the document as is:
  thinning the rows never changes them;
* the group rows, thinned to the ``top`` largest growths whose size (``|delta bytes|`` in diff mode, ``bytes``
  in single mode) is at least ``min_bytes``, plus ONE "other" row that aggregates every group cut, so that
  the size of the page is bounded however many groups the document holds;
* breakdowns by module, by heap and by heap Source kind, computed over ALL groups (not only the rows shown),
  each capped to its 30 largest keys plus one "other" row.

Every string that comes from a trace (paths, image names, command lines, frames, module names, heap handles,
addresses, anomaly kinds...) is untrusted: :func:`build_view` replaces control and format characters
(including bidirectional overrides and U+2028/U+2029) by visible ``\\u`` escapes and caps its length; HTML
escaping is left to the template engine (autoescape); :func:`terminal_summary` prints only cleaned strings.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from heapdiff import diff

__all__ = [
    "ALLOCATOR_MODULES",
    "BREAKDOWN_CAP",
    "SCHEMA",
    "UNRESOLVED_WARN_SHARE",
    "Breakdown",
    "BreakdownRow",
    "Counts",
    "Figures",
    "Frame",
    "GroupRow",
    "OtherRow",
    "ProcessFacts",
    "ReportView",
    "ReportWarning",
    "SourceBreakdown",
    "SourceRow",
    "TraceFacts",
    "ViewFilters",
        "build_view",
    "format_bytes",
    "format_count",
    "terminal_summary",
]

SCHEMA: Final = "heapdiff/1"
#: each breakdown shows at most this many keys, then one "other" row
BREAKDOWN_CAP: Final = 30
#: a trace whose share of unresolved frames is above this gets a warning banner
UNRESOLVED_WARN_SHARE: Final = 0.05
#: modules whose frames are allocator plumbing, skipped when naming a group by its innermost frame
ALLOCATOR_MODULES: Final = frozenset({
    "ntdll.dll", "kernelbase.dll", "kernel32.dll", "ucrtbase.dll", "ucrtbased.dll", "msvcrt.dll",
})
#: module name prefixes of the same kind (msvcr120.dll, vcruntime140.dll, vcruntime140_1d.dll, ...)
_ALLOCATOR_PREFIXES: Final = ("msvcr", "vcruntime")
_KERNEL_MODULES: Final = frozenset({"ntoskrnl.exe", "ntkrnlmp.exe", "ntkrnlpa.exe", "ntkrpamp.exe",
                                    "hal.dll"})

# Caps on what one untrusted string, or one list of them, may add to the page.
_MAX_FRAME: Final = 512
_MAX_PATH: Final = 1024
_MAX_COMMAND_LINE: Final = 2048
_MAX_NAME: Final = 256
_MAX_FRAMES: Final = 256
_MAX_PROCESSES: Final = 50
_MAX_LIST: Final = 16
_MAX_HISTOGRAM: Final = 64

# the same words the grouping uses for a group without a stack or without a known module
NO_STACK: Final = diff.NO_STACK
UNKNOWN: Final = diff.UNKNOWN_MODULE
SEVERAL_HEAPS: Final = "(several heaps)"
OTHER: Final = "(other)"
TOTAL: Final = "Total"

Mode = Literal["single", "diff"]


# ------------------------------------------------------------------------------------------------ dataclasses


@dataclass(frozen=True, slots=True)
class Counts:
    """A number of heap blocks and their bytes (either may be negative in a delta)."""

    blocks: int
    bytes: int

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.blocks + other.blocks, self.bytes + other.bytes)


ZERO: Final = Counts(0, 0)


@dataclass(frozen=True, slots=True)
class Figures:
    """Outstanding amounts. Diff mode: ``before``, ``after`` and ``delta``; single mode: ``after`` alone (the
    trace's outstanding blocks), ``before`` and ``delta`` None."""

    after: Counts
    before: Counts | None = None
    delta: Counts | None = None

    @property
    def growth(self) -> int:
        """The sort key of the report: delta bytes in diff mode, bytes in single mode."""
        return self.delta.bytes if self.delta is not None else self.after.bytes

    def __add__(self, other: Figures) -> Figures:
        def add(a: Counts | None, b: Counts | None) -> Counts | None:
            return None if a is None or b is None else a + b

        return Figures(self.after + other.after, add(self.before, other.before), add(self.delta, other.delta))


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    pid: int
    image_name: str
    command_line: str
    #: outstanding blocks of this pid at the end of the trace (None when the trace did not count it)
    outstanding: Counts | None


@dataclass(frozen=True, slots=True)
class TraceFacts:
    role: str  # "trace" | "before" | "after"
    path: str
    pointer_size: int
    start_utc: str
    end_utc: str
    duration_s: float | None
    records: int
    #: (kind, count) in the document's order, zero counts left out
    events: tuple[tuple[str, int], ...]
    heap_events: int
    events_lost: int
    buffers_lost: int
    outstanding: Counts
    unmatched_frees: int
    anomalies: tuple[tuple[str, int], ...]
    processes: tuple[ProcessFacts, ...]
    #: processes the document lists beyond the ones kept
    processes_omitted: int
    frames: int
    unresolved_frames: int

    @property
    def unresolved_share(self) -> float | None:
        return self.unresolved_frames / self.frames if self.frames > 0 else None


@dataclass(frozen=True, slots=True)
class ReportWarning:
    """One line of the warning banner."""

    #: "trace", "before", "after" or "" for the report as a whole
    role: str
    message: str


@dataclass(frozen=True, slots=True)
class Frame:
    text: str
    #: a kernel frame: shown in the HTML only, marked as such
    kernel: bool
    #: a frame of an allocator module (ntdll, ucrtbase, ...)
    allocator: bool


@dataclass(frozen=True, slots=True)
class GroupRow:
    """One call stack's outstanding blocks."""

    #: 1-based position in the report's order (largest growth first) over ALL groups
    rank: int
    figures: Figures
    #: "new" | "gone" | "common" in diff mode, None in single mode
    status: str | None
    module: str
    #: the innermost non-allocator user frame, or "(no stack)"
    label: str
    #: index of the frame ``label`` names within ``frames``, -1 when none
    label_index: int
    #: innermost first, kernel frames included and marked
    frames: tuple[Frame, ...]
    frames_omitted: int
    heaps: tuple[str, ...]
    heaps_omitted: int
    sources: tuple[tuple[str, int], ...]
    size_histogram: tuple[tuple[str, int], ...]
    first_alloc_utc: str | None
    last_alloc_utc: str | None
    sample_addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OtherRow:
    """Every group not shown as a row, aggregated."""

    groups: int
    figures: Figures
    #: (status, number of groups) in diff mode, () in single mode
    statuses: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    key: str
    groups: int
    figures: Figures


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Groups summed per key (module or heap), over all groups, largest growth first."""

    title: str
    key_label: str
    rows: tuple[BreakdownRow, ...]
    #: the keys past the cap, summed (key "(other)")
    other: BreakdownRow | None
    #: how many keys ``other`` sums
    other_keys: int
    #: every group: sums to the groups' own sums, whatever the cap
    total: BreakdownRow


@dataclass(frozen=True, slots=True)
class SourceRow:
    key: str
    #: groups with at least one allocation from this Source
    groups: int
    #: allocations counted for this Source (the groups' ``sources`` counts, summed)
    count: int


@dataclass(frozen=True, slots=True)
class SourceBreakdown:
    title: str
    rows: tuple[SourceRow, ...]
    other: SourceRow | None
    other_keys: int
    #: its ``groups``: groups with any Source count (a group with several Sources is in several rows)
    total: SourceRow


@dataclass(frozen=True, slots=True)
class ViewFilters:
    #: the tool's filters, as recorded in the document
    process: str | None
    pids: tuple[int, ...] | None
    kernel_frames: bool
    doc_min_bytes: int
    doc_top: int
    #: the report's own thinning
    top: int
    min_bytes: int


@dataclass(frozen=True, slots=True)
class ReportView:
    title: str
    mode: Mode
    generator: str
    schema: str
    traces: tuple[TraceFacts, ...]
    warnings: tuple[ReportWarning, ...]
    totals: Figures
    filters: ViewFilters
    rows: tuple[GroupRow, ...]
    other: OtherRow | None
    #: every group of the document
    group_count: int
    #: groups passing ``min_bytes`` (of which the first ``top`` are rows)
    eligible_count: int
    by_module: Breakdown
    by_heap: Breakdown
    by_source: SourceBreakdown

    @property
    def is_diff(self) -> bool:
        return self.mode == "diff"


# ---------------------------------------------------------------------------------------------- input helpers


def _int(value: Any) -> int:
    """An integer field; anything else (missing, null, text) counts as 0 rather than failing the report."""
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


def _map(value: Any) -> Mapping[str, Any]:
    if type(value) is dict:  # the common case, without the slow ABC check
        return value
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if type(value) is list or isinstance(value, list | tuple) else ()


def _escape_char(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clean(value: Any, limit: int = _MAX_NAME) -> str:
    """An untrusted string made safe to show as text: control, format (bidi overrides, zero-width), separator
    (U+2028/9) and unassigned/surrogate characters become visible escapes; longer than ``limit`` is cut with a
    note of how much was cut. Not HTML escaping: that is the template engine's job."""
    s = value if isinstance(value, str) else "" if value is None else str(value)
    if not s.isprintable():
        s = "".join(
            _escape_char(ch) if not ch.isprintable() and ch != " " else ch for ch in s
        )
    if len(s) > limit:
        s = f"{s[:limit]}… (+{len(s) - limit:,} chars)"
    return s


def _counts(value: Any) -> Counts:
    m = _map(value)
    return Counts(_int(m.get("blocks")), _int(m.get("bytes")))


#: after blocks, after bytes, before blocks, before bytes, delta blocks, delta bytes (single mode: after only)
_Vec = tuple[int, int, int, int, int, int]
_ZERO_VEC: Final[_Vec] = (0, 0, 0, 0, 0, 0)


def _vec(item: Mapping[str, Any], diff: bool) -> _Vec:
    """A group's (or the totals') figures as plain integers: summing 100,000 of them stays cheap."""
    if not diff:
        return (_int(item.get("blocks")), _int(item.get("bytes")), 0, 0, 0, 0)
    b = _map(item.get("before"))
    a = _map(item.get("after"))
    bk, by = _int(b.get("blocks")), _int(b.get("bytes"))
    ak, ay = _int(a.get("blocks")), _int(a.get("bytes"))
    d = item.get("delta")
    if type(d) is dict or isinstance(d, Mapping):
        dk, dy = _int(d.get("blocks")), _int(d.get("bytes"))
    else:
        dk, dy = ak - bk, ay - by
    return (ak, ay, bk, by, dk, dy)


def _add(a: _Vec, b: _Vec) -> _Vec:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5])


def _fig(v: _Vec, diff: bool) -> Figures:
    if not diff:
        return Figures(Counts(v[0], v[1]))
    return Figures(Counts(v[0], v[1]), Counts(v[2], v[3]), Counts(v[4], v[5]))


def _figures(item: Mapping[str, Any], diff: bool) -> Figures:
    return _fig(_vec(item, diff), diff)


def _module_of(frame: str) -> str:
    """``app.exe+0x1a2b`` and ``app.exe!f+0x10`` -> ``app.exe``; a raw address -> ''."""
    if frame.startswith(("0x", "0X")):
        return ""
    for sep in ("+", "!"):
        i = frame.find(sep)
        if i > 0:
            return frame[:i]
    return frame


def _is_allocator(module: str) -> bool:
    m = module.lower()
    return m in ALLOCATOR_MODULES or m.startswith(_ALLOCATOR_PREFIXES)


def _looks_kernel(frame: str) -> bool:
    """A kernel frame by its look alone: a kernel module or a kernel-half raw address."""
    module = _module_of(frame).lower()
    if module:
        return module in _KERNEL_MODULES or module.endswith(".sys")
    try:
        return int(frame, 16) >= 0xFFFF_8000_0000_0000
    except ValueError:
        return False


def _frames(stack: Sequence[Any], display: Sequence[Any]) -> tuple[list[Frame], int, int]:
    """(frames, omitted, label index). ``display`` is the signature ``stack`` plus kernel frames: a display
    frame is a kernel frame when it is not the next signature frame (greedy subsequence match)."""
    sig = [str(f) for f in stack]
    shown = [str(f) for f in display] or sig
    out: list[Frame] = []
    j = 0
    for raw in shown:
        if j < len(sig) and raw == sig[j]:
            kernel = _looks_kernel(raw)  # signature frames hold kernel frames too when the tool kept them
            j += 1
        else:
            kernel = True
        out.append(Frame(clean(raw, _MAX_FRAME), kernel, _is_allocator(_module_of(raw))))
    omitted = max(0, len(out) - _MAX_FRAMES)
    del out[_MAX_FRAMES:]
    label = next((i for i, f in enumerate(out) if not f.kernel and not f.allocator), -1)
    if label < 0:
        label = next((i for i, f in enumerate(out) if not f.kernel), -1)
    if label < 0 and out:
        label = 0
    return out, omitted, label


def _pairs(value: Any, limit: int) -> tuple[tuple[str, int], ...]:
    return tuple((clean(k), _int(v)) for k, v in list(_map(value).items())[:limit])


def _duration(start: str, end: str) -> float | None:
    try:
        a = datetime.fromisoformat(start)
        b = datetime.fromisoformat(end)
        return (b - a).total_seconds()
    except (ValueError, TypeError):
        return None


# ------------------------------------------------------------------------------------------------ build_view


def _trace(t: Mapping[str, Any]) -> TraceFacts:
    events_map = _map(t.get("events"))
    events = tuple((clean(k), _int(v)) for k, v in events_map.items() if _int(v))
    heap_events = sum(_int(events_map.get(k)) for k in ("heap_alloc", "heap_free", "heap_realloc"))
    by_pid = _map(t.get("outstanding_by_pid"))
    procs_raw = [_map(p) for p in _list(t.get("processes"))]
    processes = tuple(
        ProcessFacts(
            pid=_int(p.get("pid")),
            image_name=clean(p.get("image_name"), _MAX_NAME),
            command_line=clean(p.get("command_line"), _MAX_COMMAND_LINE),
            outstanding=(_counts(by_pid[str(_int(p.get("pid")))])
                         if str(_int(p.get("pid"))) in by_pid else None),
        )
        for p in procs_raw[:_MAX_PROCESSES]
    )
    unresolved = _map(t.get("unresolved_frames"))
    start = clean(t.get("start_utc"), 64)
    end = clean(t.get("end_utc"), 64)
    anomalies = tuple(sorted(((clean(k), _int(v)) for k, v in _map(t.get("anomalies")).items() if _int(v)),
                             key=lambda kv: (-kv[1], kv[0])))
    return TraceFacts(
        role=clean(t.get("role"), 16),
        path=clean(t.get("path"), _MAX_PATH),
        pointer_size=_int(t.get("pointer_size")),
        start_utc=start,
        end_utc=end,
        duration_s=_duration(start, end),
        records=_int(t.get("records")),
        events=events,
        heap_events=heap_events,
        events_lost=_int(t.get("events_lost")),
        buffers_lost=_int(t.get("buffers_lost")),
        outstanding=_counts(t.get("outstanding")),
        unmatched_frees=_int(t.get("unmatched_frees")),
        anomalies=anomalies[:_MAX_HISTOGRAM],
        processes=processes,
        processes_omitted=max(0, len(procs_raw) - _MAX_PROCESSES),
        frames=_int(unresolved.get("frames")),
        unresolved_frames=_int(unresolved.get("unresolved")),
    )


def _n(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _warnings(traces: Sequence[TraceFacts]) -> list[ReportWarning]:
    out: list[ReportWarning] = []
    for t in traces:
        name = t.role
        if t.events_lost:
            out.append(ReportWarning(name, f"{_n(t.events_lost, 'event was', 'events were')} lost while "
                                           "tracing: outstanding blocks may be missing or never freed in "
                                           "this report."))
        if t.buffers_lost:
            out.append(ReportWarning(name, f"{_n(t.buffers_lost, 'buffer was', 'buffers were')} lost while "
                                           "tracing: whole stretches of events are missing from this "
                                           "report."))
        n_anomalies = sum(n for _, n in t.anomalies)
        if n_anomalies:
            kinds = ", ".join(f"{k} ({n:,})" for k, n in t.anomalies[:8])
            more = f" and {len(t.anomalies) - 8} more kinds" if len(t.anomalies) > 8 else ""
            out.append(ReportWarning(name, f"{_n(n_anomalies, 'anomaly was', 'anomalies were')} counted "
                                           f"while reading: {kinds}{more}."))
        share = t.unresolved_share
        if share is not None and share > UNRESOLVED_WARN_SHARE:
            out.append(ReportWarning(name, f"{share:.1%} of stack frames ({t.unresolved_frames:,} of "
                                           f"{t.frames:,}) could not be mapped to a module: call stacks "
                                           "may be split or unreadable."))
    sizes = {t.pointer_size for t in traces if t.role in ("before", "after")}
    if len(sizes) > 1:
        out.append(ReportWarning("", "The before and after traces have different pointer sizes "
                                     f"({' and '.join(f'{s * 8}-bit' for s in sorted(sizes))}): their call "
                                     "stacks rarely match."))
    return out


def _row(rank: int, g: Mapping[str, Any], figures: Figures, diff: bool) -> GroupRow:
    frames, omitted, label_index = _frames(_list(g.get("stack")), _list(g.get("stack_display")))
    heaps = [clean(h) for h in _list(g.get("heaps"))]
    return GroupRow(
        rank=rank,
        figures=figures,
        status=clean(g.get("status"), 16) if diff else None,
        module=clean(g.get("module")) or UNKNOWN,
        label=frames[label_index].text if label_index >= 0 else NO_STACK,
        label_index=label_index,
        frames=tuple(frames),
        frames_omitted=omitted,
        heaps=tuple(heaps[:_MAX_LIST]),
        heaps_omitted=max(0, len(heaps) - _MAX_LIST),
        sources=_pairs(g.get("sources"), _MAX_LIST),
        size_histogram=_pairs(g.get("size_histogram"), _MAX_HISTOGRAM),
        first_alloc_utc=clean(g["first_alloc_utc"], 64) if g.get("first_alloc_utc") else None,
        last_alloc_utc=clean(g["last_alloc_utc"], 64) if g.get("last_alloc_utc") else None,
        sample_addresses=tuple(clean(a, 64) for a in _list(g.get("sample_addresses"))[:_MAX_LIST]),
    )


def _key(value: Any, memo: dict[str, str]) -> str:
    """:func:`clean` of a key that repeats across groups (module, heap, Source, status), remembered."""
    if type(value) is str:
        got = memo.get(value)
        if got is None:
            got = memo[value] = clean(value)
        return got
    return clean(value)


def _heap_key(g: Mapping[str, Any], memo: dict[str, str]) -> str:
    heaps = _list(g.get("heaps"))
    if not heaps:
        return UNKNOWN
    if len(heaps) > 1 and len(set(map(str, heaps))) > 1:
        return SEVERAL_HEAPS
    return _key(heaps[0], memo)


def _breakdown(title: str, key_label: str, sums: Mapping[str, tuple[int, _Vec]], diff: bool) -> Breakdown:
    g = 5 if diff else 1
    ordered = sorted(sums.items(), key=lambda kv: (-kv[1][1][g], kv[0]))

    def total(items: Sequence[tuple[str, tuple[int, _Vec]]], key: str) -> BreakdownRow:
        v = _ZERO_VEC
        for _, (_, x) in items:
            v = _add(v, x)
        return BreakdownRow(key, sum(n for _, (n, _) in items), _fig(v, diff))

    rows = tuple(BreakdownRow(k, n, _fig(v, diff)) for k, (n, v) in ordered[:BREAKDOWN_CAP])
    rest = ordered[BREAKDOWN_CAP:]
    return Breakdown(title, key_label, rows, total(rest, OTHER) if rest else None, len(rest),
                     total(ordered, TOTAL))


def _source_breakdown(groups: Counter[str], counts: Counter[str], with_sources: int) -> SourceBreakdown:
    ordered = sorted(counts, key=lambda k: (-counts[k], k))
    rows = tuple(SourceRow(k, groups[k], counts[k]) for k in ordered[:BREAKDOWN_CAP])
    rest = ordered[BREAKDOWN_CAP:]
    other = SourceRow(OTHER, sum(groups[k] for k in rest), sum(counts[k] for k in rest)) if rest else None
    return SourceBreakdown("By heap Source", rows, other, len(rest),
                           SourceRow(TOTAL, with_sources, sum(counts.values())))


def _title(mode: Mode, traces: Sequence[TraceFacts]) -> str:
    def base(t: TraceFacts) -> str:
        return t.path.replace("\\", "/").rsplit("/", 1)[-1] or t.path or "?"

    by_role = {t.role: t for t in traces}
    if mode == "diff" and "before" in by_role and "after" in by_role:
        return f"Heap growth: {base(by_role['before'])} → {base(by_role['after'])}"
    if traces:
        return f"Outstanding heap: {base(traces[0])}"
    return "heapdiff report"


def build_view(doc: Mapping[str, Any], *, top: int = 50, min_bytes: int = 0) -> ReportView:
    """The view of a ``heapdiff/1`` document: see the module docstring. ``top`` rows at most (0: none),
    among the groups whose size (``|delta bytes|`` in diff mode, ``bytes`` in single mode) is at least
    ``min_bytes``; every other group goes to the view's single ``other`` row. Raises ValueError for another
    schema or mode."""
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} document (schema {clean(doc.get('schema'), 40)!r})")
    mode_raw = doc.get("mode")
    if mode_raw not in ("single", "diff"):
        raise ValueError(f"unknown report mode {clean(mode_raw, 40)!r}")
    mode: Mode = "diff" if mode_raw == "diff" else "single"
    diff = mode == "diff"
    top = max(0, top)
    min_bytes = max(0, min_bytes)

    traces = tuple(_trace(_map(t)) for t in _list(doc.get("traces")))
    totals = _figures(_map(doc.get("totals")), diff)

    groups = [_map(g) for g in _list(doc.get("groups"))]
    vecs = [_vec(g, diff) for g in groups]
    gi = 5 if diff else 1  # the growth in a vector
    # stable, so the document's order breaks ties (it is sorted already; sorting again makes it a fact here)
    order = sorted(range(len(groups)), key=lambda i: -vecs[i][gi])

    rows: list[GroupRow] = []
    cut_vec = _ZERO_VEC
    cut_n = 0
    cut_status: Counter[str] = Counter()
    eligible = 0
    mod_sums: dict[str, tuple[int, _Vec]] = {}
    heap_sums: dict[str, tuple[int, _Vec]] = {}
    src_groups: Counter[str] = Counter()
    src_counts: Counter[str] = Counter()
    with_sources = 0
    memo: dict[str, str] = {}
    for rank, i in enumerate(order, 1):
        g, v = groups[i], vecs[i]
        size = abs(v[gi])
        if size >= min_bytes:
            eligible += 1
        if size >= min_bytes and len(rows) < top:
            rows.append(_row(rank, g, _fig(v, diff), diff))
        else:
            cut_n += 1
            cut_vec = _add(cut_vec, v)
            if diff:
                cut_status[_key(g.get("status"), memo)] += 1
        module = _key(g.get("module"), memo) or UNKNOWN
        n, acc = mod_sums.get(module, (0, _ZERO_VEC))
        mod_sums[module] = (n + 1, _add(acc, v))
        heap = _heap_key(g, memo)
        n, acc = heap_sums.get(heap, (0, _ZERO_VEC))
        heap_sums[heap] = (n + 1, _add(acc, v))
        any_source = False
        for src, count in _map(g.get("sources")).items():
            c = _int(count)
            if c:
                key = _key(src, memo)
                src_groups[key] += 1
                src_counts[key] += c
                any_source = True
        with_sources += any_source

    statuses = tuple(sorted(cut_status.items(), key=lambda kv: (-kv[1], kv[0])))
    other = OtherRow(cut_n, _fig(cut_vec, diff), statuses) if cut_n else None
    f_raw = _map(doc.get("filters"))
    pids_raw = f_raw.get("pid")
    filters = ViewFilters(
        process=clean(f_raw["process"]) if f_raw.get("process") is not None else None,
        pids=tuple(_int(p) for p in _list(pids_raw)[:_MAX_LIST]) if pids_raw is not None else None,
        kernel_frames=bool(f_raw.get("kernel_frames")),
        doc_min_bytes=_int(f_raw.get("min_bytes")),
        doc_top=_int(f_raw.get("top")),
        top=top,
        min_bytes=min_bytes,
    )
    return ReportView(
        title=_title(mode, traces),
        mode=mode,
        generator=clean(doc.get("generator"), 64),
        schema=SCHEMA,
        traces=traces,
        warnings=tuple(_warnings(traces)),
        totals=totals,
        filters=filters,
        rows=tuple(rows),
        other=other,
        group_count=len(groups),
        eligible_count=eligible,
        by_module=_breakdown("By module", "Module", mod_sums, diff),
        by_heap=_breakdown("By heap", "Heap", heap_sums, diff),
        by_source=_source_breakdown(src_groups, src_counts, with_sources),
    )


# ---------------------------------------------------------------------------------------------- formatting

_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: int, *, signed: bool = False) -> str:
    """``1536`` -> ``1.5 KiB``; ``signed`` puts ``+`` before a positive value (a negative one has ``-``)."""
    sign = "-" if n < 0 else "+" if signed and n > 0 else ""
    v = float(abs(n))
    unit = 0
    while v >= 1024 and unit < len(_UNITS) - 1:
        v /= 1024
        unit += 1
    if unit == 0:
        return f"{sign}{abs(n)} B"
    text = f"{v:.1f}" if v < 100 else f"{v:.0f}"
    if text == "1024":  # 1023.96 KiB rounds up to the next unit
        text, unit = "1.0", unit + 1
    return f"{sign}{text} {_UNITS[unit]}"


def format_count(n: int, *, signed: bool = False) -> str:
    """``1234567`` -> ``1,234,567`` (``+1,234,567`` when ``signed`` and positive)."""
    return f"{n:+,}" if signed and n > 0 else f"{n:,}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _line_cells(cells: Iterable[tuple[str, int, str]]) -> str:
    out = []
    for text, w, align in cells:
        t = _fit(text, w)
        out.append(t.rjust(w) if align == ">" else t.ljust(w))
    return "  ".join(out).rstrip()


def terminal_summary(view: ReportView, width: int = 100, *, rows: int = 10) -> str:
    """A plain-text summary for the CLI: title, totals, warnings and the ``rows`` largest growths (delta
    bytes, blocks, module, innermost non-allocator frame), every line at most ``width`` characters."""
    width = max(40, width)
    diff = view.is_diff
    lines = [_fit(view.title, width)]
    t = view.totals
    if diff and t.before is not None and t.delta is not None:
        lines.append(_fit(
            f"Total: {format_bytes(t.delta.bytes, signed=True)} in "
            f"{format_count(t.delta.blocks, signed=True)} blocks (before {format_bytes(t.before.bytes)} in "
            f"{format_count(t.before.blocks)}, after "
            f"{format_bytes(t.after.bytes)} in {format_count(t.after.blocks)})", width))
    else:
        lines.append(_fit(f"Total: {format_bytes(t.after.bytes)} in {format_count(t.after.blocks)} "
                          "outstanding blocks", width))
    for w in view.warnings:
        lines.extend(textwrap.wrap(f"WARNING{f' ({w.role})' if w.role else ''}: {w.message}", width,
                                   subsequent_indent="  ", break_on_hyphens=False))
    lines.append("")
    shown = view.rows[: max(0, rows)]
    if not shown:
        lines.append("No call stack to show.")
        return "\n".join(lines) + "\n"
    nb, nk = 11, 9
    room = width - (nb + nk + 6)
    nm = min(18, max(6, room // 3))
    nf = max(4, room - nm)
    head_b, head_k = ("Δ bytes", "Δ blocks") if diff else ("bytes", "blocks")
    lines.append(_line_cells([(head_b, nb, ">"), (head_k, nk, ">"), ("module", nm, "<"),
                              ("innermost frame", nf, "<")]))
    for r in shown:
        c = r.figures.delta if diff and r.figures.delta is not None else r.figures.after
        lines.append(_line_cells([(format_bytes(c.bytes, signed=diff), nb, ">"),
                                  (format_count(c.blocks, signed=diff), nk, ">"),
                                  (r.module, nm, "<"), (r.label, nf, "<")]))
    rest = view.group_count - len(shown)
    if rest > 0:
        every = sum(r.figures.growth for r in view.rows) + (view.other.figures.growth if view.other else 0)
        rest_bytes = every - sum(r.figures.growth for r in shown)
        lines.append(_fit(f"… {rest:,} more groups ({format_bytes(rest_bytes, signed=diff)})", width))
    return "\n".join(lines) + "\n"
