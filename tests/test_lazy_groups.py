"""A trace's groups made on each read (past KEEP_RECORDS) say exactly what groups kept once made say: the JSON,
the call trees, and every record read in any order."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from heapdiff import frame_table
from heapdiff.cli.inputs import map_trace
from heapdiff.commands.analyse import Selection, analyse_trace
from heapdiff.document import lazy, write_document
from heapdiff.document.build import BuildOptions, build_document
from heapdiff.document.model import Document, Filters
from heapdiff.report import flame
from heapdiff.report.flame import _groups, call_trees, stack_path
from heapdiff.tracegen.scenario import Module, Process, Scenario
from heapdiff.tracegen.writer import TraceWriter

BASE = 0x7FF6_0000_0000


def _write(path: Path) -> None:
    """23 call stacks of 1 to 4 frames (some behind an allocator frame, some under kernel frames, which are
    displayed but not in the signature), 60 live blocks at varied times."""
    w = TraceWriter(str(path), cpus=1)
    sc = Scenario(w, cpus=1)
    mods = {"app.exe": Module("app.exe", "C:\\x\\app.exe", BASE, 0x100000),
            "ntdll.dll": Module("ntdll.dll", "C:\\w\\ntdll.dll", 0x7FFA_0000_0000, 0x200000)}
    sc.start_process(Process(1234, "app.exe", mods, heaps=[0x10000], threads=[8]))
    t = sc.ts
    for i in range(60):
        s = (i * 7) % 23
        t += 1000 + 37 * (i % 5)
        w.heap_alloc(t, 0, 1234, 8, 0x10000, 16 + 8 * (s % 6), 0x1000_0000 + 64 * i)
        frames = [BASE + 0x1000 + 0x10 * s + 0x100 * k for k in range(1 + s % 4)]
        kernel = [0xFFFF_F800_1234_0000 + 0x10 * (s % 2)] if s % 4 == 1 else []
        w.stack(t + 1, 0, t, 1234, 8, kernel + ([0x7FFA_0000_0000 + 0x3A2F0] if s % 3 == 0 else []) + frames)
    w.close()


def _doc(path: Path) -> Document:
    a = analyse_trace(map_trace(str(path)), "trace", Selection(), kernel_frames=False)
    return build_document([a], BuildOptions(Filters(None, None, False, 0, 50)))


def _json(doc: Document) -> bytes:
    out: list[bytes] = []
    write_document(doc, out.append)
    return b"".join(out)


def test_groups_made_on_each_read_say_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "t.etl")
    kept = _doc(tmp_path / "t.etl")
    assert isinstance(kept.groups, lazy.TraceGroups) and len(kept.groups) == 23
    assert any(f.kernel for g in kept.groups for f in g.frames)  # the signature and the frames differ there
    monkeypatch.setattr(lazy, "KEEP_RECORDS", 0)
    monkeypatch.setattr(lazy, "_CHUNK", 5)  # chunks of columns read in order that end inside the groups,
    monkeypatch.setattr(lazy, "_CHUNK_ASIDE", 2)  # and those read around a read elsewhere (out of order below)
    monkeypatch.setattr(flame, "KEEP_PATHS", 0)  # every path read again on each level of a tree
    monkeypatch.setattr(frame_table, "FRAME_CACHE", 4)  # frames made one by one, four kept: made again and again
    remade = _doc(tmp_path / "t.etl")
    assert _json(remade) == _json(kept)
    assert call_trees(remade) == call_trees(kept)
    records = list(kept.groups)
    assert [remade.groups[k] for k in reversed(range(23))] == records[::-1]
    firsts = {run.first_alloc_utc for r in records for run in r.runs if run is not None}
    assert len(firsts) == 23  # every group's own time, not a neighbour's
    gs = _groups(remade)
    assert [gs.path(i) for i in range(len(gs))] == [stack_path(r) for r in records]


def test_call_trees_of_a_trace_read_from_its_columns(tmp_path: Path) -> None:
    """The call trees of one trace read its groups' counts from the columns: the same trees as from the records,
    a suppressed group left out either way."""
    _write(tmp_path / "t.etl")
    doc = _doc(tmp_path / "t.etl")
    assert isinstance(doc.groups, lazy.TraceGroups)
    for suppressed in ({}, {0: "app.exe+0x10*", 5: "app.exe+0x15*"}):
        doc.groups.suppressed.clear()
        doc.groups.suppressed.update(suppressed)
        records = replace(doc, groups=tuple(doc.groups))
        assert sum(g.suppressed_by is not None for g in records.groups) == len(suppressed)
        assert call_trees(doc) == call_trees(records)
