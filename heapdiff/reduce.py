"""The reducer: time-ordered heap events folded into the blocks still live, with every misfit counted.

Why it looks like this: a trace holds tens of millions of heap events, so the fold is one JIT-compiled loop
over columnar batches (:class:`OpBatch`) and its memory is bounded by the live blocks (plus threads and
heaps), never by the number of events. The same kernels run as plain Python when numba is absent or
``HEAPDIFF_NO_JIT=1`` (:mod:`heapdiff._jit`), with identical results, so every kernel is written in the numba
subset: numpy arrays and scalars, explicit ``np.int64``/``np.uint64`` wherever signed and unsigned meet.

State (all numpy, open addressing with linear probing, power-of-two sizes):

* **blocks**: key (heap record, address) -> size, ts, tid, source, serial, stack and the *generation* of its
  heap record when it was made live. 64-byte records, so a probe costs one cache line. A block ended by an
  event (Free, ReAlloc, Alloc over it, Attach bookkeeping) is deleted at once by backward-shift deletion.
  The home slot is a hash of the address alone (blocks of other heaps at the same address just share a probe
  run), so the kernel can compute the slot of the op :data:`PREFETCH_AHEAD` ops ahead and prefetch it: with
  ~100k live blocks the table is several MB, and without the prefetch most ops waited for one memory round
  trip (measured on the 10M benchmark trace: 9.5 M ops in 1.44-1.52 s without, 0.89-0.93 s with).
* **heap records**: one per (pid, heap handle) ever used by an Alloc/ReAlloc (a dense array plus a hash
  index): generation, live blocks, live bytes, live blocks still without a stack, and a link to the next heap
  record of the same pid.
* **pid records**: one per pid: the first heap record of the pid's list and an *epoch* for the per-thread
  state.

Destroy / Create / process end never scan the block table. A block is live only while its recorded generation
equals its heap record's generation, so HeapDestroy (and a HeapCreate over a heap with live blocks: a lost
Destroy) just bumps the generation and zeroes the heap's aggregates, which already hold what the event ends
(its block and byte counts, and how many of them never got a stack). A process end walks the pid's list of
heap records (a few per process) and does the same to each, then bumps the pid's epoch, which retires the
per-thread state of that process. The entries this leaves behind are stale: a later Alloc of the same key
reuses the slot, lookups treat them as absent, and the next rehash drops them. The rehash is driven by
occupancy (live + stale): before each kernel call Python makes sure the block and pending tables stay at most
half full even if every Alloc/ReAlloc of the batch adds a block; when that fails it rebuilds the table without
its stale entries, into a larger power of two if what is live still needs it (the load after a rebuild stays
under 3/8, so one-op batches do not rebuild on every call).

The Alloc + ReAlloc + Free form needs to know each thread's previous heap operation: a small table keyed by
(pid, tid) holds it (kind, heap record, address, serial and the pid epoch it was written in). Stacks arrive as
ATTACH ops naming the serial of their event; a pending table serial -> (heap record, address) holds only
blocks still waiting for a stack (deleted when the block gets one or ends; entries of blocks ended by Destroy
or process end are stale and dropped at rehash), so it is bounded by live blocks too.

The small tables (threads, heap records, pids) cannot be sized from the batch without wasting memory, so the
kernel stops before an op that could need a new entry in a full one and returns its index; Python grows that
table and calls again from there.

Overlap is checked once, at :meth:`Reducer.finish`: the live blocks sorted by (pid, heap, address) are
compared with their neighbours (O(n)), and only the runs of mutually overlapping blocks go through an
O(k log k) kernel that ends every block overlapped by a younger one (a lost Free), however many younger blocks
one old block covers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
from sortedcontainers import SortedDict

from heapdiff._jit import JIT_ENABLED, borrow, njit, prefetch

# the op codes and the columnar batch are declared by the events layer that produces them
from heapdiff.events.ops import (
    OP_ALLOC,
    OP_ATTACH,
    OP_CREATE,
    OP_DESTROY,
    OP_FREE,
    OP_PROCESS_END,
    OP_REALLOC,
    OpBatch,
)

__all__ = ["OP_ALLOC", "OP_ATTACH", "OP_CREATE", "OP_DESTROY", "OP_FREE", "OP_PROCESS_END", "OP_REALLOC",
           "OpBatch", "Reducer", "Snapshot"]

# anomaly counters (index into the counts array) and their names
K_UNMATCHED_FREES: Final = 0
K_ALLOC_OVER_LIVE: Final = 1
K_UNMATCHED_REALLOC: Final = 2
K_REALLOC_PAIR_FREE: Final = 3
K_CREATE_OVER_LIVE_HEAP: Final = 4
K_FREED_BY_PROCESS_END: Final = 5
K_EVENT_WITHOUT_STACK: Final = 6
K_ORPHAN_STACK: Final = 7
K_OVERLAP: Final = 8
K_UNKNOWN_OP: Final = 9
ANOMALY_NAMES: Final = ("unmatched_frees", "alloc_over_live", "unmatched_realloc", "realloc_pair_free",
                        "create_over_live_heap", "freed_by_process_end", "event_without_stack",
                        "orphan_stack", "overlap", "unknown_op")

# meta array: table occupancies
M_BLOCKS: Final = 0      # occupied block slots (live + stale)
M_PENDING: Final = 1     # occupied pending slots (waiting + stale)
M_THREADS: Final = 2     # occupied thread slots
M_HEAPS: Final = 3       # heap records
M_PIDS: Final = 4        # pid records
N_META: Final = 5

# per-thread previous heap op
T_OTHER: Final = 0
T_ALLOC: Final = 1       # an Alloc at (hrec, addr) with serial
T_PAIR: Final = 2        # a ReAlloc of the Alloc+ReAlloc+Free form; addr = its old address

BLOCK_DTYPE: Final = np.dtype([("hrec", "i4"), ("source", "u1"), ("_pad1", "u1"), ("_pad2", "u2"),
                               ("hgen", "i8"), ("addr", "u8"), ("size", "u8"), ("ts", "i8"), ("tid", "i8"),
                               ("serial", "i8"), ("stack", "i8")])
PENDING_DTYPE: Final = np.dtype([("serial", "i8"), ("hrec", "i8"), ("addr", "u8")])
THREAD_DTYPE: Final = np.dtype([("pid", "i8"), ("tid", "i8"), ("prec", "i8"), ("epoch", "i8"), ("kind", "i8"),
                                ("hrec", "i8"), ("addr", "u8"), ("serial", "i8")])
HEAP_DTYPE: Final = np.dtype([("pid", "i8"), ("heap", "u8"), ("prec", "i8"), ("next", "i8"), ("gen", "i8"),
                              ("blocks", "i8"), ("bytes", "u8"), ("nostack", "i8")])
PID_DTYPE: Final = np.dtype([("pid", "i8"), ("first", "i8"), ("epoch", "i8")])

_INT64_MAX: Final = (1 << 63) - 1
#: how many ops ahead the kernel prefetches a block slot (4 to 16 measured alike; 24 and more were slower)
PREFETCH_AHEAD: Final = 12 if JIT_ENABLED else 0
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xBF58476D1CE4E5B9)
_K3 = np.uint64(0x94D049BB133111EB)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_UMAX = np.uint64(0xFFFFFFFFFFFFFFFF)

Arr = npt.NDArray[Any]


# ---------------------------------------------------------------------------------------------------- kernels


@njit(inline="always")
def _hash2(a: Any, b: Any) -> Any:
    """splitmix64 finaliser of two uint64 words (addresses are 16-aligned: their low bits alone cluster)."""
    h = (a * _K1) ^ b
    h = (h ^ (h >> _S30)) * _K2
    h = (h ^ (h >> _S27)) * _K3
    return h ^ (h >> _S31)


@njit(inline="always")
def _block_home(hrec: Any, addr: Any, mask: int) -> int:
    return int(np.int64(_hash2(addr, _U0) & np.uint64(mask)))


@njit(inline="always")
def _block_find(blocks: Arr, hrec: Any, addr: Any) -> int:
    """Slot of key (hrec, addr), live or stale, or the empty slot where it would go."""
    mask = blocks.shape[0] - 1
    s = _block_home(hrec, addr, mask)
    while True:
        h = blocks[s]["hrec"]
        if h < 0 or (h == hrec and blocks[s]["addr"] == addr):
            return int(s)
        s = (s + 1) & mask


@njit(inline="always")
def _block_live(blocks: Arr, s: int, hrec: Any, addr: Any, heaps: Arr) -> bool:
    return bool(blocks[s]["hrec"] == hrec and blocks[s]["addr"] == addr
                and blocks[s]["hgen"] == heaps[hrec]["gen"])


@njit(inline="always")
def _block_delete(blocks: Arr, s: int, meta: Arr) -> None:
    """Backward-shift deletion: later entries of the probe run move up, so no tombstones are ever needed."""
    mask = blocks.shape[0] - 1
    i = s
    j = s
    while True:
        j = (j + 1) & mask
        if blocks[j]["hrec"] < 0:
            break
        k = _block_home(blocks[j]["hrec"], blocks[j]["addr"], mask)
        if (j > i and (k <= i or k > j)) or (j < i and (k <= i and k > j)):
            blocks[i] = blocks[j]
            i = j
    blocks[i]["hrec"] = -1
    meta[M_BLOCKS] -= 1


@njit(inline="always")
def _pend_home(serial: Any, mask: int) -> int:
    return int(np.int64(_hash2(np.uint64(serial), _U1) & np.uint64(mask)))


@njit(inline="always")
def _pend_find(pend: Arr, serial: Any) -> int:
    mask = pend.shape[0] - 1
    s = _pend_home(serial, mask)
    while True:
        if pend[s]["hrec"] < 0 or pend[s]["serial"] == serial:
            return int(s)
        s = (s + 1) & mask


@njit(inline="always")
def _pend_delete(pend: Arr, s: int, meta: Arr) -> None:
    mask = pend.shape[0] - 1
    i = s
    j = s
    while True:
        j = (j + 1) & mask
        if pend[j]["hrec"] < 0:
            break
        k = _pend_home(pend[j]["serial"], mask)
        if (j > i and (k <= i or k > j)) or (j < i and (k <= i and k > j)):
            pend[i] = pend[j]
            i = j
    pend[i]["hrec"] = -1
    meta[M_PENDING] -= 1


@njit(inline="always")
def _pend_insert(pend: Arr, serial: Any, hrec: Any, addr: Any, meta: Arr) -> None:
    s = _pend_find(pend, serial)
    if pend[s]["hrec"] < 0:
        meta[M_PENDING] += 1
    pend[s]["serial"] = serial
    pend[s]["hrec"] = hrec
    pend[s]["addr"] = addr


@njit(inline="always")
def _block_end(blocks: Arr, s: int, heaps: Arr, pend: Arr, meta: Arr, counts: Arr,
               count_no_stack: bool) -> None:
    """End the live block in slot ``s``: aggregates down, its pending stack entry gone, its slot freed."""
    hrec = np.int64(blocks[s]["hrec"])
    heaps[hrec]["blocks"] -= 1
    heaps[hrec]["bytes"] -= blocks[s]["size"]
    if blocks[s]["stack"] < 0:
        heaps[hrec]["nostack"] -= 1
        if count_no_stack:
            counts[K_EVENT_WITHOUT_STACK] += 1
        ps = _pend_find(pend, blocks[s]["serial"])
        if pend[ps]["hrec"] == hrec and pend[ps]["addr"] == blocks[s]["addr"]:  # (not if serials repeat)
            _pend_delete(pend, ps, meta)
    _block_delete(blocks, s, meta)


@njit(inline="always")
def _block_insert(blocks: Arr, s: int, heaps: Arr, pend: Arr, meta: Arr, hrec: Any, addr: Any, size: Any,
                  ts: Any, tid: Any, source: Any, serial: Any, stack: Any) -> None:
    """Make (hrec, addr) live in slot ``s`` with its stack, or waiting for it when ``stack`` < 0.

    The events layer puts the stack on the Alloc/ReAlloc op itself when its walk came in the same batch (the
    common case): no pending entry, no ATTACH op, a third fewer ops for this kernel.

    ``s`` is what :func:`_block_find` gave once any live block there was ended (the caller's find is reused
    when nothing was ended: one probe per Alloc, not two).
    """
    if blocks[s]["hrec"] < 0:
        meta[M_BLOCKS] += 1
    blocks[s]["hrec"] = np.int32(hrec)
    blocks[s]["addr"] = addr
    blocks[s]["hgen"] = heaps[hrec]["gen"]
    blocks[s]["size"] = size
    blocks[s]["ts"] = ts
    blocks[s]["tid"] = tid
    blocks[s]["source"] = source
    blocks[s]["serial"] = serial
    heaps[hrec]["blocks"] += 1
    heaps[hrec]["bytes"] += size
    if stack >= 0:
        blocks[s]["stack"] = stack
    else:
        blocks[s]["stack"] = -1
        heaps[hrec]["nostack"] += 1
        _pend_insert(pend, serial, hrec, addr, meta)


@njit(inline="always")
def _heap_clear(heaps: Arr, hrec: Any, counts: Arr) -> None:
    """End every block of a heap record at once: bump its generation (its blocks become stale)."""
    counts[K_EVENT_WITHOUT_STACK] += heaps[hrec]["nostack"]
    heaps[hrec]["gen"] += 1
    heaps[hrec]["blocks"] = 0
    heaps[hrec]["bytes"] = _U0
    heaps[hrec]["nostack"] = 0


@njit(inline="always")
def _pid_find(pidx: Arr, pids: Arr, pid: Any) -> int:
    """Slot in the pid index of ``pid`` (holds its record id) or the empty slot where it would go."""
    mask = pidx.shape[0] - 1
    s = np.int64(_hash2(np.uint64(pid), _U0) & np.uint64(mask))
    while True:
        r = pidx[s]
        if r < 0 or pids[r]["pid"] == pid:
            return int(s)
        s = (s + 1) & mask


@njit(inline="always")
def _heap_find(hidx: Arr, heaps: Arr, pid: Any, heap: Any) -> int:
    mask = hidx.shape[0] - 1
    s = np.int64(_hash2(np.uint64(pid), heap) & np.uint64(mask))
    while True:
        r = hidx[s]
        if r < 0 or (heaps[r]["pid"] == pid and heaps[r]["heap"] == heap):
            return int(s)
        s = (s + 1) & mask


@njit(inline="always")
def _heap_get(hidx: Arr, heaps: Arr, pidx: Arr, pids: Arr, meta: Arr, pid: Any, heap: Any,
              create: bool) -> int:
    """Heap record of (pid, heap), created (with its pid record) if asked; -1 if absent and not created."""
    s = _heap_find(hidx, heaps, pid, heap)
    r = np.int64(hidx[s])
    if r >= 0 or not create:
        return int(r)
    ps = _pid_find(pidx, pids, pid)
    pr = np.int64(pidx[ps])
    if pr < 0:
        pr = meta[M_PIDS]
        meta[M_PIDS] += 1
        pids[pr]["pid"] = pid
        pids[pr]["first"] = -1
        pids[pr]["epoch"] = 0
        pidx[ps] = pr
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
    hidx[s] = r
    return int(r)


@njit(inline="always")
def _thread_find(threads: Arr, pid: Any, tid: Any) -> int:
    mask = threads.shape[0] - 1
    s = np.int64(_hash2(np.uint64(pid), np.uint64(tid)) & np.uint64(mask))
    while True:
        if threads[s]["prec"] < 0 or (threads[s]["pid"] == pid and threads[s]["tid"] == tid):
            return int(s)
        s = (s + 1) & mask


@njit(inline="always")
def _attach(pend: Arr, blocks: Arr, heaps: Arr, meta: Arr, counts: Arr, serial: Any, stack: Any,
            quiet: bool) -> None:
    """Give the block made live by event ``serial`` its stack, if it is live and still waiting; else orphan.

    ``quiet``: the Attach is past ``stop_at``, so its event may have been ignored: attach if possible, never
    count.
    """
    if stack < 0:
        if not quiet:
            counts[K_ORPHAN_STACK] += 1
        return
    ps = _pend_find(pend, serial)
    if pend[ps]["hrec"] >= 0:
        hrec = pend[ps]["hrec"]
        addr = pend[ps]["addr"]
        _pend_delete(pend, ps, meta)
        s = _block_find(blocks, hrec, addr)
        if (_block_live(blocks, s, hrec, addr, heaps) and blocks[s]["serial"] == serial
                and blocks[s]["stack"] < 0):
            blocks[s]["stack"] = stack
            heaps[hrec]["nostack"] -= 1
            return
    if not quiet:
        counts[K_ORPHAN_STACK] += 1


@njit()
def _reduce_kernel(op: Arr, ts: Arr, pid: Arr, tid: Arr, serial: Arr, heap: Arr, addr: Arr, size: Arr,
                   old_addr: Arr, source: Arr, stack: Arr, start: int, end: int, stop_at: int,
                   blocks: Arr, pend: Arr, threads: Arr, hidx: Arr, heaps: Arr, pidx: Arr, pids: Arr,
                   meta: Arr, counts: Arr, ahead: int) -> int:
    """Fold ops ``start:end`` into the tables. Returns the index of the first op not done (``end`` if all).

    Before an op that may add entries (Alloc, ReAlloc) it checks that no table is half full (live + stale
    entries), else returns that op's index: Python rebuilds or grows the table and calls again. So a probe
    always finds an empty slot, and the table never holds more than half its slots.
    """
    # every array borrowed (no reference counting in the loop: see heapdiff._jit.borrow); 0.92-1.15 s ->
    # 0.77-0.90 s for the 9.5 M ops of the 10M benchmark trace, measured alternately
    op, ts, pid, tid, serial = borrow(op), borrow(ts), borrow(pid), borrow(tid), borrow(serial)
    heap, addr, size, old_addr = borrow(heap), borrow(addr), borrow(size), borrow(old_addr)
    source, stack = borrow(source), borrow(stack)
    blocks, pend, threads, hidx, heaps = borrow(blocks), borrow(pend), borrow(threads), borrow(hidx), borrow(heaps)
    pidx, pids, meta, counts = borrow(pidx), borrow(pids), borrow(meta), borrow(counts)
    n = end
    bmax = blocks.shape[0] // 2
    pmax = pend.shape[0] // 2
    tmax = threads.shape[0] // 2
    hmax = min(hidx.shape[0] // 2, heaps.shape[0])
    pidmax = min(pidx.shape[0] // 2, pids.shape[0])
    c_pid = np.int64(0)
    c_heap = np.uint64(0)
    c_hrec = np.int64(-1)           # cache of the last (pid, heap) -> heap record
    c_tpid = np.int64(0)
    c_tid = np.int64(0)
    c_tslot = np.int64(-1)          # cache of the last (pid, tid) -> existing thread slot
    i = start
    bmask = blocks.shape[0] - 1
    while i < n:
        if ahead and i + ahead < n:
            k = i + ahead
            prefetch(blocks, _block_home(0, addr[k], bmask))
            if op[k] == OP_REALLOC:
                prefetch(blocks, _block_home(0, old_addr[k], bmask))
        o = op[i]
        if ts[i] > stop_at:
            if o == OP_ATTACH:
                _attach(pend, blocks, heaps, meta, counts, serial[i], stack[i], True)
            i += 1
            continue
        if o == OP_ATTACH:
            _attach(pend, blocks, heaps, meta, counts, serial[i], stack[i], False)
            i += 1
            continue
        if o == OP_PROCESS_END:
            ps = _pid_find(pidx, pids, pid[i])
            pr = pidx[ps]
            if pr >= 0:
                ended = np.int64(0)
                r = pids[pr]["first"]
                while r >= 0:
                    if heaps[r]["blocks"] > 0:
                        ended += heaps[r]["blocks"]
                        _heap_clear(heaps, r, counts)
                    r = heaps[r]["next"]
                counts[K_FREED_BY_PROCESS_END] += ended
                pids[pr]["epoch"] += 1
            i += 1
            continue
        if o < OP_ALLOC or o > OP_DESTROY:
            counts[K_UNKNOWN_OP] += 1
            i += 1
            continue
        p = pid[i]
        hp = heap[i]
        t = tid[i]
        creates = (o == OP_ALLOC) | (o == OP_REALLOC)
        if creates and (meta[M_BLOCKS] >= bmax or meta[M_PENDING] >= pmax or meta[M_THREADS] >= tmax
                        or meta[M_HEAPS] >= hmax or meta[M_PIDS] >= pidmax):
            return i
        # heap record (created for Alloc/ReAlloc only)
        if c_hrec >= 0 and p == c_pid and hp == c_heap:
            hrec = c_hrec
        else:
            hrec = np.int64(_heap_get(hidx, heaps, pidx, pids, meta, p, hp, creates))
            if hrec >= 0:
                c_pid = p
                c_heap = hp
                c_hrec = hrec
        # this thread's previous heap op (valid only in the pid's current epoch)
        if c_tslot >= 0 and p == c_tpid and t == c_tid:
            tslot = c_tslot
        else:
            tslot = np.int64(_thread_find(threads, p, t))
            if threads[tslot]["prec"] >= 0:
                c_tpid = p
                c_tid = t
                c_tslot = tslot
        tkind = T_OTHER
        if threads[tslot]["prec"] >= 0 and threads[tslot]["epoch"] == pids[threads[tslot]["prec"]]["epoch"]:
            tkind = threads[tslot]["kind"]
        a = addr[i]
        if o == OP_ALLOC:
            s = _block_find(blocks, hrec, a)
            if _block_live(blocks, s, hrec, a, heaps):
                counts[K_ALLOC_OVER_LIVE] += 1
                _block_end(blocks, s, heaps, pend, meta, counts, True)
                s = _block_find(blocks, hrec, a)
            _block_insert(blocks, s, heaps, pend, meta, hrec, a, size[i], ts[i], t, source[i], serial[i], stack[i])
            if threads[tslot]["prec"] < 0:
                meta[M_THREADS] += 1
                threads[tslot]["pid"] = p
                threads[tslot]["tid"] = t
                c_tpid = p
                c_tid = t
                c_tslot = tslot
            pr = heaps[hrec]["prec"]
            threads[tslot]["prec"] = pr
            threads[tslot]["epoch"] = pids[pr]["epoch"]
            threads[tslot]["kind"] = T_ALLOC
            threads[tslot]["hrec"] = hrec
            threads[tslot]["addr"] = a
            threads[tslot]["serial"] = serial[i]
        elif o == OP_REALLOC:
            old = old_addr[i]
            form = tkind == T_ALLOC and threads[tslot]["hrec"] == hrec and threads[tslot]["addr"] == a
            fser = threads[tslot]["serial"] if form else np.int64(-1)
            s = _block_find(blocks, hrec, old)
            if _block_live(blocks, s, hrec, old, heaps):
                _block_end(blocks, s, heaps, pend, meta, counts, not (form and blocks[s]["serial"] == fser))
            else:
                counts[K_UNMATCHED_REALLOC] += 1
            if a != old:
                s = _block_find(blocks, hrec, a)
                if _block_live(blocks, s, hrec, a, heaps):
                    if form and blocks[s]["serial"] == fser:
                        _block_end(blocks, s, heaps, pend, meta, counts, False)
                    else:
                        counts[K_ALLOC_OVER_LIVE] += 1
                        _block_end(blocks, s, heaps, pend, meta, counts, True)
            _block_insert(blocks, _block_find(blocks, hrec, a), heaps, pend, meta, hrec, a, size[i], ts[i], t,
                          source[i], serial[i], stack[i])
            if form:
                threads[tslot]["kind"] = T_PAIR
                threads[tslot]["addr"] = old
            elif threads[tslot]["prec"] >= 0:
                threads[tslot]["kind"] = T_OTHER
        elif o == OP_FREE:
            done = False
            if hrec >= 0:
                s = _block_find(blocks, hrec, a)
                if _block_live(blocks, s, hrec, a, heaps):
                    _block_end(blocks, s, heaps, pend, meta, counts, True)
                    done = True
            if not done:
                if (hrec >= 0 and tkind == T_PAIR and threads[tslot]["hrec"] == hrec
                        and threads[tslot]["addr"] == a):
                    counts[K_REALLOC_PAIR_FREE] += 1
                else:
                    counts[K_UNMATCHED_FREES] += 1
            if threads[tslot]["prec"] >= 0:
                threads[tslot]["kind"] = T_OTHER
        else:  # OP_CREATE / OP_DESTROY
            if hrec >= 0 and heaps[hrec]["blocks"] > 0:
                if o == OP_CREATE:
                    counts[K_CREATE_OVER_LIVE_HEAP] += 1
                _heap_clear(heaps, hrec, counts)
            if threads[tslot]["prec"] >= 0:
                threads[tslot]["kind"] = T_OTHER
        i += 1
    return int(n)


@njit()
def _rehash_blocks(old: Arr, new: Arr, heaps: Arr) -> int:
    """Copy live blocks of ``old`` into the empty table ``new``, dropping stale ones. Returns how many."""
    mask = new.shape[0] - 1
    n = 0
    for j in range(old.shape[0]):
        h = old[j]["hrec"]
        if h >= 0 and old[j]["hgen"] == heaps[h]["gen"]:
            s = _block_home(h, old[j]["addr"], mask)
            while new[s]["hrec"] >= 0:
                s = (s + 1) & mask
            new[s] = old[j]
            n += 1
    return n


@njit()
def _rehash_pending(old: Arr, new: Arr, blocks: Arr, heaps: Arr) -> int:
    """Copy the entries whose block is still live and waiting for its stack; drop the stale ones."""
    mask = new.shape[0] - 1
    n = 0
    for j in range(old.shape[0]):
        h = old[j]["hrec"]
        if h < 0:
            continue
        a = old[j]["addr"]
        b = _block_find(blocks, h, a)
        if not (_block_live(blocks, b, h, a, heaps) and blocks[b]["serial"] == old[j]["serial"]
                and blocks[b]["stack"] < 0):
            continue
        s = _pend_home(old[j]["serial"], mask)
        while new[s]["hrec"] >= 0:
            s = (s + 1) & mask
        new[s] = old[j]
        n += 1
    return n


@njit()
def _rehash_threads(old: Arr, new: Arr, pids: Arr) -> int:
    """Copy the thread entries of processes still in the epoch they were written in."""
    mask = new.shape[0] - 1
    n = 0
    for j in range(old.shape[0]):
        pr = old[j]["prec"]
        if pr < 0 or old[j]["epoch"] != pids[pr]["epoch"]:
            continue
        s = np.int64(_hash2(np.uint64(old[j]["pid"]), np.uint64(old[j]["tid"])) & np.uint64(mask))
        while new[s]["prec"] >= 0:
            s = (s + 1) & mask
        new[s] = old[j]
        n += 1
    return n


@njit()
def _rebuild_heap_index(hidx: Arr, heaps: Arr, n: int) -> None:
    mask = hidx.shape[0] - 1
    for r in range(n):
        s = np.int64(_hash2(np.uint64(heaps[r]["pid"]), heaps[r]["heap"]) & np.uint64(mask))
        while hidx[s] >= 0:
            s = (s + 1) & mask
        hidx[s] = r


@njit()
def _rebuild_pid_index(pidx: Arr, pids: Arr, n: int) -> None:
    mask = pidx.shape[0] - 1
    for r in range(n):
        s = np.int64(_hash2(np.uint64(pids[r]["pid"]), _U0) & np.uint64(mask))
        while pidx[s] >= 0:
            s = (s + 1) & mask
        pidx[s] = r


@njit()
def _end_blocks(blocks: Arr, heaps: Arr, pend: Arr, meta: Arr, counts: Arr, hrec: Arr, addr: Arr) -> None:
    """End the given live blocks (the overlap check's losers)."""
    for k in range(hrec.shape[0]):
        s = _block_find(blocks, hrec[k], addr[k])
        _block_end(blocks, s, heaps, pend, meta, counts, True)


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
        e = addr[i] + sz
        out[i] = e if e > addr[i] else _UMAX


# --------------------------------------------------------------------------------------------------- snapshot


SNAPSHOT_COLUMNS: Final = ("pid", "heap", "addr", "size", "ts", "tid", "source", "serial", "stack")


@dataclass(frozen=True)
class Snapshot:
    """The live blocks at the end of the trace (or at ``stop_at``), sorted by (pid, heap, addr).

    Per-heap address-ordered views (:meth:`heap_view`) are built on demand, never on the per-event path.
    """

    pid: npt.NDArray[np.int64]
    heap: npt.NDArray[np.uint64]
    addr: npt.NDArray[np.uint64]
    size: npt.NDArray[np.uint64]
    ts: npt.NDArray[np.int64]
    tid: npt.NDArray[np.int64]
    source: npt.NDArray[np.uint8]
    serial: npt.NDArray[np.int64]
    stack: npt.NDArray[np.int64]
    _ranges: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict, init=False, repr=False,
                                                            compare=False)
    _views: dict[tuple[int, int], SortedDict] = field(default_factory=dict, init=False, repr=False,
                                                      compare=False)

    def __len__(self) -> int:
        return int(self.pid.shape[0])

    def totals(self) -> tuple[int, int]:
        """(live blocks, live bytes)."""
        return len(self), int(self.size.sum(dtype=np.uint64))

    def by_pid(self) -> dict[int, tuple[int, int]]:
        """pid -> (live blocks, live bytes)."""
        if not len(self):
            return {}
        cut = np.flatnonzero(self.pid[1:] != self.pid[:-1]) + 1
        starts = np.concatenate(([0], cut))
        nblocks = np.diff(np.concatenate((starts, [len(self)])))
        nbytes = np.add.reduceat(self.size, starts, dtype=np.uint64)
        return {int(self.pid[s]): (int(k), int(b)) for s, k, b in zip(starts, nblocks, nbytes, strict=True)}

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


