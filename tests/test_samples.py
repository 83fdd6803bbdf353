"""heapdiff against the real Windows traces of ../shared/etl-samples.

What is checked, and against what:

(a) ``heapdiff info --json`` of every sample against ``expected.json`` (counts two independent readers agree
    on): pointer size, buffers, compressed buffers, records, events lost, the whole per-provider record map,
    and the stack-walk / image / process event counts; the empty sample exits 3 with one stderr line naming
    the file and a byte offset.
(b) The PerfView samples against PerfView/TraceEvent's own decoded output (``*.baseline.txt``): the header
    fields, every Image and Process event the baseline shows, and the KernelTraceControl ImageID / DbgID_RSDS
    events (the only image events whose file name the baseline prints whole).
(c) Stack attribution on net.4.5.2 (stack caching: key references 0x1825/0x1826 resolved through KeyDelete /
    KeyRundown definitions): >= 99 % of references attributed, and every key resolution equal to an
    independent walk of the key events; plus a hand-made StackMatcher case with a key redefined between refs.
(d) The pure-Python fallback (HEAPDIFF_NO_JIT=1) gives the same ``info --json`` as the JIT path.

The samples are read where they are (never copied); tests that need them skip when ../shared is absent.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heapdiff.etl.batch import RecordBatch
from heapdiff.etl.logfile import LogfileHeader
from heapdiff.etl.reader import Reader
from heapdiff.etl.trace import open_trace
from heapdiff.etl.walk import ST_BAD_PAYLOAD
from heapdiff.events import kinds as K
from heapdiff.events.layout import COL_KEY_DEF, COL_KEY_REF, KERNEL_GUIDS, layout
from heapdiff.events.scan import TraceScan, scan
from heapdiff.events.stacks import StackMatcher

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "etl-samples"
PERFVIEW = SAMPLES / "microsoft__perfview"
EMPTY = "Siemens-Healthineers__ETWAnalyzer/EmptyETL.etl"

samples = pytest.mark.samples


def _expected_names() -> list[str]:
    try:
        return sorted(json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8")))
    except OSError:
        return []


def _baselines() -> list[str]:
    return sorted(p.name[: -len(".baseline.txt")] for p in PERFVIEW.glob("*.baseline.txt")) \
        if PERFVIEW.is_dir() else []


_SCANS: dict[str, TraceScan] = {}


def _scan(path: Path) -> TraceScan:
    """One scan per sample per session (several tests look at the same trace)."""
    key = str(path)
    if key not in _SCANS:
        _SCANS[key] = scan(open_trace(path.read_bytes(), key))
    return _SCANS[key]


# ------------------------------------------------------------------------------------------------------------
# (a) info --json against expected.json
# ------------------------------------------------------------------------------------------------------------
@samples
@pytest.mark.parametrize("name", _expected_names())
def test_info_json_matches_expected(name: str, samples_dir: Path, expected: dict[str, Any],
                                    run_cli: Callable[..., tuple[int, str, str]]) -> None:
    exp = expected[name]
    path = samples_dir / name
    code, out, err = run_cli("info", "--json", str(path))
    if "error" in exp:
        # unreadable: exit 3, nothing on stdout, exactly one stderr line naming the file and a byte offset
        assert code == 3, (code, out, err)
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1, err
        assert str(path) in lines[0] and "byte offset" in lines[0]
        assert re.search(r"byte offset 0x[0-9a-f]+", lines[0]), lines[0]
        return
    assert code == 0, err
    d = json.loads(out)
    for k in ("pointer_size", "buffers", "compressed_buffers", "records", "events_lost"):
        assert d[k] == exp[k], (k, d[k], exp[k])
    assert d["providers"] == exp["providers"]
    assert d["events"]["stack_walk"] == exp["stackwalk_events"]
    assert d["events"]["image"] == exp["image_events"]
    assert d["events"]["process"] == exp["process_events"]
    assert d["bytes"] == exp["bytes"]
    # every record is in exactly one event kind
    assert sum(d["events"].values()) == d["records"]


#: what the buffer map counts when a file lacks buffers or holds blank or damaged ones
BUFFER_LOSS = frozenset({"buffers_missing", "blank_buffer", "damaged_buffer", "resync", "buffer_size_damaged",
                         "buffer_saved_offset_mismatch", "truncated_buffer", "undecodable_compressed_buffer"})


@samples
@pytest.mark.parametrize("name", [n for n in _expected_names() if n != EMPTY])
def test_no_sample_lacks_a_buffer(name: str, samples_dir: Path) -> None:
    """Every real sample holds, whole, every buffer its logfile header says was written (BuffersWritten counts
    buffer 0 too; compressed or not, circular or not): none may warn of a missing, blank or damaged buffer."""
    s = _scan(samples_dir / name)
    assert s.buffers == s.header.buffers_written
    assert not BUFFER_LOSS & set(s.anomalies), s.anomalies


@samples
@pytest.mark.parametrize("name", [EMPTY, "microsoft__perfview/smallEtlFile.etl"])
def test_info_entry_point_subprocess(name: str, samples_dir: Path, expected: dict[str, Any]) -> None:
    """The real entry point (``python -m heapdiff.cli``): exit code and streams, a good and the empty file."""
    path = samples_dir / name
    r = subprocess.run([sys.executable, "-m", "heapdiff.cli", "info", "--json", str(path)],
                       capture_output=True, text=True, timeout=120)
    if "error" in expected[name]:
        assert r.returncode == 3
        assert r.stdout == ""
        assert len(r.stderr.splitlines()) == 1
        assert str(path) in r.stderr and "byte offset" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        assert d["records"] == expected[name]["records"]
        assert d["providers"] == expected[name]["providers"]


# ------------------------------------------------------------------------------------------------------------
# (b) against PerfView/TraceEvent's decoded output
# ------------------------------------------------------------------------------------------------------------
_LINE = re.compile(r"^EVENT ([\d,.]+): (.+?) PID=(-?\d+); TID=(-?\d+); PName=(.*?); ProceNum=(\d+); "
                   r"DataLen=(\d+); (.*)$")


def _parse_baseline(path: Path) -> list[dict[str, Any]]:
    """The EVENT lines: relative time (ms), event name, header pid/tid, cpu, payload length, fields (text)."""
    out: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        fields: dict[str, str] = {}
        for part in m.group(8).split("; "):
            k, sep, v = part.partition("=")
            if sep:
                fields[k] = v.rstrip("; ")
        out.append({"ms": float(m.group(1).replace(",", "")), "name": m.group(2), "pid": int(m.group(3)),
                    "tid": int(m.group(4)), "cpu": int(m.group(6)), "len": int(m.group(7)), "f": fields})
    return out


def _num(text: str) -> int:
    """TraceEvent's numbers: "65,536", "-1,726,546,814", "0x7f9d02f0000"."""
    t = text.replace(",", "")
    return int(t, 16) if t.lower().startswith("0x") else int(t)


