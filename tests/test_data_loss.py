"""Data loss is always said aloud, and no total goes negative: written traces plus one kind of damage each.

Every input is a trace from :class:`heapdiff.tracegen.writer.TraceWriter` (its log says where each buffer is and
which records it holds) plus the damage under test, so each test knows exactly what a faithful reader must still
see and what it must count as lost:

1. buffers the logfile header says were written and the file lacks (a cut at a buffer boundary, a header-only file,
   buffers dropped): ``buffers_missing``, with a note; a header that legitimately says otherwise claims nothing;
2. blank buffers (all 0x00 or all 0xFF) in the middle: stepped over to the next buffer, ``blank_buffer``;
3. buffers whose header is damaged in part: read by what can still be believed (``buffer_size_damaged``,
   ``buffer_saved_offset_mismatch``), dropped only when nothing can be (``damaged_buffer``);
4. sizes beyond a process's address space: the block kept, its size out of every total
   (``size_beyond_address_space``), and no sum of sizes that wraps or turns negative;
5. the pure-Python fallback (``HEAPDIFF_NO_JIT=1``) warns of no numpy overflow: the hashing that overflows on
   purpose says so.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heapdiff.etl import structs as S
from heapdiff.etl.trace import open_trace
from heapdiff.events import kinds as K
from heapdiff.events.scan import TraceScan, scan
from heapdiff.tracegen.writer import TraceWriter, WrittenBuffer

BUF = 0x1000          # the written traces' buffer size
PID, TID, HEAP = 100, 104, 0x1F0000
IMAGE = 0x7FF6_0000_0000
ADDR = 0x0200_0000
#: where the logfile header's fields are: buffer header, the header record's SYSTEM header, then the 64-bit form
LOGFILE = S.BUFFER_HEADER_SIZE + S.SYSTEM_HEADER.size


class Written:
    """A written trace, where each of its buffers is, and the heap Allocs each holds."""

    def __init__(self, data: bytes, log: list[WrittenBuffer]) -> None:
        self.data = data
        self.log = log
        sizes = [b.disk_size for b in log]
        self.offsets = [sum(sizes[:i]) for i in range(len(log))]
        self.allocs = [sum(1 for r in b.records if r.hook == K.HOOK_HEAP_ALLOC) for b in log]
        assert sum(sizes) == len(data)

    def __len__(self) -> int:
        return len(self.log)

    def span(self, k: int) -> tuple[int, int]:
        return self.offsets[k], self.offsets[k] + self.log[k].disk_size

    def without(self, *ks: int) -> bytes:
        return b"".join(self.data[slice(*self.span(k))] for k in range(len(self)) if k not in ks)

    def blanked(self, k: int, fill: int) -> bytes:
        lo, hi = self.span(k)
        return self.data[:lo] + bytes([fill]) * (hi - lo) + self.data[hi:]

    def field(self, k: int, name: str, value: int) -> bytes:
        """Buffer ``k`` with one buffer-header field (notes 1.1) set to ``value``."""
        return buffer_field(self.data, self.offsets[k], name, value)


def buffer_field(data: bytes, at: int, name: str, value: int) -> bytes:
    """``data`` with the field ``name`` of the buffer header at ``at`` set to ``value``."""
    b = bytearray(data)
    struct.pack_into("<" + {"u16": "H", "u32": "I"}[S.BUFFER_HEADER.types[name]], b, at + S.BUFFER_HEADER.off(name),
                     value)
    return bytes(b)


def write(compress: bool = False, allocs: int = 1500, cpus: int = 2) -> Written:
    out = io.BytesIO()
    w = TraceWriter(out, pointer_size=8, cpus=cpus, buffer_size=BUF, compress=compress, keep_log=True)
    t = w.t0 + 10
    w.process(t, 0, PID, 4, "app.exe", "app.exe")
    w.image(t, 0, PID, IMAGE, 0x20000, "\\Device\\HarddiskVolume3\\app\\app.exe")
    for i in range(allocs):
        t += 3
        w.heap_alloc(t, i % cpus, PID, TID, HEAP, 16 + i % 200, ADDR + 0x1000 * i)
        w.stack(t + 1, i % cpus, t, PID, TID, [IMAGE + 0x100 + 16 * (i % 5), IMAGE + 0x2000])
    w.close()
    assert w.log is not None
    return Written(out.getvalue(), w.log)


_WRITTEN: dict[bool, Written] = {}


def written(compress: bool = False) -> Written:
    if compress not in _WRITTEN:
        _WRITTEN[compress] = write(compress)
        assert len(_WRITTEN[compress]) >= 8
        assert all(b.compressed for b in _WRITTEN[compress].log[1:]) == compress
    return _WRITTEN[compress]


def read(data: bytes) -> TraceScan:
    return scan(open_trace(data, "<damaged>"))


def loss(s: TraceScan) -> dict[str, int]:
    """The anomalies of a read, less what follows from records being lost rather than says that they were: a stack
    walk whose event was in a lost buffer (the writer flushes an Alloc and its walk into different buffers when the
    walk does not fit)."""
    return {k: v for k, v in s.anomalies.as_dict().items() if k != "stack_ref_without_event"}


def logfile_field(data: bytes, name: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into("<I", b, LOGFILE + S.LOGFILE_HEADER64.off(name), value)
    return bytes(b)


def test_the_written_traces_read_clean() -> None:
    for compress in (False, True):
        w = written(compress)
        s = read(w.data)
        assert s.anomalies.as_dict() == {} and s.notes == []
        assert s.events["heap_alloc"] == sum(w.allocs) == 1500


# ------------------------------------------------------------------------------------------------------------
# 1. missing buffers
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("delta", [0, 1, 8, S.BUFFER_HEADER_SIZE - 1])
def test_a_cut_at_a_buffer_boundary_counts_the_missing_buffers(compress: bool, delta: int) -> None:
    w = written(compress)
    for k in (1, len(w) // 2, len(w) - 1):
        s = read(w.data[:w.offsets[k] + delta])
        # a cut inside buffer k's header: that buffer is cut (none of its records is there), the rest missing
        missing = len(w) - k - (1 if delta else 0)
        want = ({"buffers_missing": missing} if missing else {}) | ({"truncated_buffer": 1} if delta else {})
        assert loss(s) == want, (k, delta)
        assert s.events["heap_alloc"] == sum(w.allocs[:k])
        assert len(s.notes) == (1 if missing else 0)
        assert all(f"of the {len(w)} buffers the logfile header says were written" in n for n in s.notes)


def test_a_header_only_file_says_every_buffer_is_missing(tmp_path: Path,
                                                         run_cli: Callable[..., tuple[int, str, str]]) -> None:
    w = written()
    path = tmp_path / "header-only.etl"
    path.write_bytes(w.data[:w.offsets[1]])
    s = read(path.read_bytes())
    assert s.anomalies.as_dict() == {"buffers_missing": len(w) - 1} and s.events["heap_alloc"] == 0
    # the job: a warning on stderr, the count and the note in the JSON
    code, out, err = run_cli(str(path), "--json", "-", "-o", str(tmp_path / "r.html"), "-q")
    assert code == 0 and f"buffers_missing {len(w) - 1}" in err, err
    t = json.loads(out)["traces"][0]
    assert t["anomalies"]["buffers_missing"] == len(w) - 1
    assert any("buffers the logfile header says were written" in n for n in t["notes"]), t["notes"]


@pytest.mark.parametrize("compress", [False, True])
def test_buffers_dropped_from_the_middle_are_counted(compress: bool) -> None:
    w = written(compress)
    s = read(w.without(2, 3, len(w) - 2))
    assert loss(s) == {"buffers_missing": 3}
    assert s.events["heap_alloc"] == sum(w.allocs) - w.allocs[2] - w.allocs[3] - w.allocs[-2]


@pytest.mark.parametrize("damage", ["blank", "drop", "cut"])
def test_a_buffer_copied_twice_does_not_hide_one_lost(damage: str) -> None:
    """A copy of a buffer (same sequence number, CPU and flush time) is one buffer of the file, not two: it cannot
    make up for a buffer lost elsewhere."""
    w = written()
    k = len(w) - 2
    copy = w.data[slice(*w.span(1))]
    lost = {"blank": w.blanked(len(w) - 1, 0), "drop": w.without(k), "cut": w.data[:w.offsets[-1]]}[damage]
    s = read(lost[:w.offsets[2]] + copy + lost[w.offsets[2]:])
    assert loss(s) == ({"blank_buffer": 1} if damage == "blank" else {"buffers_missing": 1})


def test_a_header_that_legitimately_says_otherwise_claims_nothing() -> None:
    w = written()
    # a logfile header the logger never rewrote (it died): fewer buffers than the file holds
    for stale in (0, 1):
        s = read(logfile_field(w.data, "BuffersWritten", stale))
        assert s.anomalies.as_dict() == {} and s.events["heap_alloc"] == sum(w.allocs)
        # what the file itself shows is still said: a cut inside a buffer header (its first byte, 0x00 here)
        cut = logfile_field(w.data, "BuffersWritten", stale)[:w.offsets[4] + 1]
        assert w.data[w.offsets[4]] == 0 and read(cut).anomalies.as_dict() == {"truncated_buffer": 1}
    # a circular file overwrote its oldest buffers on purpose: BuffersWritten counts them, MaximumFileSize (here in
    # KB) bounds what the file holds
    circular = logfile_field(w.data, "LogFileMode", S.LOG_FILE_MODE_CIRCULAR | S.LOG_FILE_MODE_KBYTES_FOR_SIZE)
    circular = logfile_field(circular, "MaximumFileSize", len(w) * BUF // 1024)
    circular = logfile_field(circular, "BuffersWritten", 10 * len(w))
    assert read(circular).anomalies.as_dict() == {}
    # ... but one cut short of its maximum size still says what it lacks
    assert read(circular[:w.offsets[5]]).anomalies.as_dict() == {"buffers_missing": len(w) - 5}
    # a circular file that does not say its maximum size: nothing can be claimed
    assert read(logfile_field(circular, "MaximumFileSize", 0)[:w.offsets[5]]).anomalies.as_dict() == {}
    # ... but a LogFileMode circular and sequential, appending or new-file is damaged: it excuses nothing
    for bad in (0x7FFF_FFFF, S.LOG_FILE_MODE_APPEND, S.LOG_FILE_MODE_NEWFILE):
        both = logfile_field(circular, "LogFileMode", S.LOG_FILE_MODE_CIRCULAR | S.LOG_FILE_MODE_KBYTES_FOR_SIZE | bad)
        assert read(both[:w.offsets[5]]).anomalies.as_dict() == {"buffers_missing": 10 * len(w) - 5}, hex(bad)


def test_a_session_buffer_size_too_small_to_be_real_cuts_no_buffer_short() -> None:
    """The logfile header's BufferSize bounds how far a compressed buffer decodes: a damaged one (below the 1 KB a
    session can ask for) bounds nothing, so every record is still read."""
    w = written(compress=True)
    for size in (0x49, 0x50, 0x3F8):
        s = read(logfile_field(w.data, "BufferSize", size))
        assert s.events["heap_alloc"] == sum(w.allocs) and loss(s) == {}, size


def test_a_preallocated_tail_is_not_a_loss() -> None:
    """A file preallocated to its maximum size ends in never-written zeros: no buffer is missing or blank."""
    w = written()
    s = read(w.data + bytes(5 * BUF + 0x100))
    assert s.anomalies.as_dict() == {} and s.events["heap_alloc"] == sum(w.allocs)


# ------------------------------------------------------------------------------------------------------------
# 2. blank buffers
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("fill", [0x00, 0xFF])
def test_a_blank_buffer_in_the_middle_is_stepped_over(compress: bool, fill: int) -> None:
    w = written(compress)
    k = len(w) // 2
    s = read(w.blanked(k, fill))
    assert loss(s) == {"blank_buffer": 1}
    assert s.events["heap_alloc"] == sum(w.allocs) - w.allocs[k]


def test_blank_runs_count_every_buffer_they_hold() -> None:
    w = written()
    two = w.blanked(3, 0)
    two = two[:w.offsets[4]] + b"\xff" * BUF + two[w.offsets[5]:]
    s = read(two)
    assert loss(s) == {"blank_buffer": 2}
    assert s.events["heap_alloc"] == sum(w.allocs) - w.allocs[3] - w.allocs[4]
    # the last buffer blank: the logfile header says it was written, so it is counted, not taken for a tail
    s = read(w.blanked(len(w) - 1, 0))
    assert loss(s) == {"blank_buffer": 1}
    assert s.events["heap_alloc"] == sum(w.allocs) - w.allocs[-1]


# ------------------------------------------------------------------------------------------------------------
# 3. buffers damaged in part: read by what can still be believed
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 0x40, 0xFFFF_FFF0, 2 * BUF, BUF + 8])
def test_a_damaged_buffer_size_is_read_by_its_saved_offset(size: int) -> None:
    w = written()
    s = read(w.field(3, "BufferSize", size))
    assert s.anomalies.as_dict() == {"buffer_size_damaged": 1}
    assert s.events["heap_alloc"] == sum(w.allocs)


@pytest.mark.parametrize("value", [0, 0x10, BUF + 8, 0xFFFF_FFFF])
def test_damaged_valid_bytes_are_read_to_the_filler(value: int) -> None:
    w = written()
    # SavedOffset alone: Offset@0x30 says the same (notes 1.1) and reads the buffer
    one = w.field(3, "SavedOffset", value)
    assert read(one).events["heap_alloc"] == sum(w.allocs)
    # both: the buffer is read to its 0xFF filler (1.3), and that is counted
    both = read(buffer_field(one, w.offsets[3], "Offset", value))
    assert both.anomalies.as_dict() == {"buffer_saved_offset_mismatch": 1}
    assert both.events["heap_alloc"] == sum(w.allocs)


@pytest.mark.parametrize("saved", ["header", "half", "past_the_session_size", "past_the_stream"])
def test_a_compressed_buffer_is_read_as_far_as_its_stream_goes(saved: str) -> None:
    w = written(compress=True)
    k = 3
    filled = w.log[k].filled
    value = {"header": S.BUFFER_HEADER_SIZE, "half": filled // 2 // 8 * 8, "past_the_session_size": 0xFFFF_FFFF,
             "past_the_stream": filled + 0x100}[saved]
    s = read(w.field(k, "SavedOffset", value))
    assert s.anomalies.as_dict() == {"buffer_saved_offset_mismatch": 1}
    assert s.events["heap_alloc"] == sum(w.allocs)


@pytest.mark.parametrize("size", [0, 0xFFFF_FFF0, 0x48])
def test_a_compressed_buffer_with_a_damaged_size_is_read_to_the_next_buffer(size: int) -> None:
    w = written(compress=True)
    s = read(w.field(3, "BufferSize", size))
    assert s.anomalies.as_dict() == {"buffer_size_damaged": 1}
    assert s.events["heap_alloc"] == sum(w.allocs)


def test_a_filler_marker_before_the_valid_bytes_end_is_counted() -> None:
    """Records end exactly at a buffer's valid bytes (notes 1.3): a record whose marker became the 0xFF filler ends
    the buffer's walk early, and the records after it are lost, said aloud."""
    w = written()
    k = 3
    recs = w.log[k].records
    j = len(recs) // 2  # records are packed from the buffer header on, each 8-aligned (notes 1.3)
    at = w.offsets[k] + S.BUFFER_HEADER_SIZE + sum(len(r.data) + (-len(r.data) % 8) for r in recs[:j])
    assert w.data[at:at + len(recs[j].data)] == recs[j].data
    bad = w.data[:at] + b"\xff" * 4 + w.data[at + 4:]
    s = read(bad)
    assert loss(s) == {"buffer_filler_before_end": 1}
    assert s.events["heap_alloc"] < sum(w.allocs)


