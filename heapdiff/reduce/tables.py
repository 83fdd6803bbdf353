"""The reducer's state: open-addressing tables, the one probe, delete and rehash most of them use, and the
making of a heap record (with its pid record) on first sight.

Every table is a numpy structured array of a power-of-two size, probed linearly. A table is described to the
routines here by its columns (field views of the array): ``used`` (< 0: an empty slot), the match key ``ka, kb``
(two columns, or one given twice) and the hash key ``hx, hy`` the home slot is computed from (likewise). The
routines are generic over the tables by numba's specialisation on the column types, so each table is compiled
with its own field offsets, and written once.

* **blocks**: dense rows (:data:`BLOCK_DTYPE`: heap record, address, size, ts, source, serial, stack and the
  *generation* of its heap record when it was made live; 49 bytes, packed) under an index of 8-byte slots
  (:data:`BLOCK_INDEX_DTYPE`: the address's hash bits and the row), so that memory goes with the live blocks, not
  with the index's load factor (:mod:`heapdiff.reduce.blocks`). The home slot is a hash of the address alone, so
  the fold can compute the slot of an op some ops ahead and prefetch it (:data:`PREFETCH_AHEAD`).
* **pending** (:data:`PENDING_DTYPE`): serial -> (heap record, address) of the blocks still waiting for a stack.
* **threads** (:data:`THREAD_DTYPE`): (pid, tid) -> the thread's previous heap op and the pid epoch it was
  written in.
* **heap records** (:data:`HEAP_DTYPE`, a dense array: blocks and threads name a heap by its position) and their
  index (:data:`HEAP_INDEX_DTYPE`): (pid, heap handle) -> heap record. A heap record holds its generation, live
  blocks, live bytes, live blocks still without a stack, and the next heap record of the same pid.
* **pid records** (:data:`PID_DTYPE`, dense) and their index (:data:`PID_INDEX_DTYPE`): pid -> its first heap
  record and an *epoch* for the per-thread state.

Block index slots and pending entries are deleted by backward shift (no tombstones); the others only grow. A table
is rehashed into a new one (larger, or the same size without its stale entries) by :func:`rehash` (the block
index by :func:`heapdiff.reduce.blocks.index_rebuild`).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from heapdiff._jit import JIT_ENABLED, njit, wrapping_mul

Arr = npt.NDArray[Any]

# meta array: table occupancies
M_BLOCKS: Final = 0      # occupied block index slots (live + stale)
M_PENDING: Final = 1     # occupied pending slots (waiting + stale)
M_THREADS: Final = 2     # occupied thread slots
M_HEAPS: Final = 3       # heap records
M_PIDS: Final = 4        # pid records
M_ROWS: Final = 5        # block rows ever used: rows[:M_ROWS] are live, stale or free
M_FREE: Final = 6        # the first free block row (-1: none); a free row's ``serial`` is the next
M_FREE_ROWS: Final = 7   # free block rows
N_META: Final = 8

# per-thread previous heap op
T_OTHER: Final = 0
T_ALLOC: Final = 1       # an Alloc at (hrec, addr) with serial
T_PAIR: Final = 2        # a ReAlloc of the Alloc+ReAlloc+Free form; addr = its old address

#: a block row; ``hrec`` < 0: a free row. ``hgen`` is 32-bit, as the heap records' ``gen``: they wrap alike
BLOCK_DTYPE: Final = np.dtype([("hrec", "i4"), ("hgen", "i4"), ("addr", "u8"), ("size", "u8"), ("ts", "i8"),
                               ("serial", "i8"), ("stack", "i8"), ("source", "u1")])
#: a block index slot: the low 32 bits of the address's hash (the home slot is their low bits) and the row
BLOCK_INDEX_DTYPE: Final = np.dtype([("fp", "u4"), ("row", "i4")])
PENDING_DTYPE: Final = np.dtype([("serial", "i8"), ("hrec", "i8"), ("addr", "u8")])
THREAD_DTYPE: Final = np.dtype([("pid", "i8"), ("tid", "i8"), ("prec", "i8"), ("epoch", "i8"), ("kind", "i8"),
                                ("hrec", "i8"), ("addr", "u8"), ("serial", "i8")])
HEAP_DTYPE: Final = np.dtype([("pid", "i8"), ("heap", "u8"), ("prec", "i8"), ("next", "i8"), ("gen", "i4"),
                              ("_pad", "i4"), ("blocks", "i8"), ("bytes", "u8"), ("nostack", "i8")])
HEAP_INDEX_DTYPE: Final = np.dtype([("pid", "i8"), ("heap", "u8"), ("hrec", "i8")])
PID_DTYPE: Final = np.dtype([("pid", "i8"), ("first", "i8"), ("epoch", "i8")])
PID_INDEX_DTYPE: Final = np.dtype([("pid", "i8"), ("prec", "i8")])
#: each table's ``used`` column (< 0: an empty slot)
USED: Final = {BLOCK_DTYPE: "hrec", BLOCK_INDEX_DTYPE: "row", PENDING_DTYPE: "hrec", THREAD_DTYPE: "prec",
               HEAP_INDEX_DTYPE: "hrec", PID_INDEX_DTYPE: "prec"}

#: how many ops ahead the fold prefetches a block index slot (a wide range of distances measures alike)
PREFETCH_AHEAD: Final = 12 if JIT_ENABLED else 0

_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xBF58476D1CE4E5B9)
_K3 = np.uint64(0x94D049BB133111EB)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_U0 = np.uint64(0)


def empty_table(dtype: np.dtype[Any], cap: int) -> Arr:
    """A table of ``cap`` empty slots."""
    t = np.zeros(cap, dtype)
    t[USED[dtype]] = -1
    return t


@njit(inline="always")
def hash2(a: Any, b: Any) -> Any:
    """splitmix64 finaliser of two uint64 words (addresses are 16-aligned: their low bits alone cluster); its
    products wrap on purpose."""
    h = wrapping_mul(a, _K1) ^ b
    h = wrapping_mul(h ^ (h >> _S30), _K2)
    h = wrapping_mul(h ^ (h >> _S27), _K3)
    return h ^ (h >> _S31)


@njit(inline="always")
def home(x: Any, y: Any, mask: int) -> int:
    """The home slot of hash key (x, y) in a table of ``mask + 1`` slots."""
    return int(np.int64(hash2(np.uint64(x), np.uint64(y)) & np.uint64(mask)))


@njit(inline="always")
def find(used: Arr, ka: Arr, kb: Arr, a: Any, b: Any, s: int) -> int:
    """From home slot ``s``: the slot of key (a, b), or the empty slot where it would go (never full)."""
    mask = used.shape[0] - 1
    while used[s] >= 0 and not (ka[s] == a and kb[s] == b):
        s = (s + 1) & mask
    return s


@njit(inline="always")
def delete(table: Arr, used: Arr, hx: Arr, hy: Arr, s: int) -> None:
    """Empty slot ``s`` by backward shift: the later entries of its probe run move up, so no tombstones."""
    mask = used.shape[0] - 1
    i = s
    j = s
    while True:
        j = (j + 1) & mask
        if used[j] < 0:
            break
        k = home(hx[j], hy[j], mask)
        if (j > i and (k <= i or k > j)) or (j < i and (k <= i and k > j)):
            table[i] = table[j]
            i = j
    used[i] = -1


@njit()
def rehash(old: Arr, keep: Arr, hx: Arr, hy: Arr, new: Arr, new_used: Arr) -> int:
    """Copy the entries ``keep`` of ``old`` (hash key columns ``hx, hy``) into the empty table ``new``; returns
    how many."""
    mask = new.shape[0] - 1
    n = 0
    for j in range(old.shape[0]):
        if keep[j]:
            s = home(hx[j], hy[j], mask)
            while new_used[s] >= 0:
                s = (s + 1) & mask
            new[s] = old[j]
            n += 1
    return n


# -- each table's key, in the terms above ---------------------------------------------------------------------

@njit(inline="always")
def pending_find(pend: Arr, serial: Any) -> int:
    serials = pend["serial"]
    return find(pend["hrec"], serials, serials, serial, serial, home(serial, serial, serials.shape[0] - 1))


@njit(inline="always")
def pending_delete(pend: Arr, s: int) -> None:
    delete(pend, pend["hrec"], pend["serial"], pend["serial"], s)


@njit(inline="always")
def thread_find(threads: Arr, pid: Any, tid: Any) -> int:
    pids, tids = threads["pid"], threads["tid"]
    return find(threads["prec"], pids, tids, pid, tid, home(pid, tid, pids.shape[0] - 1))


@njit(inline="always")
def heap_index_find(hidx: Arr, pid: Any, heap: Any) -> int:
    pids, heaps = hidx["pid"], hidx["heap"]
    return find(hidx["hrec"], pids, heaps, pid, heap, home(pid, heap, pids.shape[0] - 1))


@njit(inline="always")
def pid_index_find(pidx: Arr, pid: Any) -> int:
    pids = pidx["pid"]
    return find(pidx["prec"], pids, pids, pid, pid, home(pid, pid, pids.shape[0] - 1))


@njit(inline="always")
def heap_get(hidx: Arr, heaps: Arr, pidx: Arr, pids: Arr, meta: Arr, pid: Any, heap: Any, create: bool) -> int:
    """Heap record of (pid, heap), created (with its pid record) if asked; -1 if absent and not created."""
    s = heap_index_find(hidx, pid, heap)
    r = np.int64(hidx[s]["hrec"])
    if r >= 0 or not create:
        return int(r)
    ps = pid_index_find(pidx, pid)
    pr = np.int64(pidx[ps]["prec"])
    if pr < 0:
        pr = meta[M_PIDS]
        meta[M_PIDS] += 1
        pids[pr]["pid"] = pid
        pids[pr]["first"] = -1
        pids[pr]["epoch"] = 0
        pidx[ps]["pid"] = pid
        pidx[ps]["prec"] = pr
    r = meta[M_HEAPS]
    meta[M_HEAPS] += 1
    heaps[r]["pid"] = pid
    heaps[r]["heap"] = heap
    heaps[r]["prec"] = pr
    heaps[r]["next"] = pids[pr]["first"]
    heaps[r]["gen"] = 0
    heaps[r]["blocks"] = 0
    heaps[r]["bytes"] = _U0
    heaps[r]["nostack"] = 0
    pids[pr]["first"] = r
    hidx[s]["pid"] = pid
    hidx[s]["heap"] = heap
    hidx[s]["hrec"] = r
    return int(r)


#: per table dtype, the (hx, hy) hash key columns :func:`rehash` places entries by
HASH_KEY: Final = {PENDING_DTYPE: ("serial", "serial"), THREAD_DTYPE: ("pid", "tid"),
                   HEAP_INDEX_DTYPE: ("pid", "heap"), PID_INDEX_DTYPE: ("pid", "pid")}


def rehashed(old: Arr, keep: Arr, cap: int) -> tuple[Arr, int]:
    """A new table of ``cap`` slots holding the entries ``keep`` of ``old``, and how many they are."""
    new = empty_table(old.dtype, cap)
    hx, hy = HASH_KEY[old.dtype]
    return new, int(rehash(old, keep, old[hx], old[hy], new, new[USED[new.dtype]]))
