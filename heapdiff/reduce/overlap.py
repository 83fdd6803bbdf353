"""The overlap pass at the end of a trace: a live block overlapped by a younger live block of its heap lost its Free.

The live blocks sorted by (pid, heap, address) are compared with their neighbours (O(n)), and only the runs of
mutually overlapping blocks (usually none) go through an O(k log k) kernel that marks every block overlapped by a
younger one, however many younger blocks one old block covers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from heapdiff._jit import njit

Arr = npt.NDArray[Any]

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_UMAX = np.uint64(0xFFFFFFFFFFFFFFFF)


def find_overlaps(cols: Mapping[str, Arr]) -> npt.NDArray[np.bool_]:
    """Which live blocks (sorted by pid, heap, addr) overlap a younger one of their heap (ts, then serial).

    A neighbour pass finds the runs of overlapping blocks (usually none); only their members are ranked by age
    and go through the segment-tree kernel.
    """
    n = cols["addr"].shape[0]
    dead = np.zeros(n, np.bool_)
    if n < 2:
        return dead
    newgrp = np.empty(n, np.bool_)
    newgrp[0] = True
    newgrp[1:] = (cols["pid"][1:] != cols["pid"][:-1]) | (cols["heap"][1:] != cols["heap"][:-1])
    grp = np.cumsum(newgrp)
    end = np.empty(n, np.uint64)
    _extent_end(cols["addr"], cols["size"], end)
    member = np.zeros(n, np.bool_)
    if not _overlap_runs(grp, cols["addr"], end, member):
        return dead
    idx = np.flatnonzero(member)
    age = np.empty(idx.shape[0], np.int64)
    age[np.lexsort((cols["serial"][idx], cols["ts"][idx]))] = np.arange(idx.shape[0])
    sub = np.zeros(idx.shape[0], np.bool_)
    _overlap_losers(grp[idx], cols["addr"][idx], end[idx], age, sub)
    dead[idx[sub]] = True
    return dead


@njit()
def _overlap_runs(grp: Arr, start: Arr, end: Arr, member: Arr) -> int:
    """Mark the blocks in runs of overlapping blocks. Input sorted by (grp, start); O(n). Returns how many.

    A run is a maximal stretch of a heap where each block starts before the furthest end reached so far; only
    its members can overlap anything, and never anything outside their run.
    """
    n = grp.shape[0]
    k = 0
    reach = _U0
    for i in range(n):
        if i > 0 and grp[i] == grp[i - 1] and start[i] < reach:
            if not member[i - 1]:
                member[i - 1] = True
                k += 1
            member[i] = True
            k += 1
            if end[i] > reach:
                reach = end[i]
        else:
            reach = end[i]
    return k


@njit()
def _overlap_losers(grp: Arr, start: Arr, end: Arr, age: Arr, dead: Arr) -> None:
    """``dead[x]`` = block x overlaps a younger block of its heap. Input sorted by (grp, start); O(n log n).

    x overlaps exactly the blocks y > x with start[y] < end[x] (a contiguous range after x, found by binary
    search) and the blocks y < x whose range covers x. The first is a range-max query of age over (x, last];
    the second a range "chmax" update of age[y] over y's range with a point query at x: two bottom-up segment
    trees, so one old block covering many younger ones costs O(log n), not O(its coverage), per block.
    """
    n = grp.shape[0]
    size = 1
    while size < n:
        size *= 2
    qt = np.full(2 * size, -1, np.int64)     # range-max over ages
    ut = np.full(2 * size, -1, np.int64)     # chmax updates from earlier, covering blocks
    for x in range(n):
        qt[size + x] = age[x]
    for v in range(size - 1, 0, -1):
        qt[v] = max(qt[2 * v], qt[2 * v + 1])
    gend = np.empty(n, np.int64)             # one past the last index of x's group
    e = n
    for x in range(n - 1, -1, -1):
        if x < n - 1 and grp[x] != grp[x + 1]:
            e = x + 1
        gend[x] = e
    for x in range(n):
        lo = x + 1
        hi = gend[x]
        while lo < hi:                       # first y in (x, gend) with start[y] >= end[x]
            mid = (lo + hi) // 2
            if start[mid] < end[x]:
                lo = mid + 1
            else:
                hi = mid
        last = lo - 1
        if last <= x:
            continue
        # query max age over [x+1, last]
        best = np.int64(-1)
        a = x + 1 + size
        b = last + 1 + size
        while a < b:
            if a & 1:
                best = max(best, qt[a])
                a += 1
            if b & 1:
                b -= 1
                best = max(best, qt[b])
            a //= 2
            b //= 2
        if best > age[x]:
            dead[x] = True
        # chmax age[x] over [x+1, last]
        a = x + 1 + size
        b = last + 1 + size
        while a < b:
            if a & 1:
                ut[a] = max(ut[a], age[x])
                a += 1
            if b & 1:
                b -= 1
                ut[b] = max(ut[b], age[x])
            a //= 2
            b //= 2
    for y in range(n):
        v = size + y
        best = np.int64(-1)
        while v >= 1:
            best = max(best, ut[v])
            v //= 2
        if best > age[y]:
            dead[y] = True


@njit()
def _extent_end(addr: Arr, size: Arr, out: Arr) -> None:
    """End of [addr, addr + max(size, 1)), saturated: a block occupies at least its first byte."""
    for i in range(addr.shape[0]):
        sz = size[i] if size[i] > _U0 else _U1
        out[i] = addr[i] + sz if sz <= _UMAX - addr[i] else _UMAX