def test_a_compressed_buffer_whose_stream_holds_no_record_is_counted() -> None:
    """SavedOffset says a buffer holds records; its stream decodes to one byte: counted, though the buffer (with no
    record to order it by) is never framed."""
    w = written(compress=True)
    k = 3
    lo, hi = w.span(k)
    stream = struct.pack("<I", 0x7FFF_FFFF) + b"A"   # a literal, then the end-of-stream match bit
    head = buffer_field(w.data[lo:lo + S.BUFFER_HEADER_SIZE], 0, "BufferSize", S.BUFFER_HEADER_SIZE + len(stream))
    s = read(w.data[:lo] + head + stream + w.data[hi:])
    assert loss(s) == {"buffer_saved_offset_mismatch": 1}
    assert s.events["heap_alloc"] == sum(w.allocs) - w.allocs[k]


def test_a_header_with_nothing_left_to_believe_is_stepped_over_and_counted() -> None:
    w = written()
    bad = w.field(3, "BufferSize", 0x40)
    for name in ("SavedOffset", "Offset"):
        bad = buffer_field(bad, w.offsets[3], name, 0x10)
    s = read(bad)
    assert loss(s) == {"damaged_buffer": 1, "resync": 1}
    assert s.events["heap_alloc"] == sum(w.allocs) - w.allocs[3]


