"""One pass over a trace: counts for `info`, the rare records decoded, stacks matched, heap ops for the reducer.

The reader hands over time-ordered record batches; this module classifies them (by provider and hook, whatever
the header kind), decodes images and processes, matches stack references to their events, and turns heap records
into the reducer's columnar op batches. It never holds more than a batch of records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heapdiff._jit import borrow, njit, prefetch
from heapdiff.errors import Anomalies
from heapdiff.etl.batch import RecordBatch
from heapdiff.etl.logfile import LogfileHeader
from heapdiff.etl.reader import CHUNK_BYTES, GUID_PROVIDER_BASE, Reader
from heapdiff.etl.sequences import DEFERRED, InternedStacks
from heapdiff.etl.trace import TraceFile, open_trace
from heapdiff.etl.walk import ST_BAD_PAYLOAD, ST_KEEP_RAW
from heapdiff.events import kinds as K
from heapdiff.events.decode import (
    ImageEvent,
    ImageIdEvent,
    PayloadError,
    ProcessEvent,
    decode_image,
    decode_image_id,
    decode_process,
    image_id_fits,
)
from heapdiff.events.images import kernel_floor
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
    GROUP_IMAGE_ID,
    IMAGE_HOOKS,
    KERNEL_GUIDS,
    PROCESS_HOOKS,
    STACK_REF_HOOKS,
    layout,
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
from heapdiff.events.stacks import PREFETCH_ROWS, StackMatcher

#: event kind index -> name; the ten keys partition every record of the file
KIND_NAMES = (*K.EVENT_KIND_NAMES, "other")
_KIND = {n: i for i, n in enumerate(KIND_NAMES)}

_HOOK_OP = {K.HOOK_HEAP_ALLOC: OP_ALLOC, K.HOOK_HEAP_FREE: OP_FREE, K.HOOK_HEAP_REALLOC: OP_REALLOC,
            K.HOOK_HEAP_CREATE: OP_CREATE, K.HOOK_HEAP_DESTROY: OP_DESTROY}


def _kind_tables() -> tuple[np.ndarray, np.ndarray]:
    by_prov = np.full(GUID_PROVIDER_BASE, _KIND["other"], np.int8)
    by_prov[K.GROUP_STACKWALK] = _KIND["stack_walk"]
    by_prov[K.GROUP_IMAGE] = _KIND["image"]
    by_prov[K.GROUP_PROCESS] = _KIND["process"]
    by_prov[K.GROUP_HEAP] = _KIND["heap_other"]
    heap_op = np.full(256, _KIND["heap_other"], np.int8)
    for hook, name in K.HEAP_HOOK_KIND.items():
        heap_op[hook & 0xFF] = _KIND[name]
    return by_prov, heap_op


_BY_PROV, _HEAP_OP_KIND = _kind_tables()
_OTHER = _KIND["other"]
#: how many earlier ops of the batch a stack walk looks back over for its event (else an ATTACH op)
_ATTACH_LOOKBACK = 64
_OP_BY_HOOK_LOW = np.zeros(256, np.uint8)
for _h, _op in _HOOK_OP.items():
    _OP_BY_HOOK_LOW[_h & 0xFF] = _op


@njit(inline="always")
def _provider_of(p: Any, h: Any) -> Any:
    """The provider a record counts under: the one its header names (group byte or GUID), except a Process-group
    image load (hook 0x030A), which consumers see as the Image provider's Load (notes 3.7)."""
    if h == K.HOOK_PROCESS_LOAD_IMAGE and p == K.GROUP_PROCESS:
        return K.GROUP_IMAGE
    return p


@njit(inline="always")
def _kind_of(p: Any, h: Any) -> int:
    if p == K.GROUP_HEAP:
        return int(_HEAP_OP_KIND[h & 0xFF])
    if 0 <= p < GUID_PROVIDER_BASE:
        return int(_BY_PROV[p])
    return _OTHER


