"""Records in global time order, in columnar batches.

Buffers belong to CPUs and reach the file in flush order (notes 8, item 2). The reader sorts the buffers by the
timestamp of their first record, loads them in that order a chunk at a time, frames each chunk with the JIT walk,
and emits the records older than the first record of the next unloaded buffer: nothing later can precede them.
What is held back is bounded by the buffers in flight, never by the length of the trace. A chunk is framed into
a window after the rows held back from the one before, and a batch is the window's rows in time order (see
:class:`RecordBatch`); only the held rows are copied, to the other window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from heapdiff.errors import Anomalies, TraceError
from heapdiff.etl import structs as S
from heapdiff.etl import walk as F
from heapdiff.etl.trace import BufferInfo, TraceFile, first_record_ts_columns

#: bytes of (uncompressed) buffers framed per kernel call. Measured with two traces read at once (10M / 30M
#: benchmark pairs): 8 MiB 350 / 404 MB peak RSS, 4 MiB 281-290 / 327-348 MB, 2 MiB 263-265 / 302 MB, each halving
#: costing up to ~5% time. 2 MiB keeps the job inside its memory bound (300 MB + 100 B a live block) on both.
CHUNK_BYTES = 2 << 20
#: framed buffers' pages are let go in sweeps of this many bytes, and at once if this far above the sweep
RELEASE_SWEEP = 4 << 20
RELEASE_FAR = 16 << 20
#: decompressed buffers kept between ordering and framing (beyond this, a buffer is decoded twice)
DECOMPRESSED_CACHE_BYTES = 64 << 20
#: providers with an index below this are kernel groups (the group byte); above it, GUIDs interned per trace
GUID_PROVIDER_BASE = 0x100
_INT64_MIN = -(1 << 63)  # (np.iinfo per chunk was ~15 us a call)

_COLUMNS = (("ts", np.int64), ("cpu", np.int32), ("tid", np.uint32), ("pid", np.uint32), ("hook", np.int32),
            ("prov", np.int32), ("ver", np.uint8), ("ptr", np.uint8),
            ("status", np.uint8), ("pos", np.int64), ("payoff", np.int64), ("paylen", np.int32),
            ("tail", np.int64), ("glo", np.uint64), ("ghi", np.uint64))
#: the columns a batch carries past the framing step (in the order of :func:`heapdiff.etl.walk.hold_kernel`)
BATCH_COLUMNS = ("ts", "cpu", "tid", "pid", "hook", "prov", "ver", "ptr", "status", "pos", "tail", "serial")


class RecordBatch:
    """Records in time order: row ``i`` of the batch is row ``rows[i]`` of the source columns ``src`` (and of the
    field rows ``src_f``); ``raw`` holds the kept payloads by serial.

    Why a view: gathering every column of every record into new arrays in time order was, after the two
    kernels, the biggest cost of reading (two threads contend for memory bandwidth there); the events layer's
    kernels read through ``rows`` instead, and a column is gathered only when asked for by name
    (``batch.hook``, ``batch.cols``, ``batch.f``), once. A batch from :meth:`Reader.batches` reads the reader's
    window, which is reused: it is valid until the reader frames two more chunks, so read it in the loop."""

    def __init__(self, src: dict[str, np.ndarray], src_f: np.ndarray, rows: np.ndarray,
                 raw: dict[int, bytes] | None = None) -> None:
        self.src = src
        self.src_f = src_f
        self.rows = rows
        self.raw: dict[int, bytes] = raw if raw is not None else {}
        self._cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def column(self, name: str) -> np.ndarray:
        got = self._cache.get(name)
        if got is None:
            got = self.src_f[self.rows] if name == "f" else self.src[name][self.rows]
            self._cache[name] = got
        return got

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_") or name not in BATCH_COLUMNS:
            raise AttributeError(name)
        return self.column(name)

    @property
    def cols(self) -> dict[str, np.ndarray]:
        return {k: self.column(k) for k in BATCH_COLUMNS}

    @property
    def f(self) -> np.ndarray:
        return self.column("f")


class _Window:
    """Rows framed and not yet handed on: the held-back rows first (in time order), then the new chunk's."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.cols: dict[str, npt.NDArray[Any]] = ({name: np.empty(cap, dt) for name, dt in _COLUMNS}
                                                  | {"serial": np.empty(cap, np.int64)})
        self.f = np.empty((cap, F.NF), np.uint64)


