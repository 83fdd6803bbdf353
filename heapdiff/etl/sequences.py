"""Interned stacks: every distinct pointer sequence (a stack's frames) of a trace stored once, named by an id.

Deferred references: interning a stack is most of the record walk's time (hash and compare 8-32 frames), yet the
main job needs the frames only of the stacks that stay live, a small fraction of them. So, when the caller asks and the
bytes being framed are the file itself (not a decompressed copy), the walk leaves a tail uninterned: its column
holds a *deferred reference* instead, which says where the values are in the file (:func:`deferred_ref`), and the
few that matter are interned at the end (:meth:`heapdiff.etl.reader.Reader.intern_deferred`). A deferred reference
is >= :data:`DEFERRED`, a sequence id is below it, so a consumer that only carries the column along need not care
which it holds. Its flag bit says whether the sequence's last value is at or above a mark the layout gives (for
stacks: a kernel address, a kernel-only fragment).
"""

from __future__ import annotations

import numpy as np

from heapdiff._jit import njit, wrapping_mul
from heapdiff.etl.fields import Scalar, uint, views

# deferred reference: DEFERRED | offset << 17 | count << 2 | flag << 1 | (width == 8)
DEFERRED = 1 << 62
DEFERRED_MAX_OFFSET = 1 << 45
DEFERRED_MAX_COUNT = (1 << 15) - 1

_HK = np.uint64(0x9E3779B97F4A7C15)
_HK2 = np.uint64(0xBF58476D1CE4E5B9)
_S29 = np.uint64(29)


@njit(inline="always")
def _mix(h: np.uint64, v: np.uint64) -> Scalar:
    h = wrapping_mul(h ^ v, _HK)  # a hash: the product wraps on purpose
    return h ^ (h >> _S29)


@njit()
def intern_seq(d: np.ndarray, d32: np.ndarray, d64: np.ndarray, p: int, n: int, w: int,
               it_slots: np.ndarray, it_hash: np.ndarray, it_start: np.ndarray, it_len: np.ndarray,
               it_pool: np.ndarray, it_meta: np.ndarray) -> int:
    """Id of the sequence of ``n`` little-endian ``w``-byte values at ``d[p:]``; new sequences are appended.

    Open addressing over ``it_slots`` (power-of-two size, -1 = empty); the caller keeps the load factor under 1/2
    and the pool large enough for the chunk, so this never fails.
    """
    h = wrapping_mul(np.uint64(n + 1), _HK2)
    for i in range(n):
        h = _mix(h, uint(d, d32, d64, p + i * w, w))
    mask = it_slots.shape[0] - 1
    slot = np.int64(h & np.uint64(mask))
    while True:
        sid = it_slots[slot]
        if sid < 0:
            break
        if it_hash[sid] == h and it_len[sid] == n:
            st = it_start[sid]
            same = True
            for i in range(n):
                if it_pool[st + i] != uint(d, d32, d64, p + i * w, w):
                    same = False
                    break
            if same:
                return int(sid)
        slot = (slot + 1) & mask
    sid = it_meta[0]
    used = it_meta[1]
    for i in range(n):
        it_pool[used + i] = uint(d, d32, d64, p + i * w, w)
    it_hash[sid] = h
    it_start[sid] = used
    it_len[sid] = n
    it_slots[slot] = sid
    it_meta[0] = sid + 1
    it_meta[1] = used + n
    return int(sid)


@njit()
def rehash(it_slots: np.ndarray, it_hash: np.ndarray, n_seqs: int) -> None:
    """Re-insert every sequence id into a fresh (all -1) slot array after growing it."""
    mask = it_slots.shape[0] - 1
    for sid in range(n_seqs):
        slot = np.int64(it_hash[sid] & np.uint64(mask))
        while it_slots[slot] >= 0:
            slot = (slot + 1) & mask
        it_slots[slot] = sid


@njit(inline="always")
def deferred_ref(d: np.ndarray, d32: np.ndarray, d64: np.ndarray, p: int, n: int, w: int,
                 marks: np.ndarray) -> int:
    """The deferred reference to the ``n`` ``w``-byte values at file offset ``p`` (see the module docstring)."""
    flag = 0
    if n > 0 and uint(d, d32, d64, p + (n - 1) * w, w) >= marks[1 if w == 8 else 0]:
        flag = 1
    return int(DEFERRED | (p << 17) | (n << 2) | (flag << 1) | (1 if w == 8 else 0))


