"""Reproducers of the failure classes the fuzz harness found, kept as regression tests once fixed.

Each test writes its own input -- a trace from :class:`heapdiff.tracegen.writer.TraceWriter` (through
:mod:`fuzz.seeds`) plus the one mutation that broke the contract -- and asserts the contract
(:func:`fuzz.contract.check`) on it. A class not fixed yet is pinned as a strict xfail (``strict=True`` turns it red
the day its bug is fixed), with its entry in ``test_fuzz.KNOWN``; both go with the fix.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz.contract import check, heap_events  # noqa: E402
from fuzz.mutate import Mutation, apply  # noqa: E402
from fuzz.seeds import WRITTEN, Seed, make_seed, written  # noqa: E402
from fuzz.worker import commands, run_cli  # noqa: E402
from heapdiff.tracegen.writer import TraceWriter  # noqa: E402

_SEEDS: dict[tuple[int, bool], Seed] = {}


def _seed(pointer_size: int = 8, compress: bool = False) -> Seed:
    key = (pointer_size, compress)
    if key not in _SEEDS:
        _SEEDS[key] = make_seed(f"w{pointer_size * 8}{'z' if compress else ''}", written(pointer_size, compress))
    return _SEEDS[key]


def _broken(tmp: Path, seed_data: bytes, data: bytes, command: str, exempt: str | None = None) -> str | None:
    """The contract's verdict on ``data`` for one command, the seed's heap count as the silent-loss baseline."""
    clean, bad = tmp / "seed.etl", tmp / "input.etl"
    clean.write_bytes(seed_data)
    bad.write_bytes(data)
    argv = dict(commands(str(bad), str(clean), command == "diff"))[command]
    base = run_cli(command, [str(clean) if a == str(bad) else a for a in argv])
    assert base.code == 0 and "heapdiff: warning:" not in base.stderr, base.stderr
    f = check(run_cli(command, argv), str(bad), heap_events(json.loads(base.stdout), command), exempt)
    return None if f is None else f"{f.symptom}: {f.detail[:300]}"


def _mutated(tmp: Path, seed: Seed, mutations: list[Mutation], command: str) -> str | None:
    m = apply(seed, mutations)
    return _broken(tmp, seed.data, m.data, command, m.exempt)


@pytest.mark.parametrize("command", ["info", "job"])
@pytest.mark.parametrize("delta", [0, 8, 0x47])
def test_cut_at_a_buffer_boundary_warns(tmp_path: Path, command: str, delta: int) -> None:
    s = _seed()
    cut = s.buffers[-2].offset + delta
    assert _broken(tmp_path, s.data, s.data[:cut], command) is None


@pytest.mark.parametrize("command", ["info", "job"])
@pytest.mark.parametrize("fill", [0x00, 0xFF])
def test_blank_buffer_in_the_middle_warns(tmp_path: Path, command: str, fill: int) -> None:
    s = _seed()
    b = s.buffers[-2]
    data = s.data[:b.offset] + bytes([fill]) * b.size + s.data[b.offset + b.size:]
    assert _broken(tmp_path, s.data, data, command) is None


@pytest.mark.parametrize("command", ["info", "job"])
def test_dropped_buffer_warns(tmp_path: Path, command: str) -> None:
    s = _seed()
    b = s.buffers[-2]
    assert _broken(tmp_path, s.data, s.data[:b.offset] + s.data[b.offset + b.size:], command) is None


def test_bytes_inserted_in_the_header_buffer_warn(tmp_path: Path) -> None:
    s = _seed()
    data = s.data[:0x800] + bytes(range(48)) + s.data[0x800:]
    assert _broken(tmp_path, s.data, data, "info") is None


@pytest.mark.parametrize("command", ["info", "job"])
def test_compressed_buffer_saved_offset_lowered_warns(tmp_path: Path, command: str) -> None:
    s = _seed(compress=True)
    k = len(s.buffers) - 2
    assert s.buffers[k].compressed and s.buffers[k].records
    assert _mutated(tmp_path, s, [["buffer_field", k, "SavedOffset", 0x48]], command) is None


def _small_trace(alloc_size: int, image_base: int = 0x7FF6_0000_0000) -> bytes:
    """One process, one image, one live block with its stack: the smallest trace the two classes below need."""
    fh = io.BytesIO()
    w = TraceWriter(fh, pointer_size=8, cpus=1, buffer_size=0x1000)
    t = w.t0 + 100
    w.process(t, 0, 100, 4, "app.exe", "app.exe", kind="dcstart")
    w.image(t + 1, 0, 100, image_base, 0x20000, "\\Device\\HarddiskVolume3\\app\\app.exe")
    w.heap_alloc(t + 10, 0, 100, 104, 0x1F0000, 0x40, 0x0200_0000)
    w.stack(t + 11, 0, t + 10, 100, 104, [image_base + 0x100])
    w.heap_alloc(t + 20, 0, 100, 104, 0x1F0000, alloc_size, 0x0300_0000)
    w.stack(t + 21, 0, t + 20, 100, 104, [image_base + 0x200])
    w.close()
    return fh.getvalue()


def test_huge_alloc_size_is_not_negative(tmp_path: Path) -> None:
    clean, data = _small_trace(0x40), _small_trace(0xFFFFFFFFFFFF0041)
    assert _broken(tmp_path, clean, data, "job") is None


def test_image_end_past_2_64_does_not_crash(tmp_path: Path) -> None:
    clean, data = _small_trace(0x40), _small_trace(0x40, image_base=0xFFFF_FFFF_FFFF_0000)
    assert _broken(tmp_path, clean, data, "job") is None


# run seed 20261206: damage to the logfile header that says how many buffers there are, and to the buffers too


@pytest.mark.parametrize("command", ["info", "job"])
@pytest.mark.parametrize("written", [0, 1])
def test_a_dropped_buffer_under_a_stale_header_warns(tmp_path: Path, command: str, written: int) -> None:
    """BuffersWritten below what the file holds (a header the logger never rewrote, or damaged) claims nothing; the
    buffers' sequence numbers still show the one dropped from the middle."""
    s = _seed()
    assert _mutated(tmp_path, s, [["drop", 2], ["logfile_field", "BuffersWritten", written]], command) is None


