"""Call trees of the groups' stacks: what the page's flame graph and its top-down and bottom-up trees draw.

Each group that is not suppressed gives one path: its label frame (the allocating function: the first frame that
is neither the kernel's nor the allocator's) and its callers out to the thread's start. Kernel frames are left out
and the allocator frames inside the label frame folded away: the function that asked for memory is what matters,
not how the heap served it. A group without a label frame keeps every frame but the kernel's; one without a
stack is the one frame ``(no stack)``.

A node's size is the bytes that moved through it: for one trace what is outstanding; for a diff the growth plus
the shrink, each summed over the groups on its own, so that a node whose stacks grew and shrank by as much is as
large as what moved, never zero (the page colours the two parts apart).

Pruning bounds each tree whatever the input: nodes are taken largest first (best first from the root), a node
only when its size is at least :data:`MIN_SHARE` of the root's and while fewer than :data:`MAX_KEPT` are taken.
A child is never larger than its parent, so every ancestor of a taken node is taken. The children a taken node
loses are collapsed into ONE "other" node whose figures are the parent's minus what its kept children and its own
groups hold: no parent's totals ever change. A tree thus has at most ``2 * MAX_KEPT + 1`` nodes, and the work
is proportional to the groups under the taken nodes, never to the full tree.
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np

from heapdiff.document.lazy import TraceGroups
from heapdiff.document.model import Document, FrameRecord, GroupRecord
from heapdiff.grouping import ZERO, Counts
from heapdiff.report.text import MAX_FRAME, clean
from heapdiff.report.view import CallNode, CallTree, Figures
from heapdiff.rules import NO_STACK

#: a node smaller than this share of the root's size is collapsed into its parent's "other" node
MIN_SHARE: Final = 0.001
#: at most this many nodes are taken per tree (the root included), each with at most one "other" child
MAX_KEPT: Final = 1500
#: frames of one path at most: a deeper stack keeps the frames nearest its label, then one OUTER_FRAMES node
MAX_DEPTH: Final = 256
OTHER_FRAMES: Final = "(other frames)"
#: a tree keeps every group's path once read when there are at most this many groups (a level reads them all
#: again); a larger input reads each path again per level, so that memory stays bounded
KEEP_PATHS: Final = 200_000
OUTER_FRAMES: Final = "(outer frames cut)"

Direction = Literal["top_down", "bottom_up"]
_KERNEL: Final = operator.attrgetter("kernel")


def _marker(text: str) -> FrameRecord:
    return FrameRecord(text, None, None, kernel=False, allocator=False)


_NO_STACK_FRAME: Final = _marker(NO_STACK)
_OUTER_FRAME: Final = _marker(OUTER_FRAMES)


def stack_path(g: GroupRecord) -> tuple[FrameRecord, ...]:
    """The group's path, innermost first: its label frame, then the callers outward; no kernel frame.

    The document's own frame records, not their texts: a tree reads a group's frames only down to where the
    group's node is pruned, which in a large input is a few frames of each stack."""
    return _path(g.frames, g.label_index, g.label)


def _path(frames: tuple[FrameRecord, ...], label_index: int, label: str) -> tuple[FrameRecord, ...]:
    if not frames:
        return (_NO_STACK_FRAME,)
    start = label_index if 0 <= label_index < len(frames) else 0
    path = frames[start:]
    if any(map(_KERNEL, path)):
        path = tuple(f for f in path if not f.kernel)
        if not path:  # kernel frames only: the label names one of them
            return (_marker(label or NO_STACK),)
    if len(path) > MAX_DEPTH:
        path = (*path[:MAX_DEPTH - 1], _OUTER_FRAME)
    return path


