"""The breakdowns of a view: groups summed by module, by heap and by heap Source, each capped.

Every breakdown is over ALL groups (not only the rows shown), sorted by growth (by count for Sources), capped to
its :data:`BREAKDOWN_CAP` largest keys plus one "other" row, and closed by a total row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Final

from heapdiff.document.model import RunDetails
from heapdiff.grouping import ZERO, Counts
from heapdiff.report.text import clean
from heapdiff.report.view import Breakdown, BreakdownRow, Figures, SourceBreakdown, SourceRow
from heapdiff.rules import UNKNOWN_MODULE

#: each breakdown shows at most this many keys, then one "other" row
BREAKDOWN_CAP: Final = 30
SEVERAL_HEAPS: Final = "(several heaps)"
OTHER: Final = "(other)"
TOTAL: Final = "Total"


def heap_key(r: RunDetails) -> str:
    if not r.heaps:
        return UNKNOWN_MODULE
    if len(set(r.heaps)) > 1:
        return SEVERAL_HEAPS
    return f"0x{r.heaps[0]:x}"


class GroupSums:
    """Groups summed per key: how many, and their figures (after, before, delta); without ``diff`` it sums one
    input's counts as single figures."""

    def __init__(self, diff: bool) -> None:
        self.diff = diff
        self.n: Counter[str] = Counter()
        #: per key: blocks and bytes after, before and of the delta, summed in place (a group is one add, and a
        #: trace may hold a million)
        self.sums: dict[str, list[int]] = {}

    def add(self, key: str, after: Counts, before: Counts = ZERO, delta: Counts = ZERO) -> None:
        self.n[key] += 1
        s = self.sums.get(key)
        if s is None:
            s = self.sums[key] = [0] * 6
        s[0] += after.blocks
        s[1] += after.bytes
        if self.diff:
            s[2] += before.blocks
            s[3] += before.bytes
            s[4] += delta.blocks
            s[5] += delta.bytes

    def figures(self, key: str) -> Figures:
        s = self.sums[key]
        after = Counts(s[0], s[1])
        return Figures(after, Counts(s[2], s[3]), Counts(s[4], s[5])) if self.diff else Figures(after)


def _sum_rows(rows: Sequence[BreakdownRow], key: str, diff: bool) -> BreakdownRow:
    a = b = d = ZERO
    for r in rows:
        a = a + r.figures.after
        if diff and r.figures.before is not None and r.figures.delta is not None:
            b = b + r.figures.before
            d = d + r.figures.delta
    return BreakdownRow(key, sum(r.groups for r in rows), Figures(a, b, d) if diff else Figures(a))


def breakdown(title: str, key_label: str, sums: GroupSums) -> Breakdown:
    rows = [BreakdownRow(k, sums.n[k], sums.figures(k)) for k in sums.n]
    rows.sort(key=lambda r: (-r.figures.growth, r.key))
    shown, rest = rows[:BREAKDOWN_CAP], rows[BREAKDOWN_CAP:]
    return Breakdown(title, key_label, not sums.diff, tuple(shown),
                     _sum_rows(rest, OTHER, sums.diff) if rest else None, len(rest),
                     _sum_rows(rows, TOTAL, sums.diff))


class SourceSums:
    """One input's groups summed per heap Source: how many groups and how many blocks of each."""

    def __init__(self) -> None:
        self.groups: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.with_sources = 0

    def add(self, r: RunDetails) -> None:
        for src, count in r.sources.items():
            if count:
                key = clean(src)
                self.groups[key] += 1
                self.counts[key] += count
        self.with_sources += any(r.sources.values())

    def breakdown(self, title: str) -> SourceBreakdown:
        counts, groups = self.counts, self.groups
        ordered = sorted(counts, key=lambda k: (-counts[k], k))
        rows = tuple(SourceRow(k, groups[k], counts[k]) for k in ordered[:BREAKDOWN_CAP])
        rest = ordered[BREAKDOWN_CAP:]
        other = SourceRow(OTHER, sum(groups[k] for k in rest), sum(counts[k] for k in rest)) if rest else None
        return SourceBreakdown(title, rows, other, len(rest), SourceRow(TOTAL, self.with_sources, sum(counts.values())))
