"""The record walk (record framing): buffers in, one row of columns per record out.

This is the hot path, so it is one JIT-compiled loop (plain Python when numba is absent: same code, same results).
It frames every header kind of the notes' section 3, reading the offsets and header kinds declared in
:mod:`heapdiff.etl.structs`, and, for the records whose (hook, pointer size) has a row in the layout table
(:mod:`heapdiff.etl.layout_table`, rows declared by ``events``), copies the declared payload fields into columns
and interns the declared pointer-array tail (stack frames) into a table of distinct sequences, or leaves it a
deferred reference (:mod:`heapdiff.etl.sequences`). It reports what the bytes say (group, opcode, GUID) and never
interprets a field: what a column or a provider means is the events layer's business.

Linked records: a row declared ``link`` (a stack walk) names the record it belongs to by the values of two of its
fields: that record's header timestamp and thread. When its tail is deferred and the record it names is one of the
:data:`LINK_BACK` rows before it in the same buffer (the nearest one back with that timestamp and thread, outside the
linking row's own hook group) and is declared ``link_target``, the tail is put on that record's row and no row is
written for the linking record: it is counted (``link_counts``, per provider and hook) instead. Why: a walk follows its
event in the same buffer, and a third of a heap trace's records are walks; carrying them through the time merge, the
counting, the matching and the ops kernels only to put their tail on the row before them was a large part of reading a
heap trace (benchmarks/profile.md, etl.walk). Which tail wins when several link to one record is decided by the tail's
flag (:func:`~heapdiff.etl.sequences.deferred_ref`): a first tail is taken; a flagged tail is replaced by an unflagged
one and absorbed by any; an unflagged tail onto a record that has an unflagged one is not linked (its row is written, as
is every record that does not link, and the events layer deals with it as before). """

from __future__ import annotations

import numpy as np

from heapdiff._jit import borrow, njit
from heapdiff.etl import structs as S
from heapdiff.etl.fields import Scalar, a32, a64, u16, uint, uint_branchless
from heapdiff.etl.layout_table import (
    NF,
    R_FIELDS,
    R_FLAGS,
    R_LINK_TID,
    R_LINK_TS,
    R_MAX,
    R_MIN,
    R_TAIL,
    ROW_DEFER_TAIL,
    ROW_KEEP_RAW,
    ROW_LINK,
    ROW_LINK_TARGET,
)
from heapdiff.etl.sequences import DEFERRED, DEFERRED_MAX_COUNT, DEFERRED_MAX_OFFSET, deferred_ref, intern_seq

#: rows of its buffer that a linking record looks back over for the one it names
LINK_BACK = 16
#: (provider, hook, count) rows of the linked records' counts array
LINK_KINDS = 8

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
END_FILLER_EARLY = 6        # the filler before the buffer's valid bytes end: records after it lost (the reader's)
END_NAMES = ("clean", "bad_marker", "record_overruns_buffer", "unknown_header_type", "record_shorter_than_header",
             "bad_extended_item", "filler_before_end")

# misc counters
C_EXT_STACKS = 0            # EVENT_HEADER STACK_TRACE32/64 extended items
C_LINKED = 1                # records linked onto an earlier row (no row of their own)
C_BAD_TAIL = 2
C_LINK_LAST_TS = 3          # the latest timestamp of a linked record (the caller starts it at INT64 min)
N_COUNTERS = 4

#: the provider column of a record: its group byte, an interned GUID, or one of these
PROV_MESSAGE = -1
PROV_BY_GUID = -2


@njit(inline="always")
def _skip_ext_items(data: np.ndarray, q: int, end: int, counters: np.ndarray) -> int:
    """Where the payload starts after the EVENT_HEADER extended items from ``q`` (record end ``end``), or -1 when
    an item's size does not fit or the chain does not end; counts the stack-trace items."""
    while q + S.EXT_ITEM_MIN <= end:
        isz = u16(data, q + S.EXT_ITEM_SIZE)
        et = u16(data, q + S.EXT_ITEM_TYPE)
        more = u16(data, q + S.EXT_ITEM_LINKAGE) & S.EXT_LINKAGE_MORE
        if isz < S.EXT_ITEM_MIN or q + isz > end:
            return -1
        if et == S.EXT_TYPE_STACK_TRACE32 or et == S.EXT_TYPE_STACK_TRACE64:
            counters[C_EXT_STACKS] += 1
        q += isz
        if more == 0:
            return q
    return -1