# ---------------------------------------------------------------------------------------------------- reducer


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _empty_table(dtype: np.dtype[Any], cap: int, empty_field: str) -> Arr:
    t = np.zeros(cap, dtype)
    t[empty_field] = -1
    return t


@contextlib.contextmanager
def _quiet_overflow() -> Iterator[None]:
    """Uncompiled, the kernels' uint64 hashing overflows numpy scalars on purpose (it wraps, as compiled)."""
    if JIT_ENABLED:
        yield
    else:
        with np.errstate(over="ignore"):
            yield


class Reducer:
    """Folds op batches (:meth:`feed`) into the live blocks; see the module docstring for the design.

    :meth:`finish` ends the trace, :meth:`snapshot` gives the live blocks; :attr:`anomalies`,
    :attr:`live_blocks` and :attr:`live_bytes` can be read at any time (``rehashes`` counts table rebuilds).

    ``stop_at``: ops with ``ts > stop_at`` are ignored (a snapshot at that time), except that an ATTACH past
    it still gives a stack to a block that is live and waiting for one (its event was not past ``stop_at``;
    stack records follow their event and may be resolved late); it is never counted as an orphan, since its
    event may be one of the ignored ones.
    """

    #: initial slots of the block and pending tables, and of the thread / heap / pid indexes (powers of two,
    #: >= 2; tests shrink them to exercise every growth path)
    BLOCK_SLOTS: ClassVar[int] = 1 << 12
    SMALL_SLOTS: ClassVar[int] = 64

    def __init__(self, stop_at: int | None = None) -> None:
        self.ahead = PREFETCH_AHEAD  # a benchmark may set 0 to measure the kernel without prefetching
        self.stop_at = stop_at
        self._stop = _INT64_MAX if stop_at is None else max(-_INT64_MAX - 1, min(int(stop_at), _INT64_MAX))
        big, small = self.BLOCK_SLOTS, self.SMALL_SLOTS
        self._blocks = _empty_table(BLOCK_DTYPE, big, "hrec")
        self._pend = _empty_table(PENDING_DTYPE, big, "hrec")
        self._threads = _empty_table(THREAD_DTYPE, small, "prec")
        self._hidx = np.full(small, -1, np.int64)
        self._heaps = np.zeros(small // 2, HEAP_DTYPE)
        self._pidx = np.full(small, -1, np.int64)
        self._pids = np.zeros(small // 2, PID_DTYPE)
        self._meta = np.zeros(N_META, np.int64)
        self._counts = np.zeros(len(ANOMALY_NAMES), np.int64)
        self._snapshot: Snapshot | None = None
        self.rehashes = 0

    # -- feeding

    def feed(self, ops: OpBatch) -> None:
        """Fold one batch (the next ops in time order)."""
        if self._snapshot is not None:
            raise RuntimeError("Reducer.feed after finish()")
        n = len(ops)
        if not n:
            return
        # inserts[k]: Alloc/ReAlloc ops in ops[:k + 1], each of which may add one block and one pending entry
        inserts = np.cumsum((ops.op == OP_ALLOC) | (ops.op == OP_REALLOC), dtype=np.int64)
        i = 0
        with _quiet_overflow():
            while i < n:
                self._reserve(int(inserts[-1]) - (int(inserts[i - 1]) if i else 0))
                j = _reduce_kernel(ops.op, ops.ts, ops.pid, ops.tid, ops.serial, ops.heap, ops.addr, ops.size,
                                   ops.old_addr, ops.source, ops.stack, i, n, self._stop,
                                   self._blocks, self._pend, self._threads, self._hidx, self._heaps,
                                   self._pidx, self._pids, self._meta, self._counts, self.ahead)
                if j == i:  # pragma: no cover - _reserve always leaves room for the op the kernel stopped at
                    raise AssertionError("reducer kernel made no progress")
                i = int(j)

    def _reserve(self, inserts: int) -> None:
        """Make room before a kernel call that has ``inserts`` Alloc/ReAlloc ops left to fold.

        The block and pending tables stay at most half full (live + stale entries): when the room left is
        less than ``inserts`` and less than 1/8 of the table, the table is rebuilt without its stale entries,
        doubled until what is live fits under 3/8, so the call can take at least 1/8 of the table's slots (or
        all it needs) before the kernel's own half-full check stops it. The tables are thus sized by the live
        blocks, never by the batch: a batch that frees as much as it allocates runs in one call, in a small
        table. The thread, heap and pid tables get room for one more entry each.
        """
        m = self._meta
        if self._blocks.shape[0] // 2 - int(m[M_BLOCKS]) < min(inserts, max(1, self._blocks.shape[0] // 8)):
            cap = self._grown(self._blocks.shape[0], self.live_blocks)
            new = _empty_table(BLOCK_DTYPE, cap, "hrec")
            m[M_BLOCKS] = _rehash_blocks(self._blocks, new, self._heaps)
            self._blocks = new
            self.rehashes += 1
        if self._pend.shape[0] // 2 - int(m[M_PENDING]) < min(inserts, max(1, self._pend.shape[0] // 8)):
            waiting = int(self._heaps["nostack"][: m[M_HEAPS]].sum())
            cap = self._grown(self._pend.shape[0], waiting)
            newp = _empty_table(PENDING_DTYPE, cap, "hrec")
            m[M_PENDING] = _rehash_pending(self._pend, newp, self._blocks, self._heaps)
            self._pend = newp
            self.rehashes += 1
        if m[M_THREADS] >= self._threads.shape[0] // 2:
            newt = _empty_table(THREAD_DTYPE, self._threads.shape[0], "prec")
            kept = _rehash_threads(self._threads, newt, self._pids)
            if (kept + 1) * 4 > newt.shape[0]:
                newt = _empty_table(THREAD_DTYPE, self._grown(self._threads.shape[0], kept + 1), "prec")
                kept = _rehash_threads(self._threads, newt, self._pids)
            m[M_THREADS] = kept
            self._threads = newt
        nh = int(m[M_HEAPS])
        if nh >= min(self._hidx.shape[0] // 2, self._heaps.shape[0]):
            heaps = np.zeros(2 * self._heaps.shape[0], HEAP_DTYPE)
            heaps[:nh] = self._heaps[:nh]
            self._heaps = heaps
            self._hidx = np.full(2 * self._hidx.shape[0], -1, np.int64)
            _rebuild_heap_index(self._hidx, self._heaps, nh)
        npid = int(m[M_PIDS])
        if npid >= min(self._pidx.shape[0] // 2, self._pids.shape[0]):
            pids = np.zeros(2 * self._pids.shape[0], PID_DTYPE)
            pids[:npid] = self._pids[:npid]
            self._pids = pids
            self._pidx = np.full(2 * self._pidx.shape[0], -1, np.int64)
            _rebuild_pid_index(self._pidx, self._pids, npid)

    @staticmethod
    def _grown(cap: int, need: int) -> int:
        """A capacity keeping ``need`` entries under 3/8 load: a rebuild leaves room for >= cap/8 inserts."""
        while need * 8 > cap * 3:
            cap *= 2
        return cap

    # -- the end

    def finish(self) -> None:
        """End of trace: end the blocks overlapped by younger ones, count the stackless, freeze the snapshot.

        Idempotent; :meth:`feed` is refused afterwards.
        """
        if self._snapshot is not None:
            return
        with _quiet_overflow():
            cols = self._live_columns()
            dead = _find_overlaps(cols)
            if dead.any():
                self._counts[K_OVERLAP] += int(dead.sum())
                _end_blocks(self._blocks, self._heaps, self._pend, self._meta, self._counts,
                            cols["hrec"][dead], cols["addr"][dead])
                keep = ~dead
                cols = {k: v[keep] for k, v in cols.items()}
        nh = int(self._meta[M_HEAPS])
        self._counts[K_EVENT_WITHOUT_STACK] += int(self._heaps["nostack"][:nh].sum())
        self._snapshot = Snapshot(**{name: cols[name] for name in SNAPSHOT_COLUMNS})

    def snapshot(self) -> Snapshot:
        """The live blocks at the end (calls :meth:`finish` if it was not called yet)."""
        self.finish()
        assert self._snapshot is not None
        return self._snapshot

    def _live_columns(self) -> dict[str, Arr]:
        """The live blocks as columns sorted by (pid, heap, addr) (vectorised over the table)."""
        b = self._blocks
        h = b["hrec"].astype(np.int64)
        used = h >= 0
        hh = np.where(used, h, 0)
        live = used & (b["hgen"] == self._heaps["gen"][hh])
        rows = b[live]
        hrec = rows["hrec"].astype(np.int64)
        pid = self._heaps["pid"][hrec]
        heap = self._heaps["heap"][hrec]
        order = np.lexsort((rows["addr"], heap, pid))
        rows = rows[order]
        cols = {name: np.ascontiguousarray(rows[name])
                for name in ("addr", "size", "ts", "tid", "source", "serial", "stack")}
        cols.update(hrec=hrec[order], pid=pid[order], heap=heap[order])
        return cols

    # -- results

    @property
    def anomalies(self) -> dict[str, int]:
        """Kind -> count, non-zero kinds only."""
        return {name: int(c) for name, c in zip(ANOMALY_NAMES, self._counts.tolist(), strict=True) if c}

    @property
    def live_blocks(self) -> int:
        return int(self._heaps["blocks"][: self._meta[M_HEAPS]].sum())

    @property
    def live_bytes(self) -> int:
        return sum(self._heaps["bytes"][: self._meta[M_HEAPS]].tolist())


def _find_overlaps(cols: Mapping[str, Arr]) -> npt.NDArray[np.bool_]:
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


__all__ = ["ANOMALY_NAMES", "OP_ALLOC", "OP_ATTACH", "OP_CREATE", "OP_DESTROY", "OP_FREE", "OP_PROCESS_END",
           "OP_REALLOC", "OpBatch", "Reducer", "Snapshot"]

