"""A batch of records in time order, and the windows the reader frames chunks into.

The record walk writes one row of columns per record into a window (:class:`Window`); the reader hands the rows
that are ready on as a :class:`RecordBatch` (a view of the window through a row order) and moves the rows it holds
back to the other window (:func:`hold_kernel`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from heapdiff._jit import borrow, njit
from heapdiff.etl.layout_table import NF

_COLUMNS = (("ts", np.int64), ("cpu", np.int32), ("tid", np.uint32), ("pid", np.uint32), ("hook", np.int32),
            ("prov", np.int32), ("ver", np.uint8), ("ptr", np.uint8),
            ("status", np.uint8), ("pos", np.int64), ("payoff", np.int64), ("paylen", np.int32),
            ("tail", np.int64), ("glo", np.uint64), ("ghi", np.uint64))
#: the columns a batch carries past the framing step (in the order of :func:`hold_kernel`)
BATCH_COLUMNS = ("ts", "cpu", "tid", "pid", "hook", "prov", "ver", "ptr", "status", "pos", "tail", "serial")


class RecordBatch:
    """Records in time order: row ``i`` of the batch is row ``rows[i]`` of the source columns ``src`` (and of the
    field rows ``src_f``); ``raw`` holds the kept payloads by serial.

    Why a view: gathering every column of every record into new arrays in time order was, after the two
    kernels, the biggest cost of reading (two threads contend for memory bandwidth there); the events layer's
    kernels read through ``rows`` instead, and a column is gathered only when asked for by name
    (``batch.hook``, ``batch.cols``, ``batch.f``), once. A batch from the reader reads its window, which is
    reused: it is valid until the reader frames two more chunks, so read it in the loop."""

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


class Window:
    """Rows framed and not yet handed on: the held-back rows first (in time order), then the new chunk's."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.cols: dict[str, npt.NDArray[Any]] = ({name: np.empty(cap, dt) for name, dt in _COLUMNS}
                                                  | {"serial": np.empty(cap, np.int64)})
        self.f = np.empty((cap, NF), np.uint64)


@njit()
def hold_kernel(rows: np.ndarray, s_ts: np.ndarray, s_cpu: np.ndarray, s_tid: np.ndarray, s_pid: np.ndarray,
                s_hook: np.ndarray, s_prov: np.ndarray, s_ver: np.ndarray, s_ptr: np.ndarray, s_status: np.ndarray,
                s_pos: np.ndarray, s_tail: np.ndarray, s_serial: np.ndarray, s_f: np.ndarray,
                d_ts: np.ndarray, d_cpu: np.ndarray, d_tid: np.ndarray, d_pid: np.ndarray, d_hook: np.ndarray,
                d_prov: np.ndarray, d_ver: np.ndarray, d_ptr: np.ndarray, d_status: np.ndarray, d_pos: np.ndarray,
                d_tail: np.ndarray, d_serial: np.ndarray, d_f: np.ndarray) -> None:
    """Rows ``rows`` of the ``s_*`` columns (a window's columns, in ``BATCH_COLUMNS`` order, then the field rows)
    to the start of the ``d_*`` ones, in that order.

    Why one kernel: the rows of a chunk that the next chunk may precede (about a tenth of them) move to the other
    window after every chunk; one pass over the rows without the GIL instead of a ``np.take`` per column.
    """
    # borrowed: no reference counting in the loop (heapdiff._jit.borrow)
    (rows, s_ts, s_cpu, s_tid, s_pid, s_hook, s_prov, s_ver, s_ptr, s_status, s_pos, s_tail, s_serial, s_f, d_ts, d_cpu,
     d_tid, d_pid, d_hook, d_prov, d_ver, d_ptr, d_status, d_pos, d_tail, d_serial, d_f) = borrow((
        rows, s_ts, s_cpu, s_tid, s_pid, s_hook, s_prov, s_ver, s_ptr, s_status, s_pos, s_tail, s_serial, s_f, d_ts,
        d_cpu, d_tid, d_pid, d_hook, d_prov, d_ver, d_ptr, d_status, d_pos, d_tail, d_serial, d_f))
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


class WindowPair:
    """The two windows the reader frames into, taking turns: the rows held back after a chunk move to the other
    one, so a batch handed on stays readable until two more chunks are framed; reused, their pages stay resident
    instead of being faulted in for every chunk."""

    def __init__(self) -> None:
        self._windows: list[Window | None] = [None, None]
        self._cur = 0

    @property
    def current(self) -> Window | None:
        return self._windows[self._cur]

    def with_room(self, held: int, more: int) -> Window:
        """The current window with room for ``more`` rows after its ``held`` ones (grown: held rows copied)."""
        win = self._windows[self._cur]
        if win is None or win.cap < held + more:
            grown = Window(max(held + more, 2 * win.cap if win is not None else 0))
            if win is not None and held:
                for name in BATCH_COLUMNS:
                    grown.cols[name][:held] = win.cols[name][:held]
                grown.f[:held] = win.f[:held]
            self._windows[self._cur] = win = grown
        return win

    def hold(self, win: Window, rest: np.ndarray) -> int:
        """Move rows ``rest`` of ``win`` (time order) to the start of the other window, which becomes the current
        one; returns their count."""
        k = int(rest.shape[0])
        other = self._windows[1 - self._cur]
        if other is None or other.cap < k:
            other = Window(max(k, 1 << 12, other.cap if other is not None else 0))
            self._windows[1 - self._cur] = other
        s, d = win.cols, other.cols
        hold_kernel(rest, s["ts"], s["cpu"], s["tid"], s["pid"], s["hook"], s["prov"], s["ver"], s["ptr"],
                    s["status"], s["pos"], s["tail"], s["serial"], win.f,
                    d["ts"], d["cpu"], d["tid"], d["pid"], d["hook"], d["prov"], d["ver"], d["ptr"],
                    d["status"], d["pos"], d["tail"], d["serial"], other.f)
        self._cur = 1 - self._cur
        return k
