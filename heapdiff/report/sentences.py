"""The sentences every text reporter says the same way: the headline, a gate, how to record a heap trace."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from heapdiff.report.text import format_bytes, format_count, plural
from heapdiff.report.view import GateFacts, Headline

#: how to record a trace with heap events, for a trace that holds none
RECORD_HELP: Final = (
    "xperf -on PROC_THREAD+LOADER -start HeapSession -heap -Pids <pid> -stackwalk HeapAlloc+HeapRealloc "
    "-BufferSize 1024 -MinBuffers 128 ... xperf -stop HeapSession -stop -d heap.etl",
    "wpr -start Heap -start GeneralProfile ... wpr -stop heap.etl (for a process started later: "
    "set the heap-tracing registry key of its image name first, as WPR's Heap profile documents)",
)


def blocks(n: int, signed: bool = False) -> str:
    return f"{format_count(n, signed=signed)} block{'' if abs(n) == 1 else 's'}"


def growth_sentence(h: Headline) -> str:
    stacks = plural(h.growing, "call stack grew", "call stacks grew")
    return f"Growth: {format_bytes(h.growth.bytes, signed=True)} in {blocks(h.growth.blocks, True)} ({stacks})"


def shrink_sentence(h: Headline) -> str:
    stacks = plural(h.shrinking, "call stack shrank", "call stacks shrank")
    return f"Shrink: {format_bytes(h.shrink.bytes, signed=True)} in {blocks(h.shrink.blocks, True)} ({stacks})"


def net_sentence(h: Headline, before_bytes: int, before_blocks: int, after_bytes: int, after_blocks: int) -> str:
    return (f"Net: {format_bytes(h.net.bytes, signed=True)} in {blocks(h.net.blocks, True)} (before "
            f"{format_bytes(before_bytes)} in {blocks(before_blocks)}, after {format_bytes(after_bytes)} in "
            f"{blocks(after_blocks)})")


def outstanding_sentence(nbytes: int, nblocks: int) -> str:
    return f"Total: {format_bytes(nbytes)} in {format_count(nblocks)} outstanding block{'' if nblocks == 1 else 's'}"


def suppressed_sentence(h: Headline, diff: bool) -> str:
    what = plural(h.suppressed_groups, "call stack", "call stacks")
    return (f"Suppressed: {what}, {format_bytes(h.suppressed.bytes, signed=diff)} in "
            f"{blocks(h.suppressed.blocks, diff)} (not counted above)")


def gate_body(g: GateFacts) -> str:
    """What a gate measured and why it failed, without its option's name."""
    if g.reason is not None:
        return f"nothing to measure: {g.reason}"
    cmp = ">" if g.failed else "<="
    line = f"{g.measures} {format_bytes(g.value)}{g.unit} {cmp} {format_bytes(g.threshold)}{g.unit}"
    if g.failed and g.groups:
        shown = ", ".join(f"#{rank} {label}" for rank, label in g.groups[:3])
        more = f" and {len(g.groups) - 3} more" if len(g.groups) > 3 else ""
        line += f" ({plural(len(g.groups), 'call stack', 'call stacks')}: {shown}{more})"
    return line


def gate_sentence(g: GateFacts) -> str:
    return f"{g.option} {format_bytes(g.threshold)}{g.unit}: {'FAILED' if g.failed else 'passed'}: {gate_body(g)}"


def trend_sentence(runs: int, classes: Sequence[tuple[str, int]]) -> str:
    """How the call stacks moved over the runs, growing first: "Over 5 runs: 2 call stacks growing, 1 plateau"."""
    if not classes:
        return f"Over {runs} runs: no call stack holds outstanding blocks"
    parts = [f"{format_count(n)} {'call stack' if n == 1 else 'call stacks'} {k}" if i == 0 else
             f"{format_count(n)} {k}" for i, (k, n) in enumerate(classes)]
    return f"Over {runs} runs: " + ", ".join(parts)


def runs_sentence(first_bytes: int, first_blocks: int, last_bytes: int, last_blocks: int) -> str:
    return (f"Outstanding: first run {format_bytes(first_bytes)} in {blocks(first_blocks)}, last run "
            f"{format_bytes(last_bytes)} in {blocks(last_blocks)}")