@njit(inline="always")
def _payload_fields(data: np.ndarray, d32: np.ndarray, d64: np.ndarray, e: int, rows: np.ndarray, li: int,
                    pay: int, plen: int, ptr: int, o_f: np.ndarray, n: int, defer: bool, marks: np.ndarray,
                    it_slots: np.ndarray, it_hash: np.ndarray, it_start: np.ndarray, it_len: np.ndarray,
                    it_pool: np.ndarray, it_meta: np.ndarray, counters: np.ndarray) -> tuple[int, int]:
    """Copy the fields of layout row ``li`` from the payload at ``pay`` (``plen`` bytes, buffer end ``e``) into
    row ``n`` of ``o_f``; returns (status bits, tail: a sequence id, a deferred reference or -1)."""
    if plen < rows[li, R_MIN] or (rows[li, R_MAX] >= 0 and plen > rows[li, R_MAX]):
        return ST_BAD_PAYLOAD, -1
    st = 0
    tail = -1
    # declared fields are contiguous from column 0; the others keep stale values that no reader looks at (what a
    # column means depends on the hook)
    for k in range(NF):
        w = rows[li, R_FIELDS + 2 * k + 1]
        if w == 0:
            break
        fp = pay + rows[li, R_FIELDS + 2 * k]
        if fp + 16 <= e:
            o_f[n, k] = uint_branchless(d64, fp, w)
        else:  # the buffer's last bytes: stay inside it
            o_f[n, k] = uint(data, d32, d64, fp, w)
    toff = rows[li, R_TAIL]
    if toff >= 0:
        rest = plen - toff
        if rest % ptr != 0:
            st = ST_BAD_PAYLOAD
            counters[C_BAD_TAIL] += 1
        elif (defer and (rows[li, R_FLAGS] & ROW_DEFER_TAIL) != 0 and pay + toff < DEFERRED_MAX_OFFSET
              and rest // ptr <= DEFERRED_MAX_COUNT):
            tail = deferred_ref(data, d32, d64, pay + toff, rest // ptr, ptr, marks)
        else:
            tail = intern_seq(data, d32, d64, pay + toff, rest // ptr, ptr, it_slots, it_hash, it_start, it_len,
                              it_pool, it_meta)
    if (rows[li, R_FLAGS] & ROW_KEEP_RAW) != 0:
        st |= ST_KEEP_RAW
    return st, tail


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
    if lj < 0 or (rows[lj, R_FLAGS] & ROW_LINK_TARGET) == 0:
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

    Long because it is the one loop over every record of a trace: each header kind is decoded inline, so that the
    compiled loop makes no call per record.

    ``d32``/``d64`` are 4- and 8-byte views of ``data`` (see :func:`~heapdiff.etl.fields.views`): aligned fields
    are read in one load.

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
    (data, d32, d64, bstart, bend, bcpu, bbase, lut, rows, kg_lo, kg_hi, kg_group, kg_prov, it_slots, it_hash, it_start,
     it_len, it_pool, it_meta, o_ts, o_cpu, o_tid, o_pid, o_hook, o_prov, o_ver, o_ptr, o_status, o_pos, o_payoff,
     o_paylen, o_f, o_tail, o_glo, o_ghi, b_end, b_endpos, counters, marks, link_counts) = borrow((
        data, d32, d64, bstart, bend, bcpu, bbase, lut, rows, kg_lo, kg_hi, kg_group, kg_prov, it_slots, it_hash,
        it_start, it_len, it_pool, it_meta, o_ts, o_cpu, o_tid, o_pid, o_hook, o_prov, o_ver, o_ptr, o_status, o_pos,
        o_payoff, o_paylen, o_f, o_tail, o_glo, o_ghi, b_end, b_endpos, counters, marks, link_counts))
    n = n_from
    it_meta[2] = -1
    for b in range(b_from, bstart.shape[0]):
        room = bend[b] - bstart[b]
        if it_meta[0] + room // 16 + 1 > it_slots.shape[0] // 2 or it_meta[0] + room // 16 + 1 > it_hash.shape[0] \
                or it_meta[1] + room // 4 + 1 > it_pool.shape[0]:
            it_meta[2] = b
            return n
        p = bstart[b] + S.BUFFER_HEADER_SIZE
        e = bend[b]
        first = n  # this buffer's first row: a record links only within its buffer
        why = END_CLEAN
        while p + S.MESSAGE_HEADER_SIZE <= e:
            m = a32(data, d32, p)
            if m == S.MARKER_FILLER:
                break
            flags = m >> S.MARKER_FLAGS_SHIFT
            htype = (m >> S.MARKER_TYPE_SHIFT) & S.MARKER_TYPE_MASK
            kind = S.HEADER_KIND_OF[htype]
            tid: Scalar = S.NO_THREAD
            pid: Scalar = S.NO_THREAD
            ts: Scalar = 0
            hook: Scalar = -1
            prov: Scalar = PROV_BY_GUID
            op: Scalar = 0
            ver: Scalar = 0
            ptr: Scalar = 8
            hdr: Scalar = 0
            size: Scalar = 0
            glo = np.uint64(0)
            ghi = np.uint64(0)
            if (flags & S.MARKER_FLAG_TRACE_HEADER) == 0:
                why = END_BAD_MARKER
                break
            if (flags & S.MARKER_TYPED) == S.MARKER_FLAG_TRACE_HEADER and (flags & S.MARKER_FLAG_MESSAGE) != 0:
                size = m & S.MARKER_SIZE_MASK
                hdr = S.MESSAGE_HEADER_SIZE
                prov = PROV_MESSAGE
                if size >= S.MESSAGE_TS_OFFSET + 8 and p + S.MESSAGE_TS_OFFSET + 8 <= e:
                    ts = np.int64(a64(data, d64, p + S.MESSAGE_TS_OFFSET))  # best effort; message options vary
            elif (flags & S.MARKER_TYPED) != S.MARKER_TYPED:
                why = END_BAD_MARKER
                break
            elif kind == S.HK_SYSTEM or kind == S.HK_PERFINFO:
                size = u16(data, p + S.CLASSIC_SIZE)
                op = np.int64(data[p + S.CLASSIC_TYPE])
                prov = np.int64(data[p + S.CLASSIC_GROUP])
                hook = (prov << 8) | op
                v = u16(data, p + S.CLASSIC_VERSION)
                ver = v & S.VERSION_MASK
                ptr = S.HEADER_PTR_OF[htype]
                hdr = S.HEADER_SIZE_OF[htype]
                if kind == S.HK_PERFINFO:
                    if p + S.PERFINFO_SIZE > e:
                        why = END_OVERRUN
                        break
                    ts = np.int64(a64(data, d64, p + S.PERFINFO_TS))
                else:
                    if p + S.SYSTEM_FIELDS_END > e:
                        why = END_OVERRUN
                        break
                    tid = a32(data, d32, p + S.SYSTEM_TID)
                    pid = a32(data, d32, p + S.SYSTEM_PID)
                    ts = np.int64(a64(data, d64, p + S.SYSTEM_TS))
                # extended items announced in the Version word (PEBS index, PMC counters), notes 3.3
                hdr += S.CLASSIC_EXT_ITEM_SIZE * ((1 if (v & S.VERSION_PEBS_FLAG) else 0)
                                                  + ((v & S.VERSION_PMC_MASK) >> S.VERSION_PMC_SHIFT))
            elif kind == S.HK_EVENT_TRACE or kind == S.HK_EVENT_HEADER:
                size = m & S.MARKER_SIZE_MASK
                if p + S.GUID_HEADER_MIN > e or size < S.GUID_HEADER_MIN:
                    why = END_OVERRUN if size >= S.GUID_HEADER_MIN else END_SHORT_RECORD
                    break
                tid = a32(data, d32, p + S.GUID_TID)
                pid = a32(data, d32, p + S.GUID_PID)
                ts = np.int64(a64(data, d64, p + S.GUID_TS))
                glo = a64(data, d64, p + S.GUID_LO)
                ghi = a64(data, d64, p + S.GUID_HI)
                ptr = S.HEADER_PTR_OF[htype]
                hdr = S.HEADER_SIZE_OF[htype]
                if kind == S.HK_EVENT_HEADER:
                    if size < hdr or p + hdr > e:
                        why = END_SHORT_RECORD if size < hdr else END_OVERRUN
                        break
                    op = np.int64(data[p + S.EVENT_HEADER_OPCODE])
                    ver = np.int64(data[p + S.EVENT_HEADER_VERSION])
                    if (u16(data, p + S.EVENT_HEADER_FLAGS) & S.EVENT_HEADER_FLAG_EXTENDED_INFO) != 0:
                        if p + size > e:  # the item walk must not read past the filled end
                            why = END_OVERRUN
                            break
                        q = _skip_ext_items(data, p + hdr, p + size, counters)
                        if q < 0:
                            why = END_BAD_EXT_ITEM
                            break
                        hdr = q - p
                else:
                    op = np.int64(data[p + S.EVENT_TRACE_OPCODE])
                    ver = u16(data, p + S.EVENT_TRACE_VERSION) & S.VERSION_MASK
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
            li = lut[(hook << 1) | (1 if ptr == 8 else 0)] if hook >= 0 else -1
            if li >= 0:
                st, tail = _payload_fields(data, d32, d64, e, rows, li, pay, plen, ptr, o_f, n, defer, marks,
                                           it_slots, it_hash, it_start, it_len, it_pool, it_meta, counters)
            step = (size + S.RECORD_ALIGN - 1) & ~(S.RECORD_ALIGN - 1)
            if li >= 0 and (rows[li, R_FLAGS] & ROW_LINK) != 0 and st == 0 and tail >= DEFERRED and _link(
                    o_ts, o_tid, o_hook, o_ptr, o_status, o_tail, lut, rows, n, first, hook, prov, ts,
                    np.int64(o_f[n, rows[li, R_LINK_TS]]), np.int64(o_f[n, rows[li, R_LINK_TID]]), tail, link_counts):
                counters[C_LINKED] += 1
                if ts > counters[C_LINK_LAST_TS]:
                    counters[C_LINK_LAST_TS] = ts
                p += step
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
            p += step
        b_end[b] = why
        b_endpos[b] = bbase[b] + (p - bstart[b])
    return n
