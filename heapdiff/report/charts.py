"""The geometry of the page's small SVG charts: timelines, sparklines and size histograms.

Pure functions from view records to coordinates, so that the template only writes elements and jinja2 escapes
every label in them (SVG text and ``<title>`` included). Coordinates are in the SVG's own units (its viewBox);
the page scales the chart to its width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from heapdiff.report.text import format_bytes
from heapdiff.report.view import TimelineView

#: a timeline chart's viewBox, and the margins that hold its axis labels
TIMELINE_W: Final = 1100.0
TIMELINE_H: Final = 260.0
_LEFT: Final = 64.0
_RIGHT: Final = 12.0
_TOP: Final = 10.0
_BOTTOM: Final = 24.0
#: lines of a timeline are coloured by their position, in this many classes (the stylesheet's ``c0`` ...)
LINE_COLOURS: Final = 8
SPARK_W: Final = 80.0
SPARK_H: Final = 20.0
HIST_BAR_W: Final = 8.0
HIST_GAP: Final = 2.0
HIST_H: Final = 28.0


def _pt(x: float, y: float) -> str:
    return f"{x:.1f},{y:.1f}"


@dataclass(frozen=True, slots=True)
class ChartLine:
    label: str
    #: the polyline's ``points``
    points: str
    #: the stylesheet class that colours it
    colour: str
    #: the value at the end, for the legend
    last: int


@dataclass(frozen=True, slots=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True, slots=True)
class TimelineChart:
    role: str
    width: float
    height: float
    #: the plot area: left, top, right, bottom
    box: tuple[float, float, float, float]
    total: ChartLine
    lines: tuple[ChartLine, ...]
    #: the leak window, shaded: (x, width), None where not given
    window: tuple[float, float] | None
    #: the ``at`` line's x, None where not given
    at_x: float | None
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    #: time points in the chart: fewer than two draw no line
    points: int


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if abs(s) >= 100 else f"{s:.3g} s"


def timeline_chart(tv: TimelineView) -> TimelineChart:
    """Total bytes and each call stack's bytes over the trace's time, on one linear scale from zero."""
    x0, y0, x1, y1 = _LEFT, _TOP, TIMELINE_W - _RIGHT, TIMELINE_H - _BOTTOM
    times = list(tv.time_s)
    extra = [v for v in (tv.window_from_s, tv.window_to_s, tv.at_s) if v is not None]
    t_max = max([*times, *extra, 0.0])
    t_min = min([*times, *extra, 0.0])
    span = (t_max - t_min) or 1.0
    top = max([*tv.bytes, *(b for s in tv.groups for b in s.bytes), 0]) or 1

    def x(t: float) -> float:
        return x0 + (t - t_min) / span * (x1 - x0)

    def y(b: int) -> float:
        return y1 - max(b, 0) / top * (y1 - y0)

    def line(label: str, values: Sequence[int], colour: str) -> ChartLine:
        pts = " ".join(_pt(x(t), y(v)) for t, v in zip(times, values, strict=False))
        return ChartLine(label, pts, colour, values[min(len(values), len(times)) - 1] if values and times else 0)

    window = None
    if tv.window_from_s is not None or tv.window_to_s is not None:
        a = x(tv.window_from_s if tv.window_from_s is not None else t_min)
        b = x(tv.window_to_s if tv.window_to_s is not None else t_max)
        window = (min(a, b), abs(b - a))
    x_ticks = tuple(Tick(x(t_min + span * k / 4), _seconds(t_min + span * k / 4)) for k in range(5))
    y_ticks = tuple(Tick(y(top * k // 2), format_bytes(top * k // 2)) for k in range(3))
    return TimelineChart(
        role=tv.role, width=TIMELINE_W, height=TIMELINE_H, box=(x0, y0, x1, y1),
        total=line("total", tv.bytes, "total"),
        lines=tuple(line(s.label, s.bytes, f"c{k % LINE_COLOURS}") for k, s in enumerate(tv.groups)),
        window=window, at_x=x(tv.at_s) if tv.at_s is not None else None, x_ticks=x_ticks, y_ticks=y_ticks,
        points=len(times))


def sparkline(series: Sequence[int]) -> str:
    """The ``points`` of a sparkline: one value per run, left to right, from the smallest to the largest value
    (a flat series is a line across the middle)."""
    if not series:
        return ""
    lo, hi = min(series), max(series)
    n = len(series)
    pad = 2.0

    def y(v: int) -> float:
        return SPARK_H / 2 if hi == lo else SPARK_H - pad - (v - lo) / (hi - lo) * (SPARK_H - 2 * pad)

    if n == 1:
        return f"{_pt(0, y(series[0]))} {_pt(SPARK_W, y(series[0]))}"
    return " ".join(_pt(k / (n - 1) * SPARK_W, y(v)) for k, v in enumerate(series))


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    height: float
    label: str
    count: int


@dataclass(frozen=True, slots=True)
class BarChart:
    width: float
    height: float
    bar_width: float
    bars: tuple[Bar, ...]


def histogram_chart(bins: Sequence[tuple[str, int]]) -> BarChart:
    """One bar per size bin, in the bins' order, heights proportional to the blocks (a bin of any blocks is
    at least one unit tall, so that it never vanishes beside a large one)."""
    top = max((n for _, n in bins), default=0) or 1
    bars = tuple(Bar(k * (HIST_BAR_W + HIST_GAP), HIST_H - h, h, label, n)
                 for k, (label, n) in enumerate(bins)
                 for h in (max(n / top * HIST_H, 1.0 if n > 0 else 0.0),))
    return BarChart(max(len(bins) * (HIST_BAR_W + HIST_GAP) - HIST_GAP, 0.0), HIST_H, HIST_BAR_W, bars)
