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
from heapdiff.grouping import ZERO, Counts

SCHEMA: Final = "heapdiff/1"

Mode = Literal["single", "diff"]
Role = Literal["trace", "before", "after", "baseline"]
ROLES: Final[tuple[Role, ...]] = ("trace", "before", "after", "baseline")
STATUSES: Final[tuple[Status, ...]] = ("new", "gone", "common")

__all__ = [
    "ROLES", "SCHEMA", "STATUSES", "ZERO", "Counts", "Document", "Filters", "FrameRecord", "FrameTotals",
    "GroupRecord", "Mode", "ProcessRecord", "Role", "RunDetails", "Status", "Totals", "TraceRecord",
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


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One displayed frame of a group, innermost first."""

    #: ``module+0xrva``, or ``0x<address>`` for an address in no known image
    text: str
    #: None for an address in no known image
    module: str | None
    rva: int | None
    kernel: bool
    allocator: bool


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

    def counts(self, run: int) -> Counts:
        r = self.runs[run]
        return r.counts if r is not None else ZERO

    @property
    def last(self) -> Counts:
        """What is outstanding in the last input (the one trace, or "after")."""
        return self.counts(len(self.runs) - 1)

    @property
    def delta(self) -> Counts:
        """Last input minus first: the growth of a diff; for one trace, its outstanding counts."""
        return self.last - self.counts(0) if len(self.runs) > 1 else self.last

    @property
    def details(self) -> RunDetails:
        """The run whose facts describe the group: the last one it is outstanding in."""
        for r in reversed(self.runs):
            if r is not None:
                return r
        raise ValueError("a group with no run")


@dataclass(frozen=True, slots=True)
class Filters:
    process: str | None
    pid: tuple[int, ...] | None
    kernel_frames: bool
    min_bytes: int
    top: int


@dataclass(frozen=True, slots=True)
class Totals:
    """Outstanding blocks per input (after the filters); the delta is the last input minus the first."""

    runs: tuple[Counts, ...]

    @property
    def last(self) -> Counts:
        return self.runs[-1]

    @property
    def delta(self) -> Counts:
        return self.runs[-1] - self.runs[0] if len(self.runs) > 1 else self.runs[-1]


@dataclass(frozen=True, slots=True)
class Document:
    mode: Mode
    generator: str
    filters: Filters
    traces: tuple[TraceRecord, ...]
    totals: Totals
    #: largest growth first
    groups: Sequence[GroupRecord]

    @property
    def schema(self) -> str:
        return SCHEMA

    @property
    def is_diff(self) -> bool:
        return self.mode == "diff"
