"""Two groupings compared: groups of both runs matched by signature, each with its status and its delta.

Matching is by signature alone (never by address, pid, heap handle or image base, which all differ between runs);
the status of a group is decided here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from heapdiff.grouping import ZERO, Counts, Group, Grouping

#: new: outstanding only after; gone: only before; common: in both
Status = Literal["new", "gone", "common"]


def status_of(before: Counts, after: Counts) -> Status:
    if not before.blocks:
        return "new"
    if not after.blocks:
        return "gone"
    return "common"


@dataclass(frozen=True, slots=True)
class Pair:
    """One signature in both runs: its group in each (None when it has no outstanding block there)."""

    signature: tuple[str, ...]
    before: Group | None
    after: Group | None
    status: Status
    delta: Counts


def diff_groupings(before: Grouping, after: Grouping) -> list[Pair]:
    """Groups of both runs matched by signature, largest growth first (ties: more blocks, then signature)."""
    bg, ag = before.by_signature(), after.by_signature()
    keyed = []
    for s in bg.keys() | ag.keys():
        b, a = bg.get(s), ag.get(s)
        bc = b.counts if b is not None else ZERO
        ac = a.counts if a is not None else ZERO
        d = ac - bc
        keyed.append((-d.bytes, -d.blocks, s, Pair(s, b, a, status_of(bc, ac), d)))
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed]


def sort_single(grouping: Grouping) -> list[Group]:
    """One trace's groups, largest first (ties: more blocks, then signature)."""
    return sorted(grouping.groups, key=lambda g: (-g.counts.bytes, -g.counts.blocks, g.signature))