@njit()
def _count_kernel(prov: np.ndarray, hook: np.ndarray, status: np.ndarray, rows: np.ndarray, prov_counts: np.ndarray,
                  kind_counts: np.ndarray) -> int:
    """Records ``rows`` per provider and per event kind; returns how many payloads did not fit their layout."""
    # borrowed: no reference counting in the loop (heapdiff._jit.borrow)
    prov, hook, status, rows = borrow(prov), borrow(hook), borrow(status), borrow(rows)
    prov_counts, kind_counts = borrow(prov_counts), borrow(kind_counts)
    bad = 0
    # (no prefetch here: three columns a row, measured no faster with it)
    for i in range(rows.shape[0]):
        r = rows[i]
        h = np.int64(hook[r])
        p = _provider_of(np.int64(prov[r]), h)
        prov_counts[p + 1] += 1
        kind_counts[_kind_of(p, h)] += 1
        if status[r] & ST_BAD_PAYLOAD:
            bad += 1
    return bad


@dataclass
class TraceScan:
    """Everything one pass learned about a trace, apart from what the heap sink folded."""

    path: str
    header: LogfileHeader
    buffers: int
    compressed_buffers: int
    size: int
    records: int = 0
    providers: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KIND_NAMES, 0))
    stack_refs: int = 0
    stacks_matched: int = 0
    anomalies: Anomalies = field(default_factory=Anomalies)
    first_anomaly_offset: dict[str, int] = field(default_factory=dict)
    images: list[ImageEvent] = field(default_factory=list)
    processes: list[ProcessEvent] = field(default_factory=list)
    image_id_raw: list[tuple[int, int, int, bytes]] = field(default_factory=list)  # (ts, opcode, ptr, payload)
    sequences: InternedStacks = field(default_factory=InternedStacks)
    last_ts: int | None = None
    ext_stacks: int = 0
    _image_ids: list[ImageIdEvent] | None = None
    _reader: Reader | None = None

    def resolve_stacks(self, stacks: np.ndarray) -> np.ndarray:
        """Sequence ids for a column of stacks as the heap sink saw them (deferred walks interned now, from the
        trace, which must still be open); -1 (no stack) stays -1. Then the reader is let go."""
        if self._reader is None:
            return np.asarray(stacks, np.int64).copy()
        return self._reader.intern_deferred(stacks)

    def release_reader(self) -> None:
        self._reader = None

    @property
    def pointer_size(self) -> int:
        return self.header.pointer_size

    @property
    def image_ids(self) -> list[ImageIdEvent]:
        """ImageID and DbgID_RSDS events (notes 6.3), decoded on first use; their sizes were checked when read."""
        if self._image_ids is None:
            self._image_ids = [e for e in (decode_image_id(raw, op, ptr, ts) for ts, op, ptr, raw in self.image_id_raw)
                               if e is not None]
        return self._image_ids


def _provider_key(p: int, guids: list[str]) -> str:
    if p < 0:
        return "message"
    if p < GUID_PROVIDER_BASE:
        return K.GROUP_GUIDS.get(p, f"group:{p:#04x}")
    return guids[p - GUID_PROVIDER_BASE]


HeapSink = Callable[["OpBatch"], None]
Progress = Callable[[int, int], None]


