"""The record walk (record framing): buffers in, one row of columns per record out.

This is the hot path, so it is one JIT-compiled loop (plain Python when numba is absent: same code, same results).
It frames every header kind of the notes' section 3 and, for the records whose (hook, pointer size) has a row in the
layout table that ``events`` declares, copies the declared payload fields into columns and interns the declared
pointer-array tail (stack frames) into a table of distinct sequences. It never interprets a field: what a column
means is the layout table's business.

Layout table (built by :class:`Layout`): ``lut[(hook << 1) | (ptr == 8)]`` -> row or -1, and per row
``[min_len, max_len (-1: open), flags (ROW_KEEP_RAW | ROW_DEFER_TAIL | ROW_LINK | ROW_LINK_TARGET), tail_off
(-1: none), off0, width0, ..., off5, width5, link_ts_field, link_tid_field]``.

Deferred tails: interning a stack is most of the walk's time (hash and compare 8-32 frames; measured ~1.1 of
~1.6 s on the 10M benchmark trace), yet the main job needs the frames only of the stacks that stay live, about
1% of them. So, when the caller asks and the bytes being framed are the file itself (not a decompressed copy),
the tail of a row declared ``defer_tail`` is not interned: its column holds a *deferred reference* instead, which
says where the values are in the file (:func:`deferred_ref`), and the few that matter are interned at the end
(:meth:`heapdiff.etl.reader.Reader.intern_deferred`). A deferred reference is >= :data:`DEFERRED`, a sequence
id is below it, so a consumer that only carries the column along need not care which it holds.

Linked records: a row declared ``link`` (a stack walk) names the record it belongs to by the values of two of its
fields: that record's header timestamp and thread. When its tail is deferred and the record it names is one of
the :data:`LINK_BACK` rows before it in the same buffer (the nearest one back with that timestamp and thread,
outside the linking row's own hook group) and is declared ``link_target``, the tail is put on that record's row
and no row is written for the linking record: it is counted (``link_counts``, per provider and hook) instead.
Why: a walk follows its event in the same buffer, and a third of a heap trace's records are walks; carrying them
through the time merge, the counting, the matching and the ops kernels only to put their tail on the row before
them was ~0.55 s of ~2.4 s of reading the 10M benchmark trace. Which tail wins when several link to one record
is decided by the tail's flag (:func:`deferred_ref`): a first tail is taken; a flagged tail is replaced by an
unflagged one and absorbed by any; an unflagged tail onto a record that has an unflagged one is not linked (its
row is written, as is every record that does not link, and the events layer deals with it as before).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from heapdiff._jit import borrow, njit
from heapdiff.etl import structs as S

#: a scalar inside a kernel: a numba int64/uint64 when compiled, a numpy scalar or int when not
Scalar = Any

NF = 6                      # field columns per record
ROW_LEN = 6 + 2 * NF        # min, max, flags, tail offset, NF x (offset, width), link ts field, link tid field
R_LINK_TS = 4 + 2 * NF
R_LINK_TID = 5 + 2 * NF
LUT_SIZE = 1 << 18          # hooks up to 0x1FFFF (pseudo groups 0x100+ for GUID-only providers), x2 pointer sizes

# layout row flags (column 2)
ROW_KEEP_RAW = 1            # hand the payload bytes to a Python decoder
ROW_DEFER_TAIL = 2          # the tail may be a deferred reference (see the module docstring)
ROW_LINK = 4                # the record names an earlier one of its buffer; its deferred tail may go there
ROW_LINK_TARGET = 8         # a record that may take a linked record's tail
#: rows of its buffer that a linking record looks back over for the one it names
LINK_BACK = 16
#: (provider, hook, count) rows of the linked records' counts array
LINK_KINDS = 8

# deferred reference: DEFERRED | offset << 17 | count << 2 | flag << 1 | (width == 8)
DEFERRED = 1 << 62
DEFERRED_MAX_OFFSET = 1 << 45
DEFERRED_MAX_COUNT = (1 << 15) - 1

# record status bits
ST_BAD_PAYLOAD = 1          # payload length does not fit its layout: fields not extracted
ST_KEEP_RAW = 2             # the layout asks for the payload bytes (rare records decoded in Python)

# buffer end codes (why the walk of a buffer stopped)
END_CLEAN = 0               # reached the filled size or the 0xFF filler
END_BAD_MARKER = 1
END_OVERRUN = 2             # a record's size crosses the filled end
END_UNKNOWN_HEADER = 3
END_SHORT_RECORD = 4        # size smaller than its header
END_BAD_EXT_ITEM = 5
END_NAMES = ("clean", "bad_marker", "record_overruns_buffer", "unknown_header_type", "record_shorter_than_header",
             "bad_extended_item")

# misc counters
C_EXT_STACKS = 0            # EVENT_HEADER STACK_TRACE32/64 extended items
C_LINKED = 1                # records linked onto an earlier row (no row of their own)
C_BAD_TAIL = 2
C_LINK_LAST_TS = 3          # the latest timestamp of a linked record (the caller starts it at INT64 min)
N_COUNTERS = 4

PROV_MESSAGE = -1
PROV_BY_GUID = -2

_U32 = np.uint64(32)
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_HK = np.uint64(0x9E3779B97F4A7C15)
_HK2 = np.uint64(0xBF58476D1CE4E5B9)
_S31 = np.uint64(31)
_S29 = np.uint64(29)


@njit(inline="always")
def _u16(d: np.ndarray, p: int) -> Scalar:
    return np.int64(d[p]) | (np.int64(d[p + 1]) << 8)


@njit(inline="always")
def _u32(d: np.ndarray, p: int) -> Scalar:
    return np.int64(d[p]) | (np.int64(d[p + 1]) << 8) | (np.int64(d[p + 2]) << 16) | (np.int64(d[p + 3]) << 24)


@njit(inline="always")
def _a32(d: np.ndarray, d32: np.ndarray, p: int) -> Scalar:
    """u32 at byte ``p``: one load through the 4-byte view when aligned (the common case: records are 8-aligned)."""
    if (p & 3) == 0:
        return np.int64(d32[p >> 2])
    return _u32(d, p)


@njit(inline="always")
def _u64(d: np.ndarray, p: int) -> Scalar:
    lo = np.uint64(np.int64(d[p]) | (np.int64(d[p + 1]) << 8) | (np.int64(d[p + 2]) << 16) | (np.int64(d[p + 3]) << 24))
    hi = np.uint64(np.int64(d[p + 4]) | (np.int64(d[p + 5]) << 8) | (np.int64(d[p + 6]) << 16)
                   | (np.int64(d[p + 7]) << 24))
    return lo | (hi << _U32)


@njit(inline="always")
def _a64(d: np.ndarray, d64: np.ndarray, p: int) -> Scalar:
    if (p & 7) == 0:
        return d64[p >> 3]
    return _u64(d, p)


_WMASK = np.array([0, 0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF, 0xFFFFFFFFFF, 0xFFFFFFFFFFFF, 0xFFFFFFFFFFFFFF,
                   0xFFFFFFFFFFFFFFFF], np.uint64)
_U1 = np.uint64(1)
_U63 = np.uint64(63)


@njit(inline="always")
def _rdw(d64: np.ndarray, p: int, w: int) -> Scalar:
    """``w`` bytes at byte ``p`` without a data-dependent branch: two aligned loads, a funnel shift, a mask.

    Field widths and alignments change from record to record (allocs, frees, stacks interleave), so the
    branchy reader mispredicted on most fields. Reads up to 15 bytes past ``p`` within the array.
    """
    q = p >> 3
    sh = np.uint64((p & 7) * 8)
    lo = d64[q]
    hi = d64[q + 1] if q + 1 < d64.shape[0] else np.uint64(0)
    return ((lo >> sh) | ((hi << _U1) << (_U63 - sh))) & _WMASK[w]


@njit(inline="always")
def _uw(d: np.ndarray, d32: np.ndarray, d64: np.ndarray, p: int, w: int) -> Scalar:
    if w == 8:
        return _a64(d, d64, p)
    if w == 4:
        return np.uint64(_a32(d, d32, p))
    if w == 2:
        return np.uint64(_u16(d, p))
    return np.uint64(d[p])


@njit(inline="always")
def _mix(h: np.uint64, v: np.uint64) -> Scalar:
    h = ((h ^ v) * _HK) & _M64
    return (h ^ (h >> _S29)) & _M64


@njit()
def intern_seq(d: np.ndarray, d32: np.ndarray, d64: np.ndarray, p: int, n: int, w: int,
               it_slots: np.ndarray, it_hash: np.ndarray, it_start: np.ndarray, it_len: np.ndarray,
               it_pool: np.ndarray, it_meta: np.ndarray) -> int:
    """Id of the sequence of ``n`` little-endian ``w``-byte values at ``d[p:]``; new sequences are appended.

    Open addressing over ``it_slots`` (power-of-two size, -1 = empty); the caller keeps the load factor under 1/2
    and the pool large enough for the chunk, so this never fails.
    """
    h = np.uint64(n + 1) * _HK2 & _M64
    for i in range(n):
        h = _mix(h, _uw(d, d32, d64, p + i * w, w))
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
                if it_pool[st + i] != _uw(d, d32, d64, p + i * w, w):
                    same = False
                    break
            if same:
                return int(sid)
        slot = (slot + 1) & mask
    sid = it_meta[0]
    used = it_meta[1]
    for i in range(n):
        it_pool[used + i] = _uw(d, d32, d64, p + i * w, w)
    it_hash[sid] = h
    it_start[sid] = used
    it_len[sid] = n
    it_slots[slot] = sid
    it_meta[0] = sid + 1
    it_meta[1] = used + n
    return int(sid)


@njit(inline="always")
def deferred_ref(d: np.ndarray, d32: np.ndarray, d64: np.ndarray, p: int, n: int, w: int,
                 marks: np.ndarray) -> int:
    """The deferred reference to the ``n`` ``w``-byte values at file offset ``p`` (see the module docstring)."""
    flag = 0
    if n > 0 and _uw(d, d32, d64, p + (n - 1) * w, w) >= marks[1 if w == 8 else 0]:
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
def _link(o_ts: np.ndarray, o_tid: np.ndarray, o_hook: np.ndarray, o_ptr: np.ndarray, o_status: np.ndarray,
          o_tail: np.ndarray, lut: np.ndarray, rows: np.ndarray, n: int, first: int, hook: Scalar, prov: Scalar,
          ts: Scalar, want: Scalar, wtid: Scalar, tail: Scalar, link_counts: np.ndarray) -> bool:
    """Put deferred ``tail`` of the record being framed (row ``n``; its buffer's rows start at ``first``) on the
    row it names (timestamp ``want``, thread ``wtid``), if the rules of the module docstring allow; True if so."""
    if ts < want or prov < 0:
        return False
    lo = max(first, n - LINK_BACK)
    j = n - 1
    while j >= lo:
        t = o_ts[j]
        if t < want:
            return False
        if t == want and np.int64(o_tid[j]) == wtid and (o_hook[j] >> 8) != (hook >> 8):
            break
        j -= 1
    if j < lo:
        return False
    h = np.int64(o_hook[j])
    if h < 0 or (o_status[j] & ST_BAD_PAYLOAD) != 0:
        return False
    lj = lut[(h << 1) | (1 if o_ptr[j] == 8 else 0)]
    if lj < 0 or (rows[lj, 2] & ROW_LINK_TARGET) == 0:
        return False
    cur = o_tail[j]
    flagged = ((tail >> 1) & 1) != 0
    take = cur == -1 or (cur >= DEFERRED and ((cur >> 1) & 1) != 0 and not flagged)
    if not take and not flagged:
        return False
    k = 0
    while k < link_counts.shape[0]:
        if link_counts[k, 2] == 0 or (link_counts[k, 0] == prov and link_counts[k, 1] == hook):
            break
        k += 1
    if k == link_counts.shape[0]:
        return False  # more kinds of linking records than the counts hold: leave it a row
    if take:
        o_tail[j] = tail
    link_counts[k, 0] = prov
    link_counts[k, 1] = hook
    link_counts[k, 2] += 1
    return True


@njit()
def frame_kernel(data: np.ndarray, d32: np.ndarray, d64: np.ndarray, bstart: np.ndarray, bend: np.ndarray,
                 bcpu: np.ndarray, bbase: np.ndarray,
                 lut: np.ndarray, rows: np.ndarray, kg_lo: np.ndarray, kg_hi: np.ndarray, kg_group: np.ndarray,
                 kg_prov: np.ndarray,
                 it_slots: np.ndarray, it_hash: np.ndarray, it_start: np.ndarray, it_len: np.ndarray,
                 it_pool: np.ndarray, it_meta: np.ndarray,
                 o_ts: np.ndarray, o_cpu: np.ndarray, o_tid: np.ndarray, o_pid: np.ndarray, o_hook: np.ndarray,
                 o_prov: np.ndarray, o_ver: np.ndarray, o_ptr: np.ndarray,
                 o_status: np.ndarray, o_pos: np.ndarray, o_payoff: np.ndarray, o_paylen: np.ndarray,
                 o_f: np.ndarray, o_tail: np.ndarray, o_glo: np.ndarray, o_ghi: np.ndarray,
                 b_end: np.ndarray, b_endpos: np.ndarray, counters: np.ndarray, b_from: int, n_from: int,
                 defer: bool, marks: np.ndarray, link_counts: np.ndarray) -> int:
    """Frame the records of every buffer ``data[bstart[i]:bend[i]]`` (header included) into the ``o_*`` columns.

    ``d32``/``d64`` are 4- and 8-byte views of ``data`` (see :func:`views`): aligned fields are read in one load.

    ``bbase[i]`` is the file offset that ``bstart[i]`` stands for (for error positions). Per buffer, ``b_end``
    says why its walk stopped and ``b_endpos`` where. Starts at buffer ``b_from`` and row ``n_from``.

    The sequence table is sized by the distinct sequences seen, not by the worst case of a chunk, so that its
    probes stay in cache: before a buffer that could overfill it (one sequence per 16 bytes, one value per 4),
    the walk stops and returns; ``it_meta[2]`` then holds the buffer to resume at (-1 when all are done).
    Returns the number of rows written so far.

    ``defer``: ``data`` is the file itself, so tails of ``ROW_DEFER_TAIL`` rows become deferred references whose
    flag bit says whether the last value is at or above ``marks[width == 8]`` (the layout's tail mark), and
    ``ROW_LINK`` records may be linked onto an earlier row (module docstring), counted in ``link_counts``
    (rows of provider, hook, count) and ``counters[C_LINKED]``.
    """
    # borrowed: no reference counting in the loop (heapdiff._jit.borrow)
    data, d32, d64, bstart = borrow(data), borrow(d32), borrow(d64), borrow(bstart)
    bend, bcpu, bbase, lut = borrow(bend), borrow(bcpu), borrow(bbase), borrow(lut)
    rows, kg_lo, kg_hi, kg_group = borrow(rows), borrow(kg_lo), borrow(kg_hi), borrow(kg_group)
    kg_prov, it_slots, it_hash, it_start = borrow(kg_prov), borrow(it_slots), borrow(it_hash), borrow(it_start)
    it_len, it_pool, it_meta, o_ts = borrow(it_len), borrow(it_pool), borrow(it_meta), borrow(o_ts)
    o_cpu, o_tid, o_pid, o_hook = borrow(o_cpu), borrow(o_tid), borrow(o_pid), borrow(o_hook)
    o_prov, o_ver, o_ptr, o_status = borrow(o_prov), borrow(o_ver), borrow(o_ptr), borrow(o_status)
    o_pos, o_payoff, o_paylen, o_f = borrow(o_pos), borrow(o_payoff), borrow(o_paylen), borrow(o_f)
    o_tail, o_glo, o_ghi, b_end = borrow(o_tail), borrow(o_glo), borrow(o_ghi), borrow(b_end)
    b_endpos, counters, marks, link_counts = borrow(b_endpos), borrow(counters), borrow(marks), borrow(link_counts)
    n = n_from
    it_meta[2] = -1
    for b in range(b_from, bstart.shape[0]):
        room = bend[b] - bstart[b]
        if it_meta[0] + room // 16 + 1 > it_slots.shape[0] // 2 or it_meta[0] + room // 16 + 1 > it_hash.shape[0] \
                or it_meta[1] + room // 4 + 1 > it_pool.shape[0]:
            it_meta[2] = b
            return n
        p = bstart[b] + 0x48
        e = bend[b]
        first = n  # this buffer's first row: a record links only within its buffer
        why = 0
        while p + 8 <= e:
            m = _a32(data, d32, p)
            if m == 0xFFFFFFFF:
                break
            flags = m >> 24
            htype = (m >> 16) & 0xFF
            tid: Scalar = 0xFFFFFFFF
            pid: Scalar = 0xFFFFFFFF
            ts: Scalar = 0
            hook: Scalar = -1
            prov: Scalar = PROV_BY_GUID
            op: Scalar = 0
            ver: Scalar = 0
            ptr = 8
            hdr: Scalar = 0
            size: Scalar = 0
            glo = np.uint64(0)
            ghi = np.uint64(0)
            if (flags & 0x80) == 0:
                why = END_BAD_MARKER
                break
            if (flags & 0xC0) == 0x80 and (flags & 0x10) != 0:
                size = m & 0xFFFF
                hdr = S.MESSAGE_HEADER_SIZE
                prov = PROV_MESSAGE
                if size >= 16 and p + 16 <= e:
                    ts = np.int64(_a64(data, d64, p + 8))  # best effort; message options vary
            elif (flags & 0xC0) != 0xC0:
                why = END_BAD_MARKER
                break
            elif htype <= 4 or htype == 0x10 or htype == 0x11:
                size = _u16(data, p + 4)
                op = np.int64(data[p + 6])
                grp = np.int64(data[p + 7])
                hook = (grp << 8) | op
                prov = grp
                if hook == 0x030A:
                    prov = 0x14
                v = _u16(data, p)
                ver = v & 0xFF
                if htype == 0x10 or htype == 0x11:
                    ptr = 4 if htype == 0x10 else 8
                    if p + 0x10 > e:
                        why = END_OVERRUN
                        break
                    ts = np.int64(_a64(data, d64, p + 8))
                    hdr = 0x10
                else:
                    ptr = 4 if (htype == 1 or htype == 3) else 8
                    if htype == 0:
                        why = END_UNKNOWN_HEADER
                        break
                    if p + 0x18 > e:
                        why = END_OVERRUN
                        break
                    tid = _a32(data, d32, p + 8)
                    pid = _a32(data, d32, p + 12)
                    ts = np.int64(_a64(data, d64, p + 16))
                    hdr = 0x20 if htype <= 2 else 0x18
                # extended items announced in the Version word (PEBS index, PMC counters), notes 3.3
                hdr += 8 * ((1 if (v & 0x8000) else 0) + ((v & 0x0700) >> 8))
            elif htype == 0x0A or htype == 0x14 or htype == 0x0B or htype == 0x15 or htype == 0x12 \
                    or htype == 0x13 or htype == 0x0D:
                size = m & 0xFFFF
                if p + 0x30 > e or size < 0x30:
                    why = END_OVERRUN if size >= 0x30 else END_SHORT_RECORD
                    break
                tid = _a32(data, d32, p + 8)
                pid = _a32(data, d32, p + 12)
                ts = np.int64(_a64(data, d64, p + 16))
                glo = _a64(data, d64, p + 0x18)
                ghi = _a64(data, d64, p + 0x20)
                if htype == 0x12 or htype == 0x13 or htype == 0x0D:
                    ptr = 4 if htype == 0x12 else 8
                    hdr = 0x50
                    if size < hdr or p + hdr > e:
                        why = END_SHORT_RECORD if size < hdr else END_OVERRUN
                        break
                    op = np.int64(data[p + 0x2D])
                    ver = np.int64(data[p + 0x2A])
                    if (_u16(data, p + 4) & 1) != 0:
                        if p + size > e:  # the item walk below must not read past the filled end
                            why = END_OVERRUN
                            break
                        q = p + 0x50
                        ok = False
                        while q + 8 <= p + size:
                            isz = _u16(data, q)
                            et = _u16(data, q + 2)
                            link = _u16(data, q + 4) & 1
                            if isz < 8 or q + isz > p + size:
                                break
                            if et == S.EXT_TYPE_STACK_TRACE32 or et == S.EXT_TYPE_STACK_TRACE64:
                                counters[C_EXT_STACKS] += 1
                            q += isz
                            if link == 0:
                                ok = True
                                break
                        if not ok:
                            why = END_BAD_EXT_ITEM
                            break
                        hdr = q - p
                else:
                    ptr = 4 if (htype == 0x0A or htype == 0x0B) else 8
                    hdr = 0x30 if (htype == 0x0A or htype == 0x14) else 0x48
                    op = np.int64(data[p + 4])
                    ver = _u16(data, p + 6) & 0xFF
                for k in range(kg_lo.shape[0]):
                    if kg_lo[k] == glo and kg_hi[k] == ghi:
                        hook = (np.int64(kg_group[k]) << 8) | op
                        prov = np.int64(kg_prov[k])
                        break
            else:
                why = END_UNKNOWN_HEADER
                break
            if size < hdr:
                why = END_SHORT_RECORD
                break
            if p + size > e:
                why = END_OVERRUN
                break
            pay = p + hdr
            plen = size - hdr
            st = 0
            tail = -1
            lflags = 0
            li = -1
            if hook >= 0:
                li = lut[(hook << 1) | (1 if ptr == 8 else 0)]
                if li >= 0:
                    lflags = rows[li, 2]
                    mn = rows[li, 0]
                    mx = rows[li, 1]
                    if plen < mn or (mx >= 0 and plen > mx):
                        st = ST_BAD_PAYLOAD
                    else:
                        # declared fields are contiguous from column 0; the others keep stale values that
                        # no reader looks at (what a column means depends on the hook)
                        for k in range(NF):
                            w = rows[li, 5 + 2 * k]
                            if w == 0:
                                break
                            fp = pay + rows[li, 4 + 2 * k]
                            if fp + 16 <= e:
                                o_f[n, k] = _rdw(d64, fp, w)
                            else:  # the buffer's last bytes: stay inside it
                                o_f[n, k] = _uw(data, d32, d64, fp, w)
                        toff = rows[li, 3]
                        if toff >= 0:
                            rest = plen - toff
                            if rest % ptr != 0:
                                st = ST_BAD_PAYLOAD
                                counters[C_BAD_TAIL] += 1
                            elif (defer and (rows[li, 2] & ROW_DEFER_TAIL) != 0 and pay + toff < DEFERRED_MAX_OFFSET
                                  and rest // ptr <= DEFERRED_MAX_COUNT):
                                tail = deferred_ref(data, d32, d64, pay + toff, rest // ptr, ptr, marks)
                            else:
                                tail = intern_seq(data, d32, d64, pay + toff, rest // ptr, ptr, it_slots, it_hash,
                                                  it_start,
                                                  it_len, it_pool, it_meta)
                        if (rows[li, 2] & ROW_KEEP_RAW) != 0:
                            st |= ST_KEEP_RAW
            if (lflags & ROW_LINK) != 0 and st == 0 and tail >= DEFERRED and _link(
                    o_ts, o_tid, o_hook, o_ptr, o_status, o_tail, lut, rows, n, first, hook, prov, ts,
                    np.int64(o_f[n, rows[li, R_LINK_TS]]), np.int64(o_f[n, rows[li, R_LINK_TID]]), tail, link_counts):
                counters[C_LINKED] += 1
                if ts > counters[C_LINK_LAST_TS]:
                    counters[C_LINK_LAST_TS] = ts
                p += (size + 7) & ~7
                continue
            o_ts[n] = ts
            o_cpu[n] = bcpu[b]
            o_tid[n] = tid
            o_pid[n] = pid
            o_hook[n] = hook
            o_prov[n] = prov
            o_ver[n] = ver
            o_ptr[n] = ptr
            o_status[n] = st
            o_pos[n] = bbase[b] + (p - bstart[b])
            o_tail[n] = tail
            # only the rows that need them: payload bytes kept for a Python decoder, a GUID to intern
            if st & ST_KEEP_RAW:
                o_payoff[n] = pay
                o_paylen[n] = plen
            if prov == PROV_BY_GUID:
                o_glo[n] = glo
                o_ghi[n] = ghi
            n += 1
            p += (size + 7) & ~7
        b_end[b] = why
        b_endpos[b] = bbase[b] + (p - bstart[b])
    return n


@njit()
def hold_kernel(rows: np.ndarray, s_ts: np.ndarray, s_cpu: np.ndarray, s_tid: np.ndarray, s_pid: np.ndarray,
                s_hook: np.ndarray, s_prov: np.ndarray, s_ver: np.ndarray, s_ptr: np.ndarray, s_status: np.ndarray,
                s_pos: np.ndarray, s_tail: np.ndarray, s_serial: np.ndarray, s_f: np.ndarray,
                d_ts: np.ndarray, d_cpu: np.ndarray, d_tid: np.ndarray, d_pid: np.ndarray, d_hook: np.ndarray,
                d_prov: np.ndarray, d_ver: np.ndarray, d_ptr: np.ndarray, d_status: np.ndarray, d_pos: np.ndarray,
                d_tail: np.ndarray, d_serial: np.ndarray, d_f: np.ndarray) -> None:
    """Rows ``rows`` of the ``s_*`` columns (the reader's batch columns, in ``BATCH_COLUMNS`` order, then the
    field rows) to the start of the ``d_*`` ones, in that order.

    Why one kernel: the reader holds back the rows of a chunk that the next chunk may precede (~10% of them)
    by moving them to its other window; thirteen ``np.take`` calls per chunk did it in ~0.2 s of the 10M
    benchmark trace's read, one pass over the rows here without the GIL.
    """
    # borrowed: no reference counting in the loop (heapdiff._jit.borrow)
    rows, s_ts, s_cpu, s_tid, s_pid = borrow(rows), borrow(s_ts), borrow(s_cpu), borrow(s_tid), borrow(s_pid)
    s_hook, s_prov, s_ver, s_ptr = borrow(s_hook), borrow(s_prov), borrow(s_ver), borrow(s_ptr)
    s_status, s_pos, s_tail, s_serial, s_f = borrow(s_status), borrow(s_pos), borrow(s_tail), borrow(s_serial), \
        borrow(s_f)
    d_ts, d_cpu, d_tid, d_pid = borrow(d_ts), borrow(d_cpu), borrow(d_tid), borrow(d_pid)
    d_hook, d_prov, d_ver, d_ptr = borrow(d_hook), borrow(d_prov), borrow(d_ver), borrow(d_ptr)
    d_status, d_pos, d_tail, d_serial, d_f = borrow(d_status), borrow(d_pos), borrow(d_tail), borrow(d_serial), \
        borrow(d_f)
    nf = s_f.shape[1]
    for k in range(rows.shape[0]):
        r = rows[k]
        d_ts[k] = s_ts[r]
        d_cpu[k] = s_cpu[r]
        d_tid[k] = s_tid[r]
        d_pid[k] = s_pid[r]
        d_hook[k] = s_hook[r]
        d_prov[k] = s_prov[r]
        d_ver[k] = s_ver[r]
        d_ptr[k] = s_ptr[r]
        d_status[k] = s_status[r]
        d_pos[k] = s_pos[r]
        d_tail[k] = s_tail[r]
        d_serial[k] = s_serial[r]
        for c in range(nf):
            d_f[k, c] = s_f[r, c]


def views(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The u32 and u64 views of a byte array that the kernels read aligned fields through."""
    n = int(data.shape[0])
    return data[: n - n % 4].view(np.uint32), data[: n - n % 8].view(np.uint64)


@dataclass(frozen=True)
class FieldSpec:
    """One payload field to copy into a column: byte offset and width (1, 2, 4 or 8)."""

    offset: int
    width: int


@dataclass(frozen=True)
class LayoutRow:
    """What to pull out of records of one hook and pointer size (declared by ``events``)."""

    hook: int
    ptr: int
    min_len: int
    max_len: int                      # -1: no upper bound
    fields: Sequence[FieldSpec] = ()
    tail_offset: int = -1             # pointer-sized values from here to the end are interned as one sequence
    keep_raw: bool = False            # hand the payload bytes over for a Python decoder
    defer_tail: bool = False          # the tail may stay a deferred reference (module docstring)
    link: tuple[int, int] | None = None  # field indexes of (timestamp, thread) naming an earlier record
    link_target: bool = False         # records of this row may take a linked record's tail


class Layout:
    """The layout table in the array form the kernel reads."""

    def __init__(self, rows: Sequence[LayoutRow], tail_marks: tuple[int, int] = (1 << 32, (1 << 64) - 1)) -> None:
        """``tail_marks``: (4-byte, 8-byte) value at or above which a deferred tail's last value sets its flag."""
        self.marks = np.array(tail_marks, np.uint64)
        self.lut = np.full(LUT_SIZE, -1, np.int32)
        self.rows = np.zeros((max(1, len(rows)), ROW_LEN), np.int32)
        for i, r in enumerate(rows):
            if len(r.fields) > NF:
                raise ValueError(f"hook {r.hook:#x}: at most {NF} fields")
            key = (r.hook << 1) | (1 if r.ptr == 8 else 0)
            if self.lut[key] >= 0:
                raise ValueError(f"hook {r.hook:#x} ptr {r.ptr} declared twice")
            self.lut[key] = i
            if r.link is not None and (not r.defer_tail or r.keep_raw
                                       or not all(0 <= k < len(r.fields) for k in r.link)):
                raise ValueError(f"hook {r.hook:#x}: a linking row defers its tail, keeps no payload and names "
                                 "two of its fields")
            flags = ((ROW_KEEP_RAW if r.keep_raw else 0) | (ROW_DEFER_TAIL if r.defer_tail else 0)
                     | (ROW_LINK if r.link is not None else 0) | (ROW_LINK_TARGET if r.link_target else 0))
            row = [r.min_len, r.max_len, flags, r.tail_offset]
            for k in range(NF):
                if k < len(r.fields):
                    row += [r.fields[k].offset, r.fields[k].width]
                    if r.fields[k].offset + r.fields[k].width > r.min_len:
                        raise ValueError(f"hook {r.hook:#x}: field {k} ends past the minimum payload")
                else:
                    row += [0, 0]
            row += list(r.link) if r.link is not None else [0, 0]
            self.rows[i] = row
