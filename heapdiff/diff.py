"""Outstanding blocks grouped by call stack, and two such groupings compared.

Two traces are two runs: pids, heap handles, addresses and image bases all differ (ASLR). So a group is keyed by
its signature, the frames as `module+0xrva` strings (kernel frames left out unless asked), never by an address, and
the diff matches groups by signature alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from heapdiff.etl.sequences import InternedStacks
from heapdiff.events.images import ImageMap
from heapdiff.reduce import LiveBlocks

ALLOCATOR_EXACT = frozenset({"ntdll", "kernelbase", "kernel32", "ucrtbase", "msvcrt"})
ALLOCATOR_PREFIXES = ("vcruntime", "msvcp")
NO_STACK = "(no stack)"
UNKNOWN_MODULE = "(unknown)"
ALLOCATOR_ONLY = "(allocator only)"

#: size histogram bucket upper bounds (inclusive) and labels; the last bucket is open
HIST_BOUNDS = (16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20)
HIST_LABELS = ("<=16", "<=64", "<=256", "<=1K", "<=4K", "<=16K", "<=64K", "<=256K", "<=1M", ">1M")
SAMPLE_ADDRESSES = 5


def is_allocator(module: str) -> bool:
    stem = module.rsplit(".", 1)[0] if "." in module else module
    return stem in ALLOCATOR_EXACT or stem.startswith(ALLOCATOR_PREFIXES)


def frame_module(frame: str) -> str | None:
    """`mod.dll+0x12` -> `mod.dll`; an unresolved `0x...` frame -> None."""
    plus = frame.rfind("+0x")
    return frame[:plus] if plus > 0 else None


def group_module(frames: tuple[str, ...]) -> str:
    """The first frame outside the allocator modules names the group's module."""
    if not frames:
        return NO_STACK
    for fr in frames:
        mod = frame_module(fr)
        if mod is None:
            return UNKNOWN_MODULE
        if not is_allocator(mod):
            return mod
    return ALLOCATOR_ONLY


@dataclass
class Group:
    """Outstanding blocks of one signature in one trace."""

    signature: tuple[str, ...]
    display: tuple[str, ...]
    module: str
    blocks: int = 0
    bytes: int = 0
    heaps: set[int] = field(default_factory=set)
    sources: Counter[int] = field(default_factory=Counter)
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(len(HIST_LABELS), np.int64))
    first_ts: int = 1 << 62
    last_ts: int = -(1 << 62)
    #: the group's oldest blocks (by time, then address): the likeliest leaks, and the same whatever order the
    #: stacks were numbered in
    sample_addresses: list[int] = field(default_factory=list)


@dataclass
class Grouping:
    groups: dict[tuple[str, ...], Group]
    frames: int = 0            # signature frames over all (pid, stack) pairs
    unresolved: int = 0        # of which not in any known image


def group_blocks(live: LiveBlocks, sequences: InternedStacks, images: ImageMap, kernel_frames: bool) -> Grouping:
    """Group outstanding blocks by signature.

    Python works once per (pid, stack) pair (resolving its frames to a signature) and once per group (making its
    :class:`Group`); every sum, count, extreme and the oldest blocks are numpy passes over the blocks or pairs
    indexed by group. (A per-pair Python fold was ~0.3 s for the ~5,000 pairs of the 10M benchmark trace, on
    the job's critical path once the last trace is read.)
    """
    out = Grouping({})
    n = len(live)
    if not n:
        return out
    order = np.lexsort((live.addr, live.ts, live.stack, live.pid))  # per pair: oldest first
    pid = live.pid[order]
    stack = live.stack[order]
    size = live.size[order].astype(np.int64)
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
    addrs_of = [sequences.get(pair_sid[k]) for k in with_stack]
    names = images.frames_many([pair_pid[k] for k in with_stack], addrs_of,
                               [int(tmin_pair[k]) for k in with_stack])
    # per stack, in whole-column passes: its kernel frames, and its unresolved frames (all, and outside the kernel)
    lens = np.fromiter((a.shape[0] for a in addrs_of), np.int64, len(addrs_of))
    nkern, unres_all, unres_user = _frame_counts(addrs_of, names, lens, images.kernel_floor)
    stack_of: list[tuple[list[str], np.ndarray, tuple[int, int, int]] | None] = [None] * npairs
    for j, k in enumerate(with_stack):
        stack_of[k] = (names[j], addrs_of[j], (nkern[j], unres_all[j], unres_user[j]))
    index: dict[tuple[str, ...], int] = {}
    made: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    pair_group = np.empty(npairs, np.int64)
    floor = images.kernel_floor
    for k in range(npairs):
        st = stack_of[k]
        sig, display, nfr, nunres = (_signature(st[0], st[1], floor, kernel_frames, st[2]) if st is not None
                                     else _signature(None, None, floor, kernel_frames))
        out.frames += nfr
        out.unresolved += nunres
        gi = index.get(sig)
        if gi is None:
            gi = index[sig] = len(made)
            made.append((sig, display))
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
    nbytes = np.zeros(ng, np.int64)
    np.add.at(nbytes, grp, size)                   # exact (float weights could round above 2**53)
    nsrc = int(src.max()) + 1
    src_counts = np.bincount(grp * nsrc + src, minlength=ng * nsrc).reshape(ng, nsrc)
    bucket = np.searchsorted(np.asarray(HIST_BOUNDS, np.int64), size, side="left")
    nb = len(HIST_LABELS)
    hist = np.bincount(grp * nb + bucket, minlength=ng * nb).reshape(ng, nb)
    # the heaps of each group: distinct (group, heap) pairs
    ho = np.lexsort((heap, grp))
    gh, hh = grp[ho], heap[ho]
    new_gh = np.ones(gh.shape[0], bool)
    new_gh[1:] = (gh[1:] != gh[:-1]) | (hh[1:] != hh[:-1])
    heaps_of: list[set[int]] = [set() for _ in range(ng)]
    for gi, hv in zip(gh[new_gh].tolist(), hh[new_gh].tolist(), strict=True):
        heaps_of[gi].add(hv)
    # the oldest blocks of each group
    rank = np.arange(n) - np.repeat(head, blocks)
    keep = so[rank < SAMPLE_ADDRESSES]
    samples: list[list[int]] = [[] for _ in range(ng)]
    for gi, a in zip(grp[keep].tolist(), addr[keep].tolist(), strict=True):
        samples[gi].append(a)
    # per group: Python objects from lists made once (numpy scalars and a row lookup per group were ~30% of
    # this loop's time)
    hist = hist.astype(np.int64, copy=False)
    for gi, (sig, display), nblk, nby, t0, t1, row in zip(range(ng), made, blocks.tolist(), nbytes.tolist(),
                                                          first.tolist(), last.tolist(), src_counts.tolist(),
                                                          strict=True):
        out.groups[sig] = Group(sig, display, group_module(sig), blocks=nblk, bytes=nby, heaps=heaps_of[gi],
                                sources=Counter({k: c for k, c in enumerate(row) if c}), histogram=hist[gi],
                                first_ts=t0, last_ts=t1, sample_addresses=samples[gi])
    return out