def _same_text(shown: str, ours: str) -> bool:
    """The baseline cuts strings at 20 characters and appends "..."; a cut value is a prefix of ours."""
    if shown.endswith("...") and len(shown) == 23:
        return ours.startswith(shown[:-3]) and len(ours) > 20
    return shown == ours


def _shown_time(ft: int) -> str:
    """A FILETIME as the baseline prints it: "yy/MM/dd HH:mm:ss.ffffff" cut to 20 characters + "...".

    The conversion, worked out on all five baselines: the printed value is .NET ``DateTime.FromFileTime`` in
    the time zone of the machine that *made the baseline*, and that machine ran on UTC. So printed = UTC
    (offset 0), truncated (not rounded: BootTime 00:03:46.487293 prints as "46.48"). The header line's
    UtcOffsetMinutes is the *recording* machine's zone -- TIME_ZONE_INFORMATION.Bias of the logfile header,
    UTC = local + Bias (480 = PST for the net.4.5.2 traces, -120 for primitive-types) -- and is compared
    separately; the recording machine's local time (UTC - Bias) is *not* what the baseline prints (it would
    put net.4.5.2.x64's StartTime on 20/07/28 16:07, the baseline says 20/07/29 00:07).
    """
    dt = datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=ft // 10)
    text = dt.strftime("%y/%m/%d %H:%M:%S.%f")
    return text[:20] + "..." if len(text) > 20 else text