@dataclass(slots=True)
class _Groups:
    """Per group that is not suppressed, as columns: what it holds (one trace: ``after`` alone); its path is read
    from the document's record when the tree needs it, never held for every group (a trace may hold a million)."""

    records: Sequence[GroupRecord]
    #: the document position of each group
    index: list[int]
    after_blocks: np.ndarray
    after_bytes: np.ndarray
    before_blocks: np.ndarray
    before_bytes: np.ndarray
    growth: np.ndarray
    shrink: np.ndarray
    #: each group's size (growth plus shrink), as Python ints: read once per level of the tree
    sizes: list[int] = field(init=False)
    #: the six figure columns as rows of one matrix: a node's sums are one gather
    figures: np.ndarray = field(init=False)
    #: each group's path once read, when there are few enough groups to keep them all
    paths: dict[int, tuple[FrameRecord, ...]] | None = field(init=False)

    def __post_init__(self) -> None:
        self.sizes = (self.growth - self.shrink).tolist()
        self.figures = np.stack((self.after_blocks, self.after_bytes, self.before_blocks, self.before_bytes,
                                 self.growth, self.shrink)) if self.index else np.zeros((6, 0), np.int64)
        self.paths = {} if len(self.index) <= KEEP_PATHS else None

    def path(self, i: int) -> tuple[FrameRecord, ...]:
        paths = self.paths
        if paths is not None:
            got = paths.get(i)
            if got is None:
                got = paths[i] = self._read_path(i)
            return got
        return self._read_path(i)

    def _read_path(self, i: int) -> tuple[FrameRecord, ...]:
        if isinstance(self.records, TraceGroups):  # the frames alone, not the whole record made again
            frames, name = self.records.frames_and_name(self.index[i])
            return _path(frames, name.label_index, name.label)
        return stack_path(self.records[self.index[i]])

    def __len__(self) -> int:
        return len(self.index)


def _groups(doc: Document) -> _Groups:
    if isinstance(doc.groups, TraceGroups):  # one trace: its columns, not a record made per group
        return _trace_groups(doc.groups)
    diff = doc.is_diff or doc.is_trend  # a trend: its last run against its first
    index: list[int] = []
    cols: list[list[int]] = [[], [], [], []]
    for k, g in enumerate(doc.groups):
        if g.suppressed_by is not None:
            continue
        last, first = g.runs[-1], g.runs[0]
        after = last.counts if last is not None else ZERO
        before = first.counts if diff and first is not None else ZERO
        index.append(k)
        for col, v in zip(cols, (after.blocks, after.bytes, before.blocks, before.bytes), strict=True):
            col.append(v)
    a_blocks, a_bytes, b_blocks, b_bytes = (np.asarray(c, np.int64) for c in cols)
    d = a_bytes - b_bytes
    return _Groups(doc.groups, index, a_blocks, a_bytes, b_blocks, b_bytes, np.maximum(d, 0), np.minimum(d, 0))


def _trace_groups(groups: TraceGroups) -> _Groups:
    """One trace's groups that are not suppressed, their sizes from its columns (all "after": nothing shrinks)."""
    blocks, nbytes = groups.counts()
    keep = np.ones(len(groups), np.bool_)
    keep[list(groups.suppressed)] = False
    index = np.flatnonzero(keep)
    a_blocks, a_bytes = blocks[index], nbytes[index]
    zero = np.zeros(index.shape[0], np.int64)
    return _Groups(groups, index.tolist(), a_blocks, a_bytes, zero, zero, a_bytes, zero)


@dataclass(slots=True)
class _Sums:
    """Figures summed over some groups; subtracting sums of subsets of them is exact (integers)."""

    after_blocks: int = 0
    after_bytes: int = 0
    before_blocks: int = 0
    before_bytes: int = 0
    growth: int = 0
    shrink: int = 0
    groups: int = 0

    @classmethod
    def of(cls, gs: _Groups, idx: Sequence[int]) -> _Sums:
        if not idx:
            return cls()
        ab, an, bb, bn, gr, sh = gs.figures[:, np.asarray(idx, np.int64)].sum(axis=1).tolist()
        return cls(ab, an, bb, bn, gr, sh, len(idx))

    def minus(self, o: _Sums) -> _Sums:
        return _Sums(self.after_blocks - o.after_blocks, self.after_bytes - o.after_bytes,
                     self.before_blocks - o.before_blocks, self.before_bytes - o.before_bytes,
                     self.growth - o.growth, self.shrink - o.shrink, self.groups - o.groups)

    def node(self, frame: str, parent: int, diff: bool, other: int = 0) -> CallNode:
        after = Counts(self.after_blocks, self.after_bytes)
        if diff:
            before = Counts(self.before_blocks, self.before_bytes)
            figures = Figures(after, before, after - before)
        else:
            figures = Figures(after)
        return CallNode(frame, parent, figures, self.growth, self.shrink, self.groups, other)


