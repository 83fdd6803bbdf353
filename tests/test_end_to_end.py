"""Written traces through the whole job: outstanding blocks, bytes, per-pid totals, groups and deltas must equal what
the scenario itself decided (its own bookkeeping of what it allocated and freed, never heapdiff's reducer)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from heapdiff.cli import main
from heapdiff.tracegen.scenario import Module, Process, Scenario
from heapdiff.tracegen.writer import TraceWriter

SITES = {
    "a": [("ntdll.dll", 0x3A2F0), ("app.exe", 0x1F30), ("app.exe", 0x1010)],
    "b": [("ntdll.dll", 0x3A2F0), ("ucrtbase.dll", 0x1B4C0), ("app.exe", 0x4A10), ("app.exe", 0x1010)],
    "c": [("app.exe", 0x7777)],
    "d": [("ntdll.dll", 0x3A2F0), ("lib.dll", 0x120), ("app.exe", 0x1010)],
}


def _process(pid: int, run: int, ptr: int) -> Process:
    hi = 0x7FF6_0000_0000 if ptr == 8 else 0x0040_0000
    step = 0x0100_0000 if ptr == 8 else 0x0010_0000
    mods = {name: Module(name, f"\\Device\\HarddiskVolume3\\x\\{name}", hi + step * (i + 1) + run * step * 8,
                         0x80000)
            for i, name in enumerate(("ntdll.dll", "ucrtbase.dll", "app.exe", "lib.dll"))}
    return Process(pid, "app.exe", mods, heaps=[0x10000 + run * 0x40000, 0x90000 + run * 0x40000],
                   threads=[pid * 4 + 8, pid * 4 + 12])


def _run(sc: Scenario, procs: list[Process], seed: int, leak: int) -> None:
    """A deterministic workload: allocations at four sites, most freed, some reallocated, one heap destroyed."""
    import random

    rng = random.Random(seed)
    for p in procs:
        sc.start_process(p)
    live: list[tuple[Process, int, int]] = []
    for i in range(400 + leak):
        p = procs[i % len(procs)]
        site = rng.choice(list(SITES))
        heap = p.heaps[rng.randrange(2)]
        a = sc.alloc(p, SITES[site], rng.randrange(1, 5000), heap=heap, source=rng.randrange(1, 7))
        live.append((p, heap, a))
        if len(live) > 30 and rng.random() < 0.9:
            q, h, b = live.pop(rng.randrange(len(live)))
            if rng.random() < 0.2:
                nb = sc.realloc(q, SITES["c"], b, rng.randrange(1, 9000), move=rng.random() < 0.5, heap=h)
                live.append((q, h, nb))
            else:
                sc.free(q, b, heap=h)
    # a heap destroyed with blocks still in it: they end
    sc.destroy(procs[0], procs[0].heaps[1])


def _trace(tmp: pathlib.Path, name: str, *, ptr: int = 8, compress: bool = False, cpus: int = 4,
           stacks_elsewhere: bool = False, lost: int = 0, run: int = 0, leak: int = 0,
           two_processes: bool = True) -> Scenario:
    w = TraceWriter(str(tmp / name), pointer_size=ptr, cpus=cpus, buffer_size=0x2000, compress=compress,
                    events_lost=lost)
    sc = Scenario(w, cpus=cpus, stack_in_next_cpu_buffer=stacks_elsewhere)
    procs = [_process(1000 + 500 * run, run, ptr)]
    if two_processes:
        procs.append(_process(1004 + 500 * run, run, ptr))
    _run(sc, procs, seed=11 + run, leak=leak)
    if lost:
        w.mark_events_lost(1)
    sc.close()
    return sc


def _job(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    with pytest.raises(SystemExit) as e:
        main([*args, "--json", "-", "-o", args[0] + ".html"])
    out = capsys.readouterr().out
    assert e.value.code in (0, None), out
    doc: dict[str, Any] = json.loads(out)
    return doc


def _bb(d: dict[str, Any]) -> dict[str, int]:
    return {"blocks": d["blocks"], "bytes": d["bytes"]}


def _groups(doc: dict[str, Any], key: str = "") -> dict[tuple[str, ...], tuple[int, int]]:
    out = {}
    for g in doc["groups"]:
        if key:
            out[tuple(g["stack"])] = (g[key]["blocks"], g[key]["bytes"])
        else:
            out[tuple(g["stack"])] = (g["blocks"], g["bytes"])
    return out


CASES = [
    pytest.param({}, id="64bit"),
    pytest.param({"ptr": 4}, id="32bit"),
    pytest.param({"compress": True}, id="compressed"),
    pytest.param({"cpus": 8, "stacks_elsewhere": True}, id="stacks-in-later-buffers"),
    pytest.param({"ptr": 4, "compress": True, "cpus": 3}, id="32bit-compressed"),
    pytest.param({"lost": 7}, id="lost-events"),
]


@pytest.mark.parametrize("kw", CASES)
def test_single_trace_matches_the_scenario(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str],
                                           kw: dict[str, Any]) -> None:
    sc = _trace(tmp_path, "t.etl", **kw)
    doc = _job(capsys, str(tmp_path / "t.etl"))
    assert doc["mode"] == "single"
    expected = sc.expected_groups()
    assert _groups(doc) == expected
    assert _bb(doc["totals"]) == {"blocks": sum(b for b, _ in expected.values()),
                             "bytes": sum(n for _, n in expected.values())}
    (t,) = doc["traces"]
    assert t["outstanding"] == _bb(doc["totals"]) == doc["totals"]["growth"]
    assert t["outstanding_by_pid"] == {str(p): {"blocks": b, "bytes": n} for p, (b, n) in sc.expected_by_pid().items()}
    assert t["events_lost"] == kw.get("lost", 0)
    if kw.get("lost"):
        assert t["anomalies"].get("buffer_events_lost_flag") == 1
    assert t["anomalies"].get("event_without_stack", 0) == 0
    assert t["anomalies"].get("orphan_stack", 0) == 0


def test_diff_of_two_runs_with_other_bases_matches_the_scenario(tmp_path: pathlib.Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    before = _trace(tmp_path, "before.etl", run=0)
    after = _trace(tmp_path, "after.etl", run=1, leak=120, cpus=8, stacks_elsewhere=True)
    doc = _job(capsys, str(tmp_path / "before.etl"), str(tmp_path / "after.etl"))
    eb, ea = before.expected_groups(), after.expected_groups()
    assert _groups(doc, "before") == {k: eb.get(k, (0, 0)) for k in set(eb) | set(ea)}
    assert _groups(doc, "after") == {k: ea.get(k, (0, 0)) for k in set(eb) | set(ea)}
    for g in doc["groups"]:
        b, a = eb.get(tuple(g["stack"]), (0, 0)), ea.get(tuple(g["stack"]), (0, 0))
        assert (g["delta"]["blocks"], g["delta"]["bytes"]) == (a[0] - b[0], a[1] - b[1])
        assert g["status"] == ("new" if b[0] == 0 else "gone" if a[0] == 0 else "common")
    tot = doc["totals"]
    assert tot["delta"]["bytes"] == sum(g["delta"]["bytes"] for g in doc["groups"])
    assert tot["delta"]["blocks"] == sum(g["delta"]["blocks"] for g in doc["groups"])
    assert tot["after"]["bytes"] - tot["before"]["bytes"] == tot["delta"]["bytes"]
    deltas = [g["delta"]["bytes"] for g in doc["groups"]]
    assert deltas == sorted(deltas, reverse=True)


def test_pid_filter_keeps_one_process(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc = _trace(tmp_path, "t.etl")
    doc = _job(capsys, str(tmp_path / "t.etl"), "--pid", "1004")
    exp = sc.expected_by_pid()[1004]
    assert _bb(doc["totals"]) == {"blocks": exp[0], "bytes": exp[1]}
    assert set(doc["traces"][0]["outstanding_by_pid"]) == {"1004"}


def test_process_end_ends_its_blocks(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = TraceWriter(str(tmp_path / "t.etl"), pointer_size=8, cpus=2, buffer_size=0x2000)
    sc = Scenario(w)
    p, q = _process(1000, 0, 8), _process(1004, 0, 8)
    sc.start_process(p)
    sc.start_process(q)
    for _ in range(10):
        sc.alloc(p, SITES["a"], 100)
        sc.alloc(q, SITES["b"], 50)
    sc.end_process(p)
    sc.close()
    doc = _job(capsys, str(tmp_path / "t.etl"))
    assert _groups(doc) == sc.expected_groups() == {("ntdll.dll+0x3a2f0", "ucrtbase.dll+0x1b4c0",
                                                     "app.exe+0x4a10", "app.exe+0x1010"): (10, 500)}
    assert doc["traces"][0]["anomalies"]["freed_by_process_end"] == 10


def test_stack_caching_kernel_and_user_keys(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With stack caching an Alloc gets a kernel key reference and a user one (notes 5.3), whose definitions come
    later in either order: the group must carry the user frames, not an empty kernel-only signature."""
    w = TraceWriter(str(tmp_path / "t.etl"), pointer_size=8, cpus=2, buffer_size=0x2000)
    p = _process(1000, 0, 8)
    sc = Scenario(w)
    sc.start_process(p)
    app = p.modules["app.exe"].base
    kernel = [0xFFFFF80012340000 + 0x10, 0xFFFFF80012340000 + 0x20]
    user_frames = [app + 0x1F30, app + 0x1010]
    t = sc.ts
    for i in range(6):
        t += 100
        w.heap_alloc(t, 0, p.pid, p.threads[0], p.heaps[0], 64, 0x500000 + 0x100 * i)
        w.stack_key_ref(t + 1, 0, t, p.pid, p.threads[0], 0xAA00, user=False)   # kernel part
        w.stack_key_ref(t + 2, 0, t, p.pid, p.threads[0], 0xBB00, user=True)    # user part
    # the definitions come at the end of the trace (rundown), the kernel key first: it resolves first
    w.stack_key_create(t + 10, 0, 0xAA00, kernel, hook=0x1824)
    w.stack_key_create(t + 11, 0, 0xBB00, user_frames, hook=0x1824)
    w.close()
    doc = _job(capsys, str(tmp_path / "t.etl"))
    assert _groups(doc) == {("app.exe+0x1f30", "app.exe+0x1010"): (6, 6 * 64)}
    (t0,) = doc["traces"]
    assert t0["stack_refs"] == t0["stacks_matched"] == 12
    assert "orphan_stack" not in t0["anomalies"] and "event_without_stack" not in t0["anomalies"]