# ------------------------------------------------------------------------------------------------------------
# 4. sizes are unsigned, and none beyond the address space counts
# ------------------------------------------------------------------------------------------------------------
def _sized(sizes: list[int], free_last: bool = False, realloc_to: int | None = None) -> bytes:
    out = io.BytesIO()
    w = TraceWriter(out, pointer_size=8, cpus=1, buffer_size=BUF)
    t = w.t0 + 100
    w.process(t, 0, PID, 4, "app.exe", "app.exe")
    w.image(t + 1, 0, PID, IMAGE, 0x20000, "\\Device\\HarddiskVolume3\\app\\app.exe")
    for i, size in enumerate(sizes):
        t += 10
        w.heap_alloc(t, 0, PID, TID, HEAP, size, ADDR + 0x100_0000 * i)
        w.stack(t + 1, 0, t, PID, TID, [IMAGE + 0x100 + 0x10 * i])
    if realloc_to is not None:
        t += 10
        last = ADDR + 0x100_0000 * (len(sizes) - 1)
        w.heap_realloc(t, 0, PID, TID, HEAP, last + 0x8000_0000, last, realloc_to, sizes[-1])
        w.stack(t + 1, 0, t, PID, TID, [IMAGE + 0x900])
    if free_last:
        w.heap_free(t + 10, 0, PID, TID, HEAP, ADDR + 0x100_0000 * (len(sizes) - 1))
    w.close()
    return out.getvalue()


