"""The status of a group across two runs, decided here, once: new (outstanding only after), gone (only before),
common (in both). Groups of two runs are matched by signature (heapdiff.document.build), never by address, pid,
heap handle or image base, which all differ between runs."""

from __future__ import annotations

from typing import Literal

from heapdiff.grouping import Counts

#: new: outstanding only after; gone: only before; common: in both
Status = Literal["new", "gone", "common"]


def status_of(before: Counts, after: Counts) -> Status:
    if not before.blocks:
        return "new"
    if not after.blocks:
        return "gone"
    return "common"