@dataclass(slots=True)
class _Taken:
    """A node taken into the pruned tree: its frame, parent (taken index), depth, and groups through it."""

    frame: str
    parent: int
    depth: int
    idx: list[int]
    size: int
    sums: _Sums = field(default_factory=_Sums)
    #: the groups whose path ends here
    own: _Sums = field(default_factory=_Sums)
    kids: list[int] = field(default_factory=list)
    #: children not taken
    dropped: int = 0


def _frame_at(path: tuple[FrameRecord, ...], depth: int, direction: Direction) -> str:
    return path[depth].text if direction == "bottom_up" else path[len(path) - 1 - depth].text


def build_tree(gs: _Groups, direction: Direction, diff: bool, *, min_share: float = MIN_SHARE,
               max_kept: int = MAX_KEPT) -> CallTree:
    """The pruned tree of these groups' paths (see the module docstring). Long because it is one best-first
    expansion that partitions each taken node's groups by their next frame, then lays the nodes out."""
    everyone = list(range(len(gs)))
    group_size = gs.sizes
    root_size = int(gs.growth.sum() - gs.shrink.sum())
    threshold = max(min_share * root_size, 1)  # a node of size 0 is never worth a node of its own
    taken: list[_Taken] = []
    # (-size, order, candidate): the largest first, ties in the order they were found (deterministic)
    heap: list[tuple[int, int, _Taken]] = [(-root_size, 0, _Taken("", -1, 0, everyone, root_size))]
    order = 1
    while heap and len(taken) < max_kept:
        _, _, node = heapq.heappop(heap)
        k = len(taken)
        taken.append(node)
        if node.parent >= 0:
            taken[node.parent].kids.append(k)
        node.sums = _Sums.of(gs, node.idx)
        own: list[int] = []
        # a frame's groups: one group as its index, several as a list (most frames deep in a large input belong
        # to one group, and an int is no object for the garbage collector to walk)
        by_frame: dict[str, int | list[int]] = {}
        sizes: dict[str, int] = {}
        depth = node.depth
        for i in node.idx:
            path = gs.path(i)
            if len(path) <= depth:
                own.append(i)
                continue
            f = _frame_at(path, depth, direction)
            got = by_frame.get(f)
            if got is None:
                by_frame[f] = i
                sizes[f] = group_size[i]
            else:
                if isinstance(got, int):
                    by_frame[f] = [got, i]
                else:
                    got.append(i)
                sizes[f] += group_size[i]
        node.own = _Sums.of(gs, own)
        node.idx = []  # partitioned into the children: free it
        for f, size in sizes.items():
            if size >= threshold:
                got = by_frame[f]
                idx = [got] if isinstance(got, int) else got
                heapq.heappush(heap, (-size, order, _Taken(f, k, depth + 1, idx, size)))
                order += 1
            else:
                node.dropped += 1
    for _, _, left in heap:  # found but not taken: the cap was reached
        taken[left.parent].dropped += 1
    return CallTree(direction, _lay_out(taken, diff), min_share, capped=bool(heap))


def _lay_out(taken: list[_Taken], diff: bool) -> tuple[CallNode, ...]:
    """The taken nodes in preorder, siblings largest first, each parent's "other" node after its children."""
    nodes: list[CallNode] = []
    # (taken index, parent's index in nodes, None) or (-1, parent's index, (what the other node sums, frames))
    stack: list[tuple[int, int, tuple[_Sums, int] | None]] = [(0, -1, None)]
    while stack:
        k, parent, other = stack.pop()
        if other is not None:
            nodes.append(other[0].node(OTHER_FRAMES, parent, diff, other[1]))
            continue
        t = taken[k]
        me = len(nodes)
        nodes.append(t.sums.node(clean(t.frame, MAX_FRAME) if k else "", parent, diff))
        kids = sorted(t.kids, key=lambda c: (-taken[c].size, taken[c].frame))
        if t.dropped:
            rest = t.sums.minus(t.own)
            for c in kids:
                rest = rest.minus(taken[c].sums)
            stack.append((-1, me, (rest, t.dropped)))  # popped after every kept child's subtree: last
        stack.extend((c, me, None) for c in reversed(kids))
    return tuple(nodes)


def call_trees(doc: Document) -> tuple[CallTree, ...]:
    """The top-down and the bottom-up tree of every group of ``doc`` that is not suppressed."""
    gs = _groups(doc)
    return tuple(build_tree(gs, d, doc.is_diff or doc.is_trend) for d in ("top_down", "bottom_up"))
