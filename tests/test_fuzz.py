"""Property-based fuzzing of the production path: ``heapdiff info --json`` on mutated traces.

Seeds: traces written by :class:`heapdiff.tracegen.writer.TraceWriter` (64-bit with heap events, stack walks, stack-key
references, images, processes and records of the other header kinds; its Xpress-compressed twin; a 32-bit
trace) and a few small real samples from ../shared/etl-samples (compressed ones included). Mutations, drawn
by hypothesis: bit flips, byte overwrites, truncations, insertions, deletions, buffer-header fields and
logfile-header fields overwritten with extreme values, record-header fields (marker, size, hook) overwritten
with extreme values, buffers duplicated.

Every mutated file goes through ``heapdiff.cli.main(["info", "--json", FILE])`` -- the CLI's code path, JIT
kernels included -- in a driver subprocess that runs a batch of files (start-up and JIT cache loading are paid
once per batch). A file passes when it exits 0 with a JSON document on stdout (warnings only on stderr) or
exits 3 with exactly one stderr line naming the file and a byte offset (a TraceError). It fails on any other
exception, a crash of the process (negative return code), more than 5 s for one file (a watchdog thread in
the driver) or the memory limit.

Memory limit: RLIMIT_AS = 1 GiB, set in the child by preexec_fn. Measured first, because numba/LLVM reserve
address space: ``import numba`` takes the process to ~330 MB of address space (VmPeak), loading the cached
JIT kernels and reading the small seeds here to ~350-450 MB (a cold compile ~380 MB; the 4.9 MB
net.4.5.2.x64 sample peaks at ~870 MB). So 1 GiB of address space leaves room for the reader's own use and
is the stricter limit (it also bounds memory that is reserved but never touched, which RLIMIT_DATA or the
peak RSS would not); an allocation past it is a MemoryError (reported as a failure) or a crash (negative
return code). The driver also reports its peak RSS (``ru_maxrss``), asserted <= 1 GiB as well.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "etl-samples"
#: small real samples (bytes): compressed ones (SelfDescribingSingleEvent, smallEtlFile, PerfViewData) too
SAMPLE_SEEDS = [
    "microsoft__perfview/SelfDescribingSingleEvent.etl",
    "microsoft__perfview/smallEtlFile.etl",
    "microsoft__perfview/primitive-types.etl",
    "microsoft__perfview/gcrundownevents.etl",
    "airbus-cert__etl-parser/lxcore_kernel.etl",
    "JohnLudlow__MonoGameSamples.TerrainGeneration2D/PerfViewData.etl",
    "microsoft__Tx/WsRm01.etl",
]

MEMORY_LIMIT = 1 << 30
PER_FILE_SECONDS = 5.0
BATCH = 110                 # mutated files per driver process
BATCHES = 12                # per test (two tests: written seeds, real samples) -> 2 x 1,320 mutations
MIN_MUTATIONS = 1000        # per test

# --- the driver: many files per process, per-file watchdog, the CLI in-process ------------------------------
DRIVER = r'''
import contextlib, io, json, os, resource, sys, threading, time, traceback
manifest, limit, warmup = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(os.pathsep)
paths = json.load(open(manifest))
out = sys.stdout

from heapdiff import _jit
from heapdiff.etl import walk as frame
from heapdiff.cli import main

if not _jit.JIT_ENABLED or not hasattr(frame.frame_kernel, "signatures"):
    out.write(json.dumps({"fatal": "the JIT path is not active"}) + "\n")
    sys.exit(2)

current = [None, 0.0]

def watchdog():
    while True:
        time.sleep(0.05)
        i, t = current
        if i is not None and time.monotonic() - t > limit:
            out.write(json.dumps({"i": i, "ok": False, "why": "timeout after %.1f s" % limit}) + "\n")
            out.flush()
            os._exit(124)

def run(path):
    o, e = io.StringIO(), io.StringIO()
    code = None
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            main(["info", "--json", path])
            code = 0
        except SystemExit as x:
            code = x.code if isinstance(x.code, int) else (0 if x.code is None else 1)
    return code, o.getvalue(), e.getvalue()

def verdict(path, code, so, se):
    lines = se.splitlines()
    if code == 0:
        d = json.loads(so)
        if not isinstance(d, dict) or "records" not in d:
            return "exit 0 without an info document"
        bad = [ln for ln in lines if not ln.startswith("heapdiff: warning: ")]
        return "unexpected stderr on exit 0: %r" % bad[:2] if bad else None
    if code == 3:
        if so:
            return "exit 3 with stdout output"
        if len(lines) != 1 or not lines[0].startswith("heapdiff: error: ") or path not in lines[0] \
                or "byte offset" not in lines[0]:
            return "exit 3 without exactly one error line naming the file and the byte offset: %r" % se[-500:]
        return None
    return "exit code %r, stderr %r" % (code, se[-500:])

# warm up on the intact seeds (compressed ones too): load -- or, with a stale cache, compile -- every JIT kernel
# (record walk, stack matcher, Xpress decoder) outside the per-file time limit
for w in warmup:
    run(w)
if not frame.frame_kernel.signatures:
    out.write(json.dumps({"fatal": "frame_kernel was not compiled"}) + "\n")
    sys.exit(2)
threading.Thread(target=watchdog, daemon=True).start()
for i, path in enumerate(paths):
    current[1] = time.monotonic()
    current[0] = i
    try:
        code, so, se = run(path)
        why = verdict(path, code, so, se)
    except BaseException:
        why = "exception: " + traceback.format_exc()[-2000:]
    current[0] = None
    out.write(json.dumps({"i": i, "ok": why is None, "why": why, "dt": time.monotonic() - current[1]}) + "\n")
    out.flush()
status = open("/proc/self/status").read() if os.path.exists("/proc/self/status") else ""
vmpeak = next((int(l.split()[1]) for l in status.splitlines() if l.startswith("VmPeak:")), -1)
out.write(json.dumps({"done": len(paths), "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "vmpeak_kb": vmpeak, "jit_signatures": len(frame.frame_kernel.signatures)}) + "\n")
'''


def _limit_memory() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_driver(paths: Sequence[Path], tmp: Path, warmup: Sequence[Path]) -> list[dict[str, Any]]:
    manifest = tmp / "manifest.json"
    manifest.write_text(json.dumps([str(p) for p in paths]), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "HEAPDIFF_NO_JIT"}  # the JIT path, always
    warm = os.pathsep.join(str(p) for p in warmup)
    r = subprocess.run([sys.executable, "-c", DRIVER, str(manifest), str(PER_FILE_SECONDS), warm],
                       env=env,
                       capture_output=True, text=True, preexec_fn=_limit_memory,
                       timeout=60 + PER_FILE_SECONDS * len(paths))
    rows = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    last = rows[-1] if rows else {}
    if r.returncode != 0:
        i = last.get("i", len([x for x in rows if "i" in x]))
        what = last.get("why") or last.get("fatal") or f"return code {r.returncode}"
        culprit = paths[i] if isinstance(i, int) and i < len(paths) else "?"
        pytest.fail(f"driver died ({what}) on {culprit}; stderr: {r.stderr[-1500:]}")
    return rows


# --- seeds --------------------------------------------------------------------------------------------------
@dataclass
class Seed:
    name: str
    data: bytes
    buffers: list[tuple[int, int]]    # (offset, size) of each buffer, by its own BufferSize
    records: list[int]                # file offsets of records in uncompressed buffers
    #: compressed buffers: (index in ``buffers``, decompressed body after the 0x48-byte header, record offsets
    #: in the body), so that mutations reach the records inside them too (mutate, then compress again)
    packed: list[tuple[int, bytes, list[int]]] = field(default_factory=list)


def _records(data: bytes, p: int, end: int) -> list[int]:
    """The notes' section 1.4 walk of one buffer's records."""
    recs: list[int] = []
    while p + 8 <= end:
        (m,) = struct.unpack_from("<I", data, p)
        if m == 0xFFFFFFFF or not m & 0x80000000:
            break
        ht = (m >> 16) & 0xFF
        sz = struct.unpack_from("<H", data, p + 4)[0] if (m >> 24) & 0xC0 == 0xC0 and ht in (
            1, 2, 3, 4, 0x10, 0x11) else m & 0xFFFF
        if sz < 8 or p + sz > end:
            break
        recs.append(p)
        p += (sz + 7) & ~7
    return recs


def _seed(name: str, data: bytes) -> Seed:
    """Where the buffers (by their own BufferSize, notes 1.2) and the records are."""
    from heapdiff.etl.xpress import decompress

    seed = Seed(name, data, [], [])
    off = 0
    while off + 0x48 <= len(data):
        size, saved = struct.unpack_from("<II", data, off)
        (flag,) = struct.unpack_from("<H", data, off + 0x34)
        if size < 0x48 or off + size > len(data):
            break
        seed.buffers.append((off, size))
        if not flag & 0x40:
            seed.records += _records(data, off + 0x48, off + min(saved, size))
        else:
            body = decompress(data[off + 0x48:off + size], saved - 0x48)
            seed.packed.append((len(seed.buffers) - 1, body, _records(body, 0, len(body))))
        off += size
    return seed


def _other_kinds(ts: int) -> list[bytes]:
    """Records of the header kinds the writer does not produce itself (notes 3.2-3.6), for TraceWriter.raw."""
    heap = uuid.UUID("222962ab-6180-4b88-a825-346b75f2a24a").bytes_le
    other = uuid.UUID("8e805eb3-6a8f-4a1e-b9dd-1111aaaa2222").bytes_le
    alloc64 = struct.pack("<QQQI", 0x1F0000, 0x30, 0x2FF0000, 3)
    # EVENT_TRACE_HEADER 64 with the heap GUID (relogged form): Size, type 0x14, 0xC0, opcode 0x21 @4
    et = struct.pack("<HBBBBHIIq16sII", 0x30 + len(alloc64), 0x14, 0xC0, 0x21, 4, 2, 104, 100, ts, heap, 0, 0)
    # EVENT_HEADER 64 with a STACK_TRACE64 extended item then user data
    item = struct.pack("<HHHHQQQ", 32, 6, 0, 24, 7, 0x7FF600001000, 0x7FF600002000)
    eh = struct.pack("<HHHHIIq16sHBBBBHQII16s", 0x50 + len(item) + 8, 0xC013, 1, 0, 104, 100, ts + 1, other,
                     5, 0, 0, 4, 0, 0, 0, 0, 0, bytes(16)) + item + b"userdata"
    # compact SYSTEM 64 (type 4, 0x18) heap free
    free64 = struct.pack("<QQI", 0x1F0000, 0x2FF0000, 3)
    compact = struct.pack("<HBBHBBIIq", 2, 4, 0xC0, 0x18 + len(free64), 0x24, 0x10, 104, 100, ts + 2) + free64
    # WPP message: Size | 0x90 flags; MessageNumber, OptionFlags 0x0008 (timestamp first)
    msg = struct.pack("<IHHqI", 0x90000000 | 20, 3, 0x0008, ts + 3, 99)
    return [et, eh, compact, msg]


def _written(pointer_size: int, compress: bool) -> bytes:
    from heapdiff.tracegen.writer import TraceWriter

    fh = io.BytesIO()
    w = TraceWriter(fh, pointer_size=pointer_size, cpus=2, buffer_size=0x1000, compress=compress)
    ptr = pointer_size
    base = 0x7FF6_0000_0000 if ptr == 8 else 0x0040_0000
    t = w.t0 + 1000
    pid, tid = 100, 104
    w.process(t, 0, pid, 4, "app.exe", "app.exe --leak", kind="dcstart")
    w.image(t + 1, 0, pid, base, 0x20000, "\\Device\\HarddiskVolume3\\app\\app.exe")
    w.image(t + 2, 0, pid, base + 0x100000, 0x80000,
            "\\Device\\HarddiskVolume3\\Windows\\System32\\ntdll.dll", kind="load")
    heap = 0x1F0000
    ts = t + 10
    for i in range(160):
        cpu = i % 2
        ts += 10
        addr = 0x0200_0000 + i * 0x40
        frames = [base + 0x100 + (i % 5) * 8, base + 0x100000 + 0x40, base + 0x200]
        w.heap_alloc(ts, cpu, pid, tid, heap, 0x20 + i, addr)
        if i % 4 == 0:
            key = 0xFFFF_C000_0000_0000 + (i % 3) * 0x100 if ptr == 8 else 0x8000_0000 + (i % 3) * 0x100
            w.stack_key_create(ts + 1, cpu, key, frames)
            w.stack_key_ref(ts + 2, cpu, ts, pid, tid, key)
        else:
            w.stack(ts + 1, cpu, ts, pid, tid, frames)
        if i % 3 == 0:
            w.heap_free(ts + 3, cpu, pid, tid, heap, addr)
        if i % 7 == 0:
            w.heap_realloc(ts + 4, cpu, pid, tid, heap, addr + 0x10000, addr, 0x100, 0x20 + i)
        if i == 50 and ptr == 8:
            w.heap_alloc(ts + 5, cpu, 200, 204, 0x00A0_0000, 0x10, 0x00B0_0000, ptr=4)   # a WOW64 process
            for rec in _other_kinds(ts + 6):
                w.raw(cpu, rec)
    w.stack_key_create(ts + 20, 0, 0xFFFF_C000_0000_0000 if ptr == 8 else 0x8000_0000, [base],
                       hook=0x1824)  # KeyRundown
    w.image(ts + 21, 1, pid, base, 0x20000, "\\Device\\HarddiskVolume3\\app\\app.exe", kind="unload")
    w.process(ts + 22, 1, pid, 4, "app.exe", "app.exe --leak", kind="end")
    w.close()
    return fh.getvalue()


@pytest.fixture(scope="module")
def written_seeds() -> list[Seed]:
    try:
        import heapdiff.tracegen.writer  # noqa: F401
    except ImportError:
        pytest.skip("heapdiff.tracegen.writer is not available")
    return [_seed("written64", _written(8, False)), _seed("written64z", _written(8, True)),
            _seed("written32", _written(4, False))]


@pytest.fixture(scope="module")
def sample_seeds() -> list[Seed]:
    if not SAMPLES.is_dir():
        pytest.skip(f"real samples not found at {SAMPLES}")
    return [_seed(n.rsplit("/", 1)[-1], (SAMPLES / n).read_bytes())
            for n in SAMPLE_SEEDS if (SAMPLES / n).is_file()]


# --- mutations ----------------------------------------------------------------------------------------------
U32_EXTREMES = [0, 1, 7, 8, 0x3F, 0x47, 0x48, 0x49, 0x50, 0x400, 0xFFF8, 0xFFFF, 0x10000, 0x10001, 0x7FFFFFFF,
                0x80000000, 0xFFFFFFF8, 0xFFFFFFFF, 64 << 20, (64 << 20) + 8, 1 << 31 | 0x48]
U64_EXTREMES = [0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 0xFFFFFFFF, 1 << 32]
#: 1.1 buffer-header fields: (offset, struct code)
BUFFER_FIELDS = [(0x00, "I"), (0x04, "I"), (0x08, "I"), (0x10, "Q"), (0x18, "Q"), (0x28, "H"), (0x2A, "H"),
                 (0x2C, "I"), (0x30, "I"), (0x34, "H"), (0x36, "H")]
#: 2.2 logfile-header fields of a 64-bit header record (file offsets: 0x48 buffer header + 0x20 SYSTEM header)
#: and the header record's own marker/size
LOGFILE_FIELDS = [(0x68 + 0x00, "I"), (0x68 + 0x0C, "I"), (0x68 + 0x24, "I"), (0x68 + 0x2C, "I"),
                  (0x68 + 0x100, "Q"), (0x68 + 0x108, "Q"), (0x68 + 0x110, "I"), (0x48 + 4, "H"),
                  (0x48 + 2, "B"), (0x48 + 0x10, "Q")]
#: record-header fields: marker/Version, header type, flags byte, Size (classic), hook, timestamp
RECORD_FIELDS = [(0, "H"), (2, "B"), (3, "B"), (4, "H"), (6, "H"), (0x10, "Q")]

_pos = st.integers(0, 1 << 31)
_value = st.one_of(st.sampled_from(U32_EXTREMES), st.sampled_from(U64_EXTREMES),
                   st.integers(0, (1 << 64) - 1))
MUTATION = st.one_of(
    st.tuples(st.just("flip"), _pos, st.integers(0, 7)),
    st.tuples(st.just("byte"), _pos, st.integers(0, 255)),
    st.tuples(st.just("truncate"), _pos),
    st.tuples(st.just("insert"), _pos, st.binary(min_size=1, max_size=48)),
    st.tuples(st.just("delete"), _pos, st.integers(1, 512)),
    st.tuples(st.just("buffer_field"), _pos, st.sampled_from(BUFFER_FIELDS), _value),
    st.tuples(st.just("logfile_field"), st.sampled_from(LOGFILE_FIELDS), _value),
    st.tuples(st.just("record_field"), _pos, st.sampled_from(RECORD_FIELDS), _value),
    st.tuples(st.just("duplicate_buffer"), _pos, _pos),
    st.tuples(st.just("inside"), _pos, st.sampled_from(RECORD_FIELDS), _pos, _value),
    st.tuples(st.just("inside"), _pos, st.just("flip"), _pos),
)
#: one mutated file: (seed index, 1-4 mutations applied in order)
MUTANT = st.tuples(st.integers(0, 63), st.lists(MUTATION, min_size=1, max_size=4))


def _put(b: bytearray, off: int, code: str, value: int) -> None:
    n = struct.calcsize(code)
    if off >= 0 and off + n <= len(b):
        struct.pack_into("<" + code, b, off, value & ((1 << (8 * n)) - 1))


def _repack(seed: Seed, muts: Sequence[tuple[Any, ...]]) -> bytes:
    """Apply the "inside" mutations to decompressed buffers, compress them again (BufferSize = the new on-disk
    size, SavedOffset = Offset = 0x48 + body, notes 7) and splice them back in."""
    from heapdiff.etl.xpress import compress

    bodies: dict[int, bytearray] = {}
    for m in muts:
        if m[0] != "inside" or not seed.packed:
            continue
        k, body, recs = seed.packed[m[1] % len(seed.packed)]
        b = bodies.setdefault(k, bytearray(body))
        if m[2] == "flip" and b:
            b[m[3] % len(b)] ^= 1 << (m[3] % 8)
        elif recs:
            _put(b, recs[m[3] % len(recs)] + m[2][0], m[2][1], m[4])
    data = bytearray(seed.data)
    for k in sorted(bodies, reverse=True):   # from the end: earlier offsets stay valid
        off, size = seed.buffers[k]
        body = bytes(bodies[k])
        comp = compress(body)
        disk = 0x48 + len(comp) + (-len(comp) % 8)
        hdr = bytearray(data[off:off + 0x48])
        struct.pack_into("<II", hdr, 0, disk, 0x48 + len(body))
        struct.pack_into("<I", hdr, 0x30, 0x48 + len(body))
        data[off:off + size] = bytes(hdr) + comp + b"\xff" * (disk - 0x48 - len(comp))
    return bytes(data)


def mutate(seed: Seed, muts: Sequence[tuple[Any, ...]]) -> bytes:
    packed_muts = any(m[0] == "inside" for m in muts) and seed.packed
    b = bytearray(_repack(seed, muts) if packed_muts else seed.data)
    if packed_muts:   # buffer offsets moved: walk the repacked file again for the operators below
        seed = _seed(seed.name, bytes(b))
    for m in muts:
        kind = m[0]
        n = len(b)
        if kind == "flip" and n:
            b[m[1] % n] ^= 1 << m[2]
        elif kind == "byte" and n:
            b[m[1] % n] = m[2]
        elif kind == "truncate":
            del b[m[1] % (n + 1):]
        elif kind == "insert":
            at = m[1] % (n + 1)
            b[at:at] = m[2]
        elif kind == "delete" and n:
            at = m[1] % n
            del b[at:at + m[2]]
        elif kind == "buffer_field" and seed.buffers:
            off, _ = seed.buffers[m[1] % len(seed.buffers)]
            _put(b, off + m[2][0], m[2][1], m[3])
        elif kind == "logfile_field":
            _put(b, m[1][0], m[1][1], m[2])
        elif kind == "record_field" and seed.records:
            _put(b, seed.records[m[1] % len(seed.records)] + m[2][0], m[2][1], m[3])
        elif kind == "duplicate_buffer" and seed.buffers:
            off, size = seed.buffers[m[1] % len(seed.buffers)]
            chunk = bytes(seed.data[off:off + size])
            at = seed.buffers[m[2] % len(seed.buffers)][0] if m[2] % 3 else n
            b[min(at, len(b)):min(at, len(b))] = chunk
    return bytes(b)


def _fuzz(seeds: list[Seed], tmp_path: Path) -> None:
    assert seeds
    warmup = [_write(tmp_path, s) for s in seeds]
    done = {"files": 0, "batches": 0, "runs": 0, "maxrss_kb": 0, "vmpeak_kb": 0}

    @settings(max_examples=BATCHES, deadline=None, derandomize=False, database=None,
              phases=[Phase.explicit, Phase.generate],   # no shrinking: the driver names the failing file
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(batch=st.lists(MUTANT, min_size=BATCH, max_size=BATCH))
    def one_batch(batch: list[tuple[int, list[tuple[Any, ...]]]]) -> None:
        done["runs"] += 1   # hypothesis replays a failing example: every run gets its own folder
        d = tmp_path / f"batch{done['runs']:02d}"
        d.mkdir()
        paths: list[Path] = []
        what: list[str] = []
        for k, (si, muts) in enumerate(batch):
            seed = seeds[si % len(seeds)]
            p = d / f"{k:03d}_{seed.name}"
            p.write_bytes(mutate(seed, muts))
            paths.append(p)
            what.append(f"{seed.name} {muts!r}")
        rows = run_driver(paths, d, warmup)
        results = [r for r in rows if "i" in r]
        final = rows[-1]
        assert "done" in final and final["done"] == len(paths), rows[-3:]
        assert len(results) == len(paths)
        failed = [r for r in results if not r["ok"]]
        assert not failed, "\n".join(f"{paths[r['i']]} ({what[r['i']]}): {r['why']}" for r in failed[:5])
        slow = [r for r in results if r["dt"] > PER_FILE_SECONDS]
        assert not slow, [(str(paths[r["i"]]), r["dt"]) for r in slow]
        assert final["maxrss_kb"] * 1024 <= MEMORY_LIMIT, final
        assert final["jit_signatures"] > 0, "the JIT kernel was not used"
        done["files"] += len(paths)
        done["batches"] += 1
        done["maxrss_kb"] = max(done["maxrss_kb"], final["maxrss_kb"])
        done["vmpeak_kb"] = max(done["vmpeak_kb"], final["vmpeak_kb"])
        for p in paths:  # keep the failing batches only
            p.unlink()

    one_batch()
    assert done["files"] >= MIN_MUTATIONS, done
    print(f"fuzz: {done['files']} mutated files in {done['batches']} processes, peak RSS "
          f"{done['maxrss_kb'] // 1024} MiB, peak address space {done['vmpeak_kb'] // 1024} MiB")


def test_fuzz_written_traces(written_seeds: list[Seed], tmp_path: Path) -> None:
    # the seeds themselves read cleanly
    files = [_write(tmp_path, s) for s in written_seeds]
    rows = run_driver(files, tmp_path, files)
    assert all(r["ok"] for r in rows if "i" in r), rows
    _fuzz(written_seeds, tmp_path)


@pytest.mark.samples
def test_fuzz_real_samples(sample_seeds: list[Seed], tmp_path: Path) -> None:
    _fuzz(sample_seeds, tmp_path)


def _write(tmp: Path, seed: Seed) -> Path:
    p = tmp / f"seed_{seed.name}.etl"
    p.write_bytes(seed.data)
    return p


def test_mutations_cover_every_kind(written_seeds: list[Seed]) -> None:
    """The mutation operators do what they say (a cheap check of the fuzzer itself)."""
    s = written_seeds[0]
    assert len(s.buffers) >= 4 and len(s.records) > 100
    assert mutate(s, [("truncate", 100)]) == s.data[:100]
    assert len(mutate(s, [("insert", 5, b"abc")])) == len(s.data) + 3
    assert len(mutate(s, [("duplicate_buffer", 1, 0)])) == len(s.data) + s.buffers[1][1]
    off = s.buffers[2][0]
    m = mutate(s, [("buffer_field", 2, (0x00, "I"), 0xFFFFFFFF)])
    assert struct.unpack_from("<I", m, off)[0] == 0xFFFFFFFF
    r = s.records[10]
    m = mutate(s, [("record_field", 10, (4, "H"), 0x1_0008)])
    assert struct.unpack_from("<H", m, r + 4)[0] == 0x0008
    # inside a compressed buffer: decompress, overwrite the hook of record 3, compress again
    z = written_seeds[1]
    assert z.packed
    _, body, recs = z.packed[0]
    m = mutate(z, [("inside", 0, (6, "H"), 3, 0x1024)])
    again = _seed("again", m)
    assert len(again.buffers) == len(z.buffers)
    _, body2, _ = again.packed[0]
    assert struct.unpack_from("<H", body2, recs[3] + 6)[0] == 0x1024
    assert body2[:recs[3]] == body[:recs[3]]


def test_driver_reports_failures(written_seeds: list[Seed], tmp_path: Path) -> None:
    """The harness itself: a readable trace passes; a usage error (a directory: exit 2) and an exit 3 whose
    line has no byte offset (a missing file) are reported as failures of the file they happened on."""
    good = _write(tmp_path, written_seeds[0])
    folder = tmp_path / "a_folder.etl"
    folder.mkdir()
    rows = run_driver([good, folder, tmp_path / "missing.etl"], tmp_path, [good])
    assert [r["ok"] for r in rows if "i" in r] == [True, False, False]
    assert rows[1]["why"].startswith("exit code 2")
    assert rows[2]["why"].startswith("exit 3 without exactly one error line")
    assert rows[-1]["done"] == 3 and rows[-1]["jit_signatures"] > 0
