"""The on-disk frame cache: round trip, merge, and every kind of damaged or foreign file ignored, never raised."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from heapdiff.frames import PdbId, ResolvedFrame, SourceFrame
from heapdiff.symbols.framecache import FrameCache, missing

PDB = PdbId("App.pdb", "b1d8aacf-b7de-28cf-4c4c-44205044422e", 1)
MAIN = ResolvedFrame((SourceFrame("main", "C:\\src\\app.c", 12),), 0x1000)
INLINED = ResolvedFrame((SourceFrame("mix", "inl.c", 4), SourceFrame("make_widget", "inl.c", 9),
                         SourceFrame("load_texture", "inl.c", 15)), 0x1010)
PUBLIC = ResolvedFrame((SourceFrame("?make_widget@@YAPEAXH@Z", None, None),), 0x1040)
FRAMES: dict[int, ResolvedFrame | None] = {0x1004: MAIN, 0x101C: INLINED, 0x1041: PUBLIC, 0x9999: None}


def test_round_trip(tmp_path: Path) -> None:
    cache = FrameCache(tmp_path, "r1")
    assert cache.load(PDB).frames == {}
    cache.add(PDB, "/syms/app.pdb", FRAMES)
    loaded = cache.load(PDB)
    assert loaded.frames == FRAMES
    assert loaded.symbol_file == "/syms/app.pdb"
    assert cache.file_for(PDB) == tmp_path / "app.pdb" / PDB.store_key / "frames.json"
    assert [p.name for p in cache.file_for(PDB).parent.iterdir()] == ["frames.json"]  # no temporary left


def test_add_merges_with_what_is_on_disk(tmp_path: Path) -> None:
    FrameCache(tmp_path, "r1").add(PDB, "/a/app.pdb", {1: MAIN})
    FrameCache(tmp_path, "r1").add(PDB, "/b/app.pdb", {2: PUBLIC})     # another process, meanwhile
    loaded = FrameCache(tmp_path, "r1").load(PDB)
    assert loaded.frames == {1: MAIN, 2: PUBLIC}
    assert loaded.symbol_file == "/b/app.pdb"


def test_rows_are_shared_and_any_line_round_trips(tmp_path: Path) -> None:
    """Equal rows of different chains load as one object; a line too large to share a sort key with the string
    indices still loads as written."""
    cache = FrameCache(tmp_path, "r1")
    huge = ResolvedFrame((SourceFrame("main", "a.c", 1 << 62),), 0x1000)
    cache.add(PDB, "/a/app.pdb", {**FRAMES, 0x1008: MAIN, 0x2000: huge})
    loaded = cache.load(PDB).frames
    assert loaded == {**FRAMES, 0x1008: MAIN, 0x2000: huge}
    first, second = loaded[0x1004], loaded[0x1008]
    assert first is not None and second is not None and first.frames[0] is second.frames[0]


def test_missing() -> None:
    cache = FrameCache(Path("/nonexistent"), "r1").load(PDB)
    cache.frames.update({5: None, 6: MAIN})
    assert missing(cache, [7, 5, 8, 7, 6]) == [7, 8]


def test_other_identity_other_reader(tmp_path: Path) -> None:
    FrameCache(tmp_path, "r1").add(PDB, "/a/app.pdb", FRAMES)
    assert FrameCache(tmp_path, "r2").load(PDB).frames == {}    # a newer reader may resolve differently
    for other in (PdbId("App.pdb", PDB.guid, 2), PdbId("App.pdb", "00000000-0000-0000-0000-000000000000", 1)):
        assert FrameCache(tmp_path, "r1").load(other).frames == {}


def _good_doc(tmp_path: Path) -> dict[str, Any]:
    cache = FrameCache(tmp_path, "r1")
    cache.add(PDB, "/a/app.pdb", FRAMES)
    doc: dict[str, Any] = orjson.loads(cache.file_for(PDB).read_bytes())
    return doc


DAMAGE = [
    ("not json", None),
    ("empty", b""),
    ("a list", b"[]"),
    ("other format", {"format": "something-else"}),
    ("other version", {"version": 2}),
    ("other pdb", {"pdb": {"name": "App.pdb", "guid": PDB.guid, "age": 9}}),
    ("strings not a list", {"strings": "abc"}),
    ("a string that is a number", {"strings": [1, 2]}),
    ("rvas and entries differ in length", {"rvas": [1]}),
    ("negative rva", {"rvas": [-1, 2, 3, 4]}),
    ("rva past 32 bits", {"rvas": [1 << 32, 2, 3, 4]}),
    ("rva a float", {"rvas": [1.5, 2, 3, 4]}),
    ("rva a bool", {"rvas": [True, 2, 3, 4]}),
    ("string index out of range", {"entries": [[0x1000, 99, -1, 1], None, None, None]}),
    ("function index -1", {"entries": [[0x1000, -1, -1, 1], None, None, None]}),
    ("entry of the wrong length", {"entries": [[0x1000, 0, 0], None, None, None]}),
    ("entry with no frame", {"entries": [[0x1000], None, None, None]}),
    ("entry not a list", {"entries": [{"a": 1}, None, None, None]}),
    ("line a string", {"entries": [[0x1000, 0, 0, "12"], None, None, None]}),
    ("line past 63 bits", {"entries": [[0x1000, 0, 0, 1 << 63], None, None, None]}),
    ("file index below -1", {"entries": [[0x1000, 0, -2, 1], None, None, None]}),
    ("proc start a bool", {"entries": [[True, 0, 0, 1], None, None, None]}),
    ("symbol file missing", {"symbol_file": None}),
]


@pytest.mark.parametrize(("what", "change"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_or_foreign_file_is_ignored_and_rewritten(tmp_path: Path, what: str, change: object) -> None:
    doc = _good_doc(tmp_path)
    cache = FrameCache(tmp_path, "r1")
    if isinstance(change, dict):
        doc.update(change)
        cache.file_for(PDB).write_bytes(orjson.dumps(doc))
    else:
        cache.file_for(PDB).write_bytes(b"{\x00garbage" if change is None else change)  # type: ignore[arg-type]
    assert cache.load(PDB).frames == {}
    cache.add(PDB, "/a/app.pdb", {7: MAIN})
    assert cache.load(PDB).frames == {7: MAIN}


def test_the_damage_table_can_fail(tmp_path: Path) -> None:
    """The untouched document loads: each damage case above is what makes its file ignored."""
    doc = _good_doc(tmp_path)
    cache = FrameCache(tmp_path, "r1")
    cache.file_for(PDB).write_bytes(orjson.dumps(doc))
    assert cache.load(PDB).frames == FRAMES


def test_an_unwritable_cache_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "symcache"
    blocker.write_bytes(b"a file where the folder should be")
    cache = FrameCache(blocker, "r1")
    cache.add(PDB, "/a/app.pdb", FRAMES)
    assert cache.load(PDB).frames == {}


def test_concurrent_writers_leave_a_whole_file(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def writer(base: int) -> None:
        try:
            cache = FrameCache(tmp_path, "r1")
            for i in range(20):
                cache.add(PDB, "/a/app.pdb", {base + i: MAIN})
                assert cache.load(PDB).frames  # never a half-written file
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    frames = FrameCache(tmp_path, "r1").load(PDB).frames
    assert frames and all(f == MAIN for f in frames.values())
    assert [p.name for p in FrameCache(tmp_path, "r1").file_for(PDB).parent.iterdir()] == ["frames.json"]
