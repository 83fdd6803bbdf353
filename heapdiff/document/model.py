"""The ``heapdiff/1`` result as frozen, typed records: what every reporter reads.

The tree mirrors the JSON document (see the README): a :class:`Document` holds its filters, one
:class:`TraceRecord` per input, the totals and one :class:`GroupRecord` per call stack. A group carries what the
grouping decided (its frames and their kinds, its module and label) and, per input, what it holds there
(:class:`RunDetails`), so that no reporter derives a domain fact again. Mappings are read-only views by type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from heapdiff.diff import Status
from heapdiff.frames import Frame, PdbId, SymbolStatus
from heapdiff.grouping import ZERO, Counts

SCHEMA: Final = "heapdiff/1"

Mode = Literal["single", "diff", "trend"]
Role = Literal["trace", "before", "after", "baseline", "run"]
ROLES: Final[tuple[Role, ...]] = ("trace", "before", "after", "baseline", "run")
#: how a group's bytes moved over the runs of a trend
TrendClass = Literal["growing", "plateau", "shrinking", "flat"]
TREND_CLASSES: Final[tuple[TrendClass, ...]] = ("growing", "plateau", "shrinking", "flat")
STATUSES: Final[tuple[Status, ...]] = ("new", "gone", "common")

GateName = Literal["growth", "stack_growth", "new", "trend"]
GATE_NAMES: Final[tuple[GateName, ...]] = ("growth", "stack_growth", "new", "trend")

__all__ = [
    "GATE_NAMES",
    "ROLES",
    "SCHEMA",
    "STATUSES",
    "TREND_CLASSES",
    "ZERO",
    "Counts",
    "Document",
    "Filters",
    "FrameRecord",
    "FrameTotals",
    "Gate",
    "GateName",
    "GroupRecord",
    "Match",
    "Mode",
    "ModeFlags",
    "ModuleRecord",
    "ProcessRecord",
    "Role",
    "RunDetails",
    "Status",
    "Suppression",
    "Totals",
    "TraceRecord",
    "TraceTimeline",
    "TraceWindow",
    "Trend",
    "TrendClass",
    "WindowFilter",
]


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    pid: int
    image_name: str
    command_line: str


@dataclass(frozen=True, slots=True)
class FrameTotals:
    """Signature frames over all (pid, stack) pairs of a trace, and how many of them are in no known image."""

    frames: int
    unresolved: int


@dataclass(frozen=True, slots=True)
class ModuleRecord:
    """An image that frames of the trace's groups fall in: its identity (so that a report made without symbols
    can be symbolized later) and how looking up its symbols went."""

    name: str
    path: str
    #: None for a kernel image (it serves every process)
    pid: int | None
    base: int
    size: int
    #: the PE TimeDateStamp, None when the trace did not give it
    timestamp: int | None
    pdb: PdbId | None
    symbols: SymbolStatus
    symbol_file: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class WindowFilter:
    """``--from``, ``--to``, ``--at`` as given: microseconds (negative: from the end), None where not given or
    given as a mark or an ISO time; and the text as given (``mark:warm``), None where not given."""

    from_us: int | None = None
    to_us: int | None = None
    at_us: int | None = None
    from_text: str | None = None
    to_text: str | None = None
    at_text: str | None = None

    @property
    def given(self) -> bool:
        return any(t is not None for t in (self.from_text, self.to_text, self.at_text))


@dataclass(frozen=True, slots=True)
class TraceWindow:
    """The window on one trace, resolved: microseconds from its start; None where not given. Only blocks
    allocated in ``[from, to)`` count, and they are measured at ``at`` (else at the trace's end)."""

    from_us: int | None
    to_us: int | None
    at_us: int | None


@dataclass(frozen=True, slots=True)
class TraceTimeline:
    """Outstanding blocks and bytes over a trace's time (blocks made live during the trace, as everywhere): at
    most 1,000 points, evenly spaced from the trace's start but for the last, which is its end (or ``--at``) and
    equals what the trace reports outstanding unless ``--from``/``--to`` leave blocks out (the timeline counts every
    block of the kept processes: the window is a part of it). The state at a point is the one after every heap
    event up to its time."""

    #: microseconds from the trace's start (its header's clock; 0.1 us resolution), increasing
    time_us: tuple[float, ...]
    bytes: tuple[int, ...]
    blocks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One input: a trace (or, as a baseline, an earlier document's trace) and what was read from it."""

    role: Role
    path: str
    pointer_size: int
    start_utc: str
    end_utc: str
    records: int
    #: event kind -> records, counted in the file before any filter
    events: Mapping[str, int]
    events_lost: int
    buffers_lost: int
    stack_refs: int
    stacks_matched: int
    outstanding: Counts
    outstanding_by_pid: Mapping[int, Counts]
    unmatched_frees: int
    anomalies: Mapping[str, int]
    processes: tuple[ProcessRecord, ...]
    unresolved_frames: FrameTotals
    notes: tuple[str, ...]
    modules: tuple[ModuleRecord, ...] = ()
    #: the leak window on this trace, None without one
    window: TraceWindow | None = None
    #: None for a trace without heap events, and in documents written before timelines
    timeline: TraceTimeline | None = None


#: one displayed frame of a group: the grouping's frame, symbol fields and all
FrameRecord = Frame


@dataclass(frozen=True, slots=True)
class RunDetails:
    """What one group holds in one input, and the facts about those blocks."""

    counts: Counts
    heaps: tuple[int, ...]
    #: heap Source name -> blocks
    sources: Mapping[str, int]
    #: size bucket label -> blocks
    size_histogram: Mapping[str, int]
    first_alloc_utc: str | None
    last_alloc_utc: str | None
    sample_addresses: tuple[int, ...]
    #: the largest groups of an input with a timeline: at each of its points, the bytes of the group's blocks
    #: (outstanding at the end) allocated by then; None for the others
    timeline_bytes: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Trend:
    """A group over the runs of a trend: the least-squares slope of its bytes per run, and its class."""

    slope_bytes: float
    klass: TrendClass


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """One call stack across the inputs."""

    #: the signature: frames as matched between runs (kernel frames only when asked)
    stack: tuple[str, ...]
    #: every frame, kernel frames included and marked
    frames: tuple[FrameRecord, ...]
    module: str
    label: str
    #: which of ``frames`` the label names, -1 when none
    label_index: int
    #: diff mode: new / gone / common; None for one trace
    status: Status | None
    #: one entry per input, in the document's trace order; None where the group has no outstanding block
    runs: tuple[RunDetails | None, ...]
    #: the suppression pattern that matched one of its frames: then it is left out of totals and gates
    suppressed_by: str | None = None
    #: trend mode: how its bytes moved over the runs
    trend: Trend | None = None

    @property
    def series(self) -> tuple[int, ...]:
        """Its outstanding bytes in each input, in order (0 where it has none)."""
        return tuple(self.counts(k).bytes for k in range(len(self.runs)))

    def counts(self, run: int) -> Counts:
        r = self.runs[run]
        return r.counts if r is not None else ZERO

    @property
    def last(self) -> Counts:
        """What is outstanding in the last input (the one trace, or "after")."""
        r = self.runs[-1]
        return r.counts if r is not None else ZERO

    @property
    def delta(self) -> Counts:
        """Last input minus first: the growth of a diff; for one trace, its outstanding counts. (Read for every
        group by the sort, the totals, the view and the JSON: written out rather than through ``last`` and
        ``counts``.)"""
        runs = self.runs
        r = runs[-1]
        last = r.counts if r is not None else ZERO
        if len(runs) == 1:
            return last
        r = runs[0]
        return last - r.counts if r is not None else last

    @property
    def details(self) -> RunDetails:
        """The run whose facts describe the group: the last one it is outstanding in."""
        for r in reversed(self.runs):
            if r is not None:
                return r
        raise ValueError("a group with no run")


Match = Literal["function", "rva"]


@dataclass(frozen=True, slots=True)
class Filters:
    process: str | None
    pid: tuple[int, ...] | None
    kernel_frames: bool
    min_bytes: int
    top: int
    #: how groups of two inputs are matched: by ``module!function`` where both inputs have the module's symbols
    #: (else by ``module+0xrva``), or by ``module+0xrva`` always
    match: Match = "function"
    #: the symbol path used, as text; None when symbols were off
    symbols: str | None = None
    #: the leak window as given (each trace's resolution is in its record)
    window: WindowFilter = WindowFilter()


@dataclass(frozen=True, slots=True)
class Totals:
    """What the groups that are not suppressed hold: per input, and across inputs.

    ``growth`` sums the positive per-group deltas (bytes and blocks each on their own), ``shrink`` the negative
    ones (zero or negative), so a leak is never hidden by memory freed elsewhere; their sum is the net delta
    (last input minus first). For one trace, growth is what is outstanding and shrink is zero. ``suppressed``
    is what the suppressed groups hold (their delta in a diff)."""

    runs: tuple[Counts, ...]
    growth: Counts
    shrink: Counts
    suppressed: Counts = ZERO

    @property
    def last(self) -> Counts:
        return self.runs[-1]

    @property
    def delta(self) -> Counts:
        return self.runs[-1] - self.runs[0] if len(self.runs) > 1 else self.runs[-1]

    @classmethod
    def of(cls, groups: Sequence[GroupRecord], inputs: int) -> Totals:
        """The totals of these groups: the suppressed ones apart, growth and shrink summed per group."""
        # (sums of ints, made into Counts at the end: a Counts per sum and group was most of the time)
        blocks, nbytes = [0] * inputs, [0] * inputs
        grow_blocks = grow_bytes = shrink_blocks = shrink_bytes = hidden_blocks = hidden_bytes = 0
        for g in groups:
            d = g.delta
            if g.suppressed_by is not None:
                hidden_blocks += d.blocks
                hidden_bytes += d.bytes
                continue
            for k, r in enumerate(g.runs):
                if r is not None:
                    blocks[k] += r.counts.blocks
                    nbytes[k] += r.counts.bytes
            if d.blocks > 0:
                grow_blocks += d.blocks
            else:
                shrink_blocks += d.blocks
            if d.bytes > 0:
                grow_bytes += d.bytes
            else:
                shrink_bytes += d.bytes
        return cls(tuple(Counts(b, y) for b, y in zip(blocks, nbytes, strict=True)),
                   Counts(grow_blocks, grow_bytes), Counts(shrink_blocks, shrink_bytes),
                   Counts(hidden_blocks, hidden_bytes))


@dataclass(frozen=True, slots=True)
class Gate:
    """One CI gate: what it measured against its threshold, and the groups that tripped it."""

    name: GateName
    #: bytes
    threshold: int
    #: bytes: the total growth, the largest group's delta, or the largest new group
    value: int
    failed: bool
    #: indices into the document's groups, largest first (at most :data:`GATE_GROUPS_LISTED`)
    groups: tuple[int, ...]
    #: why the gate failed without measuring, when an input held nothing to measure (None otherwise)
    reason: str | None = None


#: a gate lists at most this many of the groups that tripped it
GATE_GROUPS_LISTED: Final = 100


@dataclass(frozen=True, slots=True)
class Suppression:
    """One suppression pattern, where it came from, and how many groups it suppressed."""

    pattern: str
    source: str
    line: int
    groups: int


class ModeFlags:
    """``is_diff`` and ``is_trend`` of a record that has a ``mode`` (the document, and the view made from it)."""

    __slots__ = ()
    mode: Mode

    @property
    def is_diff(self) -> bool:
        return self.mode == "diff"

    @property
    def is_trend(self) -> bool:
        return self.mode == "trend"


@dataclass(frozen=True, slots=True)
class Document(ModeFlags):
    mode: Mode
    generator: str
    filters: Filters
    traces: tuple[TraceRecord, ...]
    totals: Totals
    #: largest growth first
    groups: Sequence[GroupRecord]
    gates: tuple[Gate, ...] = ()
    suppressions: tuple[Suppression, ...] = ()

    @property
    def schema(self) -> str:
        return SCHEMA