def scan(source: TraceFile | bytes | np.ndarray, heap_sink: HeapSink | None = None,
         progress: Progress | None = None, chunk_bytes: int = CHUNK_BYTES) -> TraceScan:
    """Read a trace once. ``heap_sink`` receives the reducer's op batches in time order, if given."""
    trace = source if isinstance(source, TraceFile) else open_trace(source)
    # the heap job needs the frames of the live blocks' stacks only: it lets the reader defer the rest
    reader = Reader(trace, layout(), KERNEL_GUIDS, chunk_bytes=chunk_bytes, defer_tails=heap_sink is not None)
    out = TraceScan(path=trace.path, header=trace.header, buffers=len(trace.buffers),
                    compressed_buffers=trace.compressed_buffers, size=trace.size, sequences=reader.sequences,
                    anomalies=reader.anomalies, _reader=reader)
    matcher = StackMatcher(attach_kernel_keys=heap_sink is None)
    kfloor = np.uint64(kernel_floor(trace.header.pointer_size))
    prov_counts = np.zeros(GUID_PROVIDER_BASE + 2, np.int64)
    kind_counts = np.zeros(len(KIND_NAMES), np.int64)
    for batch in reader.batches():
        n = len(batch)
        if not n:
            continue
        src, rows = batch.src, batch.rows
        # records per provider (message records at index 0, kernel groups at 1..256, GUIDs above) and per kind,
        # in one JIT pass (the kernels read the reader's columns through the batch's rows: no gather)
        # a bound on the batch's provider indexes without scanning them: a group byte (< GUID_PROVIDER_BASE),
        # -1 (messages) or a GUID the reader has interned
        top = GUID_PROVIDER_BASE + len(reader.providers) + 2
        if top > prov_counts.shape[0]:
            prov_counts = np.concatenate((prov_counts, np.zeros(top - prov_counts.shape[0], np.int64)))
        nbad = _count_kernel(src["prov"], src["hook"], src["status"], rows, prov_counts, kind_counts)
        if nbad:
            prov = batch.prov
            for i in np.flatnonzero(batch.status & ST_BAD_PAYLOAD).tolist():
                h = int(batch.hook[i])
                kind = KIND_NAMES[_kind_of(_provider_of(int(prov[i]), h), h)]
                out.anomalies.add(f"bad_payload_size:{kind}")
                out.first_anomaly_offset.setdefault(f"bad_payload_size:{kind}", int(batch.pos[i]))
        out.last_ts = int(src["ts"][rows[-1]])
        # rare records: decode in time order
        pend: dict[int, int] = {}
        if batch.raw:
            pend = _decode_rare(batch, out)
        targets, resolved = matcher.match(batch)
        if heap_sink is not None:
            ops = _heap_ops(batch, targets, resolved, pend, _kernel_only(reader.sequences, kfloor))
            if ops is not None:
                heap_sink(ops)
        if progress is not None:
            progress(reader.stats.bytes_framed, trace.size)
    tail = matcher.finish()
    if heap_sink is not None and tail:
        heap_sink(_attach_ops(tail))
    # records linked onto their event's row by the reader (stack walks: etl.walk) are in no batch: counted here,
    # each a stack reference matched to its event
    for linked_prov, h, c in reader.linked():
        p = _provider_of(linked_prov, h)
        prov_counts[p + 1] += c
        kind_counts[_kind_of(p, h)] += c
        if h in STACK_REF_HOOKS:
            matcher.refs += c
            if h == K.HOOK_STACK_WALK:
                matcher.matched += c
    if reader.stats.link_last_ts is not None:
        out.last_ts = reader.stats.link_last_ts if out.last_ts is None else max(out.last_ts,
                                                                                  reader.stats.link_last_ts)
    out.records = reader.stats.records
    out.ext_stacks = reader.stats.ext_stacks
    out.stack_refs = matcher.refs
    out.stacks_matched = matcher.matched
    if matcher.key_refs_unresolved:
        out.anomalies.add("stack_key_unresolved", matcher.key_refs_unresolved)
    orphans = matcher.refs - matcher.matched - matcher.key_refs_unresolved
    if orphans > 0:
        out.anomalies.add("stack_ref_without_event", orphans)
    for key, off in reader.first_anomaly_offset.items():
        out.first_anomaly_offset.setdefault(key, off)
    out.providers = {_provider_key(i - 1, reader.providers): int(c)
                     for i, c in enumerate(prov_counts.tolist()) if c}
    out.events = {name: int(kind_counts[i]) for i, name in enumerate(KIND_NAMES)}
    return out


