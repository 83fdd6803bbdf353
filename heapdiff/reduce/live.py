"""The live blocks: what the reducer leaves at the end of a trace (or at ``stop_at``), as columns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sortedcontainers import SortedDict


@dataclass(frozen=True)
class LiveBlocks:
    """Blocks still live, one row each: process, heap handle, address, size, raw timestamp of the event that made
    it live, its source (notes 4.4) and its stack (a sequence id, a deferred reference or -1).

    From the reducer the rows are sorted by (pid, heap, addr), which the per-heap views (:meth:`heap_view`, built
    on demand, never on the per-event path) rely on; :meth:`take` keeps the order.
    """

    pid: npt.NDArray[np.int64]
    heap: npt.NDArray[np.uint64]
    addr: npt.NDArray[np.uint64]
    size: npt.NDArray[np.uint64]
    ts: npt.NDArray[np.int64]
    source: npt.NDArray[np.uint8]
    stack: npt.NDArray[np.int64]
    _ranges: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict, init=False, repr=False,
                                                            compare=False)
    _views: dict[tuple[int, int], SortedDict] = field(default_factory=dict, init=False, repr=False,
                                                      compare=False)

    def __len__(self) -> int:
        return int(self.pid.shape[0])

    def take(self, mask: np.ndarray) -> LiveBlocks:
        """The rows ``mask`` selects (a boolean mask or row indices), in their order."""
        return LiveBlocks(self.pid[mask], self.heap[mask], self.addr[mask], self.size[mask], self.ts[mask],
                          self.source[mask], self.stack[mask])

    def totals(self) -> tuple[int, int]:
        """(live blocks, live bytes), the bytes exact (:func:`exact_sums`)."""
        return len(self), exact_sums(self.size, np.zeros(len(self), np.int64), 1)[0]

    def by_pid(self) -> dict[int, tuple[int, int]]:
        """pid -> (live blocks, live bytes), the bytes exact (:func:`exact_sums`)."""
        if not len(self):
            return {}
        cut = np.flatnonzero(self.pid[1:] != self.pid[:-1]) + 1
        starts = np.concatenate(([0], cut))
        nblocks = np.diff(np.concatenate((starts, [len(self)])))
        nbytes = exact_sums(self.size, np.repeat(np.arange(starts.shape[0]), nblocks), int(starts.shape[0]))
        return {int(self.pid[s]): (int(k), b) for s, k, b in zip(starts, nblocks, nbytes, strict=True)}

    def heaps(self) -> list[tuple[int, int]]:
        """The (pid, heap) pairs with live blocks, in order."""
        return list(self._heap_ranges())

    def heap_rows(self, pid: int, heap: int) -> range:
        """Row indices of one heap's blocks (contiguous, address order)."""
        lo, hi = self._heap_ranges().get((pid, heap), (0, 0))
        return range(lo, hi)

    def heap_view(self, pid: int, heap: int) -> SortedDict:
        """address -> row index for one heap, as a SortedDict (built on first use, then cached)."""
        key = (pid, heap)
        view = self._views.get(key)
        if view is None:
            rows = self.heap_rows(pid, heap)
            view = SortedDict(zip(self.addr[rows.start:rows.stop].tolist(), rows, strict=True))
            self._views[key] = view
        return view

    def block_at(self, pid: int, heap: int, address: int) -> int | None:
        """Row of the live block of that heap whose [addr, addr + size) holds ``address``, if any."""
        view = self.heap_view(pid, heap)
        k = view.bisect_right(address)
        if k == 0:
            return None
        row: int = view.peekitem(k - 1)[1]
        return row if address < int(self.addr[row]) + max(int(self.size[row]), 1) else None

    def _heap_ranges(self) -> dict[tuple[int, int], tuple[int, int]]:
        if not self._ranges and len(self):
            cut = np.flatnonzero((self.pid[1:] != self.pid[:-1]) | (self.heap[1:] != self.heap[:-1])) + 1
            starts = np.concatenate(([0], cut)).tolist()
            ends = np.concatenate((cut, [len(self)])).tolist()
            for s, e in zip(starts, ends, strict=True):
                self._ranges[(int(self.pid[s]), int(self.heap[s]))] = (s, e)
        return self._ranges


_LOW32 = np.uint64(0xFFFFFFFF)


def exact_sums(sizes: npt.NDArray[np.uint64], group: npt.NDArray[np.int64], n: int) -> list[int]:
    """The sum of ``sizes`` per group (``group[i]`` in ``0..n-1``), as exact Python ints.

    Why not one numpy sum: sizes are unsigned 64-bit, so an int64 sum can turn negative and a uint64 one wraps;
    summed as their high and low 32-bit halves (each sum exact in int64 for fewer than 2**31 blocks) and put
    together in Python, no total wraps or goes negative, whatever the sizes."""
    sizes = np.asarray(sizes, np.uint64)
    high = np.zeros(n, np.int64)
    low = np.zeros(n, np.int64)
    np.add.at(high, group, (sizes >> np.uint64(32)).astype(np.int64))
    np.add.at(low, group, (sizes & _LOW32).astype(np.int64))
    return [(h << 32) + lo for h, lo in zip(high.tolist(), low.tolist(), strict=True)]