def _job(tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]], data: bytes) -> tuple[dict[str, Any], str]:
    path = tmp_path / "t.etl"
    path.write_bytes(data)
    code, out, err = run_cli(str(path), "--json", "-", "-o", str(tmp_path / "r.html"), "-q")
    assert code == 0, err
    return json.loads(out), err


def _never_negative(doc: dict[str, Any]) -> None:
    t = doc["traces"][0]
    assert t["outstanding"]["bytes"] >= 0 and doc["totals"]["bytes"] >= 0 and doc["totals"]["growth"]["bytes"] >= 0
    assert all(v["bytes"] >= 0 for v in t["outstanding_by_pid"].values())
    assert all(g["bytes"] >= 0 for g in doc["groups"]) and doc["groups"]


@pytest.mark.parametrize("huge", [0xFFFF_FFFF_FFFF_0041, 1 << 63, (1 << 47) + 1])
def test_a_size_beyond_the_address_space_is_kept_out_of_every_total(
        tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]], huge: int) -> None:
    doc, err = _job(tmp_path, run_cli, _sized([0x40, huge]))
    _never_negative(doc)
    t = doc["traces"][0]
    assert t["outstanding"] == {"blocks": 2, "bytes": 0x40}   # the block is kept, its size is not
    assert t["anomalies"] == {"size_beyond_address_space": 1}
    assert "size_beyond_address_space 1" in err
    assert any("beyond a 64-bit process's address space" in n for n in t["notes"]), t["notes"]