def _decode_rare(batch: RecordBatch, out: TraceScan) -> dict[int, int]:
    """Decode kept payloads; returns {row index: pid} for process ends (they end blocks in the reducer)."""
    ends: dict[int, int] = {}
    serials = batch.serial
    keep = np.flatnonzero(batch.status & ST_KEEP_RAW)  # row order is time order (serials are framing order)
    hooks, vers, ptrs, tss = (batch.hook[keep].tolist(), batch.ver[keep].tolist(), batch.ptr[keep].tolist(),
                              batch.ts[keep].tolist())
    for k, i in enumerate(keep.tolist()):
        raw = batch.raw.get(int(serials[i]))
        if raw is None:
            continue
        hook, ver, ptr, ts = hooks[k], vers[k], ptrs[k], tss[k]
        try:
            if hook in IMAGE_HOOKS:
                out.images.append(decode_image(raw, hook, ver, ptr, ts))
            elif hook in PROCESS_HOOKS:
                pe = decode_process(raw, hook, ver, ptr, ts)
                out.processes.append(pe)
                if hook == K.HOOK_PROCESS_END:
                    ends[i] = pe.pid
            # image identities are kept for symbol look-up later and decoded when asked for (TraceScan.image_ids):
            # a merged trace has a pair per image, and decoding them all was most of reading such a trace
            elif hook >> 8 == GROUP_IMAGE_ID and image_id_fits(raw, hook & 0xFF, ptr):
                out.image_id_raw.append((ts, hook & 0xFF, ptr, raw))
        except PayloadError:
            kind = "image" if hook in IMAGE_HOOKS else "process" if hook in PROCESS_HOOKS else "image_id"
            out.anomalies.add(f"bad_payload:{kind}")
            out.first_anomaly_offset.setdefault(f"bad_payload:{kind}", int(batch.pos[i]))
    return ends


@njit(inline="always")
def _is_kernel_only(ref: Any, kernel_only: np.ndarray) -> bool:
    """A stack (sequence id or deferred reference) that is a kernel-only fragment (see :func:`_kernel_only`)."""
    if ref >= DEFERRED:
        return bool((ref >> 1) & 1)
    return bool(kernel_only[ref])


@njit()
def _ops_kernel(hook: np.ndarray, status: np.ndarray, f: np.ndarray, serial: np.ndarray, tail: np.ndarray,
                kernel_only: np.ndarray, targets: np.ndarray, pid: np.ndarray, tid: np.ndarray, ts: np.ndarray,
                rows: np.ndarray, pe_rows: np.ndarray,
                pe_pids: np.ndarray, o_op: np.ndarray, o_ts: np.ndarray, o_pid: np.ndarray, o_tid: np.ndarray,
                o_serial: np.ndarray, o_heap: np.ndarray, o_addr: np.ndarray, o_size: np.ndarray,
                o_old: np.ndarray, o_src: np.ndarray, o_stack: np.ndarray) -> int:
    """Heap records, matched stack walks and process ends of a batch (source rows ``rows``; ``targets`` and
    ``pe_rows`` are by batch row) -> the reducer's op columns, in order."""
    # borrowed: no reference counting in the loop (heapdiff._jit.borrow)
    hook, status, f, serial = borrow(hook), borrow(status), borrow(f), borrow(serial)
    tail, kernel_only, targets, pid = borrow(tail), borrow(kernel_only), borrow(targets), borrow(pid)
    tid, ts, rows, pe_rows = borrow(tid), borrow(ts), borrow(rows), borrow(pe_rows)
    pe_pids, o_op, o_ts, o_pid = borrow(pe_pids), borrow(o_op), borrow(o_ts), borrow(o_pid)
    o_tid, o_serial, o_heap, o_addr = borrow(o_tid), borrow(o_serial), borrow(o_heap), borrow(o_addr)
    o_size, o_old, o_src, o_stack = borrow(o_size), borrow(o_old), borrow(o_src), borrow(o_stack)
    n = 0
    pe = 0
    m = rows.shape[0]
    for i in range(m):
        if PREFETCH_ROWS and i + PREFETCH_ROWS < m:
            ahead = rows[i + PREFETCH_ROWS]
            prefetch(hook, ahead)
            prefetch(status, ahead)
            prefetch(f, ahead)
            prefetch(ts, ahead)
            prefetch(pid, ahead)
            prefetch(tid, ahead)
            prefetch(serial, ahead)
            prefetch(tail, ahead)
        r = rows[i]
        h = hook[r]
        op = 0
        if pe < pe_rows.shape[0] and pe_rows[pe] == i:
            op = OP_PROCESS_END
        elif (status[r] & ST_BAD_PAYLOAD) != 0:
            op = 0
        elif (h >> 8) == K.GROUP_HEAP:
            op = _OP_BY_HOOK_LOW[h & 0xFF]
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
            o_src[n] = f[r, COL_ALLOC_SOURCE] & np.uint64(0xFF)
        elif op == OP_FREE:
            o_addr[n] = f[r, COL_FREE_ADDR]
            o_src[n] = f[r, COL_FREE_SOURCE] & np.uint64(0xFF)
        elif op == OP_REALLOC:
            o_stack[n] = tail[r]
            o_addr[n] = f[r, COL_RA_NEW_ADDR]
            o_size[n] = f[r, COL_RA_NEW_SIZE]
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


