"""CI gates: thresholds on a document's growth that fail the run, and never pass on nothing.

``growth`` compares the total growth (the sum of the positive per-group deltas; for one trace, what is
outstanding), ``stack_growth`` the largest single group's delta (one trace: its outstanding bytes), ``new`` the
largest group that is new in "after", ``trend`` the steepest slope (bytes per run) of a group whose trend is
growing. Suppressed groups are left out. When an input held nothing to measure (no
heap events, or no heap events in the processes the filters kept), every gate fails and says why: a trace
recorded without heap tracing must not look like a trace without leaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from heapdiff.document.model import GATE_GROUPS_LISTED, Gate, GateName, GroupRecord, Totals


@dataclass(frozen=True, slots=True)
class GateRequest:
    name: GateName
    #: bytes; the gate fails when the measured value exceeds it
    threshold: int


def _listed(indices: list[int]) -> tuple[int, ...]:
    return tuple(indices[:GATE_GROUPS_LISTED])


def evaluate(requests: Sequence[GateRequest], groups: Sequence[GroupRecord], totals: Totals, diff: bool,
             nothing_measured: str | None) -> tuple[Gate, ...]:
    """Each requested gate, in the order asked. ``nothing_measured`` says why the inputs held nothing to measure
    (None when they did)."""
    counted = [(i, g) for i, g in enumerate(groups) if g.suppressed_by is None]
    out = []
    for r in requests:
        if r.name == "growth":
            value = totals.growth.bytes
            tripped = [i for i, g in counted if g.delta.bytes > 0]
        elif r.name == "stack_growth":
            value = max((g.delta.bytes for _, g in counted), default=0)
            tripped = [i for i, g in counted if g.delta.bytes > r.threshold]
        elif r.name == "new":  # only a diff has groups that are new
            news = [(i, g) for i, g in counted if diff and g.status == "new"]
            value = max((g.last.bytes for _, g in news), default=0)
            tripped = [i for i, g in news if g.last.bytes > r.threshold]
        else:  # trend: the steepest growing group's slope, in bytes per run
            slopes = [(i, round(g.trend.slope_bytes)) for i, g in counted
                      if g.trend is not None and g.trend.klass == "growing"]
            value = max((v for _, v in slopes), default=0)
            tripped = [i for i, v in slopes if v > r.threshold]
        if nothing_measured is not None:
            out.append(Gate(r.name, r.threshold, value, True, (), nothing_measured))
            continue
        failed = value > r.threshold
        out.append(Gate(r.name, r.threshold, value, failed, _listed(tripped) if failed else ()))
    return tuple(out)
