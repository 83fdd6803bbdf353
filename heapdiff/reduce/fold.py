"""The fold: time-ordered heap ops into the live-block tables (:mod:`heapdiff.reduce.tables`), every misfit counted.

Why a JIT kernel: a trace holds tens of millions of heap ops, so the fold is one compiled loop over columnar batches
(:class:`~heapdiff.events.ops.OpBatch`); the same code runs as plain Python when numba is absent or
``HEAPDIFF_NO_JIT=1`` (:mod:`heapdiff._jit`), with identical results, so it is written in the numba subset: numpy
arrays and scalars, explicit ``np.int64``/``np.uint64`` wherever signed and unsigned meet.

The rules:

* **Alloc** makes (heap record, address) live; an Alloc over a live block ends it first (``alloc_over_live``).
* **ReAlloc** ends the old address's block (``unmatched_realloc`` if none) and makes the new one live. The Alloc +
  ReAlloc + Free form (an Alloc of the new address, the ReAlloc, a Free of the old one, by one thread) is
  recognised from the thread's previous op, so its parts are not counted as misfits (``realloc_pair_free``).
* **Free** ends the block (``unmatched_frees`` if there is none).
* **Destroy** (and a **Create** over a heap with live blocks: a lost Destroy, ``create_over_live_heap``) ends every
  block of the heap at once by bumping its heap record's *generation*: a block is live only while its recorded
  generation is its heap record's, so nothing is scanned. **Process end** does the same to each heap record of
  the pid (a few) and bumps the pid's *epoch*, which retires the per-thread state of the process
  (``freed_by_process_end``). The entries this leaves behind are stale: a later Alloc of the same key reuses the
  slot, lookups treat them as absent, and the next rehash drops them.
* **Attach** gives a block waiting for its stack (made live by event ``serial``) the stack; otherwise it is an
  ``orphan_stack``. The events layer puts the stack on the Alloc/ReAlloc op itself when its walk came in the
  same batch (the common case): no pending entry, no Attach. A block that ends or stays live without a stack
  counts as ``event_without_stack``.

Before an op (but an Attach) whose time passes the timeline's next point, the kernel samples what each process
holds (:mod:`heapdiff.reduce.timeline`): the timeline costs two comparisons per op (that and the latest time).

Blocks live in the block store (:mod:`heapdiff.reduce.blocks`: dense rows under an index). Before an op that may
add entries (Alloc, ReAlloc) the kernel checks that no table is half full (live + stale entries) and that a block
row is left, else returns that op's index: the shell (:class:`~heapdiff.reduce.reducer.Reducer`) rebuilds or grows
the table and calls again from there. So a probe always finds an empty slot.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from heapdiff._jit import borrow, njit, prefetch
from heapdiff.events.ops import OP_ALLOC, OP_ATTACH, OP_CREATE, OP_DESTROY, OP_FREE, OP_PROCESS_END, OP_REALLOC
from heapdiff.reduce.blocks import (
    block_find,
    block_fp,
    block_home,
    block_live,
    row_take,
    rows_full,
    slot_delete,
)
from heapdiff.reduce.tables import (
    M_BLOCKS,
    M_HEAPS,
    M_PENDING,
    M_PIDS,
    M_THREADS,
    T_ALLOC,
    T_OTHER,
    T_PAIR,
    Arr,
    heap_get,
    pending_delete,
    pending_find,
    pid_index_find,
    thread_find,
)
from heapdiff.reduce.timeline import G_LAST, G_NEXT_T, advance

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

_U0 = np.uint64(0)


@njit(inline="always")
def _block_end(index: Arr, rows: Arr, s: int, heaps: Arr, pend: Arr, meta: Arr, counts: Arr,
               count_no_stack: bool) -> None:
    """End the live block in slot ``s``: aggregates down, its pending stack entry gone, its slot and row freed."""
    r = index[s]["row"]
    hrec = np.int64(rows[r]["hrec"])
    heaps[hrec]["blocks"] -= 1
    heaps[hrec]["bytes"] -= rows[r]["size"]
    if rows[r]["stack"] < 0:
        heaps[hrec]["nostack"] -= 1
        if count_no_stack:
            counts[K_EVENT_WITHOUT_STACK] += 1
        ps = pending_find(pend, rows[r]["serial"])
        if pend[ps]["hrec"] == hrec and pend[ps]["addr"] == rows[r]["addr"]:  # (not if serials repeat)
            pending_delete(pend, ps)
            meta[M_PENDING] -= 1
    slot_delete(index, rows, s, meta)


@njit(inline="always")
def _block_insert(index: Arr, rows: Arr, s: int, heaps: Arr, pend: Arr, meta: Arr, hrec: Any, addr: Any,
                  size: Any, ts: Any, source: Any, serial: Any, stack: Any) -> None:
    """Make (hrec, addr) live in slot ``s`` with its stack, or waiting for it when ``stack`` < 0.

    ``s`` is what :func:`~heapdiff.reduce.blocks.block_find` gave once any live block there was ended (the
    caller's find is reused when nothing was ended: one probe per Alloc, not two); a stale entry of the key
    there gives its row.
    """
    r = index[s]["row"]
    if r < 0:
        r = row_take(rows, meta)
        index[s]["fp"] = block_fp(addr)
        index[s]["row"] = r
        meta[M_BLOCKS] += 1
    rows[r]["hrec"] = np.int32(hrec)
    rows[r]["addr"] = addr
    rows[r]["hgen"] = heaps[hrec]["gen"]
    rows[r]["size"] = size
    rows[r]["ts"] = ts
    rows[r]["source"] = source
    rows[r]["serial"] = serial
    heaps[hrec]["blocks"] += 1
    heaps[hrec]["bytes"] += size
    if stack >= 0:
        rows[r]["stack"] = stack
        return
    rows[r]["stack"] = -1
    heaps[hrec]["nostack"] += 1
    ps = pending_find(pend, serial)
    if pend[ps]["hrec"] < 0:
        meta[M_PENDING] += 1
    pend[ps]["serial"] = serial
    pend[ps]["hrec"] = hrec
    pend[ps]["addr"] = addr


@njit(inline="always")
def _heap_clear(heaps: Arr, hrec: Any, counts: Arr) -> None:
    """End every block of a heap record at once: bump its generation (its blocks become stale)."""
    counts[K_EVENT_WITHOUT_STACK] += heaps[hrec]["nostack"]
    heaps[hrec]["gen"] += 1
    heaps[hrec]["blocks"] = 0
    heaps[hrec]["bytes"] = _U0
    heaps[hrec]["nostack"] = 0


@njit(inline="always")
def _process_end(pidx: Arr, pids: Arr, heaps: Arr, counts: Arr, pid: Any) -> None:
    """End every block of the process (each of its heap records) and retire its threads' state (a new epoch)."""
    pr = pidx[pid_index_find(pidx, pid)]["prec"]
    if pr < 0:
        return
    ended = np.int64(0)
    r = pids[pr]["first"]
    while r >= 0:
        if heaps[r]["blocks"] > 0:
            ended += heaps[r]["blocks"]
            _heap_clear(heaps, r, counts)
        r = heaps[r]["next"]
    counts[K_FREED_BY_PROCESS_END] += ended
    pids[pr]["epoch"] += 1


@njit(inline="always")
def _attach(pend: Arr, index: Arr, rows: Arr, heaps: Arr, meta: Arr, counts: Arr, serial: Any, stack: Any,
            quiet: bool) -> None:
    """Give the block made live by event ``serial`` its stack, if it is live and still waiting; else orphan.

    ``quiet``: the Attach is past ``stop_at``, so its event may have been ignored: attach if possible, never
    count.
    """
    if stack >= 0:
        ps = pending_find(pend, serial)
        if pend[ps]["hrec"] >= 0:
            hrec = pend[ps]["hrec"]
            addr = pend[ps]["addr"]
            pending_delete(pend, ps)
            meta[M_PENDING] -= 1
            s = block_find(index, rows, hrec, addr)
            if block_live(index, rows, s, heaps):
                r = index[s]["row"]
                if rows[r]["serial"] == serial and rows[r]["stack"] < 0:
                    rows[r]["stack"] = stack
                    heaps[hrec]["nostack"] -= 1
                    return
    if not quiet:
        counts[K_ORPHAN_STACK] += 1


@njit(inline="always")
def _realloc(index: Arr, rows: Arr, heaps: Arr, pend: Arr, meta: Arr, counts: Arr, hrec: Any, new: Any,
             old: Any, form: bool, form_serial: Any, size: Any, ts: Any, source: Any, serial: Any,
             stack: Any) -> None:
    """A ReAlloc from ``old`` to ``new``; ``form``: it is the middle of an Alloc + ReAlloc + Free form whose Alloc
    (of ``new``) had serial ``form_serial``, so ending that block is no misfit."""
    s = block_find(index, rows, hrec, old)
    if block_live(index, rows, s, heaps):
        was_form = form and rows[index[s]["row"]]["serial"] == form_serial
        _block_end(index, rows, s, heaps, pend, meta, counts, not was_form)
    else:
        counts[K_UNMATCHED_REALLOC] += 1
    if new != old:
        s = block_find(index, rows, hrec, new)
        if block_live(index, rows, s, heaps):
            if form and rows[index[s]["row"]]["serial"] == form_serial:
                _block_end(index, rows, s, heaps, pend, meta, counts, False)
            else:
                counts[K_ALLOC_OVER_LIVE] += 1
                _block_end(index, rows, s, heaps, pend, meta, counts, True)
    _block_insert(index, rows, block_find(index, rows, hrec, new), heaps, pend, meta, hrec, new, size, ts, source,
                  serial, stack)


@njit()
def fold_kernel(op: Arr, ts: Arr, pid: Arr, tid: Arr, serial: Arr, heap: Arr, addr: Arr, size: Arr,
                old_addr: Arr, source: Arr, stack: Arr, start: int, end: int, stop_at: int,
                index: Arr, rows: Arr, pend: Arr, threads: Arr, hidx: Arr, heaps: Arr, pidx: Arr, pids: Arr,
                meta: Arr, counts: Arr, ahead: int, grid: Arr, tl_last: Arr, tl_scratch: Arr, tl_rec: Arr) -> int:
    """Fold ops ``start:end`` into the tables, sampling the timeline (:mod:`heapdiff.reduce.timeline`: ``grid``
    and the ``tl_`` arrays) before each op that passes its next point. Returns the index of the first op not
    done (``end`` if all).

    Long because it is the per-op loop: the lookups every op shares (its heap record, its thread's previous op,
    each with a one-entry cache) and the prefetch stay in one compiled loop; the rules are the helpers above.
    """
    # every array borrowed: no reference counting in the loop (heapdiff._jit.borrow)
    (op, ts, pid, tid, serial, heap, addr, size, old_addr, source, stack, index, rows, pend, threads, hidx, heaps,
     pidx, pids, meta, counts) = borrow((
        op, ts, pid, tid, serial, heap, addr, size, old_addr, source, stack, index, rows, pend, threads, hidx, heaps,
        pidx, pids, meta, counts))
    (grid, tl_last, tl_scratch, tl_rec) = borrow((grid, tl_last, tl_scratch, tl_rec))
    next_t = grid[G_NEXT_T]         # the timeline's next point: an op past it samples first
    last_t = grid[G_LAST]
    n = end
    bmax = index.shape[0] // 2
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
    bmask = index.shape[0] - 1
    while i < n:
        if ahead and i + ahead < n:
            k = i + ahead
            prefetch(index, block_home(addr[k], bmask))
            if op[k] == OP_REALLOC:
                prefetch(index, block_home(old_addr[k], bmask))
            # half as far ahead, the slot is in cache: the row of a Free's (or ReAlloc's old) block too
            k2 = i + (ahead >> 1)
            if op[k2] == OP_FREE or op[k2] == OP_REALLOC:
                r2 = index[block_home(addr[k2] if op[k2] == OP_FREE else old_addr[k2], bmask)]["row"]
                if r2 >= 0:
                    prefetch(rows, r2)
        o = op[i]
        if ts[i] > stop_at:
            if o == OP_ATTACH:
                _attach(pend, index, rows, heaps, meta, counts, serial[i], stack[i], True)
            i += 1
            continue
        if o == OP_ATTACH:
            _attach(pend, index, rows, heaps, meta, counts, serial[i], stack[i], False)
            i += 1
            continue
        if ts[i] > next_t:
            if not advance(ts[i], grid, heaps, meta, tl_last, tl_scratch, tl_rec):
                grid[G_LAST] = last_t
                return i
            next_t = grid[G_NEXT_T]
        if ts[i] > last_t:
            last_t = ts[i]
        if o == OP_PROCESS_END:
            _process_end(pidx, pids, heaps, counts, pid[i])
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
                        or meta[M_HEAPS] >= hmax or meta[M_PIDS] >= pidmax or rows_full(rows, meta)):
            grid[G_LAST] = last_t
            return i
        # heap record (created for Alloc/ReAlloc only)
        if c_hrec >= 0 and p == c_pid and hp == c_heap:
            hrec = c_hrec
        else:
            hrec = np.int64(heap_get(hidx, heaps, pidx, pids, meta, p, hp, creates))
            if hrec >= 0:
                c_pid = p
                c_heap = hp
                c_hrec = hrec
        # this thread's previous heap op (valid only in the pid's current epoch)
        if c_tslot >= 0 and p == c_tpid and t == c_tid:
            tslot = c_tslot
        else:
            tslot = np.int64(thread_find(threads, p, t))
            if threads[tslot]["prec"] >= 0:
                c_tpid = p
                c_tid = t
                c_tslot = tslot
        known = threads[tslot]["prec"] >= 0
        tkind = T_OTHER
        if known and threads[tslot]["epoch"] == pids[threads[tslot]["prec"]]["epoch"]:
            tkind = threads[tslot]["kind"]
        a = addr[i]
        if o == OP_ALLOC:
            s = block_find(index, rows, hrec, a)
            if block_live(index, rows, s, heaps):
                counts[K_ALLOC_OVER_LIVE] += 1
                _block_end(index, rows, s, heaps, pend, meta, counts, True)
                s = block_find(index, rows, hrec, a)
            _block_insert(index, rows, s, heaps, pend, meta, hrec, a, size[i], ts[i], source[i], serial[i], stack[i])
            if not known:
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
            i += 1
            continue
        if o == OP_REALLOC:
            old = old_addr[i]
            form = tkind == T_ALLOC and threads[tslot]["hrec"] == hrec and threads[tslot]["addr"] == a
            _realloc(index, rows, heaps, pend, meta, counts, hrec, a, old, form,
                     threads[tslot]["serial"] if form else np.int64(-1), size[i], ts[i], source[i], serial[i],
                     stack[i])
            if form:
                threads[tslot]["kind"] = T_PAIR
                threads[tslot]["addr"] = old
                i += 1
                continue
        elif o == OP_FREE:
            s = block_find(index, rows, hrec, a) if hrec >= 0 else -1
            if s >= 0 and block_live(index, rows, s, heaps):
                _block_end(index, rows, s, heaps, pend, meta, counts, True)
            elif (hrec >= 0 and tkind == T_PAIR and threads[tslot]["hrec"] == hrec
                  and threads[tslot]["addr"] == a):
                counts[K_REALLOC_PAIR_FREE] += 1
            else:
                counts[K_UNMATCHED_FREES] += 1
        elif hrec >= 0 and heaps[hrec]["blocks"] > 0:  # OP_CREATE / OP_DESTROY
            if o == OP_CREATE:
                counts[K_CREATE_OVER_LIVE_HEAP] += 1
            _heap_clear(heaps, hrec, counts)
        if known:
            threads[tslot]["kind"] = T_OTHER
        i += 1
    grid[G_LAST] = last_t
    return int(n)


@njit()
def pending_waiting(pend: Arr, index: Arr, rows: Arr, heaps: Arr, keep: Arr) -> None:
    """``keep[j]``: pending entry ``j`` names a block still live and still waiting for its stack (the others are
    stale: their block ended by a Destroy or a process end)."""
    for j in range(pend.shape[0]):
        h = pend[j]["hrec"]
        if h < 0:
            keep[j] = False
            continue
        b = block_find(index, rows, h, pend[j]["addr"])
        r = index[b]["row"]
        keep[j] = (block_live(index, rows, b, heaps) and rows[r]["serial"] == pend[j]["serial"]
                   and rows[r]["stack"] < 0)
