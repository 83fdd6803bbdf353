"""Trends over N runs: a group's bytes in each run, their least-squares slope, and what kind of movement it is.

The classes, decided here once (``series`` is the group's outstanding bytes in runs 1..N, 0 where it has none):

* ``growing``: it grows in all but at most one of its steps, and in total (the last run holds more than the
  first). Its steps start with the step from nothing to the first run that holds it, so a group held in all N runs
  has N steps (it grows in at least N-1 of them: one pause is allowed, as real runs are noisy), and a leak that
  starts in a later run is judged from there. It must grow at least twice (a group that appears and then stays is
  no leak that keeps leaking).
* ``plateau``: not growing, but it grew (the last run holds more than the first), then stayed within 5 % over the
  last half of the runs: a cache that filled and stopped;
* ``shrinking``: the last run holds less than the first;
* ``flat``: anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from heapdiff.document.model import Trend, TrendClass

#: the plateau's band: the last half of the runs within this share of their largest value
PLATEAU_BAND: Final = 0.05


def slope(series: Sequence[int]) -> float:
    """The least-squares slope of ``series`` against the run number, in bytes per run."""
    n = len(series)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(series) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(series))
    den = sum((x - mean_x) ** 2 for x in range(n))
    return num / den


def classify(series: Sequence[int]) -> TrendClass:
    """The class of ``series`` (see the module's docstring)."""
    n = len(series)
    if n < 2:
        return "flat"
    first, last = series[0], series[-1]
    held = next((k for k, v in enumerate(series) if v), n - 1)  # the first run that holds it
    steps = [b - a for a, b in zip([0, *series[held:-1]], series[held:], strict=True)]
    grew = sum(d > 0 for d in steps)
    if grew >= 2 and grew >= len(steps) - 1 and last > first:
        return "growing"
    tail = series[n // 2:]
    if last > first and max(tail) - min(tail) <= PLATEAU_BAND * max(tail):
        return "plateau"
    if last < first:
        return "shrinking"
    return "flat"


def trend_of(series: Sequence[int]) -> Trend:
    return Trend(slope(series), classify(series))