def _rel_ms(h: LogfileHeader, ts: int) -> float:
    """TraceEvent's relative time: milliseconds from the header record's raw timestamp (QPC clock)."""
    return (ts - h.t0) * 1000.0 / h.perf_freq


#: the baseline prints relative times with 3 decimals; ours differ from it by at most one unit in the last
#: digit (rounding of a sub-microsecond session-start offset)
_MS_TOL = 0.0015


@samples
@pytest.mark.parametrize("name", _baselines())
def test_baseline_header(name: str, samples_dir: Path) -> None:
    events = _parse_baseline(PERFVIEW / f"{name}.baseline.txt")
    head = events[0]
    assert head["name"] == "Windows Kernel/EventTrace" and head["ms"] == 0.0
    f = head["f"]
    s = _scan(PERFVIEW / f"{name}.etl")
    h = s.header
    assert h.buffer_size == _num(f["BufferSize"])
    assert h.pointer_size == _num(f["PointerSize"])
    assert h.number_of_processors == _num(f["NumberOfProcessors"])
    assert h.events_lost == _num(f["EventsLost"])
    assert h.perf_freq == _num(f["PerfFreq"])
    assert h.buffers_written == _num(f["BuffersWritten"])
    assert h.buffers_lost == _num(f["BuffersLost"])
    assert h.version == _num(f["Version"])
    assert h.provider_version == _num(f["ProviderVersion"])
    assert h.log_file_mode == _num(f["LogFileMode"])
    assert h.cpu_speed_mhz == _num(f["CPUSpeed"])
    assert h.clock_type == _num(f["ReservedFlags"])
    assert h.timezone_bias_minutes == _num(f["UtcOffsetMinutes"])
    assert (h.process_id, h.thread_id) == (head["pid"], head["tid"])
    assert _same_text(f["SessionName"], h.logger_name), (f["SessionName"], h.logger_name)
    assert _same_text(f["LogFileName"], h.log_file_name), (f["LogFileName"], h.log_file_name)
    # times to the printed precision (10 ms, truncated), in UTC: see _shown_time for the conversion
    assert _shown_time(h.start_filetime) == f["StartTime"]
    assert _shown_time(h.end_filetime) == f["EndTime"]
    assert _shown_time(h.boot_filetime) == f["BootTime"]
    # the header record's payload: TRACE_LOGFILE_HEADER64 (0x118) + the two UTF-16Z names
    assert head["len"] == 0x118 + 2 * (len(h.logger_name) + 1) + 2 * (len(h.log_file_name) + 1)


_IMAGE_KINDS = {"DCStart": "dcstart", "DCStop": "dcend", "Load": "load", "Unload": "unload"}
_PROCESS_KINDS = {"DCStart": "dcstart", "DCStop": "dcend", "Start": "start", "Stop": "end",
                  "Defunct": "defunct"}


def _near(h: LogfileHeader, items: list[Any], kind: str, ms: float) -> list[Any]:
    return [x for x in items if x.kind == kind and abs(_rel_ms(h, x.ts) - ms) <= _MS_TOL]