@pytest.mark.parametrize("kernel_first", [True, False])
def test_split_stack_walk_fragments(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str],
                                    kernel_first: bool) -> None:
    """A walk may come as a kernel-only fragment and a user fragment with the same EventTimeStamp (notes 5.2):
    the group carries the user frames whichever comes first."""
    w = TraceWriter(str(tmp_path / "t.etl"), pointer_size=8, cpus=2, buffer_size=0x2000)
    p = _process(1000, 0, 8)
    sc = Scenario(w)
    sc.start_process(p)
    app = p.modules["app.exe"].base
    kernel = [0xFFFFF80012340010, 0xFFFFF80012340020]
    user_frames = [app + 0x4A10, app + 0x1010]
    t = sc.ts
    for i in range(5):
        t += 100
        w.heap_alloc(t, 0, p.pid, p.threads[0], p.heaps[0], 32, 0x600000 + 0x100 * i)
        first, second = (kernel, user_frames) if kernel_first else (user_frames, kernel)
        w.stack(t + 1, 0, t, p.pid, p.threads[0], first)
        w.stack(t + 2, 0, t, p.pid, p.threads[0], second)
    w.close()
    doc = _job(capsys, str(tmp_path / "t.etl"))
    assert _groups(doc) == {("app.exe+0x4a10", "app.exe+0x1010"): (5, 5 * 32)}
    assert "orphan_stack" not in doc["traces"][0]["anomalies"]


