"""Outstanding blocks grouped by call stack, and two such groupings compared.

Two traces are two runs: pids, heap handles, addresses and image bases all differ (ASLR). So a group is keyed by
its signature, the frames as `module+0xrva` strings (kernel frames left out unless asked), never by an address, and
the diff matches groups by signature alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from heapdiff.etl.reader import SequenceTable
from heapdiff.events.images import ImageMap

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


@dataclass(frozen=True)
class LiveColumns:
    """The outstanding blocks of a snapshot, as columns (any order)."""

    pid: np.ndarray
    heap: np.ndarray
    addr: np.ndarray
    size: np.ndarray
    ts: np.ndarray
    source: np.ndarray
    stack: np.ndarray

    def __len__(self) -> int:
        return int(self.pid.shape[0])

    def take(self, mask: np.ndarray) -> LiveColumns:
        return LiveColumns(self.pid[mask], self.heap[mask], self.addr[mask], self.size[mask], self.ts[mask],
                           self.source[mask], self.stack[mask])


@dataclass
class Grouping:
    groups: dict[tuple[str, ...], Group]
    frames: int = 0            # signature frames over all (pid, stack) pairs
    unresolved: int = 0        # of which not in any known image


def group_blocks(live: LiveColumns, sequences: SequenceTable, images: ImageMap, kernel_frames: bool) -> Grouping:
    """Group outstanding blocks by signature; aggregation is vectorised per (pid, stack) pair."""
    out = Grouping({})
    n = len(live)
    if not n:
        return out
    order = np.lexsort((live.addr, live.ts, live.stack, live.pid))  # per pair: oldest first
    pid = live.pid[order]
    stack = live.stack[order]
    size = live.size[order].astype(np.int64)
    ts = live.ts[order]
    heap = live.heap[order]
    src = live.source[order].astype(np.int64)
    addr = live.addr[order]
    cut = np.flatnonzero((pid[1:] != pid[:-1]) | (stack[1:] != stack[:-1])) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [n]))
    npairs = int(starts.shape[0])
    pair = np.repeat(np.arange(npairs), ends - starts)
    bytes_ = np.add.reduceat(size, starts)
    tmin = np.minimum.reduceat(ts, starts)
    tmax = np.maximum.reduceat(ts, starts)
    # per-pair counts in one pass each, not one numpy call per pair
    nsrc = int(src.max()) + 1
    src_counts = np.bincount(pair * nsrc + src, minlength=npairs * nsrc).reshape(npairs, nsrc)
    bucket = np.searchsorted(np.asarray(HIST_BOUNDS, np.int64), size, side="left")
    nb = len(HIST_LABELS)
    hist = np.bincount(pair * nb + bucket, minlength=npairs * nb).reshape(npairs, nb)
    ho = np.lexsort((heap, pair))
    hp, hh = pair[ho], heap[ho]
    first = np.ones(hp.shape[0], bool)
    first[1:] = (hp[1:] != hp[:-1]) | (hh[1:] != hh[:-1])
    heaps_of: dict[int, list[int]] = {}
    for pr, hv in zip(hp[first].tolist(), hh[first].tolist(), strict=True):
        heaps_of.setdefault(pr, []).append(hv)
    pair_pid = pid[starts].tolist()
    pair_sid = stack[starts].tolist()
    with_stack = [k for k in range(npairs) if pair_sid[k] >= 0]
    frames = {k: sequences.get(pair_sid[k]) for k in with_stack}
    names = images.frames_many([pair_pid[k] for k in with_stack], list(frames.values()),
                               [int(tmin[k]) for k in with_stack])
    resolved = dict(zip(with_stack, names, strict=True))
    samples: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    for k in range(npairs):
        s, e = int(starts[k]), int(ends[k])
        sig, display, nfr, nunres = _signature(resolved.get(k), frames.get(k), images.kernel_floor, kernel_frames)
        out.frames += nfr
        out.unresolved += nunres
        g = out.groups.get(sig)
        if g is None:
            g = Group(sig, display, group_module(sig))
            out.groups[sig] = g
        g.blocks += e - s
        g.bytes += int(bytes_[k])
        g.heaps.update(heaps_of.get(k, ()))
        row = src_counts[k]
        for i in np.flatnonzero(row).tolist():
            g.sources[i] += int(row[i])
        g.histogram += hist[k]
        g.first_ts = min(g.first_ts, int(tmin[k]))
        g.last_ts = max(g.last_ts, int(tmax[k]))
        oldest = min(e, s + SAMPLE_ADDRESSES)
        # (ts, address) of the group's oldest blocks so far: each pair's rows come oldest first
        kept = sorted(samples.get(sig, []) + list(zip(ts[s:oldest].tolist(), addr[s:oldest].tolist(), strict=True)))
        samples[sig] = kept[:SAMPLE_ADDRESSES]
    for sig, g in out.groups.items():
        g.sample_addresses = [a for _, a in samples[sig]]
    return out


def _signature(names: list[str] | None, addrs: np.ndarray | None, kernel_floor: int,
               kernel_frames: bool) -> tuple[tuple[str, ...], tuple[str, ...], int, int]:
    """(signature, display frames, signature frames, unresolved signature frames) of a resolved stack."""
    if names is None or addrs is None:
        return (), (), 0, 0
    kernel = addrs >= np.uint64(kernel_floor)
    if not kernel.any():  # a user stack (most of them): signature and display are the frames as they are
        sig = display = tuple(names)
    else:
        kern = kernel.tolist()
        display = tuple(("[k] " if k else "") + fr for fr, k in zip(names, kern, strict=True))
        sig = tuple(fr for fr, k in zip(names, kern, strict=True) if kernel_frames or not k)
    unresolved = sum(1 for fr in sig if fr.startswith("0x"))
    return sig, display, len(sig), unresolved


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
    sigs = set(before.groups) | set(after.groups)
    rows = [DiffRow(s, before.groups.get(s), after.groups.get(s)) for s in sigs]
    rows.sort(key=lambda r: (-r.delta_bytes, -r.delta_blocks, r.signature))
    return rows


def sort_single(groups: Grouping) -> list[Group]:
    return sorted(groups.groups.values(), key=lambda g: (-g.bytes, -g.blocks, g.signature))

