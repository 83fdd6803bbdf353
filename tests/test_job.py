"""The job's reading of one trace: the reducer on its own thread must fold exactly what feeding it in line folds,
and neither an error in the reducer nor one in the scan may be lost, replaced or leave a thread waiting."""

from __future__ import annotations

import io
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from heapdiff.commands import analyse as J
from heapdiff.errors import TraceError
from heapdiff.etl.trace import open_trace
from heapdiff.events.ops import OP_ALLOC, OP_FREE, OpBatch
from heapdiff.events.scan import scan
from heapdiff.reduce import Reducer
from heapdiff.tracegen.writer import TraceWriter


def _written_trace() -> bytes:
    """Enough heap events for several reader chunks at a small chunk size."""
    out = io.BytesIO()
    w = TraceWriter(out, cpus=2, buffer_size=0x1000)
    t = w.t0 + 10
    for i in range(6000):
        t += 1
        w.heap_alloc(t, i % 2, 10, 20, 0x10000, 16 + i % 5, 0x200000 + 32 * i)
        if i % 3:
            t += 1
            w.heap_free(t, i % 2, 10, 20, 0x10000, 0x200000 + 32 * i)
    w.close()
    return out.getvalue()


#: what the faked scans below get for a trace: only its header's T0 is read before the scan
_NO_FILE = SimpleNamespace(header=SimpleNamespace(t0=0))


def _ops(i: int) -> OpBatch:
    return OpBatch.from_columns(op=np.array([OP_ALLOC, OP_FREE], np.uint8), ts=np.array([2 * i, 2 * i + 1]),
                                pid=np.ones(2, np.int64), heap=np.full(2, 0x10000, np.uint64),
                                addr=np.array([0x1000 + 16 * i, 0x1000 + 16 * i], np.uint64),
                                size=np.array([8, 0], np.uint64), serial=np.array([2 * i, 2 * i + 1]))


def test_reducer_thread_folds_what_feeding_in_line_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _written_trace()
    red = Reducer()
    scan(open_trace(data, "mem"), heap_sink=red.feed, chunk_bytes=0x4000)
    want = red.snapshot()
    batches: list[int] = []

    def small_chunks(*a: Any, **k: Any) -> Any:
        sink = k["heap_sink"]

        def counted(ops: OpBatch) -> None:
            batches.append(len(ops))
            sink(ops)

        return scan(*a, **{**k, "chunk_bytes": 0x4000, "heap_sink": counted})

    monkeypatch.setattr(J, "scan", small_chunks)
    _, live, anomalies, _ = J.read_trace(open_trace(data, "mem"))
    assert len(batches) > 2 * J._ReducerThread.DEPTH  # the queue filled and drained several times
    assert len(live) == len(want) == 2000
    for name in ("pid", "heap", "addr", "size", "ts", "source"):
        assert np.array_equal(getattr(live, name), getattr(want, name)), name
    assert anomalies == dict(red.anomalies)


@pytest.mark.parametrize("batches", [3, 10 * J._ReducerThread.DEPTH])
def test_reducer_error_reaches_the_reading_thread(monkeypatch: pytest.MonkeyPatch, batches: int) -> None:
    """The reducer fails on the 3rd batch: the scan is stopped at a later hand-over (never blocked by a full
    queue), or, when it has no more to hand over, the scan's end raises it; either way read_trace raises the
    reducer's error and no thread is left."""
    fed: list[int] = []

    def failing_feed(self: Reducer, ops: OpBatch) -> None:
        fed.append(len(ops))
        if len(fed) == 3:
            raise ValueError("reducer broke")

    def fake_scan(tf: Any, heap_sink: Any, progress: Any = None) -> Any:
        for i in range(batches):
            heap_sink(_ops(i))
        return object()  # not a scan: the job must raise before it uses it

    monkeypatch.setattr(Reducer, "feed", failing_feed)
    monkeypatch.setattr(J, "scan", fake_scan)
    before = threading.active_count()
    with pytest.raises(ValueError, match="reducer broke"):
        J.read_trace(_NO_FILE)  # type: ignore[arg-type]
    assert len(fed) == 3  # nothing fed after the failure
    assert threading.active_count() == before  # the reducer's thread has ended


def test_scan_error_wins_over_a_reducer_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_feed(self: Reducer, ops: OpBatch) -> None:
        raise ValueError("reducer broke too")

    def fake_scan(tf: Any, heap_sink: Any, progress: Any = None) -> Any:
        heap_sink(_ops(0))
        raise TraceError("buffer header unreadable", 0x1234)

    monkeypatch.setattr(Reducer, "feed", failing_feed)
    monkeypatch.setattr(J, "scan", fake_scan)
    before = threading.active_count()
    with pytest.raises(TraceError, match="0x1234"):
        J.read_trace(_NO_FILE)  # type: ignore[arg-type]
    assert threading.active_count() == before
