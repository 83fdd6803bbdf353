"""Which record does a stack belong to.

A stack reference (0x1820 walk, 0x1825/0x1826 key reference) names the raw timestamp of its event and the thread.
Records arrive in time order and a stack follows its event closely (notes 5.2), so the matcher keeps a ring of
the most recent records and scans it backwards while timestamps are not older than the one sought: same timestamp
and same thread wins; a record without a thread id (PERFINFO header) matches on the timestamp alone, the CPU
breaking ties. Memory is the ring, whatever the trace length.

Key references (stack caching, notes 5.3) name a key whose frames arrive in a definition: a reference resolves to
the first KeyDelete/KeyRundown of its key after it, else to the latest KeyCreate before it; a KeyCreate is a
redefinition, so references waiting on the key are settled before it and never resolve across it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heapdiff._jit import JIT_ENABLED, borrow, njit, prefetch
from heapdiff.etl import structs as S
from heapdiff.etl.batch import RecordBatch
from heapdiff.events import kinds as K
from heapdiff.events.layout import COL_KEY_DEF, COL_KEY_REF, COL_STACK_TID, COL_STACK_TS

RING = 1 << 12
#: rows ahead whose columns the events kernels (matching here, ops in heapdiff.events.heap_ops) prefetch. A batch's
#: rows in time order jump between the chunk's buffers, so each row's columns are as many cache misses.
PREFETCH_ROWS = 16 if JIT_ENABLED else 0


@njit()
def match_kernel(ts: np.ndarray, tid: np.ndarray, cpu: np.ndarray, hook: np.ndarray, serial: np.ndarray,
                 f: np.ndarray, status: np.ndarray, rows: np.ndarray,
                 r_ts: np.ndarray, r_tid: np.ndarray, r_cpu: np.ndarray, r_serial: np.ndarray, r_meta: np.ndarray,
                 out_target: np.ndarray, out_keyish: np.ndarray, counts: np.ndarray) -> int:
    """For each stack reference among records ``rows`` (of the source columns), the serial of its event (or -1),
    by batch row; other records enter the ring. Counts references and matched walks (``counts[0]``,
    ``counts[1]``) and lists the batch rows of key records (``out_keyish``); returns how many."""
    # borrowed: no reference counting in the loop (heapdiff._jit.borrow)
    (ts, tid, cpu, hook, serial, f, status, rows, r_ts, r_tid, r_cpu, r_serial, r_meta, out_target, out_keyish,
     counts) = borrow((ts, tid, cpu, hook, serial, f, status, rows, r_ts, r_tid, r_cpu, r_serial, r_meta, out_target,
                       out_keyish, counts))
    rn = r_meta[0]
    cap = r_ts.shape[0]
    nkey = 0
    m = rows.shape[0]
    for i in range(m):
        if PREFETCH_ROWS and i + PREFETCH_ROWS < m:
            prefetch((hook, ts, tid, cpu, serial), rows[i + PREFETCH_ROWS])
        x = rows[i]
        h = hook[x]
        out_target[i] = -1
        if h >= K.HOOK_STACK_KEY_CREATE and h <= K.HOOK_STACK_KEY_USER and (status[x] & 1) == 0:
            out_keyish[nkey] = i
            nkey += 1
        if h == K.HOOK_STACK_WALK or h == K.HOOK_STACK_KEY_KERNEL or h == K.HOOK_STACK_KEY_USER:
            counts[0] += 1
            if status[x] & 1:
                continue
            want = np.int64(f[x, COL_STACK_TS])
            wtid = np.int64(f[x, COL_STACK_TID])
            c = cpu[x]
            best = -1
            best_score = 0
            lim = rn if rn < cap else cap
            for k in range(lim):
                j = (rn - 1 - k) % cap
                t = r_ts[j]
                if t < want:
                    break
                if t != want:
                    continue
                score = 0
                if r_tid[j] == wtid:
                    score = 4
                elif r_tid[j] == S.NO_THREAD:
                    score = 2
                if score > 0 and r_cpu[j] == c:
                    score += 1
                if score > best_score:
                    best_score = score
                    best = r_serial[j]
            out_target[i] = best
            if h == K.HOOK_STACK_WALK and best >= 0:
                counts[1] += 1
        elif (h >> 8) != K.GROUP_STACKWALK:
            j = rn % cap
            r_ts[j] = ts[x]
            r_tid[j] = np.int64(tid[x])
            r_cpu[j] = cpu[x]
            r_serial[j] = serial[x]
            rn += 1
    r_meta[0] = rn
    return nkey


@dataclass
class StackMatcher:
    """Per-trace matching state; feed it every batch in order, then :meth:`finish`."""

    r_ts: np.ndarray = field(default_factory=lambda: np.zeros(RING, np.int64))
    r_tid: np.ndarray = field(default_factory=lambda: np.zeros(RING, np.int64))
    r_cpu: np.ndarray = field(default_factory=lambda: np.zeros(RING, np.int32))
    r_serial: np.ndarray = field(default_factory=lambda: np.zeros(RING, np.int64))
    r_meta: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    refs: int = 0
    matched: int = 0
    key_refs_unresolved: int = 0
    key_defs: dict[int, int] = field(default_factory=dict)          # key -> sequence id of the latest KeyCreate
    key_pending: dict[int, list[int]] = field(default_factory=dict)  # key -> target serials waiting (-1 - t: kernel)
    #: With stack caching an event has a kernel key reference and a user one, resolved in either order; only one
    #: stack rides on a block, and the kernel part would leave it without a signature (kernel frames are not
    #: part of it). The main job therefore takes the user part (False); counting and tests see both (True).
    attach_kernel_keys: bool = True

    def match(self, batch: RecordBatch) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Returns (target serial per batch row, -1 if none) and key resolutions (target serial, sequence id)."""
        src, rows = batch.src, batch.rows
        n = int(rows.shape[0])
        target = np.empty(n, np.int64)
        keyish = np.empty(n, np.int64)
        counts = np.zeros(2, np.int64)
        nkey = int(match_kernel(src["ts"], src["tid"], src["cpu"], src["hook"], src["serial"], batch.src_f,
                                src["status"], rows, self.r_ts, self.r_tid, self.r_cpu, self.r_serial, self.r_meta,
                                target, keyish, counts))
        self.refs += int(counts[0])
        self.matched += int(counts[1])
        resolved: list[tuple[int, int]] = []
        if nkey:
            sel = keyish[:nkey]
            x = rows[sel]
            resolved = self._keys(src["hook"][x], batch.src_f[x], src["tail"][x], target[sel])
        return target, resolved

    def _keys(self, hook: np.ndarray, f: np.ndarray, tail: np.ndarray,
              target: np.ndarray) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        defs, pending = self.key_defs, self.key_pending
        for h, key_ref, key_def, sid, tgt in zip(hook.tolist(), f[:, COL_KEY_REF].tolist(),
                                                 f[:, COL_KEY_DEF].tolist(), tail.tolist(), target.tolist(),
                                                 strict=True):
            if h == K.HOOK_STACK_KEY_KERNEL or h == K.HOOK_STACK_KEY_USER:
                if tgt >= 0:
                    pending.setdefault(key_ref, []).append(tgt if h == K.HOOK_STACK_KEY_USER else -1 - tgt)
            elif h == K.HOOK_STACK_KEY_CREATE:
                waiting = pending.pop(key_def, None)
                if waiting:
                    old = defs.get(key_def)
                    if old is None:
                        self.key_refs_unresolved += len(waiting)
                    else:
                        out.extend(self._settle(waiting, old))
                defs[key_def] = sid
            else:  # KeyDelete / KeyRundown: the definition that the references before it used
                waiting = pending.pop(key_def, None)
                if waiting:
                    out.extend(self._settle(waiting, sid))
        return out

    def _settle(self, waiting: list[int], sid: int) -> list[tuple[int, int]]:
        """Count the references as matched; hand over (target, sequence) pairs, kernel ones only if asked."""
        self.matched += len(waiting)
        return [(t if t >= 0 else -1 - t, sid) for t in waiting if t >= 0 or self.attach_kernel_keys]

    def finish(self) -> list[tuple[int, int]]:
        """Settle the references still waiting: the latest KeyCreate before them, else unresolved."""
        out: list[tuple[int, int]] = []
        for key, waiting in self.key_pending.items():
            sid = self.key_defs.get(key)
            if sid is None:
                self.key_refs_unresolved += len(waiting)
            else:
                out.extend(self._settle(waiting, sid))
        self.key_pending.clear()
        return out
