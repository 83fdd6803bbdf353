"""Heap records, their stacks and process ends of a batch -> the reducer's columnar op batch, in time order.

The stack of an Alloc/ReAlloc rides on its op when the walk came in the same batch (or the reader linked it onto
the event's row): the reducer then needs no pending entry and no separate ATTACH op for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heapdiff._jit import borrow, njit, prefetch
from heapdiff.errors import Anomalies
from heapdiff.etl.batch import RecordBatch
from heapdiff.etl.sequences import DEFERRED, InternedStacks
from heapdiff.etl.walk import ST_BAD_PAYLOAD
from heapdiff.events import kinds as K
from heapdiff.events.layout import (
    COL_ALLOC_ADDR,
    COL_ALLOC_SIZE,
    COL_ALLOC_SOURCE,
    COL_FREE_ADDR,
    COL_FREE_SOURCE,
    COL_HEAP,
    COL_RA_NEW_ADDR,
    COL_RA_NEW_SIZE,
    COL_RA_OLD_ADDR,
    COL_RA_SOURCE,
)
from heapdiff.events.ops import (
    OP_ALLOC,
    OP_ATTACH,
    OP_COLUMNS,
    OP_CREATE,
    OP_DESTROY,
    OP_FREE,
    OP_PROCESS_END,
    OP_REALLOC,
    OpBatch,
)
from heapdiff.events.stacks import PREFETCH_ROWS

#: how many earlier ops of the batch a stack walk looks back over for its event (else an ATTACH op)
_ATTACH_LOOKBACK = 64
#: the largest block a process of each pointer size can hold: its whole address space, 4 GiB for a 32-bit one, and
#: for a 64-bit one Windows' user-mode address space, 128 TiB (2**47, x64 since Windows 8.1; 8 TiB before). A larger
#: Alloc/ReAlloc size is damage or a misread record: its block stays live (its Free still matches) without a size
#: (``size_beyond_address_space``), so no total is swollen by it or wraps to a negative one.
MAX_BLOCK_SIZE = {4: 1 << 32, 8: 1 << 47}
#: ops_kernel's counters: blocks whose size was left out
N_OP_COUNTERS = 1
OC_SIZE_BEYOND = 0
#: the op of a heap hook, by its opcode (0: not an op)
_OP_BY_OPCODE = np.zeros(256, np.uint8)
for _hook, _op in {K.HOOK_HEAP_ALLOC: OP_ALLOC, K.HOOK_HEAP_FREE: OP_FREE, K.HOOK_HEAP_REALLOC: OP_REALLOC,
                   K.HOOK_HEAP_CREATE: OP_CREATE, K.HOOK_HEAP_DESTROY: OP_DESTROY}.items():
    _OP_BY_OPCODE[_hook & 0xFF] = _op


@njit(inline="always")
def _is_kernel_only(ref: Any, kernel_only: np.ndarray) -> bool:
    """A stack (sequence id or deferred reference) that is a kernel-only fragment (see :func:`_kernel_only`)."""
    if ref >= DEFERRED:
        return bool((ref >> 1) & 1)
    return bool(kernel_only[ref])


@njit()
def ops_kernel(hook: np.ndarray, status: np.ndarray, f: np.ndarray, serial: np.ndarray, tail: np.ndarray,
                kernel_only: np.ndarray, targets: np.ndarray, pid: np.ndarray, tid: np.ndarray, ts: np.ndarray,
                rows: np.ndarray, pe_rows: np.ndarray,
                pe_pids: np.ndarray, o_op: np.ndarray, o_ts: np.ndarray, o_pid: np.ndarray, o_tid: np.ndarray,
                o_serial: np.ndarray, o_heap: np.ndarray, o_addr: np.ndarray, o_size: np.ndarray,
                o_old: np.ndarray, o_src: np.ndarray, o_stack: np.ndarray, max_size: np.uint64,
                counters: np.ndarray) -> int:
    """Heap records, matched stack walks and process ends of a batch (source rows ``rows``; ``targets`` and
    ``pe_rows`` are by batch row) -> the reducer's op columns, in order. A size above ``max_size`` becomes 0,
    counted in ``counters[OC_SIZE_BEYOND]`` (see :data:`MAX_BLOCK_SIZE`).

    Long because it is one pass over the batch's rows, each op kind's columns filled inline."""
    # borrowed: no reference counting in the loop (heapdiff._jit.borrow)
    (hook, status, f, serial, tail, kernel_only, targets, pid, tid, ts, rows, pe_rows, pe_pids, o_op, o_ts, o_pid,
     o_tid, o_serial, o_heap, o_addr, o_size, o_old, o_src, o_stack) = borrow((
        hook, status, f, serial, tail, kernel_only, targets, pid, tid, ts, rows, pe_rows, pe_pids, o_op, o_ts, o_pid,
        o_tid, o_serial, o_heap, o_addr, o_size, o_old, o_src, o_stack))
    n = 0
    pe = 0
    m = rows.shape[0]
    for i in range(m):
        if PREFETCH_ROWS and i + PREFETCH_ROWS < m:
            prefetch((hook, status, f, ts, pid, tid, serial, tail), rows[i + PREFETCH_ROWS])
        r = rows[i]
        h = hook[r]
        op = 0
        if pe < pe_rows.shape[0] and pe_rows[pe] == i:
            op = OP_PROCESS_END
        elif (status[r] & ST_BAD_PAYLOAD) != 0:
            op = 0
        elif (h >> 8) == K.GROUP_HEAP:
            op = _OP_BY_OPCODE[h & 0xFF]
        elif h == K.HOOK_STACK_WALK and targets[i] >= 0:
            op = OP_ATTACH
        if op == 0:
            continue
        o_op[n] = op
        o_ts[n] = ts[r]
        o_pid[n] = pid[r]
        o_tid[n] = tid[r]
        o_serial[n] = serial[r]
        o_heap[n] = f[r, COL_HEAP]
        o_addr[n] = 0
        o_size[n] = 0
        o_old[n] = 0
        o_src[n] = 0
        o_stack[n] = -1
        if op == OP_ALLOC:
            o_stack[n] = tail[r]  # a walk the reader linked onto this row (etl.walk), else -1
            o_addr[n] = f[r, COL_ALLOC_ADDR]
            o_size[n] = f[r, COL_ALLOC_SIZE]
            if o_size[n] > max_size:
                o_size[n] = 0
                counters[OC_SIZE_BEYOND] += 1
            o_src[n] = f[r, COL_ALLOC_SOURCE] & np.uint64(0xFF)
        elif op == OP_FREE:
            o_addr[n] = f[r, COL_FREE_ADDR]
            o_src[n] = f[r, COL_FREE_SOURCE] & np.uint64(0xFF)
        elif op == OP_REALLOC:
            o_stack[n] = tail[r]
            o_addr[n] = f[r, COL_RA_NEW_ADDR]
            o_size[n] = f[r, COL_RA_NEW_SIZE]
            if o_size[n] > max_size:
                o_size[n] = 0
                counters[OC_SIZE_BEYOND] += 1
            o_old[n] = f[r, COL_RA_OLD_ADDR]
            o_src[n] = f[r, COL_RA_SOURCE] & np.uint64(0xFF)
        elif op == OP_ATTACH:
            # the walk usually follows its event within a few records: put the stack on that Alloc/ReAlloc
            # op instead of a separate ATTACH (saves the reducer a pending entry and a lookup per event)
            tgt = targets[i]
            found = False
            j = n - 1
            while j >= 0 and j >= n - _ATTACH_LOOKBACK:
                if o_serial[j] == tgt and (o_op[j] == OP_ALLOC or o_op[j] == OP_REALLOC):
                    # a walk may come as a kernel-only fragment and a user one (notes 5.2): the user part wins,
                    # a kernel-only part leaves the block without a signature (kernel frames are not part of it)
                    if o_stack[j] < 0 or (_is_kernel_only(o_stack[j], kernel_only)
                                          and not _is_kernel_only(tail[r], kernel_only)):
                        o_stack[j] = tail[r]
                        found = True
                    elif _is_kernel_only(tail[r], kernel_only):
                        found = True  # a kernel fragment after the user part: nothing to add to the signature
                    break
                j -= 1
            if found:
                continue
            o_serial[n] = tgt
            o_stack[n] = tail[r]
            o_heap[n] = 0
        elif op == OP_PROCESS_END:
            o_pid[n] = pe_pids[pe]
            o_heap[n] = 0
            pe += 1
        n += 1
    return n


def kernel_only_stacks(seq: InternedStacks, floor: np.uint64) -> np.ndarray:
    """Per sequence id: is it a kernel-only stack fragment (its outermost frame a kernel address, notes 5.2)?"""
    n = len(seq)
    length = seq.length[:n]
    last = seq.pool[np.maximum(seq.start[:n] + length - 1, 0)]
    flags: np.ndarray = (length > 0) & (last >= floor)
    return flags


def heap_ops(batch: RecordBatch, targets: np.ndarray, resolved: list[tuple[int, int]],
              process_ends: dict[int, int], kernel_only: np.ndarray, pointer_size: int = 8,
              anomalies: Anomalies | None = None) -> OpBatch | None:
    """The batch's heap ops; sizes beyond the address space of a ``pointer_size`` trace left out and counted in
    ``anomalies`` (see :data:`MAX_BLOCK_SIZE`)."""
    rows = sorted(process_ends)
    pe_rows = np.asarray(rows, np.int64)
    pe_pids = np.asarray([process_ends[r] for r in rows], np.int64)
    m = len(batch)
    cols = {name: np.empty(m, dt) for name, dt in OP_COLUMNS}
    counters = np.zeros(N_OP_COUNTERS, np.int64)
    src = batch.src
    n = ops_kernel(src["hook"], src["status"], batch.src_f, src["serial"], src["tail"], kernel_only, targets,
                    src["pid"], src["tid"], src["ts"], batch.rows, pe_rows, pe_pids, cols["op"], cols["ts"],
                    cols["pid"], cols["tid"], cols["serial"], cols["heap"], cols["addr"], cols["size"],
                    cols["old_addr"], cols["source"], cols["stack"],
                    np.uint64(MAX_BLOCK_SIZE.get(pointer_size, MAX_BLOCK_SIZE[8])), counters)
    if anomalies is not None:
        anomalies.add("size_beyond_address_space", int(counters[OC_SIZE_BEYOND]))
    if not n and not resolved:
        return None
    ops = OpBatch(**{k: v[:n] for k, v in cols.items()})
    if resolved:
        ops = OpBatch.concat(ops, attach_ops(resolved, ts=int(src["ts"][batch.rows[-1]])))
    return ops


def attach_ops(pairs: list[tuple[int, int]], ts: int = 0) -> OpBatch:
    n = len(pairs)
    arr = np.asarray(pairs, np.int64).reshape(n, 2)
    z64 = np.zeros(n, np.uint64)
    return OpBatch.from_columns(op=np.full(n, OP_ATTACH, np.uint8), ts=np.full(n, ts, np.int64),
                              pid=np.zeros(n, np.int64), tid=np.zeros(n, np.int64), serial=arr[:, 0].copy(),
                            heap=z64, addr=z64.copy(), size=z64.copy(), old_addr=z64.copy(),
                            source=np.zeros(n, np.uint8), stack=arr[:, 1].copy())