def test_the_largest_possible_size_still_counts(tmp_path: Path,
                                                run_cli: Callable[..., tuple[int, str, str]]) -> None:
    doc, _ = _job(tmp_path, run_cli, _sized([0x40, 1 << 47]))
    assert doc["traces"][0]["outstanding"] == {"blocks": 2, "bytes": 0x40 + (1 << 47)}
    assert doc["traces"][0]["anomalies"] == {}


def test_a_block_of_an_impossible_size_is_still_freed(tmp_path: Path,
                                                      run_cli: Callable[..., tuple[int, str, str]]) -> None:
    doc, _ = _job(tmp_path, run_cli, _sized([0x40, 0xFFFF_FFFF_FFFF_0041], free_last=True))
    t = doc["traces"][0]
    assert t["outstanding"] == {"blocks": 1, "bytes": 0x40}
    assert t["anomalies"] == {"size_beyond_address_space": 1}   # no unmatched free


def test_a_realloc_to_an_impossible_size(tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]) -> None:
    doc, _ = _job(tmp_path, run_cli, _sized([0x40, 0x80], realloc_to=0xFFFF_FFFF_FFFF_FFF0))
    _never_negative(doc)
    t = doc["traces"][0]
    assert t["outstanding"] == {"blocks": 2, "bytes": 0x40}
    assert t["anomalies"] == {"size_beyond_address_space": 1}


