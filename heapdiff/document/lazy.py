"""One trace's groups as the document's records, each made when it is read.

A trace may hold a million groups; a record per group held at once would be most of the job's memory. So the
groups of a one-trace document are this sequence over the grouping's columns, largest first: reporters iterate it
(the JSON is written group by group), and only the rows a page shows are kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from heapdiff._ondemand import MadeOnRead
from heapdiff.document.model import FrameRecord, GroupRecord, RunDetails, Totals
from heapdiff.etl.logfile import LogfileHeader
from heapdiff.events.kinds import HEAP_SOURCES
from heapdiff.grouping import HIST_LABELS, ZERO, Counts, Grouping
from heapdiff.rules import GroupName, name_group


def source_name(k: int) -> str:
    name = HEAP_SOURCES.get(k)
    return name if name is not None else f"source {k}"


#: a trace with at most this many groups keeps each record once made (the reporters read every group several
#: times); a larger one makes them again on each read, so that memory stays bounded
KEEP_RECORDS = 200_000
#: a group's record is made from its columns read for this many groups at once when the reads go in order (as
#: every reporter's do), and for this few around a read elsewhere: one numpy read a column per chunk, not per group
_CHUNK = 4096
_CHUNK_ASIDE = 64


def _chunk_at(k: int, start: int, size: int, n: int) -> slice:
    """The positions of the chunk to read for position ``k`` when the chunk read last was ``start`` and ``size``
    long: the next full chunk when ``k`` follows it, else a small one around ``k``."""
    if k == start + size:
        return slice(k, min(n, k + _CHUNK))
    lo = max(0, k - _CHUNK_ASIDE // 2)
    return slice(lo, min(n, lo + _CHUNK_ASIDE))


class _Facts(NamedTuple):
    """The columns of a chunk of groups as Python values, a list each (position - chunk start)."""

    blocks: list[int]
    nbytes: list[int]
    sources: list[list[int]]
    histogram: list[list[int]]
    heaps: list[tuple[int, ...]]
    samples: list[tuple[int, ...]]
    #: the first allocation times, then the last ones
    times: list[str]


class TraceGroups(MadeOnRead[GroupRecord]):
    """The groups of one trace, largest first (ties: more blocks, then the order they were found in)."""

    def __init__(self, grouping: Grouping, header: LogfileHeader) -> None:
        self._g = grouping
        self._header = header
        n = len(grouping)
        self._order = np.lexsort((np.arange(n), -grouping.blocks, -grouping.bytes)) if n else np.zeros(0, np.int64)
        #: position in the order -> the suppression pattern that matched the group
        self.suppressed: dict[int, str] = {}
        self._kept: dict[int, GroupRecord] | None = {} if n <= KEEP_RECORDS else None
        #: (first position, signatures, frames) of the chunk read last
        self._frames: tuple[int, list[tuple[str, ...]], list[tuple[FrameRecord, ...]]] = (0, [], [])
        #: (first position, the rest of the records' columns) of the chunk read last
        self._facts: tuple[int, _Facts | None] = (0, None)

    def growth_bytes(self) -> np.ndarray:
        """Each group's bytes, in the sequence's order (a reporter's sort key, without making the records)."""
        out: np.ndarray = self._g.bytes[self._order]
        return out

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Each group's blocks and bytes, in the sequence's order (without making the records)."""
        return self._g.blocks[self._order], self._g.bytes[self._order]

    def __len__(self) -> int:
        return int(self._order.shape[0])

    def _item(self, k: int) -> GroupRecord:
        return self._record(k, int(self._order[k]))

    def __iter__(self) -> Iterator[GroupRecord]:
        return (self._record(k, i) for k, i in enumerate(self._order.tolist()))

    def _record(self, k: int, i: int) -> GroupRecord:
        kept = self._kept
        if kept is not None:
            got = kept.get(k)
            if got is None or got.suppressed_by != self.suppressed.get(k):
                got = kept[k] = self._make(k, i)
            return got
        return self._make(k, i)

    def _make(self, k: int, i: int) -> GroupRecord:
        signature, frames = self._stack(k)
        name = name_group(frames)
        c0, f = self._columns(k)
        j = k - c0
        half = len(f.times) // 2
        series = self._g.alloc_series.get(i)
        run = RunDetails(counts=Counts(f.blocks[j], f.nbytes[j]), heaps=f.heaps[j],
                         sources={source_name(s): c for s, c in enumerate(f.sources[j]) if c},
                         size_histogram={HIST_LABELS[b]: c for b, c in enumerate(f.histogram[j]) if c},
                         first_alloc_utc=f.times[j], last_alloc_utc=f.times[half + j],
                         sample_addresses=f.samples[j],
                         timeline_bytes=tuple(series.tolist()) if series is not None else None)
        return GroupRecord(stack=signature, frames=frames, module=name.module, label=name.label,
                           label_index=name.label_index, status=None, runs=(run,),
                           suppressed_by=self.suppressed.get(k))

    def frames_and_name(self, k: int) -> tuple[tuple[FrameRecord, ...], GroupName]:
        """Group ``k``'s displayed frames and what names it: what a call tree reads of a group, without making
        its record (a tree reads each group's path once a level)."""
        frames = self._stack(k)[1]
        return frames, name_group(frames)

    def _stack(self, k: int) -> tuple[tuple[str, ...], tuple[FrameRecord, ...]]:
        """Group ``k``'s signature and displayed frames, made for a chunk of positions at once (one gather and one
        pass over the frame columns). Apart from the other columns: a call tree reads only these."""
        c0, signatures, frames = self._frames
        if not c0 <= k < c0 + len(frames):
            at = _chunk_at(k, c0, len(frames), len(self))
            c0, groups = at.start, self._order[at]
            signatures, frames = self._g.stacks(groups)
            self._frames = (c0, signatures, frames)
        return signatures[k - c0], frames[k - c0]

    def _columns(self, k: int) -> tuple[int, _Facts]:
        """The chunk of the other columns that holds position ``k``, and where it starts; its allocation times
        formatted at once (one numpy pass instead of two datetimes a group)."""
        c0, f = self._facts
        if f is None or not c0 <= k < c0 + len(f.blocks):
            at = _chunk_at(k, c0, len(f.blocks) if f is not None else 0, len(self))
            g, groups = self._g, self._order[at]
            f = _Facts(g.blocks[groups].tolist(), g.bytes[groups].tolist(),
                       g.sources[groups].tolist(), g.histogram[groups].tolist(), g.heaps_of(groups),
                       g.samples_of(groups),
                       self._header.raw_to_iso_many(np.concatenate((g.first_ts[groups], g.last_ts[groups])).tolist()))
            c0 = at.start
            self._facts = (c0, f)
        return c0, f

    def totals(self) -> Totals:
        """The totals of a one-trace document from the columns (what :meth:`Totals.of` would sum)."""
        g = self._g
        blocks, nbytes = int(g.blocks.sum()), int(g.bytes.sum())
        hidden = ZERO
        for k in self.suppressed:
            i = int(self._order[k])
            hidden = hidden + Counts(int(g.blocks[i]), int(g.bytes[i]))
        kept = Counts(blocks, nbytes) - hidden
        return Totals((kept,), kept, ZERO, hidden)


def groups_of(groups: Sequence[GroupRecord]) -> Sequence[GroupRecord]:
    """The groups as a sequence to keep: a lazy one as it is, any other as a tuple."""
    return groups if isinstance(groups, TraceGroups) else tuple(groups)