def test_one_module_and_label_in_terminal_html_and_json(tmp_path: pathlib.Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A debug build's stack: the C++ runtime (msvcp140.dll) and the debug CRT (ucrtbased.dll) are both allocator
    plumbing, so every reporter names the group by app.exe's frame (they once disagreed on each of them)."""
    w = TraceWriter(str(tmp_path / "dbg.etl"), cpus=2, buffer_size=0x2000)
    sc = Scenario(w, cpus=2)
    base = 0x7FF6_0000_0000
    mods = {name: Module(name, f"C:\\x\\{name}", base + 0x100_0000 * (i + 1), 0x80000)
            for i, name in enumerate(("ntdll.dll", "ucrtbased.dll", "msvcp140.dll", "app.exe"))}
    p = Process(4242, "app.exe", mods, heaps=[0x10000], threads=[8])
    sc.start_process(p)
    stack = [("ntdll.dll", 0x3A2F0), ("ucrtbased.dll", 0x1B4C0), ("msvcp140.dll", 0x2210), ("app.exe", 0x20),
             ("app.exe", 0x1010)]
    for _ in range(3):
        sc.alloc(p, stack, 100, heap=0x10000, source=3)
    sc.close()
    html = tmp_path / "dbg.html"
    with pytest.raises(SystemExit):
        main([str(tmp_path / "dbg.etl"), "--json", "-", "-o", str(html), "--top", "5"])
    out = capsys.readouterr().out
    doc = json.loads(out)
    (g,) = doc["groups"]
    assert (g["module"], g["label"]) == ("app.exe", "app.exe+0x20")
    assert [f["allocator"] for f in g["frames"]] == [True, True, True, False, False]
    page = html.read_text(encoding="utf-8")
    assert '<td class="module" data-v="app.exe"><code>app.exe</code></td>' in page
    assert '<code class="label">app.exe+0x20</code>' in page
    with pytest.raises(SystemExit):
        main([str(tmp_path / "dbg.etl"), "-o", str(html)])
    row = next(line for line in capsys.readouterr().out.splitlines() if "app.exe+0x20" in line)
    assert row.split()[-2:] == ["app.exe", "app.exe+0x20"]
