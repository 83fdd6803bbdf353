"""The report's view: what the HTML page and the terminal summary show, as frozen records.

A view is built from a :class:`~heapdiff.document.Document` by :mod:`heapdiff.report.view_build`; templates and
the terminal reporter only lay out its facts, never compute or decide anything. Its strings are cleaned already
(:func:`heapdiff.report.text.clean`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from heapdiff.document.model import Mode, ModeFlags
from heapdiff.grouping import Counts


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
class InputMessage:
    """One sentence about an input: a line of the warning banner (data loss) or a notice (a plain fact, such as
    frees of blocks older than the trace); the view's field that holds it says which."""

    #: "trace", "before", "after" or "" for the report as a whole
    role: str
    message: str


@dataclass(frozen=True, slots=True)
class Frame:
    text: str
    #: a kernel frame: shown in the HTML only, marked as such
    kernel: bool
    #: allocator plumbing (ntdll, the C runtime, operator new, ...)
    allocator: bool
    #: the calls inlined at this address, innermost first, each ``function (file:line)``
    inlined: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What a group holds in one input, labelled by the input's role: facts of two runs never mix."""

    role: str
    counts: Counts
    heaps: tuple[str, ...]
    heaps_omitted: int
    sources: tuple[tuple[str, int], ...]
    size_histogram: tuple[tuple[str, int], ...]
    first_alloc_utc: str | None
    last_alloc_utc: str | None
    sample_addresses: tuple[str, ...]


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
    #: one per input the group is outstanding in, in the inputs' order
    runs: tuple[RunFacts, ...]
    #: the suppression pattern that matched, when the group is suppressed
    suppressed_by: str | None = None
    #: trend mode: outstanding bytes in each run, in run order (sparkline), the least-squares slope in bytes per
    #: run, and the class (growing, plateau, shrinking, flat)
    series: tuple[int, ...] = ()
    slope_bytes: float | None = None
    trend: str | None = None


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
    #: figures of one input (a heap handle exists in one run only), even in a diff
    one_run: bool
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
    #: the leak window, one sentence per input that has one ("before: blocks allocated from 5.000 s ...")
    window: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Headline:
    """The leak answer first: what grew (never hidden by what shrank elsewhere), then what shrank, then the net."""

    growth: Counts
    #: call stacks that grew
    growing: int
    shrink: Counts
    shrinking: int
    net: Counts
    suppressed: Counts
    suppressed_groups: int


@dataclass(frozen=True, slots=True)
class GateFacts:
    #: the option that asked for it (``--fail-on-growth``)
    option: str
    #: what it measures, in words
    measures: str
    threshold: int
    value: int
    failed: bool
    reason: str | None
    #: (rank, label) of the groups that tripped it, as many as the document lists
    groups: tuple[tuple[int, str], ...]
    #: what follows value and threshold: "" (bytes) or "/run" (a slope)
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a timeline chart: a call stack's bytes at each of the chart's times."""

    label: str
    bytes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TimelineView:
    """Outstanding memory of one input over its time: the total and the largest call stacks as lines."""

    role: str
    #: seconds from the trace's start, evenly spaced, the last at its end
    time_s: tuple[float, ...]
    bytes: tuple[int, ...]
    blocks: tuple[int, ...]
    #: the top call stacks: their blocks still outstanding at the end, by the time they were allocated
    groups: tuple[Series, ...]
    #: the leak window (--from/--to/--at) in seconds from the start, shaded on the chart; None where not given
    window_from_s: float | None = None
    window_to_s: float | None = None
    at_s: float | None = None


@dataclass(frozen=True, slots=True)
class CallNode:
    """One node of a call tree: a frame, or the pruned children of a parent collapsed into one, and what the
    groups through it hold (summed over those groups)."""

    #: the frame's text (cleaned); "" for the root; :data:`~heapdiff.report.flame.OTHER_FRAMES` for an "other" node
    frame: str
    #: index of the parent in :attr:`CallTree.nodes`, -1 for the root
    parent: int
    #: outstanding amounts, as a group row has them (single: ``after`` alone)
    figures: Figures
    #: bytes: the positive per-group deltas summed (one trace: what is outstanding), and the negative ones (<= 0);
    #: the node's size is ``growth - shrink``, so that memory freed elsewhere never hides a growth
    growth: int
    shrink: int
    #: call stacks (groups) through the node
    groups: int
    #: an "other" node: how many sibling frames it stands for; 0 for a frame
    other: int = 0

    @property
    def size(self) -> int:
        return self.growth - self.shrink


@dataclass(frozen=True, slots=True)
class CallTree:
    """The groups' stacks merged by frame, pruned to a bounded size: kernel frames left out, the allocator frames
    inside a group's label frame folded away.

    ``top_down`` is rooted at the callers (the thread's start) and ends at the allocating function: the flame
    graph draws it. ``bottom_up`` starts at the allocating function (the label frame) and goes out to its callers.
    """

    direction: Literal["top_down", "bottom_up"]
    #: preorder, the root first; siblings largest first, an "other" node last
    nodes: tuple[CallNode, ...]
    #: a node smaller than this share of the root's size is collapsed into its parent's "other" node
    min_share: float
    #: the cap on nodes, not only the share, collapsed some: the tree is a coarser picture than ``min_share`` says
    capped: bool = False


@dataclass(frozen=True, slots=True)
class ReportView(ModeFlags):
    title: str
    mode: Mode
    generator: str
    schema: str
    traces: tuple[TraceFacts, ...]
    #: data loss: the "read with care" banner
    warnings: tuple[InputMessage, ...]
    #: plain facts, not data loss
    notices: tuple[InputMessage, ...]
    #: the inputs that hold no heap events: the page says how to record one
    empty_traces: tuple[TraceFacts, ...]
    totals: Figures
    headline: Headline
    gates: tuple[GateFacts, ...]
    filters: ViewFilters
    rows: tuple[GroupRow, ...]
    other: OtherRow | None
    #: every group of the document that is not suppressed
    group_count: int
    #: groups passing ``min_bytes`` (of which the first ``top`` are rows)
    eligible_count: int
    #: suppressed groups, largest first (capped), and how many there are
    suppressed_rows: tuple[GroupRow, ...]
    suppressed_count: int
    #: suppression patterns that matched nothing ("file:line: pattern")
    unused_suppressions: tuple[str, ...]
    by_module: Breakdown
    #: one breakdown per input: a heap handle belongs to one run
    by_heap: tuple[Breakdown, ...]
    by_source: tuple[SourceBreakdown, ...]
    #: one per input that has a timeline
    timelines: tuple[TimelineView, ...] = ()
    #: the call trees of every group not suppressed (top-down, bottom-up); none in a view built without them
    call_trees: tuple[CallTree, ...] = ()
    #: a trend: how many call stacks (not suppressed) are growing, plateau, shrinking, flat (zero counts left out)
    trend_classes: tuple[tuple[str, int], ...] = ()

    @property
    def gates_failed(self) -> bool:
        return any(g.failed for g in self.gates)