def _kernel_only(seq: InternedStacks, floor: np.uint64) -> np.ndarray:
    """Per sequence id: is it a kernel-only stack fragment (its outermost frame a kernel address, notes 5.2)?"""
    n = len(seq)
    length = seq.length[:n]
    last = seq.pool[np.maximum(seq.start[:n] + length - 1, 0)]
    flags: np.ndarray = (length > 0) & (last >= floor)
    return flags


def _heap_ops(batch: RecordBatch, targets: np.ndarray, resolved: list[tuple[int, int]],
              process_ends: dict[int, int], kernel_only: np.ndarray) -> OpBatch | None:
    rows = sorted(process_ends)
    pe_rows = np.asarray(rows, np.int64)
    pe_pids = np.asarray([process_ends[r] for r in rows], np.int64)
    m = len(batch)
    cols = {name: np.empty(m, dt) for name, dt in OP_COLUMNS}
    src = batch.src
    n = _ops_kernel(src["hook"], src["status"], batch.src_f, src["serial"], src["tail"], kernel_only, targets,
                    src["pid"], src["tid"], src["ts"], batch.rows, pe_rows, pe_pids, cols["op"], cols["ts"],
                    cols["pid"], cols["tid"], cols["serial"], cols["heap"], cols["addr"], cols["size"],
                    cols["old_addr"], cols["source"], cols["stack"])
    if not n and not resolved:
        return None
    ops = OpBatch(**{k: v[:n] for k, v in cols.items()})
    if resolved:
        ops = OpBatch.concat(ops, _attach_ops(resolved, ts=int(src["ts"][batch.rows[-1]])))
    return ops


def _attach_ops(pairs: list[tuple[int, int]], ts: int = 0) -> OpBatch:
    n = len(pairs)
    arr = np.asarray(pairs, np.int64).reshape(n, 2)
    z64 = np.zeros(n, np.uint64)
    return OpBatch.from_columns(op=np.full(n, OP_ATTACH, np.uint8), ts=np.full(n, ts, np.int64),
                            pid=np.zeros(n, np.int64), tid=np.zeros(n, np.int64), serial=arr[:, 0].copy(),
                            heap=z64, addr=z64.copy(), size=z64.copy(), old_addr=z64.copy(),
                            source=np.zeros(n, np.uint8), stack=arr[:, 1].copy())