@samples
@pytest.mark.parametrize("name", ["net.4.5.2.x64", "net.4.5.2.x86"])
def test_baseline_images_and_processes(name: str, samples_dir: Path) -> None:
    events = _parse_baseline(PERFVIEW / f"{name}.baseline.txt")
    s = _scan(PERFVIEW / f"{name}.etl")
    h = s.header
    # decoded in time order (the trace's, not the file's)
    for lst in (s.images, s.processes, s.image_ids):
        ts = [x.ts for x in lst]
        assert ts == sorted(ts), "rare records must be decoded in time order"
    seen = {"image": 0, "process": 0, "image_id": 0, "rsds": 0}
    for ev in events:
        group, _, kind = ev["name"].rpartition("/")
        f = ev["f"]
        if group == "Windows Kernel/Image" and kind in _IMAGE_KINDS:
            cands = _near(h, s.images, _IMAGE_KINDS[kind], ev["ms"])
            want = (_num(f["ImageBase"]), _num(f["ImageSize"]), ev["pid"])
            hits = [c for c in cands if (c.base, c.size, c.pid) == want]
            assert hits, (ev, cands)
            assert any(c.checksum == _num(f["ImageChecksum"])
                       and c.time_date_stamp == _num(f["TimeDateStamp"]) % (1 << 32) for c in hits)
            shown = f["FileName"]
            if not shown.endswith("..."):
                # whole in the baseline: the last path component must agree (NT path vs drive path)
                assert any(c.file_name.rsplit("\\", 1)[-1].lower() == shown.rsplit("\\", 1)[-1].lower()
                           for c in hits), (shown, hits)
            seen["image"] += 1
        elif group == "Windows Kernel/Process" and kind in _PROCESS_KINDS:
            cands = _near(h, s.processes, _PROCESS_KINDS[kind], ev["ms"])
            hits = [c for c in cands if c.pid == ev["pid"] == _num(f["ProcessID"])
                    and _same_text(f["ImageFileName"], c.image_name)]
            assert hits, (ev, cands)
            c = hits[0]
            assert c.parent_pid == _num(f["ParentID"])
            assert c.session_id == _num(f["SessionID"]) % (1 << 32)
            assert c.exit_status == _num(f["ExitStatus"])
            assert _same_text(f["CommandLine"], c.command_line), (f["CommandLine"], c.command_line)
            seen["process"] += 1
        elif ev["name"] == "KernelTraceControl/ImageID":
            cands = _near(h, s.image_ids, "image_id", ev["ms"])
            # the payload's ProcessId (ours) is the PID TraceEvent shows in the event line; the baseline's
            # "ProcessID" field is not that payload field (TraceEvent's own source: "Seems to always be 0")
            hits = [c for c in cands if (c.base, c.size, c.pid, c.time_date_stamp)
                    == (_num(f["ImageBase"]), _num(f["ImageSize"]), ev["pid"],
                        _num(f["TimeDateStamp"]) % (1 << 32))]
            assert hits, (ev, cands)
            assert any(_same_text(f["OriginalFileName"], c.original_file_name) for c in hits)
            seen["image_id"] += 1
        elif ev["name"] == "KernelTraceControl/ImageID/DbgID_RSDS":
            cands = _near(h, s.image_ids, "rsds", ev["ms"])
            hits = [c for c in cands if c.base == _num(f["ImageBase"]) and c.pdb_age == _num(f["Age"])
                    and _same_text(f["GuidSig"], c.pdb_guid)
                    and _same_text(f["PDBFileName"], c.pdb_file_name)]
            assert hits, (ev, cands)
            seen["rsds"] += 1
    # the baseline shows (at most) the first 5 events of each name: 4 image kinds x 5; processes: 5 DCStart,
    # 5 DCStop, the traced program's Start and Stop, 2 Defunct
    assert seen == {"image": 20, "process": 14, "image_id": 5, "rsds": 5}, seen


# ------------------------------------------------------------------------------------------------------------
# (c) stack attribution and key resolution
# ------------------------------------------------------------------------------------------------------------
@samples
@pytest.mark.parametrize("name", ["net.4.5.2.x64", "net.4.5.2.x86"])
def test_stacks_attributed(name: str, samples_dir: Path) -> None:
    s = _scan(PERFVIEW / f"{name}.etl")
    assert s.stack_refs > 9000
    assert s.stacks_matched / s.stack_refs >= 0.99, (s.stacks_matched, s.stack_refs)
    assert s.stacks_matched <= s.stack_refs


