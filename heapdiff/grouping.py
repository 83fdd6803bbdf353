"""Outstanding blocks grouped by call stack: each group's frames, name, sums, size histogram and oldest blocks.

Two traces are two runs: pids, heap handles, addresses and image bases all differ (ASLR). So a group is keyed by
its signature, the frames as ``module+0xrva`` strings (kernel frames left out unless asked), never by an address.
Every fact about a group (which frames are the kernel's or allocator plumbing, its module and label) is decided
here, once, by :mod:`heapdiff.rules`, and carried to every report.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from heapdiff.etl.sequences import InternedStacks
from heapdiff.events.images import ImageMap
from heapdiff.frames import Frame
from heapdiff.reduce import LiveBlocks
from heapdiff.reduce.live import exact_sums
from heapdiff.rules import GroupName, name_group
from heapdiff.symbolize import FrameNamer, ModuleOutcome

#: size histogram bucket upper bounds (inclusive) and labels; the last bucket is open
HIST_BOUNDS = (16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20)
HIST_LABELS = ("<=16", "<=64", "<=256", "<=1K", "<=4K", "<=16K", "<=64K", "<=256K", "<=1M", ">1M")
#: a group keeps this many of its oldest blocks' addresses: the likeliest leaks
SAMPLE_ADDRESSES = 5


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


@dataclass(frozen=True, slots=True)
class Group:
    """Outstanding blocks of one signature in one trace."""

    signature: tuple[str, ...]
    #: every frame of its first stack, innermost first, kernel frames included and marked
    frames: tuple[Frame, ...]
    name: GroupName
    counts: Counts
    heaps: tuple[int, ...]
    #: (heap Source kind, blocks), by kind
    sources: tuple[tuple[int, int], ...]
    #: blocks per :data:`HIST_LABELS` bucket
    histogram: tuple[int, ...]
    first_ts: int
    last_ts: int
    #: the group's oldest blocks (by time, then address), the same whatever order the stacks were numbered in
    sample_addresses: tuple[int, ...]


@dataclass(frozen=True)
class Grouping:
    """One trace's groups, its frame counts (signature frames over all (pid, stack) pairs), and the images its
    groups' frames fall in, with how looking up their symbols went."""

    groups: tuple[Group, ...]
    frames: int
    unresolved: int
    modules: tuple[ModuleOutcome, ...] = ()

    def by_signature(self) -> dict[tuple[str, ...], Group]:
        return {g.signature: g for g in self.groups}

    def __iter__(self) -> Iterator[Group]:
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)


def group_blocks(live: LiveBlocks, stacks: InternedStacks, images: ImageMap, kernel_frames: bool,
                 namer: FrameNamer | None = None) -> Grouping:
    """Group outstanding blocks by signature.

    Python works once per (pid, stack) pair (resolving its frames to a signature) and once per group (making its
    :class:`Group`); every sum, count, extreme and the oldest blocks are numpy passes over the blocks or pairs
    indexed by group, because this runs on the job's serial tail once the last trace is read. Long because it is
    one pipeline of whole-column steps that share their sort orders."""
    n = len(live)
    if not n:
        return Grouping((), 0, 0)
    order = np.lexsort((live.addr, live.ts, live.stack, live.pid))  # per pair: oldest first
    pid = live.pid[order]
    stack = live.stack[order]
    size = live.size[order]  # unsigned: never summed as int64 (exact_sums)
    ts = live.ts[order].astype(np.int64)
    heap = live.heap[order]
    src = live.source[order].astype(np.int64)
    addr = live.addr[order]
    cut = np.flatnonzero((pid[1:] != pid[:-1]) | (stack[1:] != stack[:-1])) + 1
    starts = np.concatenate(([0], cut))
    npairs = int(starts.shape[0])
    # the signature of each pair, and the group it falls in (pairs with equal signatures share a group)
    pair_pid = pid[starts].tolist()
    pair_sid = stack[starts].tolist()
    tmin_pair = np.minimum.reduceat(ts, starts)
    with_stack = [k for k in range(npairs) if pair_sid[k] >= 0]
    addrs_of = [stacks.get(pair_sid[k]) for k in with_stack]
    located = images.located_many([pair_pid[k] for k in with_stack], addrs_of,
                                  [int(tmin_pair[k]) for k in with_stack])
    names = [[text for text, _ in st] for st in located]
    floor = images.kernel_floor
    namer = namer if namer is not None else FrameNamer(images, None)
    named = namer.name(located, [(a >= np.uint64(floor)).tolist() for a in addrs_of])
    lens = np.fromiter((a.shape[0] for a in addrs_of), np.int64, len(addrs_of))
    nkern, unres_all, unres_user = _frame_counts(addrs_of, names, lens, floor)
    stack_of: list[tuple[list[str], list[Frame], tuple[int, int, int]] | None] = [None] * npairs
    for j, k in enumerate(with_stack):
        stack_of[k] = (names[j], named[j], (nkern[j], unres_all[j], unres_user[j]))
    index: dict[tuple[str, ...], int] = {}
    made: list[tuple[tuple[str, ...], tuple[Frame, ...]]] = []
    pair_group = np.empty(npairs, np.int64)
    total_frames = total_unresolved = 0
    for k in range(npairs):
        st = stack_of[k]
        sig, frames, nfr, nunres = (signature(st[0], st[1], kernel_frames, st[2]) if st is not None
                                    else ((), (), 0, 0))
        total_frames += nfr
        total_unresolved += nunres
        gi = index.get(sig)
        if gi is None:
            gi = index[sig] = len(made)
            made.append((sig, frames))
        pair_group[k] = gi
    ng = len(made)
    row_pair = np.zeros(n, np.int64)
    row_pair[starts[1:]] = 1
    grp = pair_group[np.cumsum(row_pair)]          # group index of each block
    # the blocks by group, oldest first (time, then address): each group is a run starting at head[g]
    so = np.lexsort((addr, ts, grp))
    gs = grp[so]
    head = np.concatenate(([0], np.flatnonzero(gs[1:] != gs[:-1]) + 1))
    blocks = np.diff(np.concatenate((head, [n])))
    first = ts[so[head]]
    last = ts[so[head + blocks - 1]]
    nbytes = exact_sums(size, grp, ng)             # exact: no wrap, never negative
    nsrc = int(src.max()) + 1
    src_counts = np.bincount(grp * nsrc + src, minlength=ng * nsrc).reshape(ng, nsrc)
    bucket = np.searchsorted(np.asarray(HIST_BOUNDS, np.uint64), size, side="left")
    nb = len(HIST_LABELS)
    hist = np.bincount(grp * nb + bucket, minlength=ng * nb).reshape(ng, nb)
    heaps_of = _distinct_per_group(grp, heap, ng)
    # the oldest blocks of each group
    rank = np.arange(n) - np.repeat(head, blocks)
    keep = so[rank < SAMPLE_ADDRESSES]
    samples: list[list[int]] = [[] for _ in range(ng)]
    for gi, a in zip(grp[keep].tolist(), addr[keep].tolist(), strict=True):
        samples[gi].append(a)
    groups = [
        Group(sig, frames, name_group(frames), Counts(nblk, nby), heaps_of[gi],
              tuple((s, c) for s, c in enumerate(row) if c), tuple(hrow), t0, t1, tuple(samples[gi]))
        for gi, (sig, frames), nblk, nby, t0, t1, row, hrow in zip(
            range(ng), made, blocks.tolist(), nbytes, first.tolist(), last.tolist(), src_counts.tolist(),
            hist.tolist(), strict=True)
    ]
    return Grouping(tuple(groups), total_frames, total_unresolved, tuple(namer.modules()))