def _frame_counts(addrs_of: list[np.ndarray], names: list[list[str]], lens: np.ndarray,
                  kernel_floor: int) -> tuple[list[int], list[int], list[int]]:
    """Per stack: its kernel frames, its unresolved frames, and its unresolved frames outside the kernel.

    Why whole columns: two numpy calls and a string test per frame, stack by stack, were ~0.04 s of a 10M
    benchmark trace's grouping, on the job's serial tail."""
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


def _signature(names: list[str] | None, addrs: np.ndarray | None, kernel_floor: int, kernel_frames: bool,
               counts: tuple[int, int, int] | None = None) -> tuple[tuple[str, ...], tuple[str, ...], int, int]:
    """(signature, display frames, signature frames, unresolved signature frames) of a resolved stack.

    ``counts``: its (kernel frames, unresolved frames, unresolved frames outside the kernel) when the caller has
    them (:func:`_frame_counts`); else they are found here."""
    if names is None or addrs is None:
        return (), (), 0, 0
    if counts is None:
        kernel = addrs >= np.uint64(kernel_floor)
        unres = np.asarray([fr.startswith("0x") for fr in names], bool)
        counts = int(kernel.sum()), int(unres.sum()), int((unres & ~kernel).sum())
    nkern, unres_all, unres_user = counts
    if not nkern:  # a user stack (most of them): signature and display are the frames as they are
        sig = display = tuple(names)
        return sig, display, len(sig), unres_all
    kern = (addrs >= np.uint64(kernel_floor)).tolist()
    display = tuple(("[k] " if k else "") + fr for fr, k in zip(names, kern, strict=True))
    sig = tuple(fr for fr, k in zip(names, kern, strict=True) if kernel_frames or not k)
    return sig, display, len(sig), unres_all if kernel_frames else unres_user


@dataclass(frozen=True)
class DiffRow:
    signature: tuple[str, ...]
    before: Group | None
    after: Group | None

    @property
    def status(self) -> str:
        if self.before is None or not self.before.blocks:
            return "new"
        if self.after is None or not self.after.blocks:
            return "gone"
        return "common"

    @property
    def delta_bytes(self) -> int:
        return (self.after.bytes if self.after else 0) - (self.before.bytes if self.before else 0)

    @property
    def delta_blocks(self) -> int:
        return (self.after.blocks if self.after else 0) - (self.before.blocks if self.before else 0)


def diff_groupings(before: Grouping, after: Grouping) -> list[DiffRow]:
    """Groups of both runs matched by signature, largest growth first (ties: signature order)."""
    bg, ag = before.groups, after.groups
    keyed = []
    for s in bg.keys() | ag.keys():
        b, a = bg.get(s), ag.get(s)
        dbytes = (a.bytes if a is not None else 0) - (b.bytes if b is not None else 0)
        dblocks = (a.blocks if a is not None else 0) - (b.blocks if b is not None else 0)
        keyed.append((-dbytes, -dblocks, s, b, a))
    keyed.sort(key=lambda k: k[:3])  # the deltas computed once, not by the properties in every comparison
    return [DiffRow(s, b, a) for _, _, s, b, a in keyed]


def sort_single(groups: Grouping) -> list[Group]:
    return sorted(groups.groups.values(), key=lambda g: (-g.bytes, -g.blocks, g.signature))