def _key_rule(records: list[tuple[int, int, int, int]]) -> tuple[list[tuple[int, int]], int]:
    """The rule, from scratch, over key records in time order: (hook, key, target serial or -1, sequence id).

    A reference resolves to the first KeyDelete/KeyRundown of its key after it, else to the latest KeyCreate
    before it; it never resolves across a KeyCreate (a redefinition): a KeyCreate of the key between the
    reference and the next Delete/Rundown means the latest KeyCreate *before* the reference.
    None -> unresolved.
    Returns ([(target, sequence id)], unresolved count); references without a target are not resolved.
    """
    by_key: dict[int, list[int]] = {}
    for i, (hook, key, _, _) in enumerate(records):
        if hook in (K.HOOK_STACK_KEY_CREATE, K.HOOK_STACK_KEY_DELETE, K.HOOK_STACK_KEY_RUNDOWN):
            by_key.setdefault(key, []).append(i)
    out: list[tuple[int, int]] = []
    unresolved = 0
    for i, (hook, key, target, _) in enumerate(records):
        if hook not in (K.HOOK_STACK_KEY_KERNEL, K.HOOK_STACK_KEY_USER) or target < 0:
            continue
        defs = by_key.get(key, [])
        j = bisect.bisect_right(defs, i)
        sid: int | None = None
        if j < len(defs) and records[defs[j]][0] != K.HOOK_STACK_KEY_CREATE:
            sid = records[defs[j]][3]        # the definition the reference used, given after it
        else:
            creates = [d for d in defs[:j] if records[d][0] == K.HOOK_STACK_KEY_CREATE]
            if creates:
                sid = records[creates[-1]][3]
        if sid is None:
            unresolved += 1
        else:
            out.append((target, sid))
    return out, unresolved


@samples
@pytest.mark.parametrize("name", ["net.4.5.2.x64", "net.4.5.2.x86"])
def test_key_resolution_matches_rule(name: str, samples_dir: Path) -> None:
    trace = open_trace((PERFVIEW / f"{name}.etl").read_bytes(), name)
    reader = Reader(trace, layout(), KERNEL_GUIDS)
    matcher = StackMatcher()
    got: list[tuple[int, int]] = []
    records: list[tuple[int, int, int, int]] = []
    for b in reader.batches():
        targets, resolved = matcher.match(b)
        got.extend(resolved)
        # the key events walked independently: hooks 0x1822-0x1826, columns per events/layout.py
        sel = np.flatnonzero((b.hook >= K.HOOK_STACK_KEY_CREATE) & (b.hook <= K.HOOK_STACK_KEY_USER)
                             & ((b.status & ST_BAD_PAYLOAD) == 0))
        for i in sel.tolist():
            hook = int(b.hook[i])
            if hook in (K.HOOK_STACK_KEY_KERNEL, K.HOOK_STACK_KEY_USER):
                records.append((hook, int(b.f[i, COL_KEY_REF]), int(targets[i]), -1))
            else:
                records.append((hook, int(b.f[i, COL_KEY_DEF]), -1, int(b.tail[i])))
    got.extend(matcher.finish())
    want, unresolved = _key_rule(records)
    refs = sum(1 for r in records if r[0] in (K.HOOK_STACK_KEY_KERNEL, K.HOOK_STACK_KEY_USER))
    assert refs > 5000 and len(want) > 0.99 * refs
    seqs = reader.sequences

    def frames(pairs: list[tuple[int, int]]) -> list[tuple[int, tuple[int, ...]]]:
        return sorted((t, tuple(seqs.get(sid).tolist())) for t, sid in pairs)

    assert frames(got) == frames(want)
    assert matcher.key_refs_unresolved == unresolved


