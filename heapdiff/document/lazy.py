"""One trace's groups as the document's records, each made when it is read.

A trace may hold a million groups; a record per group held at once would be most of the job's memory. So the
groups of a one-trace document are this sequence over the grouping's columns, largest first: reporters iterate it
(the JSON is written group by group), and only the rows a page shows are kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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
#: the groups' first and last allocation times are formatted this many at a time (reporters read them in order)
_TIME_CHUNK = 4096
#: the groups' signatures and frames are made this many at a time when read in order; a read elsewhere makes
#: this few around it
_FRAME_CHUNK = 4096
_FRAME_CHUNK_ASIDE = 64


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
        self._times: tuple[int, list[str]] = (-1, [])
        #: (first position, signatures, frames) of the positions read last
        self._frames: tuple[int, list[tuple[str, ...]], list[tuple[FrameRecord, ...]]] = (0, [], [])

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
        g = self._g
        signature, frames = self._stack(k)
        name = name_group(frames)
        first, last = self._alloc_times(k)
        h0, h1 = int(g.heap_starts[i]), int(g.heap_starts[i + 1])
        s0, s1 = int(g.sample_starts[i]), int(g.sample_starts[i + 1])
        series = g.alloc_series.get(i)
        run = RunDetails(counts=Counts(int(g.blocks[i]), int(g.bytes[i])), heaps=tuple(g.heaps[h0:h1].tolist()),
                         sources={source_name(s): c for s, c in enumerate(g.sources[i].tolist()) if c},
                         size_histogram={HIST_LABELS[b]: c for b, c in enumerate(g.histogram[i].tolist()) if c},
                         first_alloc_utc=first, last_alloc_utc=last,
                         sample_addresses=tuple(g.samples[s0:s1].tolist()),
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
        """Group ``k``'s signature and displayed frames. They are made for a chunk of positions at once (one
        gather and one pass over the frame columns): a full chunk when the reads go on in order, a small one
        around a read elsewhere."""
        c0, signatures, frames = self._frames
        if not c0 <= k < c0 + len(frames):
            c0 = k if k == c0 + len(frames) else max(0, k - _FRAME_CHUNK_ASIDE // 2)
            at = self._order[c0:c0 + (_FRAME_CHUNK if k == c0 else _FRAME_CHUNK_ASIDE)]
            signatures, frames = self._g.signatures(at), self._g.shown(at)
            self._frames = (c0, signatures, frames)
        return signatures[k - c0], frames[k - c0]

    def _alloc_times(self, k: int) -> tuple[str, str]:
        """Group ``k``'s first and last allocation times as text; a chunk of positions is formatted at once (one
        numpy pass instead of two datetimes a group)."""
        c0, texts = self._times
        if not c0 <= k < c0 + len(texts) // 2:
            g = self._g
            c0 = k - k % _TIME_CHUNK
            at = self._order[c0:c0 + _TIME_CHUNK]
            texts = self._header.raw_to_iso_many(np.concatenate((g.first_ts[at], g.last_ts[at])).tolist())
            self._times = (c0, texts)
        half = len(texts) // 2
        return texts[k - c0], texts[half + k - c0]

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