def _peek_first_ts_columns(data: np.ndarray, offset: np.ndarray, filled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~heapdiff.etl.trace.first_record_ts_columns` of the buffers at ``offset`` in ``data`` (``filled``
    bytes each, header included), read with one gather."""
    h = S.BUFFER_HEADER_SIZE
    off = offset + h
    room = filled - h
    ok = (room >= 0x10) & (off + 0x18 <= data.shape[0])
    head = np.zeros((offset.shape[0], 0x18), np.uint8)
    head[ok] = data[(off[:, None] + np.arange(0x18)[None, :])[ok]]
    return first_record_ts_columns(head[:, :4].copy().view("<u4")[:, 0], head[:, 8:16].copy().view("<i8")[:, 0],
                                   head[:, 16:24].copy().view("<i8")[:, 0], np.where(ok, room, 0))


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
            F.rehash(self.slots, self.hash, n)

    def get(self, sid: int) -> np.ndarray:
        st = int(self.start[sid])
        return self.pool[st:st + int(self.length[sid])]

    def intern(self, values: np.ndarray) -> int:
        """Intern a sequence given as values (used when stitching fragments and resolving keys)."""
        v = np.ascontiguousarray(values, dtype="<u8").view(np.uint8)
        self.ensure(1, int(values.shape[0]))
        v32, v64 = F.views(v)
        return int(F.intern_seq(v, v32, v64, 0, int(values.shape[0]), 8, self.slots, self.hash, self.start, self.length,
                                self.pool, self.meta))

    @property
    def nbytes(self) -> int:
        return int(self.slots.nbytes + self.hash.nbytes + self.start.nbytes + self.length.nbytes
                   + 8 * int(self.meta[1]))


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

    def __init__(self, trace: TraceFile, layout: F.Layout, kernel_guids: dict[str, tuple[int, int]],
                 chunk_bytes: int = CHUNK_BYTES, defer_tails: bool = False) -> None:
        """``kernel_guids``: GUID text -> (group used for the hook, provider index or -1 to count by GUID).

        ``defer_tails``: leave the tails of ``defer_tail`` rows in uncompressed buffers as deferred references
        (:mod:`heapdiff.etl.walk`); :meth:`intern_deferred` turns the ones that matter into sequence ids."""
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
        import uuid
        for i, (g, (grp, prov)) in enumerate(items):
            le = uuid.UUID(g).bytes_le
            self._kg_lo[i] = int.from_bytes(le[:8], "little")
            self._kg_hi[i] = int.from_bytes(le[8:], "little")
            self._kg_group[i] = grp
            self._kg_prov[i] = prov if prov >= 0 else F.PROV_BY_GUID
        self._serial = 0
        self._suffix_min = np.zeros(0, np.int64)
        self._framed = 0
        self._swept = 0
        self._decompressed: dict[int, np.ndarray] = {}
        self._windows: list[_Window | None] = [None, None]
        self._cur = 0
        self._raw: dict[int, bytes] = {}  # kept payloads of rows not yet handed on, by serial
        self._cached_bytes = 0
        self._link_counts = np.zeros((F.LINK_KINDS, 3), np.int64)  # (provider, hook, records linked)

    def linked(self) -> list[tuple[int, int, int]]:
        """(provider index, hook, count) of the records linked onto an earlier row (:mod:`heapdiff.etl.walk`):
        they are in no batch, so whoever counts records by kind adds these."""
        return [(int(p), int(h), int(c)) for p, h, c in self._link_counts.tolist() if c]

    # -- buffer order ---------------------------------------------------------------------------------------
    def _first_ts(self, b: BufferInfo) -> int | None:
        """Raw timestamp of a compressed buffer's first record (None: no record); the buffer is decoded once
        and kept for framing while the cache has room."""
        if b.filled < S.BUFFER_HEADER_SIZE + 0x10:
            return None
        try:
            whole = self.trace.buffer_bytes(b)
        except TraceError:
            return -1  # decoded (and counted) when loaded
        if self._cached_bytes + whole.shape[0] <= DECOMPRESSED_CACHE_BYTES:
            self._decompressed[b.index] = whole  # decoded once, framed later
            self._cached_bytes += int(whole.shape[0])
        ts, fits = _peek_first_ts_columns(whole, np.zeros(1, np.int64), np.asarray([whole.shape[0]], np.int64))
        return int(ts[0]) if fits[0] else None

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
                t, f = _peek_first_ts_columns(self.trace.data, bt.offset[plain], bt.filled[plain])
                ts[plain] = t
                has[plain] = f
            for i in part[comp].tolist():
                got = self._first_ts(bt.info(i))
                has[i] = got is not None
                ts[i] = got if got is not None else 0
            first, last = int(part[0]), int(part[-1])
            self.trace.release(int(bt.offset[first]), int(bt.offset[last] + bt.size[last] - bt.offset[first]))
        sel = np.flatnonzero(has)
        order = sel[np.lexsort((bt.idx[sel], bt.seq[sel], bt.cpu[sel], ts[sel]))]
        self.trace.release(0, self.trace.size)
        return order, ts[order]

    # -- framing ----------------------------------------------------------------------------------------------
    def _frame(self, pos: np.ndarray, held: int) -> tuple[_Window, int]:
        """Frame the buffers at positions ``pos`` of the buffer table into the current window after its ``held``
        rows; returns it and the new rows' count. (Uncompressed buffers are read from the columns alone: no
        BufferInfo per buffer on this path, ~4 us each.)"""
        bt = self.trace.buffers
        data_parts: list[np.ndarray] = []
        bstart: list[int] = []
        bend: list[int] = []
        bcpu: list[int] = []
        bbase: list[int] = []
        whole = self.trace.data
        use_whole = not bool(bt.compressed[pos].any())
        total = 0
        ok_pos = pos
        if use_whole:
            offs, fill = bt.offset[pos], bt.filled[pos]
            bstart, bend, bcpu, bbase = offs.tolist(), (offs + fill).tolist(), bt.cpu[pos].tolist(), offs.tolist()
            total = int(fill.sum())
        kept: list[int] = []
        for at, b in ([] if use_whole else zip(pos.tolist(), bt.infos(pos), strict=True)):
            try:
                cached = self._decompressed.pop(b.index, None)
                if cached is not None:
                    self._cached_bytes -= int(cached.shape[0])
                body = cached if cached is not None else self.trace.buffer_bytes(b)
            except TraceError as e:
                self._anomaly("undecodable_compressed_buffer", e.offset)
                continue
            bstart.append(total)
            bend.append(total + int(body.shape[0]))
            pad = -int(body.shape[0]) % 8
            data_parts.append(body if not pad else np.concatenate((body, np.full(pad, 0xFF, np.uint8))))
            total += int(body.shape[0]) + pad
            bcpu.append(b.cpu)
            bbase.append(b.offset)
            kept.append(at)
        if not use_whole:
            ok_pos = np.asarray(kept, np.int64)
        data = whole if use_whole else (np.concatenate(data_parts) if data_parts else np.zeros(0, np.uint8))
        biggest = max((e - s_ for s_, e in zip(bstart, bend, strict=True)), default=0)
        win = self._window_for(held, total // 8 + 1)
        out, f = win.cols, win.f
        nb = len(bstart)
        b_end = np.zeros(nb, np.int32)
        b_endpos = np.zeros(nb, np.int64)
        counters = np.zeros(F.N_COUNTERS, np.int64)
        counters[F.C_LINK_LAST_TS] = _INT64_MIN
        seq = self.sequences
        bs, be = np.asarray(bstart, np.int64), np.asarray(bend, np.int64)
        bc, bb = np.asarray(bcpu, np.int32), np.asarray(bbase, np.int64)
        d32, d64 = F.views(data)
        n = held
        b_from = 0
        while True:
            # room for at least the next buffer; grown further only as distinct sequences demand
            seq.ensure(biggest // 16 + 1, biggest // 4 + 1)
            with np.errstate(over="ignore"):
                n = F.frame_kernel(
                    data, d32, d64, bs, be, bc, bb, self.layout.lut, self.layout.rows,
                    self._kg_lo, self._kg_hi, self._kg_group, self._kg_prov,
                    seq.slots, seq.hash, seq.start, seq.length, seq.pool, seq.meta,
                    out["ts"], out["cpu"], out["tid"], out["pid"], out["hook"], out["prov"], out["ver"],
                    out["ptr"], out["status"], out["pos"], out["payoff"], out["paylen"], f,
                    out["tail"], out["glo"], out["ghi"], b_end, b_endpos, counters, b_from, n,
                    self.defer_tails and use_whole, self.layout.marks, self._link_counts)
            if int(seq.meta[2]) < 0:
                break
            b_from = int(seq.meta[2])
        n = int(n)
        self.stats.buffers_read += nb
        self.stats.bytes_framed += total
        self.stats.ext_stacks += int(counters[F.C_EXT_STACKS])
        linked = int(counters[F.C_LINKED])
        if linked:
            self.stats.linked += linked
            last = int(counters[F.C_LINK_LAST_TS])
            self.stats.link_last_ts = last if self.stats.link_last_ts is None else max(self.stats.link_last_ts, last)
        if counters[F.C_BAD_TAIL]:
            self.anomalies.add("stack_payload_not_whole_frames", int(counters[F.C_BAD_TAIL]))
        for bi in np.flatnonzero(b_end).tolist():
            self._anomaly("buffer_" + F.END_NAMES[int(b_end[bi])], int(b_endpos[bi]))
        new = n - held
        out["serial"][held:n] = np.arange(self._serial, self._serial + new, dtype=np.int64)
        self._serial += new
        # providers known only by GUID: intern the GUIDs of this chunk
        byg = np.flatnonzero(out["prov"][held:n] == F.PROV_BY_GUID) + held
        if byg.size:
            lo = out["glo"][byg]
            hi = out["ghi"][byg]
            pairs = np.stack((lo, hi), axis=1)
            uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
            ids = np.empty(len(uniq), np.int32)
            for j, (a, c) in enumerate(uniq.tolist()):
                key = (int(a), int(c))
                idx = self._prov_index.get(key)
                if idx is None:
                    idx = GUID_PROVIDER_BASE + len(self.providers)
                    self._prov_index[key] = idx
                    g = int(a).to_bytes(8, "little") + int(c).to_bytes(8, "little")
                    import uuid
                    self.providers.append(str(uuid.UUID(bytes_le=g)))
                ids[j] = idx
            out["prov"][byg] = ids[inv.reshape(-1)]
        keep = np.flatnonzero(out["status"][held:n] & F.ST_KEEP_RAW) + held
        if keep.size:
            payoff = out["payoff"]
            ser = out["serial"]
            plen = out["paylen"]
            for i in keep.tolist():
                o = int(payoff[i])
                self._raw[int(ser[i])] = bytes(data[o:o + int(plen[i])])
        self.stats.records += new + linked
        self._release_framed(ok_pos)
        return win, new

    def _release_framed(self, pos: np.ndarray) -> None:
        """Let go of the file pages of framed buffers, in a sweep that follows the lowest unframed buffer.

        Buffers are framed in time order, which is close to file order (a buffer reaches the file when full),
        so one madvise every :data:`RELEASE_SWEEP` bytes does what one per contiguous run of a chunk's buffers
        did (~24,000 calls on a 1.6 GB trace, ~0.2 s). A framed buffer far above the sweep (a file out of
        order) is let go at once, so what stays mapped is bounded by :data:`RELEASE_FAR`."""
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
        deferred = refs >= F.DEFERRED
        if not deferred.any():
            return out
        uniq, inv = np.unique(refs[deferred], return_inverse=True)  # sorted: file order
        off, cnt, width, _ = F.deferred_parts(uniq)
        ids = np.empty(uniq.shape[0], np.int64)
        data = self.trace.data
        d32, d64 = F.views(data)
        seq = self.sequences
        window = 8 << 20  # file bytes whose pages are mapped back at once
        swept = 0
        lo = 0
        while lo < uniq.shape[0]:
            hi = int(np.searchsorted(off, off[lo] + window, "left"))
            hi = max(hi, lo + 1)
            seq.ensure(hi - lo, int(cnt[lo:hi].sum()))
            F.intern_deferred_kernel(data, d32, d64, off[lo:hi], cnt[lo:hi], width[lo:hi], seq.slots, seq.hash,
                                     seq.start, seq.length, seq.pool, seq.meta, ids[lo:hi])
            # a read maps the whole page-cache folio around it (up to MBs with large folios, beyond this window
            # on either side): let go of everything from where the last sweep ended, not just this window
            end = int(off[hi - 1] + cnt[hi - 1] * width[hi - 1])
            self.trace.release(swept, end - swept)
            swept = end
            lo = hi
        self.trace.release(0, self.trace.size)  # and what a later window's folio mapped back behind a sweep
        out[deferred] = ids[inv.reshape(-1)]
        return out

    def _window_for(self, held: int, more: int) -> _Window:
        """The current window with room for ``more`` rows after its ``held`` ones (grown: held rows copied).

        Two windows take turns (the held rows move to the other one after each chunk), so a batch handed on
        stays readable until the reader frames two more chunks; reused, their pages stay resident instead of
        being faulted in for every chunk."""
        win = self._windows[self._cur]
        if win is None or win.cap < held + more:
            grown = _Window(max(held + more, 2 * win.cap if win is not None else 0))
            if win is not None and held:
                for name in BATCH_COLUMNS:
                    grown.cols[name][:held] = win.cols[name][:held]
                grown.f[:held] = win.f[:held]
            self._windows[self._cur] = win = grown
        return win

    def _hold(self, win: _Window, span: int, rest: np.ndarray) -> int:
        """Move rows ``rest`` of ``win`` (time order) to the start of the other window; returns their count."""
        k = int(rest.shape[0])
        other = self._windows[1 - self._cur]
        if other is None or other.cap < k:
            other = _Window(max(k, 1 << 12, other.cap if other is not None else 0))
            self._windows[1 - self._cur] = other
        s, d = win.cols, other.cols
        F.hold_kernel(rest, s["ts"], s["cpu"], s["tid"], s["pid"], s["hook"], s["prov"], s["ver"], s["ptr"],
                      s["status"], s["pos"], s["tail"], s["serial"], win.f,
                      d["ts"], d["cpu"], d["tid"], d["pid"], d["hook"], d["prov"], d["ver"], d["ptr"],
                      d["status"], d["pos"], d["tail"], d["serial"], other.f)
        self._cur = 1 - self._cur
        return k

    def _emit(self, win: _Window, span: int, rows: np.ndarray) -> RecordBatch:
        src = {name: win.cols[name][:span] for name in BATCH_COLUMNS}
        raw: dict[int, bytes] = {}
        if self._raw:
            kept = rows[(src["status"][rows] & F.ST_KEEP_RAW) != 0]
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
            held = self._hold(win, span, idx[k:])
        last = self._windows[self._cur]
        if held and last is not None:
            yield self._emit(last, held, np.arange(held, dtype=np.int64))