def deferred_parts(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(file offset, count, width, flag) of deferred references (int64 array, each >= DEFERRED)."""
    r = ref.astype(np.int64) - DEFERRED
    return r >> 17, (r >> 2) & DEFERRED_MAX_COUNT, np.where(r & 1, 8, 4), (r >> 1) & 1


@njit()
def intern_deferred_kernel(d: np.ndarray, d32: np.ndarray, d64: np.ndarray, offset: np.ndarray, count: np.ndarray,
                           width: np.ndarray, it_slots: np.ndarray, it_hash: np.ndarray, it_start: np.ndarray,
                           it_len: np.ndarray, it_pool: np.ndarray, it_meta: np.ndarray, out: np.ndarray) -> None:
    """Intern the sequences at ``d[offset[i]:]`` (the caller made room for all of them)."""
    for i in range(offset.shape[0]):
        out[i] = intern_seq(d, d32, d64, offset[i], count[i], width[i], it_slots, it_hash, it_start, it_len, it_pool,
                            it_meta)


class InternedStacks:
    """Distinct pointer sequences (stack frames) met in a trace; memory grows with distinct sequences only."""

    def __init__(self) -> None:
        self.slots = np.full(1 << 12, -1, np.int64)
        self.hash = np.zeros(1 << 10, np.uint64)
        self.start = np.zeros(1 << 10, np.int64)
        self.length = np.zeros(1 << 10, np.int32)
        self.pool = np.zeros(1 << 14, np.uint64)
        self.meta = np.zeros(3, np.int64)  # [count, pool used, buffer to resume at]

    def __len__(self) -> int:
        return int(self.meta[0])

    def ensure(self, more_seqs: int, more_values: int) -> None:
        """Make room for up to ``more_seqs`` new sequences holding ``more_values`` values in all."""
        n, used = int(self.meta[0]), int(self.meta[1])
        need = n + more_seqs
        if need > self.hash.shape[0]:
            cap = max(need, 2 * self.hash.shape[0])
            for name in ("hash", "start", "length"):
                old = getattr(self, name)
                new = np.zeros(cap, old.dtype)
                new[:n] = old[:n]
                setattr(self, name, new)
        if used + more_values > self.pool.shape[0]:
            new_pool = np.zeros(max(used + more_values, 2 * self.pool.shape[0]), np.uint64)
            new_pool[:used] = self.pool[:used]
            self.pool = new_pool
        if 2 * need + 2 > self.slots.shape[0]:
            cap = self.slots.shape[0]
            while 2 * need + 2 > cap:
                cap *= 2
            self.slots = np.full(cap, -1, np.int64)
            rehash(self.slots, self.hash, n)

    def get(self, sid: int) -> np.ndarray:
        st = int(self.start[sid])
        return self.pool[st:st + int(self.length[sid])]

    def intern(self, values: np.ndarray) -> int:
        """Intern a sequence given as values (used when stitching fragments and resolving keys)."""
        v = np.ascontiguousarray(values, dtype="<u8").view(np.uint8)
        self.ensure(1, int(values.shape[0]))
        v32, v64 = views(v)
        return int(intern_seq(v, v32, v64, 0, int(values.shape[0]), 8, self.slots, self.hash, self.start, self.length,
                              self.pool, self.meta))

    def intern_file(self, data: np.ndarray, offset: np.ndarray, count: np.ndarray, width: np.ndarray) -> np.ndarray:
        """Ids of the sequences of ``count[i]`` ``width[i]``-byte values at ``data[offset[i]:]`` (deferred ones)."""
        ids = np.empty(offset.shape[0], np.int64)
        self.ensure(int(offset.shape[0]), int(count.sum()))
        d32, d64 = views(data)
        intern_deferred_kernel(data, d32, d64, offset, count, width, self.slots, self.hash, self.start, self.length,
                               self.pool, self.meta, ids)
        return ids

    @property
    def nbytes(self) -> int:
        return int(self.slots.nbytes + self.hash.nbytes + self.start.nbytes + self.length.nbytes
                   + 8 * int(self.meta[1]))