def test_stack_matcher_key_redefined_between_refs() -> None:
    """Hand-made: key K defined, referenced, *redefined*, referenced again, then deleted.

    The first reference must get the first definition (never the redefinition that follows it), the second
    the frames of the KeyDelete after it; a reference whose key is never defined stays unresolved; a
    reference with no later Delete/Rundown gets the latest KeyCreate before it, when the batch stream ends.
    Fed in two batches to cover state carried across batches.
    """
    key, other, lone = 0xFFFF_F800_0000_1000, 0xFFFF_F800_0000_2000, 0xFFFF_F800_0000_3000
    ALLOC = K.HOOK_HEAP_ALLOC
    # (hook, ts, tid, f columns, tail sequence id); key refs: f = [event ts, pid, tid, key]; defs: f = [key]
    rows = [
        (ALLOC, 100, 7, [], -1),                                   # serial 0: the event of ref 1
        (K.HOOK_STACK_KEY_CREATE, 101, 0xFFFFFFFF, [key], 11),     # first definition of key -> seq 11
        (K.HOOK_STACK_KEY_USER, 102, 0xFFFFFFFF, [100, 1, 7, key], -1),
        (K.HOOK_STACK_KEY_CREATE, 103, 0xFFFFFFFF, [key], 12),     # redefinition -> seq 12
        (ALLOC, 200, 7, [], -1),                                   # serial 4: the event of ref 2
        (K.HOOK_STACK_KEY_KERNEL, 201, 0xFFFFFFFF, [200, 1, 7, key], -1),
        (ALLOC, 300, 9, [], -1),                                   # serial 6: the event of ref 3 (no def)
        (K.HOOK_STACK_KEY_USER, 301, 0xFFFFFFFF, [300, 1, 9, lone], -1),
        (K.HOOK_STACK_KEY_CREATE, 302, 0xFFFFFFFF, [other], 21),
        (ALLOC, 400, 9, [], -1),                                   # serial 9: the event of ref 4
        (K.HOOK_STACK_KEY_USER, 401, 0xFFFFFFFF, [400, 1, 9, other], -1),
        (K.HOOK_STACK_KEY_DELETE, 500, 0xFFFFFFFF, [key], 13),     # what ref 2 used -> seq 13
    ]
    n = len(rows)
    hook = np.array([r[0] for r in rows], np.int32)
    ts = np.array([r[1] for r in rows], np.int64)
    tid = np.array([r[2] for r in rows], np.uint32)
    cpu = np.zeros(n, np.int32)
    serial = np.arange(n, dtype=np.int64)
    f = np.zeros((n, 6), np.uint64)
    for i, r in enumerate(rows):
        f[i, :len(r[3])] = r[3]
    status = np.zeros(n, np.uint8)
    tail = np.array([r[4] for r in rows], np.int64)
    m = StackMatcher()
    resolved: list[tuple[int, int]] = []
    targets_all: list[int] = []
    src: dict[str, np.ndarray] = {"hook": hook, "ts": ts, "tid": tid, "cpu": cpu, "serial": serial,
                                  "status": status, "tail": tail}
    for part in (np.arange(0, 5), np.arange(5, n)):  # batches are rows of the reader's columns
        t, res = m.match(RecordBatch(src, f, part))
        targets_all.extend(t.tolist())
        resolved.extend(res)
    resolved.extend(m.finish())
    # references found their events (same timestamp, same thread)
    assert targets_all[2] == 0 and targets_all[5] == 4 and targets_all[7] == 6 and targets_all[10] == 9
    assert sorted(resolved) == [(0, 11), (4, 13), (9, 21)]
    assert m.key_refs_unresolved == 1
    assert m.refs == 4 and m.matched == 3
    # the same rows through the test's own rule
    recs = [(int(hook[i]), int(f[i, 3] if hook[i] in (K.HOOK_STACK_KEY_KERNEL, K.HOOK_STACK_KEY_USER)
                               else f[i, 0]), targets_all[i], int(tail[i]))
            for i in range(n) if K.HOOK_STACK_KEY_CREATE <= hook[i] <= K.HOOK_STACK_KEY_USER]
    rule, rule_unresolved = _key_rule(recs)
    assert sorted(rule) == sorted(resolved) and rule_unresolved == 1


# ------------------------------------------------------------------------------------------------------------
# (d) the pure-Python fallback agrees with the JIT path
# ------------------------------------------------------------------------------------------------------------
_NO_JIT_DRIVER = (
    "import sys\n"
    "from heapdiff import _jit\n"
    "assert not _jit.JIT_ENABLED and 'numba' not in sys.modules, 'the fallback must not use numba'\n"
    "from heapdiff.cli import main\n"
    "main(sys.argv[1:])\n"
)


@samples
@pytest.mark.parametrize("name", [
    "microsoft__perfview/SelfDescribingSingleEvent.etl",  # compressed buffers, EVENT_HEADER + classic records
    "microsoft__perfview/net.4.5.2.x64.etl",              # compressed, stack walks and key references (~15 s)
])
def test_pure_python_fallback_same_info(name: str, samples_dir: Path,
                                        run_cli: Callable[..., tuple[int, str, str]]) -> None:
    path = samples_dir / name
    from heapdiff import _jit

    assert _jit.JIT_ENABLED, "the in-process run must be the JIT path"
    code, out, _ = run_cli("info", "--json", str(path))
    assert code == 0
    env = {**os.environ, "HEAPDIFF_NO_JIT": "1"}
    r = subprocess.run([sys.executable, "-c", _NO_JIT_DRIVER, "info", "--json", str(path)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(out)