def test_sums_of_sizes_are_exact_whatever_the_sizes() -> None:
    """Below the events layer nothing bounds a size: the live blocks' and the groups' sums never wrap."""
    from heapdiff.etl.sequences import InternedStacks
    from heapdiff.events.images import ImageMap
    from heapdiff.grouping import group_blocks
    from heapdiff.reduce import LiveBlocks

    top = (1 << 64) - 1
    sizes = np.array([top, top, 1 << 63, 5], np.uint64)
    n = sizes.shape[0]
    live = LiveBlocks(pid=np.array([1, 1, 2, 2], np.int64), heap=np.full(n, HEAP, np.uint64),
                      addr=np.arange(n, dtype=np.uint64) * np.uint64(0x1000), size=sizes,
                      ts=np.arange(n, dtype=np.int64), source=np.zeros(n, np.uint8), stack=np.full(n, -1, np.int64))
    assert live.totals() == (4, 2 * top + (1 << 63) + 5)
    assert live.by_pid() == {1: (2, 2 * top), 2: (2, (1 << 63) + 5)}
    grouping = group_blocks(live, InternedStacks(), ImageMap([], 8, []), kernel_frames=False)
    assert (grouping.blocks.tolist(), [int(b) for b in grouping.bytes]) == ([4], [2 * top + (1 << 63) + 5])
    assert sum(grouping.histogram[0].tolist()) == 4 and grouping.histogram[0, -1] == 3


# ------------------------------------------------------------------------------------------------------------
# 5. the pure-Python fallback warns of no overflow
# ------------------------------------------------------------------------------------------------------------
def test_the_pure_python_fallback_warns_of_no_overflow(tmp_path: Path) -> None:
    """Hashing (interned stacks, the reducer's tables) overflows on purpose: uncompiled it must not print numpy's
    overflow warnings, and every other overflow must still warn: run with warnings as errors, the job and info."""
    before, after = tmp_path / "before.etl", tmp_path / "after.etl"
    before.write_bytes(write(allocs=300, cpus=1).data)
    after.write_bytes(write(compress=True, allocs=400, cpus=2).data)
    env = {**os.environ, "HEAPDIFF_NO_JIT": "1"}
    for argv in ([str(before), str(after), "-q", "-o", str(tmp_path / "r.html")], ["info", str(after)]):
        r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "heapdiff.cli", *argv],
                           env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0 and "Warning" not in r.stderr, r.stderr[-3000:]


def test_wrapping_mul_is_the_product_mod_2_64() -> None:
    from heapdiff import _jit

    cases = [(0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9), ((1 << 64) - 1, (1 << 64) - 1), (3, 5), (1 << 63, 2)]
    for a, b in cases:
        want = (a * b) % (1 << 64)
        assert int(_jit._wrapping_mul_py(np.uint64(a), np.uint64(b))) == want
        assert int(_jit.wrapping_mul(np.uint64(a), np.uint64(b))) == want
