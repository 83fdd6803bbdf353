"""Records in global time order, in columnar batches.

Buffers belong to CPUs and reach the file in flush order (notes 8, item 2). The reader sorts the buffers by the
timestamp of their first record, loads them in that order a chunk at a time, frames each chunk with the JIT walk,
and emits the records older than the first record of the next unloaded buffer: nothing later can precede them.
What is held back is bounded by the buffers in flight, never by the length of the trace. A chunk is framed into
a window after the rows held back from the one before, and a batch is the window's rows in time order (see
:class:`~heapdiff.etl.batch.RecordBatch`); only the held rows are copied, to the other window.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from heapdiff.errors import Anomalies
from heapdiff.etl import structs as S
from heapdiff.etl import walk as W
from heapdiff.etl.batch import BATCH_COLUMNS, RecordBatch, Window, WindowPair
from heapdiff.etl.buffers import peek_first_ts
from heapdiff.etl.chunks import BufferBytes, Chunk
from heapdiff.etl.fields import views
from heapdiff.etl.layout_table import Layout
from heapdiff.etl.sequences import DEFERRED, InternedStacks, deferred_parts
from heapdiff.etl.trace import TraceFile

#: bytes of (uncompressed) buffers framed per kernel call: the peak memory of reading grows with it, and 2 MiB keeps
#: the main job inside its memory bound (each halving costs a few percent of time; benchmarks/profile.md)
CHUNK_BYTES = 2 << 20
#: framed buffers' pages are let go in sweeps of this many bytes, and at once if this far above the sweep
RELEASE_SWEEP = 4 << 20
RELEASE_FAR = 16 << 20
#: file bytes whose pages are mapped back at once when deferred stacks are interned
INTERN_WINDOW = 8 << 20
#: providers with an index below this are kernel groups (the group byte); above it, GUIDs interned per trace
GUID_PROVIDER_BASE = 0x100
_INT64_MIN = -(1 << 63)  # (not np.iinfo: a call per chunk)


@dataclass
class ReadStats:
    """What the walk saw, for `info` and the report."""

    records: int = 0             # every record framed, linked ones included
    buffers_read: int = 0
    ext_stacks: int = 0
    bytes_framed: int = 0
    linked: int = 0              # records linked onto an earlier row (etl.walk): in no batch
    link_last_ts: int | None = None  # the latest raw timestamp among them


class Reader:
    """Reads one opened trace with one layout table; iterate :meth:`batches` once."""

    def __init__(self, trace: TraceFile, layout: Layout, kernel_guids: dict[str, tuple[int, int]],
                 chunk_bytes: int = CHUNK_BYTES, defer_tails: bool = False) -> None:
        """``kernel_guids``: GUID text -> (group used for the hook, provider index or -1 to count by GUID).

        ``defer_tails``: leave the tails of ``defer_tail`` rows in uncompressed buffers as deferred references
        (:mod:`heapdiff.etl.sequences`); :meth:`intern_deferred` turns the ones that matter into sequence ids."""
        self.trace = trace
        self.defer_tails = defer_tails
        self.layout = layout
        self.chunk_bytes = chunk_bytes
        self.anomalies: Anomalies = trace.anomalies
        self.sequences = InternedStacks()
        self.providers: list[str] = []          # GUID text of provider GUID_PROVIDER_BASE + i
        self._prov_index: dict[tuple[int, int], int] = {}
        self.stats = ReadStats()
        self.first_anomaly_offset: dict[str, int] = {}
        items = sorted(kernel_guids.items())
        self._kg_lo = np.zeros(len(items), np.uint64)
        self._kg_hi = np.zeros(len(items), np.uint64)
        self._kg_group = np.zeros(len(items), np.int32)
        self._kg_prov = np.zeros(len(items), np.int32)
        for i, (g, (grp, prov)) in enumerate(items):
            le = uuid.UUID(g).bytes_le
            self._kg_lo[i] = int.from_bytes(le[:8], "little")
            self._kg_hi[i] = int.from_bytes(le[8:], "little")
            self._kg_group[i] = grp
            self._kg_prov[i] = prov if prov >= 0 else W.PROV_BY_GUID
        self._serial = 0
        self._suffix_min = np.zeros(0, np.int64)
        self._framed = 0
        self._swept = 0
        self._bytes = BufferBytes(trace, self._anomaly)
        self._windows = WindowPair()
        self._raw: dict[int, bytes] = {}  # kept payloads of rows not yet handed on, by serial
        self._link_counts = np.zeros((W.LINK_KINDS, 3), np.int64)  # (provider, hook, records linked)

    def linked(self) -> list[tuple[int, int, int]]:
        """(provider index, hook, count) of the records linked onto an earlier row (:mod:`heapdiff.etl.walk`):
        they are in no batch, so whoever counts records by kind adds these."""
        return [(int(p), int(h), int(c)) for p, h, c in self._link_counts.tolist() if c]

    # -- buffer order ---------------------------------------------------------------------------------------
    def _order(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions (in the buffer table) of the buffers that hold records, in the time order of their first
        records (ties: CPU, sequence number, position), and those first records' timestamps."""
        bt = self.trace.buffers
        ts = bt.first_ts.copy()
        has = bt.has_first_ts.copy()
        # the header scan of a uniform file read them already (first_ts_known); else peek now
        need = np.flatnonzero(~bt.first_ts_known)
        step = 256  # a peek maps the buffer's neighbourhood: let go of every 256 buffers' pages
        for lo in range(0, int(need.shape[0]), step):
            part = need[lo:lo + step]
            comp = bt.compressed[part]
            plain = part[~comp]
            if plain.size:
                t, f = peek_first_ts(self.trace.data, bt.offset[plain], bt.filled[plain])
                ts[plain] = t
                has[plain] = f
            for i in part[comp].tolist():
                got = self._bytes.first_ts(bt.info(i))
                has[i] = got is not None
                ts[i] = got if got is not None else 0
            first, last = int(part[0]), int(part[-1])
            self.trace.release(int(bt.offset[first]), int(bt.offset[last] + bt.size[last] - bt.offset[first]))
        sel = np.flatnonzero(has)
        order = sel[np.lexsort((bt.idx[sel], bt.seq[sel], bt.cpu[sel], ts[sel]))]
        self.trace.release(0, self.trace.size)
        return order, ts[order]

    # -- framing ----------------------------------------------------------------------------------------------
    def _frame(self, pos: np.ndarray, held: int) -> tuple[Window, int]:
        """Frame the buffers at positions ``pos`` of the buffer table into the current window after its ``held``
        rows; returns it and the new rows' count."""
        ch = self._bytes.chunk(pos)
        win = self._windows.with_room(held, ch.total // 8 + 1)
        out = win.cols
        nb = int(ch.start.shape[0])
        b_end = np.zeros(nb, np.int32)
        b_endpos = np.zeros(nb, np.int64)
        counters = np.zeros(W.N_COUNTERS, np.int64)
        counters[W.C_LINK_LAST_TS] = _INT64_MIN
        seq = self.sequences
        d32, d64 = views(ch.data)
        n = held
        b_from = 0
        while True:
            # room for at least the next buffer; grown further only as distinct sequences demand
            seq.ensure(ch.biggest // 16 + 1, ch.biggest // 4 + 1)
            n = W.frame_kernel(
                ch.data, d32, d64, ch.start, ch.end, ch.cpu, ch.base, self.layout.lut, self.layout.rows,
                self._kg_lo, self._kg_hi, self._kg_group, self._kg_prov,
                seq.slots, seq.hash, seq.start, seq.length, seq.pool, seq.meta,
                out["ts"], out["cpu"], out["tid"], out["pid"], out["hook"], out["prov"], out["ver"],
                out["ptr"], out["status"], out["pos"], out["payoff"], out["paylen"], win.f,
                out["tail"], out["glo"], out["ghi"], b_end, b_endpos, counters, b_from, n,
                self.defer_tails and ch.is_file, self.layout.marks, self._link_counts)
            if int(seq.meta[2]) < 0:
                break
            b_from = int(seq.meta[2])
        n = int(n)
        new = n - held
        out["serial"][held:n] = np.arange(self._serial, self._serial + new, dtype=np.int64)
        self._serial += new
        self._count(ch, counters, b_end, b_endpos)
        self._intern_providers(out, held, n)
        self._keep_raw(out, ch.data, held, n)
        self.stats.records += new + int(counters[W.C_LINKED])
        self._release_framed(ch.framed)
        return win, new

    def _count(self, ch: Chunk, counters: np.ndarray, b_end: np.ndarray, b_endpos: np.ndarray) -> None:
        """The walk's counters and the buffers it could not walk to their end into the stats and anomalies.

        A walk that stopped at the 0xFF filler before its buffer's valid bytes end (a record's marker overwritten:
        in real files the records end exactly there, notes 1.3) lost the records after it: counted too, except in
        a buffer read to its filler because its valid-bytes size could not be believed (filled == size)."""
        self.stats.buffers_read += int(ch.start.shape[0])
        self.stats.bytes_framed += ch.total
        bt = self.trace.buffers
        stop = b_endpos - ch.base
        early = ((b_end == W.END_CLEAN) & (stop + S.MESSAGE_HEADER_SIZE <= ch.end - ch.start)
                 & (bt.filled[ch.framed] != bt.size[ch.framed]))
        b_end[early] = W.END_FILLER_EARLY
        self.stats.ext_stacks += int(counters[W.C_EXT_STACKS])
        linked = int(counters[W.C_LINKED])
        if linked:
            self.stats.linked += linked
            last = int(counters[W.C_LINK_LAST_TS])
            self.stats.link_last_ts = last if self.stats.link_last_ts is None else max(self.stats.link_last_ts, last)
        if counters[W.C_BAD_TAIL]:
            self.anomalies.add("stack_payload_not_whole_frames", int(counters[W.C_BAD_TAIL]))
        for bi in np.flatnonzero(b_end).tolist():
            self._anomaly("buffer_" + W.END_NAMES[int(b_end[bi])], int(b_endpos[bi]))

    def _intern_providers(self, out: dict[str, np.ndarray], held: int, n: int) -> None:
        """Providers known only by their GUID: the new rows' provider column gets each GUID's index."""
        byg = np.flatnonzero(out["prov"][held:n] == W.PROV_BY_GUID) + held
        if not byg.size:
            return
        pairs = np.stack((out["glo"][byg], out["ghi"][byg]), axis=1)
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        ids = np.empty(len(uniq), np.int32)
        for j, (a, c) in enumerate(uniq.tolist()):
            key = (int(a), int(c))
            idx = self._prov_index.get(key)
            if idx is None:
                idx = GUID_PROVIDER_BASE + len(self.providers)
                self._prov_index[key] = idx
                self.providers.append(str(uuid.UUID(bytes_le=int(a).to_bytes(8, "little")
                                                    + int(c).to_bytes(8, "little"))))
            ids[j] = idx
        out["prov"][byg] = ids[inv.reshape(-1)]

    def _keep_raw(self, out: dict[str, np.ndarray], data: np.ndarray, held: int, n: int) -> None:
        """Copy the payloads the layout keeps (rare records, decoded in Python) of the new rows, by serial."""
        keep = np.flatnonzero(out["status"][held:n] & W.ST_KEEP_RAW) + held
        payoff, plen, ser = out["payoff"], out["paylen"], out["serial"]
        for i in keep.tolist():
            o = int(payoff[i])
            self._raw[int(ser[i])] = bytes(data[o:o + int(plen[i])])

    def _release_framed(self, pos: np.ndarray) -> None:
        """Let go of the file pages of framed buffers, in a sweep that follows the lowest unframed buffer.

        Buffers are framed in time order, which is close to file order (a buffer reaches the file when full),
        so one madvise every :data:`RELEASE_SWEEP` bytes does what one per contiguous run of a chunk's buffers
        did in far fewer calls. A framed buffer far above the sweep (a file out of order) is let go at once, so
        what stays mapped is bounded by :data:`RELEASE_FAR`."""
        sweep = self._sweep_to()
        if sweep - self._swept >= RELEASE_SWEEP or sweep >= self.trace.size:
            self.trace.release(self._swept, sweep - self._swept)
            self._swept = sweep
        bt = self.trace.buffers
        offs = bt.offset[pos]
        hit = offs > sweep + RELEASE_FAR
        far = sorted(zip(offs[hit].tolist(), (offs[hit] + bt.size[pos][hit]).tolist(), strict=True))
        run_lo = run_hi = -1
        for start, stop in far:  # one madvise per contiguous run of buffers, not one per buffer
            if start != run_hi:
                if run_hi > run_lo:
                    self.trace.release(run_lo, run_hi - run_lo)
                run_lo = start
            run_hi = stop
        if run_hi > run_lo:
            self.trace.release(run_lo, run_hi - run_lo)

    def _sweep_to(self) -> int:
        """File offset of the lowest buffer not framed yet (the file's size when all are)."""
        pos = self._framed
        return int(self._suffix_min[pos]) if pos < self._suffix_min.shape[0] else self.trace.size

    def intern_deferred(self, refs: np.ndarray) -> np.ndarray:
        """Sequence ids for a column of tails: deferred references are interned (from the file), ids kept.

        Why in windows: the file's pages were let go as the walk passed them; interning reads them back, so it
        goes in file order, a window at a time, and lets each window go again (memory stays bounded however
        many references there are). Costs one intern per distinct reference: the live blocks' stacks, not
        the trace's.
        """
        refs = np.asarray(refs, np.int64)
        out = refs.copy()
        deferred = refs >= DEFERRED
        if not deferred.any():
            return out
        uniq, inv = np.unique(refs[deferred], return_inverse=True)  # sorted: file order
        off, cnt, width, _ = deferred_parts(uniq)
        ids = np.empty(uniq.shape[0], np.int64)
        swept = 0
        lo = 0
        while lo < uniq.shape[0]:
            hi = max(int(np.searchsorted(off, off[lo] + INTERN_WINDOW, "left")), lo + 1)
            ids[lo:hi] = self.sequences.intern_file(self.trace.data, off[lo:hi], cnt[lo:hi], width[lo:hi])
            # a read maps the whole page-cache folio around it (up to MBs with large folios, beyond this window
            # on either side): let go of everything from where the last sweep ended, not just this window
            end = int(off[hi - 1] + cnt[hi - 1] * width[hi - 1])
            self.trace.release(swept, end - swept)
            swept = end
            lo = hi
        self.trace.release(0, self.trace.size)  # and what a later window's folio mapped back behind a sweep
        out[deferred] = ids[inv.reshape(-1)]
        return out

    def _emit(self, win: Window, span: int, rows: np.ndarray) -> RecordBatch:
        src = {name: win.cols[name][:span] for name in BATCH_COLUMNS}
        raw: dict[int, bytes] = {}
        if self._raw:
            kept = rows[(src["status"][rows] & W.ST_KEEP_RAW) != 0]
            raw = {int(s): self._raw.pop(int(s)) for s in src["serial"][kept].tolist() if int(s) in self._raw}
        return RecordBatch(src, win.f[:span], rows, raw)

    def _anomaly(self, kind: str, offset: int) -> None:
        self.anomalies.add(kind)
        self.first_anomaly_offset.setdefault(kind, offset)

    # -- merge ------------------------------------------------------------------------------------------------
    def batches(self) -> Iterator[RecordBatch]:
        """Every record once, in non-decreasing raw timestamp order, in batches (each valid until the reader
        frames two more chunks: see :class:`RecordBatch`); records linked onto an earlier row are not in them
        (:meth:`linked`)."""
        order, order_ts = self._order()
        bt = self.trace.buffers
        offs = bt.offset[order]
        self._suffix_min = np.minimum.accumulate(offs[::-1])[::-1] if offs.size else offs
        self._framed = 0
        self._swept = 0
        held = 0
        last_emitted = -(1 << 63)
        filled = bt.filled[order].tolist()
        nbuf = len(filled)
        i = 0
        while i < nbuf:
            j = i
            size = 0
            while j < nbuf and (j == i or size < self.chunk_bytes):
                size += filled[j]
                j += 1
            self._framed = j  # (before framing: _frame lets the pages go up to the lowest buffer after these)
            win, new = self._frame(order[i:j], held)
            watermark = int(order_ts[j]) if j < nbuf else None
            i = j
            span = held + new
            if not span:
                continue
            ts_all = win.cols["ts"][:span]
            idx = np.argsort(ts_all, kind="stable")
            ts_sorted = ts_all[idx]
            k = len(idx) if watermark is None else int(np.searchsorted(ts_sorted, watermark, "left"))
            if k:
                if int(ts_sorted[0]) < last_emitted:
                    late = int(np.count_nonzero(ts_sorted[:k] < last_emitted))
                    self.anomalies.add("record_out_of_time_order", late)
                last_emitted = max(last_emitted, int(ts_sorted[k - 1]))
                yield self._emit(win, span, idx[:k])
            held = self._windows.hold(win, idx[k:])
        last = self._windows.current
        if held and last is not None:
            yield self._emit(last, held, np.arange(held, dtype=np.int64))