def _distinct_per_group(grp: np.ndarray, values: np.ndarray, ng: int) -> list[tuple[int, ...]]:
    """The distinct values of each group, sorted: one lexsort, not a set per group."""
    o = np.lexsort((values, grp))
    g, v = grp[o], values[o]
    new = np.ones(g.shape[0], bool)
    new[1:] = (g[1:] != g[:-1]) | (v[1:] != v[:-1])
    out: list[list[int]] = [[] for _ in range(ng)]
    for gi, x in zip(g[new].tolist(), v[new].tolist(), strict=True):
        out[gi].append(x)
    return [tuple(x) for x in out]


def _frame_counts(addrs_of: list[np.ndarray], names: list[list[str]], lens: np.ndarray,
                  kernel_floor: int) -> tuple[list[int], list[int], list[int]]:
    """Per stack: its kernel frames, its unresolved frames, and its unresolved frames outside the kernel, in
    whole-column passes (a numpy call per stack was a visible share of the grouping)."""
    if not addrs_of:
        return [], [], []
    flat = np.concatenate(addrs_of)
    kern = flat >= np.uint64(kernel_floor)
    unres = np.fromiter((fr.startswith("0x") for stack in names for fr in stack), bool, int(flat.shape[0]))
    first = np.cumsum(lens) - lens
    full = lens > 0
    at = np.minimum(first, max(int(flat.shape[0]) - 1, 0))

    def per_stack(v: np.ndarray) -> list[int]:
        if not v.shape[0]:
            return [0] * int(lens.shape[0])
        return np.where(full, np.add.reduceat(v.astype(np.int64), at), 0).tolist()  # type: ignore[no-any-return]

    return per_stack(kern), per_stack(unres), per_stack(unres & ~kern)


def signature(names: Sequence[str], frames: Sequence[Frame], kernel_frames: bool,
              counts: tuple[int, int, int]) -> tuple[tuple[str, ...], tuple[Frame, ...], int, int]:
    """(signature, displayed frames, signature frames, unresolved signature frames) of a located stack; ``counts``
    are its (kernel frames, unresolved frames, unresolved frames outside the kernel)."""
    nkern, unres_all, unres_user = counts
    if not nkern:  # a user stack (most of them): the signature is the frames as they are
        sig = tuple(names)
        return sig, tuple(frames), len(sig), unres_all
    sig = tuple(n for n, f in zip(names, frames, strict=True) if kernel_frames or not f.kernel)
    return sig, tuple(frames), len(sig), unres_all if kernel_frames else unres_user
