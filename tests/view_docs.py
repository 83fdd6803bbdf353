"""Documents and views for the tests of the report's views: typed groups of chosen frames, large documents whose
call trees reach their cap, and trend and timeline views put together by hand (cases a real trace rarely draws)."""

from __future__ import annotations

import dataclasses
import functools
import json
import random
from collections.abc import Sequence
from pathlib import Path

from heapdiff.document import decode_value
from heapdiff.document.model import Document, Filters, FrameRecord, GroupRecord, RunDetails, Status, Totals, TraceRecord
from heapdiff.grouping import ZERO, Counts
from heapdiff.report.view import ReportView, Series, TimelineView
from heapdiff.rules import FrameKind, name_group

GOLDEN = Path(__file__).parent / "golden"
FILTERS = Filters(None, None, False, 0, 0)


@functools.cache
def frame(text: str, kind: str = "u") -> FrameRecord:
    """``kind``: u(ser), a(llocator), k(ernel); one record per frame, as a decoded document shares them."""
    module = text.split("+", 1)[0]
    return FrameRecord(text, module, 0x10, kernel=kind == "k", allocator=kind == "a")


def group(frames: Sequence[FrameRecord], before: tuple[int, int] | None, after: tuple[int, int] | None,
          suppressed: str | None = None, *, sizes: dict[str, int] | None = None) -> GroupRecord:
    name = name_group(tuple(FrameKind(f.text, f.module, f.kernel, f.allocator) for f in frames))
    label_index = name.label_index if frames and not frames[name.label_index].kernel else -1

    def run(c: tuple[int, int] | None) -> RunDetails | None:
        return None if c is None else RunDetails(Counts(*c), (), {}, sizes or {}, None, None, ())

    runs = (run(after),) if before is None else (run(before), run(after))
    b, a = runs[0].counts if runs[0] else ZERO, runs[-1].counts if runs[-1] else ZERO
    status: Status | None = (None if before is None else "new" if b.blocks == 0 else "gone" if a.blocks == 0
                             else "common")
    return GroupRecord(stack=tuple(f.text for f in frames if not f.kernel), frames=tuple(frames),
                       module=name.module, label=name.label, label_index=label_index, status=status, runs=runs,
                       suppressed_by=suppressed)


def document(groups: list[GroupRecord], diff: bool, *, traces: bool = False) -> Document:
    """A document of these groups (totals are their sums); ``traces``: the small diff's two traces (or its
    after trace alone), so that a whole view can be built from it."""
    roles: tuple[TraceRecord, ...] = ()
    if traces:
        base = decode_value(json.loads((GOLDEN / "small_diff.json").read_text(encoding="utf-8")))
        roles = base.traces if diff else (dataclasses.replace(base.traces[1], role="trace"),)
    return Document("diff" if diff else "single", "test", FILTERS, roles, Totals.of(groups, 2 if diff else 1),
                    groups)


def big_tree_doc(n: int, depth: int, seed: int = 5, *, traces: bool = False) -> Document:
    """``n`` groups under a shared, branching call tree ``depth`` frames deep, sizes skewed (a few large
    stacks and a long tail): many nodes above any share, so that the cap has to bite."""
    rng = random.Random(seed)
    groups = []
    for i in range(n):
        frames = [frame("ntoskrnl.exe+0x1", "k"), frame("ntdll.dll+0x3a1b0", "a")]
        # the innermost frames vary most, the outer ones least: 4^(depth-k) choices for frame k, 5,000 at most
        frames += [frame(f"m{k}.dll+0x{rng.randrange(min(4 ** (depth - k), 5000)):x}") for k in range(depth)]
        size = int(10_000_000 / (1 + i) ** 1.1) + rng.randrange(64)
        before = (1, rng.randrange(size + 1)) if i % 3 else (0, 0)
        groups.append(group(frames, before, (1, size), sizes={"<=64": 1, "<=1024": i % 5, "<=16384": i % 3}))
    return document(groups, True, traces=traces)




# ------------------------------------------------------------------------------------- views made by hand

#: bytes per run of the small diff's first rows, their slopes and classes, as a trend step would give them
TREND_SERIES = ((0, 500_000, 1_000_000, 1_966_080), (40_960, 100_000, 150_000, 204_800), (5000, 9000, 5000, 9000),
                ())
TREND_SLOPES = (650_000.0, 55_000.0, 1000.0, None)
TREND_CLASSES = ("growing", "growing", "plateau", None)


def timeline(role: str = "after", label: str = "app.exe+0x1a2b", points: int = 121) -> TimelineView:
    """Quadratic total growth over 300 s, two call stacks under it, a window and an ``at`` line."""
    t = [k * 300 / (points - 1) for k in range(points)]
    return TimelineView(role, tuple(t), tuple(int(1000 * x * x) for x in t), tuple(int(x) for x in t),
                        (Series(label, tuple(int(600 * x * x) for x in t)),
                         Series("app.exe+0x2210", tuple(int(20_000 * x) for x in t))),
                        window_from_s=60.0, window_to_s=240.0, at_s=200.0)


def trend_view(view: ReportView, timelines: Sequence[TimelineView] = ()) -> ReportView:
    """``view`` (of the small diff) as a trend over four runs: the diff's figures stand for the last run against
    the first; a series, slope and class per row (the last row without a series), no status."""
    rows = tuple(dataclasses.replace(r, status=None, series=s, slope_bytes=sl, trend=tr)
                 for r, s, sl, tr in zip(view.rows, TREND_SERIES, TREND_SLOPES, TREND_CLASSES, strict=False))
    other = dataclasses.replace(view.other, statuses=()) if view.other else None
    return dataclasses.replace(view, mode="trend", rows=rows, other=other, timelines=tuple(timelines),
                               trend_classes=(("growing", 2), ("plateau", 1)))
