"""Outstanding blocks grouped by call stack: each group's frames, sums, size histogram and oldest blocks.

Two traces are two runs: pids, heap handles, addresses and image bases all differ (ASLR). So a group is keyed by
its signature, its frames as ``module+0xrva`` (kernel frames left out unless asked), never by an address. Every fact
about a group (which frames are the kernel's or allocator plumbing, its module and label) is decided by
:mod:`heapdiff.rules` when a group is read, once, and carried to every report.

A trace may hold a million distinct stacks, so nothing here is a Python object per frame or per group: the
distinct frames are a :class:`~heapdiff.frame_table.FrameTable` of columns, the groups are columns and offsets
into columns, and the document makes a group's record when one is read (:class:`heapdiff.document.lazy.TraceGroups`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from heapdiff._runs import run_positions
from heapdiff.etl.sequences import InternedStacks
from heapdiff.events.images import ImageMap
from heapdiff.frame_table import FrameTable, frame_table
from heapdiff.frames import Frame
from heapdiff.reduce import LiveBlocks
from heapdiff.reduce.live import exact_sums
from heapdiff.symbolize import FrameNamer, ModuleOutcome

T = TypeVar("T")

#: size histogram bucket upper bounds (inclusive) and labels; the last bucket is open
HIST_BOUNDS = (16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20)
HIST_LABELS = ("<=16", "<=64", "<=256", "<=1K", "<=4K", "<=16K", "<=64K", "<=256K", "<=1M", ">1M")
#: a group keeps this many of its oldest blocks' addresses: the likeliest leaks
SAMPLE_ADDRESSES = 5
#: the largest groups (by bytes, then blocks) of a trace with a timeline get their bytes by allocation time
TIMELINE_GROUPS = 10


@dataclass(frozen=True, slots=True)
class Counts:
    """A number of heap blocks and their bytes (either may be negative in a delta)."""

    blocks: int
    bytes: int

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.blocks + other.blocks, self.bytes + other.bytes)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.blocks - other.blocks, self.bytes - other.bytes)


ZERO = Counts(0, 0)


@dataclass(frozen=True)
class Grouping:
    """One trace's groups as columns, its frame counts (signature frames over all (pid, stack) pairs), and the
    images its groups' frames fall in, with how looking up their symbols went."""

    table: FrameTable
    #: per group, offsets into ``signature_ids`` and ``shown_ids`` (signature and displayed frames, frame ids)
    signature_starts: np.ndarray
    signature_ids: np.ndarray
    shown_starts: np.ndarray
    shown_ids: np.ndarray
    blocks: np.ndarray
    bytes: np.ndarray
    first_ts: np.ndarray
    last_ts: np.ndarray
    histogram: np.ndarray
    sources: np.ndarray
    heap_starts: np.ndarray
    heaps: np.ndarray
    sample_starts: np.ndarray
    samples: np.ndarray
    frames: int
    unresolved: int
    modules: tuple[ModuleOutcome, ...] = ()
    #: for the :data:`TIMELINE_GROUPS` largest groups (by index), when the trace has a timeline: at each of its
    #: points, the bytes of the group's blocks allocated by then (its blocks outstanding at the end)
    alloc_series: Mapping[int, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.blocks.shape[0])

    def stacks(self, groups: np.ndarray) -> tuple[list[tuple[str, ...]], list[tuple[Frame, ...]]]:
        """Each group's signature (its frames as matched between runs, ``module+0xrva``) and its displayed frames
        (kernel frames included and marked), for many groups at once: their frames gathered and made in one pass
        (a signature's frames are among the displayed ones)."""
        shown, shown_bounds = _runs(self.shown_ids, self.shown_starts, groups)
        signature, signature_bounds = _runs(self.signature_ids, self.signature_starts, groups)
        frames, plains = self.table.frames_and_plains(shown, signature)
        return _split(plains, signature_bounds), _split(frames, shown_bounds)

    def heaps_of(self, groups: np.ndarray) -> list[tuple[int, ...]]:
        """Each group's heap handles, for many groups at once."""
        handles, bounds = _runs(self.heaps, self.heap_starts, groups)
        return _split(handles.tolist(), bounds)

    def samples_of(self, groups: np.ndarray) -> list[tuple[int, ...]]:
        """Each group's oldest blocks' addresses, for many groups at once."""
        addresses, bounds = _runs(self.samples, self.sample_starts, groups)
        return _split(addresses.tolist(), bounds)


