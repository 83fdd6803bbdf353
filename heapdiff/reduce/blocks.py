"""The block store: dense rows (:data:`~heapdiff.reduce.tables.BLOCK_DTYPE`) under an open-addressing index.

Why not rows in the hash table's slots: a table kept at most half full, in powers of two, holds 2.7 to 5.3 slots
per live block, and growing it holds the old and the new table at once; with 64-byte rows that was ~8 times the
live rows' size. Here the index is 8 bytes a slot (the low 32 bits of the address's hash and the row), so its load
factor and its rebuilds cost little, and the rows are dense: memory goes with the live blocks.

* A probe compares the slot's hash bits first, so looking up an address that is not live (an Alloc's) reads no
  row, and a delete's backward shift finds each entry's home slot in the index alone.
* Rows are taken from a free list (last freed, first taken: its row is likely in cache) or from the end of the
  used rows, and given back when their block ends. A block ended by its heap's generation (a Destroy, a process
  end) keeps its row and slot until its key is used again or the index is rebuilt (:func:`index_rebuild`).
* At the end, the live rows are moved to the front in place (:func:`compact_rows`), sorted in place
  (:func:`permute_rows`), and the shell takes the columns out from the end while it shrinks the rows
  (:meth:`heapdiff.reduce.reducer.Reducer.finish`), so that rows and columns are never both whole.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from heapdiff._jit import njit
from heapdiff.reduce.tables import M_BLOCKS, M_FREE, M_FREE_ROWS, M_ROWS, Arr, hash2

_FP: Final = np.uint64(0xFFFFFFFF)


@njit(inline="always")
def block_fp(addr: Any) -> Any:
    """The low 32 bits of the address's hash: what an index slot keeps (blocks of other heaps at the same
    address share a probe run)."""
    return np.uint32(hash2(np.uint64(addr), np.uint64(addr)) & _FP)


@njit(inline="always")
def block_home(addr: Any, mask: int) -> int:
    """The home slot of an address in an index of ``mask + 1`` slots (so the fold can prefetch it ahead)."""
    return int(np.int64(block_fp(addr)) & mask)


@njit(inline="always")
def block_find(index: Arr, rows: Arr, hrec: Any, addr: Any) -> int:
    """Slot of key (hrec, addr), live or stale, or the empty slot where it would go (the index is never full)."""
    mask = index.shape[0] - 1
    fp = block_fp(addr)
    s = int(np.int64(fp) & mask)
    while True:
        r = index[s]["row"]
        if r < 0:
            return s
        if index[s]["fp"] == fp and rows[r]["addr"] == addr and rows[r]["hrec"] == hrec:
            return s
        s = (s + 1) & mask


@njit(inline="always")
def block_live(index: Arr, rows: Arr, s: int, heaps: Arr) -> bool:
    """Slot ``s`` (from :func:`block_find`) holds a block made live in its heap record's current generation."""
    r = index[s]["row"]
    return bool(r >= 0 and rows[r]["hgen"] == heaps[rows[r]["hrec"]]["gen"])


@njit(inline="always")
def index_delete(index: Arr, s: int) -> None:
    """Empty slot ``s`` by backward shift (no tombstones), each entry's home from its own hash bits."""
    mask = index.shape[0] - 1
    i = s
    j = s
    while True:
        j = (j + 1) & mask
        if index[j]["row"] < 0:
            break
        k = int(np.int64(index[j]["fp"]) & mask)
        if (j > i and (k <= i or k > j)) or (j < i and (k <= i and k > j)):
            index[i]["fp"] = index[j]["fp"]
            index[i]["row"] = index[j]["row"]
            i = j
    index[i]["row"] = -1


@njit(inline="always")
def row_take(rows: Arr, meta: Arr) -> int:
    """A row for a new block: the last freed, else the next never used (the caller checked there is one)."""
    r = meta[M_FREE]
    if r >= 0:
        meta[M_FREE] = rows[r]["serial"]
        meta[M_FREE_ROWS] -= 1
        return int(r)
    r = meta[M_ROWS]
    meta[M_ROWS] += 1
    return int(r)


@njit(inline="always")
def row_give(rows: Arr, r: Any, meta: Arr) -> None:
    rows[r]["hrec"] = -1
    rows[r]["serial"] = meta[M_FREE]
    meta[M_FREE] = r
    meta[M_FREE_ROWS] += 1


@njit(inline="always")
def rows_full(rows: Arr, meta: Arr) -> bool:
    """No row left for a new block."""
    return bool(meta[M_FREE] < 0 and meta[M_ROWS] >= rows.shape[0])


@njit(inline="always")
def slot_delete(index: Arr, rows: Arr, s: int, meta: Arr) -> None:
    """End slot ``s``'s entry: its row back to the free list, the slot emptied."""
    row_give(rows, index[s]["row"], meta)
    index_delete(index, s)
    meta[M_BLOCKS] -= 1


@njit()
def index_rebuild(old: Arr, rows: Arr, heaps: Arr, new: Arr, meta: Arr) -> int:
    """The entries of ``old`` whose block is live, placed in the empty index ``new`` by their hash bits; the rows
    of the stale ones go back to the free list. Returns the entries kept."""
    mask = new.shape[0] - 1
    n = 0
    for j in range(old.shape[0]):
        r = old[j]["row"]
        if r < 0:
            continue
        if rows[r]["hgen"] != heaps[rows[r]["hrec"]]["gen"]:
            row_give(rows, r, meta)
            continue
        s = int(np.int64(old[j]["fp"]) & mask)
        while new[s]["row"] >= 0:
            s = (s + 1) & mask
        new[s]["fp"] = old[j]["fp"]
        new[s]["row"] = r
        n += 1
    return n


@njit()
def compact_rows(rows: Arr, used: int, heaps: Arr, keep: Arr) -> int:
    """Move the rows of live blocks among ``rows[:used]`` to the front, in order; ``keep`` (boolean, or empty):
    only rows ``keep`` marks (their index, before the move). Returns how many."""
    w = 0
    by_mask = keep.shape[0] > 0
    for r in range(used):
        h = rows[r]["hrec"]
        if h < 0 or rows[r]["hgen"] != heaps[h]["gen"]:
            continue
        if by_mask and not keep[r]:
            continue
        if w != r:
            rows[w] = rows[r]
        w += 1
    return w


@njit()
def permute_rows(rows: Arr, order: Arr, spare: Arr) -> None:
    """``rows`` becomes ``rows[order]``, in place, cycle by cycle (``spare``: one row of scratch)."""
    n = rows.shape[0]
    done = np.zeros(n, np.bool_)
    for start in range(n):
        if done[start]:
            continue
        spare[0] = rows[start]
        j = start
        while True:
            done[j] = True
            k = order[j]
            if k == start:
                rows[j] = spare[0]
                break
            rows[j] = rows[k]
            j = k


@njit()
def end_rows(rows: Arr, dead: Arr, heaps: Arr, counts: Arr, k_without_stack: int) -> None:
    """Take the blocks of rows ``dead`` out of their heap records' counts (the overlap pass's losers; a stackless
    one counts as ``event_without_stack``, as any block that ends without its stack)."""
    for r in range(rows.shape[0]):
        if not dead[r]:
            continue
        h = rows[r]["hrec"]
        heaps[h]["blocks"] -= 1
        heaps[h]["bytes"] -= rows[r]["size"]
        if rows[r]["stack"] < 0:
            heaps[h]["nostack"] -= 1
            counts[k_without_stack] += 1