@pytest.mark.parametrize("command", ["info", "job"])
def test_a_dropped_buffer_under_a_damaged_log_file_mode_warns(tmp_path: Path, command: str) -> None:
    s = _seed()
    assert _mutated(tmp_path, s, [["logfile_field", "LogFileMode", 1006393182], ["drop", 1]], command) is None


@pytest.mark.parametrize("command", ["info", "job"])
def test_a_blank_last_buffer_under_a_header_that_counts_none_warns(tmp_path: Path, command: str) -> None:
    """BuffersWritten 0 (no logger that closed its file writes it) and a blank last buffer: not preallocated space
    the header vouches for, so the blank buffer counts."""
    s = _seed()
    last = len(s.buffers) - 1
    assert _mutated(tmp_path, s, [["blank", last, 255], ["logfile_field", "BuffersWritten", 0]], command) is None


# run seed 20261207: a clock that maps raw times past int64 (a PerfFreq of 1) ended the memory timeline in a traceback


def test_a_perf_freq_that_overflows_the_timeline_clock(tmp_path: Path) -> None:
    seed = make_seed("example", WRITTEN["example"]())
    junk = ("26c288e0bd0df8a0dd6d705158bd4f047f431d95f81cfb221f0c0a0df20d622bbc118632827398d006e18de8c2e39e1c")
    # bytes inserted in a buffer make a record whose raw time, at one tick a second, is past 2**63 FILETIME units
    assert _mutated(tmp_path, seed, [["insert", 34062, junk], ["logfile_field", "PerfFreq", 1]], "job") is None


# run seed 20261215: an uncompressed buffer flagged compressed, its SavedOffset the bare header: the first decode
# (to SavedOffset) gave nothing, the records after it are no stream, and the buffer's heap events went unwarned


@pytest.mark.parametrize("command", ["info", "job"])
def test_records_past_a_compressed_buffers_saved_offset_that_do_not_decode_warn(tmp_path: Path, command: str) -> None:
    seed = make_seed("example", WRITTEN["example"]())
    mutations: list[Mutation] = [["buffer_field", 1, "BufferFlag", 39136], ["buffer_field", 1, "SavedOffset", 72]]
    assert _mutated(tmp_path, seed, mutations, command) is None


# run seed 20261216: a cut exactly between two buffers under a header that counts none (BuffersWritten 0) is a file
# whole by everything it says: the harness exempts it from the silent-loss rule, and only it


@pytest.mark.parametrize(("written", "exempt"), [(None, False), (0, True), (3, True), (4, False)])
def test_a_cut_between_buffers_is_exempt_only_under_a_header_that_does_not_count_them(written: int | None,
                                                                                     exempt: bool) -> None:
    s = _seed()
    assert len(s.buffers) > 4
    cut: list[Mutation] = [["truncate_boundary", 3, 0]]
    if written is not None:
        cut.append(["logfile_field", "BuffersWritten", written])
    assert (apply(s, cut).exempt is not None) is exempt
    assert apply(s, [["truncate_boundary", 3, 8], *cut[1:]]).exempt is None  # a cut inside a buffer shows itself
    assert apply(s, [*cut, ["delete", 0x2000, 8]]).exempt is None  # bytes deleted before it: the cut is inside one


@pytest.mark.parametrize("command", ["info", "job"])
def test_the_reproducer_of_a_cut_under_a_header_that_counts_none(tmp_path: Path, command: str) -> None:
    seed = _seed()
    mutations: list[Mutation] = [["logfile_field", "BuffersWritten", 0], ["buffer_field", 5, "ProcessorIndex", 56632],
                                 ["truncate_boundary", 3, 0]]
    assert apply(seed, mutations).exempt is not None
    assert _mutated(tmp_path, seed, mutations, command) is None


# run seed 20261216: a LogFileMode circular and appending and new-file (documented as never together) excused the
# buffers cut after buffer 0, as a circular file's overwritten ones; info said nothing of 239 heap events lost


@pytest.mark.parametrize("command", ["info", "job"])
@pytest.mark.parametrize("compress", [True, False])
def test_a_cut_under_a_circular_mode_that_cannot_be_warns(tmp_path: Path, command: str, compress: bool) -> None:
    seed = _seed(compress=compress)  # (the run's reproducer: compressed)
    mutations: list[Mutation] = [["truncate_boundary", 1, 0], ["logfile_field", "LogFileMode", 3670173358]]
    assert _mutated(tmp_path, seed, mutations, command) is None
