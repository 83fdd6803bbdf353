"""One pass over a trace: counts for `info`, the rare records decoded, stacks matched, heap ops for the reducer.

The reader hands over time-ordered record batches; this module classifies them (by provider and hook, whatever
the header kind), decodes images and processes, matches stack references to their events, and turns heap records
into the reducer's columnar op batches. It never holds more than a batch of records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from heapdiff.errors import Anomalies
from heapdiff.etl.batch import RecordBatch
from heapdiff.etl.logfile import LogfileHeader
from heapdiff.etl.reader import CHUNK_BYTES, Reader
from heapdiff.etl.sequences import InternedStacks
from heapdiff.etl.trace import TraceFile, open_trace
from heapdiff.etl.walk import ST_KEEP_RAW
from heapdiff.events import kinds as K
from heapdiff.events.counts import KIND_NAMES, RecordCounts
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
from heapdiff.events.heap_ops import MAX_BLOCK_SIZE, attach_ops, heap_ops, kernel_only_stacks
from heapdiff.events.images import kernel_floor
from heapdiff.events.layout import GROUP_IMAGE_ID, IMAGE_HOOKS, KERNEL_GUIDS, PROCESS_HOOKS, STACK_REF_HOOKS, layout
from heapdiff.events.marks import decode_mark
from heapdiff.events.ops import OpBatch
from heapdiff.events.stacks import StackMatcher


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
    #: what the anomaly counts alone would not say, one line each (the document's trace notes)
    notes: list[str] = field(default_factory=list)
    images: list[ImageEvent] = field(default_factory=list)
    processes: list[ProcessEvent] = field(default_factory=list)
    image_id_raw: list[tuple[int, int, int, bytes]] = field(default_factory=list)  # (ts, opcode, ptr, payload)
    #: (raw timestamp, name) of each mark (``xperf -m``), in time order
    marks: list[tuple[int, str]] = field(default_factory=list)
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
                    anomalies=reader.anomalies, notes=list(trace.notes), _reader=reader)
    matcher = StackMatcher(attach_kernel_keys=heap_sink is None)
    kfloor = np.uint64(kernel_floor(trace.header.pointer_size))
    counts = RecordCounts()
    for batch in reader.batches():
        if not len(batch):
            continue
        for kind, pos in counts.add_batch(batch, len(reader.providers)):
            out.anomalies.add(f"bad_payload_size:{kind}")
            out.first_anomaly_offset.setdefault(f"bad_payload_size:{kind}", pos)
        out.last_ts = int(batch.src["ts"][batch.rows[-1]])
        process_ends = _decode_rare(batch, out) if batch.raw else {}  # rare records, in time order
        targets, resolved = matcher.match(batch)
        if heap_sink is not None:
            ops = heap_ops(batch, targets, resolved, process_ends, kernel_only_stacks(reader.sequences, kfloor),
                           trace.header.pointer_size, out.anomalies)
            if ops is not None:
                heap_sink(ops)
        if progress is not None:
            progress(reader.stats.bytes_framed, trace.size)
    tail = matcher.finish()
    if heap_sink is not None and tail:
        heap_sink(attach_ops(tail))
    _finish(out, reader, matcher, counts)
    return out


def _finish(out: TraceScan, reader: Reader, matcher: StackMatcher, counts: RecordCounts) -> None:
    """The totals of the pass, once every batch is read."""
    # records linked onto their event's row by the reader (stack walks: etl.walk) are in no batch: counted here,
    # each a stack reference matched to its event
    for prov, hook, c in reader.linked():
        counts.add(prov, hook, c)
        if hook in STACK_REF_HOOKS:
            matcher.refs += c
            if hook == K.HOOK_STACK_WALK:
                matcher.matched += c
    last = reader.stats.link_last_ts
    if last is not None:
        out.last_ts = last if out.last_ts is None else max(out.last_ts, last)
    out.records = reader.stats.records
    out.ext_stacks = reader.stats.ext_stacks
    out.stack_refs = matcher.refs
    out.stacks_matched = matcher.matched
    if matcher.key_refs_unresolved:
        out.anomalies.add("stack_key_unresolved", matcher.key_refs_unresolved)
    orphans = matcher.refs - matcher.matched - matcher.key_refs_unresolved
    if orphans > 0:
        out.anomalies.add("stack_ref_without_event", orphans)
    beyond = out.anomalies["size_beyond_address_space"]
    if beyond:
        limit = MAX_BLOCK_SIZE.get(out.header.pointer_size, MAX_BLOCK_SIZE[8])
        blocks, they = ("heap block", "it counts as a block, but its size is") if beyond == 1 else \
            ("heap blocks", "they count as blocks, but their sizes are")
        out.notes.append(f"{beyond:,} {blocks} claimed a size beyond a {out.header.pointer_size * 8}-bit process's "
                         f"address space (over {limit:,} bytes): {they} left out of every byte total")
    for key, off in reader.first_anomaly_offset.items():
        out.first_anomaly_offset.setdefault(key, off)
    out.providers = counts.by_provider(reader.providers)
    out.events = counts.by_kind()


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
            elif hook == K.HOOK_PERFINFO_MARK:
                out.marks.append((ts, decode_mark(raw)))
        except PayloadError:
            kind = ("image" if hook in IMAGE_HOOKS else "process" if hook in PROCESS_HOOKS
                    else "mark" if hook == K.HOOK_PERFINFO_MARK else "image_id")
            out.anomalies.add(f"bad_payload:{kind}")
            out.first_anomaly_offset.setdefault(f"bad_payload:{kind}", int(batch.pos[i]))
    return ends