def _runs(values: np.ndarray, starts: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The runs ``values[starts[g]:starts[g + 1]]`` of ``groups``, one after the other, and where each ends."""
    lens = starts[groups + 1] - starts[groups]
    return _gather(values, starts, groups, lens), np.cumsum(lens).tolist()


def _split(flat: list[T], bounds: list[int]) -> list[tuple[T, ...]]:
    return [tuple(flat[a:b]) for a, b in zip([0, *bounds[:-1]], bounds, strict=True)]


def _csr(owner: np.ndarray, n: int) -> np.ndarray:
    """Offsets of the runs that ``owner`` (sorted: the owner of each value) gives to each of ``n`` owners."""
    return np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=n)))).astype(np.int64)


def _empty(table: FrameTable, modules: tuple[ModuleOutcome, ...] = ()) -> Grouping:
    z = np.zeros(0, np.int64)
    one = np.zeros(1, np.int64)
    return Grouping(table, one, z, one, z, z, z, z, z, np.zeros((0, len(HIST_LABELS)), np.int64),
                    np.zeros((0, 1), np.int64), one, np.zeros(0, np.uint64), one, np.zeros(0, np.uint64), 0, 0,
                    modules)


def group_blocks(live: LiveBlocks, stacks: InternedStacks, images: ImageMap, kernel_frames: bool,
                 namer: FrameNamer | None = None, timeline: np.ndarray | None = None) -> Grouping:
    """Group outstanding blocks by signature; ``timeline``: the raw times of the trace's timeline points, at which
    the largest groups' bytes by allocation time are summed (:attr:`Grouping.alloc_series`).

    Long because it is one pipeline of whole-column steps that share their sort orders: the blocks by (pid,
    stack) pair; each pair's frames located and made frame ids; pairs with equal signatures made one group
    (:func:`_same_rows`); then every sum, count, extreme and the oldest blocks of each group by numpy passes
    indexed by group (:func:`_sums`). Per block, only a few columns live at once (each goes once used): a trace
    may hold millions of live blocks, and this is the job's peak of memory after the reducer's."""
    n = len(live)
    namer = namer if namer is not None else FrameNamer(images, None)
    if not n:
        return _empty(FrameTable([], np.zeros(0, np.int32), np.zeros(0, np.uint64), np.zeros(0, bool),
                                 np.zeros(0, bool), np.zeros(0, np.int64)))
    order = np.lexsort((live.stack, live.pid))  # by (pid, stack) pair
    pid = live.pid[order]
    stack = live.stack[order]
    cut = np.flatnonzero((pid[1:] != pid[:-1]) | (stack[1:] != stack[:-1])) + 1
    starts = np.concatenate(([0], cut))
    del cut
    npairs = int(starts.shape[0])
    pair_pid, pair_sid = pid[starts], stack[starts]
    del pid, stack
    pair_first_ts = np.minimum.reduceat(live.ts[order], starts)
    with_stack = np.flatnonzero(pair_sid >= 0)
    sids = pair_sid[with_stack]
    lens = stacks.length[sids].astype(np.int64)
    fstarts = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
    flat = _gather(stacks.pool, stacks.start[sids], np.arange(sids.shape[0]), lens)
    table, ids = frame_table(images, pair_pid[with_stack], fstarts, flat, pair_first_ts[with_stack])
    del flat  # (a million distinct stacks: every array of frames is tens of MB, so each goes once used)
    namer.name_table(table)
    in_sig = np.ones(ids.shape[0], bool) if kernel_frames else ~table.kernel[ids]
    total_frames = int(in_sig.sum())
    total_unresolved = int((in_sig & (table.name[ids] < 0)).sum())
    sig_ids = ids[in_sig]
    sig_starts = _csr(np.repeat(np.arange(with_stack.shape[0], dtype=np.int32), lens)[in_sig], with_stack.shape[0])
    del in_sig
    # pairs with equal signatures share a group, numbered in the order the pairs first show them
    pair_group = np.full(npairs, -1, np.int64)
    pair_group[with_stack] = _same_rows(sig_ids, sig_starts)
    no_stack = pair_group < 0
    if no_stack.any():  # no stack: one group, with the empty stacks if there are any
        empty = with_stack[np.diff(sig_starts) == 0]
        pair_group[no_stack] = pair_group[empty[0]] if empty.shape[0] else int(pair_group.max()) + 1
    _, first = np.unique(pair_group, return_index=True)
    renumber = np.empty(first.shape[0], np.int64)
    renumber[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
    pair_group = renumber[pair_group]
    ng = int(first.shape[0])
    # each group's frames are those of its first pair (with its kernel frames, for display)
    _, first_pair = np.unique(pair_group, return_index=True)
    row_of_pair = np.full(npairs, -1, np.int64)
    row_of_pair[with_stack] = np.arange(with_stack.shape[0])
    first_row = row_of_pair[first_pair]
    shown_lens = np.where(first_row >= 0, lens[np.maximum(first_row, 0)] if lens.shape[0] else 0, 0)
    shown_starts = np.concatenate(([0], np.cumsum(shown_lens))).astype(np.int64)
    sig_lens = np.where(first_row >= 0, np.diff(sig_starts)[np.maximum(first_row, 0)] if lens.shape[0] else 0, 0)
    signature_starts = np.concatenate(([0], np.cumsum(sig_lens))).astype(np.int64)
    shown_ids = _gather(ids, fstarts, first_row, shown_lens)
    signature_ids = _gather(sig_ids, sig_starts, first_row, sig_lens)
    del ids, sig_ids
    grp = np.empty(n, np.int32)  # group index of each block, in the live blocks' order (a trace has < 2**31 groups)
    grp[order] = np.repeat(pair_group.astype(np.int32), np.diff(np.append(starts, n)))
    del order
    return _sums(live, grp, ng, table, signature_starts, signature_ids, shown_starts, shown_ids,
                 total_frames, total_unresolved, tuple(namer.modules()), timeline)


def _gather(values: np.ndarray, starts: np.ndarray, rows: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The runs ``values[starts[r]:starts[r] + len]`` of the given rows, one after the other (none for row -1)."""
    out: np.ndarray = values[run_positions(starts[np.maximum(rows, 0)], lens)]
    return out


#: a signature matrix (rows x longest signature) above this many cells groups by a dict instead
MATRIX_CELLS = 1 << 25


def _same_rows(ids: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """A number per row of the ragged array (``ids[starts[r]:starts[r + 1]]``), equal for equal rows.

    Whole columns when the rows fit a matrix padded to the longest (a million 4-frame signatures: 20 MB, one
    sort); else a dict keyed by each row's bytes, one Python step per row."""
    rows = starts.shape[0] - 1
    lens = np.diff(starts)
    width = int(lens.max()) if rows else 0
    if rows * (width + 1) <= MATRIX_CELLS:
        m = np.full((rows, width + 1), -1, np.int64)
        m[:, 0] = lens
        col = np.arange(ids.shape[0]) - np.repeat(starts[:-1], lens) + 1
        m[np.repeat(np.arange(rows), lens), col] = ids
        _, inverse = np.unique(m, axis=0, return_inverse=True)
        return inverse.reshape(-1).astype(np.int64)
    index: dict[bytes, int] = {}
    raw = np.ascontiguousarray(ids, np.int64).tobytes()
    bounds = (starts * 8).tolist()
    return np.fromiter((index.setdefault(raw[bounds[r]:bounds[r + 1]], len(index)) for r in range(rows)), np.int64,
                       rows)


_INT64_MAX = (1 << 63) - 1


def _group_bytes(size: np.ndarray, grp: np.ndarray, ng: int) -> np.ndarray:
    """Each group's bytes, exact, never wrapped or negative: an int64 sum when no total can pass 2**63 (always, for
    real traces: the reader keeps sizes below 2**47), else the exact sums (:func:`~heapdiff.reduce.live.exact_sums`)
    as Python ints in an object array (blocks below the events layer, or overlapping ones in a crafted trace, could
    add up past it); numpy sorts and sums either the same way."""
    if not size.shape[0] or int(size.max()) * size.shape[0] <= _INT64_MAX:
        out = np.zeros(ng, np.int64)
        np.add.at(out, grp, size.astype(np.int64))  # exact (float weights could round above 2**53)
        return out
    return np.asarray(exact_sums(size, grp, ng), dtype=object)


def _sums(live: LiveBlocks, grp: np.ndarray, ng: int, table: FrameTable, signature_starts: np.ndarray,
          signature_ids: np.ndarray, shown_starts: np.ndarray, shown_ids: np.ndarray, total_frames: int,
          total_unresolved: int, modules: tuple[ModuleOutcome, ...], timeline: np.ndarray | None) -> Grouping:
    """Every group's sums, extremes, histogram, Sources, heaps and oldest blocks, by numpy passes over the blocks
    in their own order (``grp``: each one's group); one sort by (group, time, address) gives the extremes and the
    oldest blocks."""
    blocks = np.bincount(grp, minlength=ng).astype(np.int64)
    nbytes = _group_bytes(live.size, grp, ng)
    series = _alloc_series(grp, live.ts, live.size, nbytes, blocks, timeline) if timeline is not None else {}
    sources = _counts_by(grp, live.source, ng)
    hist = _counts_by(grp, np.searchsorted(np.asarray(HIST_BOUNDS, np.uint64), live.size, side="left").astype(np.int8),
                      ng, len(HIST_LABELS))
    heap_starts, heaps = _distinct_heaps(grp, live.heap, ng)
    so = np.lexsort((live.addr, live.ts, grp))  # by group, oldest first (time, then address)
    head = np.concatenate(([0], np.cumsum(blocks)[:-1]))
    first_ts = live.ts[so[head]]
    last_ts = live.ts[so[head + blocks - 1]]
    # each group's oldest blocks: the first few of its run in that order
    take = np.minimum(blocks, SAMPLE_ADDRESSES)
    at = np.repeat(head, take) + (np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take))
    samples = live.addr[so[at]].astype(np.uint64)
    del so
    return Grouping(table, signature_starts, signature_ids, shown_starts, shown_ids, blocks, nbytes,
                    first_ts.astype(np.int64), last_ts.astype(np.int64), hist, sources, heap_starts, heaps,
                    np.concatenate(([0], np.cumsum(take))).astype(np.int64), samples, total_frames,
                    total_unresolved, modules, series)


def _distinct_heaps(grp: np.ndarray, heap: np.ndarray, ng: int) -> tuple[np.ndarray, np.ndarray]:
    """Each group's distinct heap handles, ascending, as offsets and values."""
    ho = np.lexsort((heap, grp))
    gh, hh = grp[ho], heap[ho]
    del ho
    distinct = np.ones(gh.shape[0], bool)
    distinct[1:] = (gh[1:] != gh[:-1]) | (hh[1:] != hh[:-1])
    return _csr(gh[distinct], ng), hh[distinct].astype(np.uint64)


def _alloc_series(grp: np.ndarray, ts: np.ndarray, size: np.ndarray, nbytes: np.ndarray, blocks: np.ndarray,
                  points: np.ndarray) -> dict[int, np.ndarray]:
    """The :data:`TIMELINE_GROUPS` largest groups (the document's order: bytes, then blocks, then index): the
    bytes of each one's blocks allocated at or before each point (raw times, increasing)."""
    ng = nbytes.shape[0]
    if nbytes.dtype == object:  # exact sums past int64 (a crafted trace): ordered, and summed, as Python ints
        top = sorted(range(ng), key=lambda g: (-int(nbytes[g]), -int(blocks[g]), g))[:TIMELINE_GROUPS]
        size = size.astype(object)
    else:
        top = np.lexsort((np.arange(ng), -blocks, -nbytes))[:TIMELINE_GROUPS].tolist()
        size = size.astype(np.int64)
    out = {}
    for g in top:
        mine = grp == g
        t = ts[mine]
        o = np.argsort(t, kind="stable")
        cum = np.concatenate(([0], np.cumsum(size[mine][o])))
        out[g] = cum[np.searchsorted(t[o], points, side="right")]
    return out


def _counts_by(grp: np.ndarray, kind: np.ndarray, ng: int, kinds: int | None = None) -> np.ndarray:
    """Blocks per (group, kind) as an ``ng x kinds`` table of int32, one kind at a time (a million groups: a
    table of int64 built at once, and its copy, were the grouping's largest arrays)."""
    kinds = int(kind.max()) + 1 if kinds is None else kinds
    out = np.zeros((ng, kinds), np.int32)
    for k in np.unique(kind).tolist():
        out[:, k] = np.bincount(grp[kind == k], minlength=ng)
    return out


def signature(names: Sequence[str], frames: Sequence[Frame], kernel_frames: bool) -> tuple[str, ...]:
    """The signature of a stack whose frames are named: its frames' texts, kernel frames only when asked."""
    return tuple(n for n, f in zip(names, frames, strict=True) if kernel_frames or not f.kernel)
