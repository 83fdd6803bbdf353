"""The on-disk frame cache: round trip, merge, the file's layout read back independently, and every kind of damaged
or foreign file ignored, never raised."""

from __future__ import annotations

import random
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from heapdiff.frames import PdbId, ResolvedColumns, ResolvedFrame, SourceFrame
from heapdiff.symbols.framecache import FrameCache

PDB = PdbId("App.pdb", "b1d8aacf-b7de-28cf-4c4c-44205044422e", 1)
MAIN = ResolvedFrame((SourceFrame("main", "C:\\src\\app.c", 12),), 0x1000)
INLINED = ResolvedFrame((SourceFrame("mix", "inl.c", 4), SourceFrame("make_widget", "inl.c", 9),
                         SourceFrame("load_texture", "inl.c", 15)), 0x1010)
PUBLIC = ResolvedFrame((SourceFrame("?make_widget@@YAPEAXH@Z", None, None),), 0x1040)
FRAMES: dict[int, ResolvedFrame | None] = {0x1004: MAIN, 0x101C: INLINED, 0x1041: PUBLIC, 0x9999: None}


def put(cache: FrameCache, symbol_file: str, frames: dict[int, ResolvedFrame | None]) -> None:
    """Add answers given one object per RVA to the cache's file for PDB."""
    cache.add(PDB, symbol_file, list(frames), ResolvedColumns.of(list(frames.values())))


def test_round_trip(tmp_path: Path) -> None:
    cache = FrameCache(tmp_path, "r1")
    assert cache.load(PDB).frames == {}
    put(cache, "/syms/app.pdb", FRAMES)
    loaded = cache.load(PDB)
    assert loaded.frames == FRAMES
    assert loaded.symbol_file == "/syms/app.pdb"
    assert cache.file_for(PDB) == tmp_path / "app.pdb" / PDB.store_key / "frames.bin"
    assert [p.name for p in cache.file_for(PDB).parent.iterdir()] == ["frames.bin"]  # no temporary left


def test_the_first_formats_file_goes_when_this_one_is_written(tmp_path: Path) -> None:
    """A ``frames.json`` of the first format is never read; the file of this format replaces it."""
    folder = FrameCache(tmp_path, "r1").file_for(PDB).parent
    folder.mkdir(parents=True)
    (folder / "frames.json").write_text('{"version": 1, "frames": {}}')
    assert FrameCache(tmp_path, "r1").load(PDB).frames == {}
    put(FrameCache(tmp_path, "r1"), "/syms/app.pdb", FRAMES)
    assert sorted(p.name for p in folder.iterdir()) == ["frames.bin"]
    assert FrameCache(tmp_path, "r1").load(PDB).frames == FRAMES


def test_add_merges_with_what_is_on_disk(tmp_path: Path) -> None:
    put(FrameCache(tmp_path, "r1"), "/a/app.pdb", {1: MAIN})
    put(FrameCache(tmp_path, "r1"), "/b/app.pdb", {2: PUBLIC})     # another process, meanwhile
    loaded = FrameCache(tmp_path, "r1").load(PDB)
    assert loaded.frames == {1: MAIN, 2: PUBLIC}
    assert loaded.symbol_file == "/b/app.pdb"


def test_rows_are_shared_and_any_line_round_trips(tmp_path: Path) -> None:
    """Equal rows of different chains load as one object; a line too large to share a sort key with the string
    indices still loads as written."""
    cache = FrameCache(tmp_path, "r1")
    huge = ResolvedFrame((SourceFrame("main", "a.c", 1 << 62),), 0x1000)
    put(cache, "/a/app.pdb", {**FRAMES, 0x1008: MAIN, 0x2000: huge})
    loaded = cache.load(PDB).frames
    assert loaded == {**FRAMES, 0x1008: MAIN, 0x2000: huge}
    first, second = loaded[0x1004], loaded[0x1008]
    assert first is not None and second is not None and first.frames[0] is second.frames[0]


def test_missing() -> None:
    cache = FrameCache(Path("/nonexistent"), "r1").load(PDB)
    cache = cache.merged([5, 6], ResolvedColumns.of([None, MAIN]), "/a/app.pdb")
    assert cache.missing([7, 5, 8, 7, 6]) == [7, 8]
    assert cache.missing([]) == []


def test_answers_as_loaded_and_merged(tmp_path: Path) -> None:
    """A loaded cache answers from the file's columns, in the order asked, an address without an answer with
    nothing; a merge adds answers, the newer one winning for an address both have."""
    cache = FrameCache(tmp_path, "r1")
    put(cache, "/a/app.pdb", FRAMES)
    loaded = cache.load(PDB)
    asked = [0x101C, 7, 0x1004, 0x9999, 0x101C, 0x1041, 1 << 40]
    assert loaded.missing(asked) == [7, 1 << 40]
    assert loaded.answers(asked).frames() == [INLINED, None, MAIN, None, INLINED, PUBLIC, None]
    assert loaded.answers([]).frames() == []
    merged = loaded.merged([7, 0x1004, 7], ResolvedColumns.of([PUBLIC, INLINED, MAIN]), "/b/app.pdb")
    assert merged.symbol_file == "/b/app.pdb"
    assert merged.missing([*asked, 8]) == [1 << 40, 8]
    assert merged.answers(asked).frames() == [INLINED, MAIN, INLINED, None, INLINED, PUBLIC, None]
    assert loaded.answers(asked).frames() == [INLINED, None, MAIN, None, INLINED, PUBLIC, None]  # unchanged


@pytest.mark.parametrize("seed", range(8))
def test_merges_keep_the_newest_answer_of_each_address(seed: int, tmp_path: Path) -> None:
    """Model: a plain dict updated batch by batch, against merged columns and the file written after each."""
    rng = random.Random(seed)
    pool = [None, MAIN, INLINED, PUBLIC, ResolvedFrame((SourceFrame("f", None, 7),), 0x3000)]
    model: dict[int, ResolvedFrame | None] = {}
    cached = FrameCache(tmp_path, "r1").load(PDB)
    for batch in range(rng.randrange(1, 5)):
        rvas = [rng.randrange(0, 40) for _ in range(rng.randrange(0, 12))]
        answers = [rng.choice(pool) for _ in rvas]
        model.update(zip(rvas, answers, strict=True))
        cached = cached.merged(rvas, ResolvedColumns.of(answers), f"/{batch}/app.pdb")
        FrameCache(tmp_path, "r1").add(PDB, f"/{batch}/app.pdb", rvas, ResolvedColumns.of(answers))
        assert cached.frames == model
        assert FrameCache(tmp_path, "r1").load(PDB).frames == (model if model else {})


def test_other_identity_other_reader(tmp_path: Path) -> None:
    put(FrameCache(tmp_path, "r1"), "/a/app.pdb", FRAMES)
    assert FrameCache(tmp_path, "r2").load(PDB).frames == {}    # a newer reader may resolve differently
    for other in (PdbId("App.pdb", PDB.guid, 2), PdbId("App.pdb", "00000000-0000-0000-0000-000000000000", 1)):
        assert FrameCache(tmp_path, "r1").load(other).frames == {}


Parts = dict[str, Any]


def _parts(data: bytes) -> Parts:
    """The file read by its documented layout, independently of the module's decoder: the header and the
    columns."""
    magic, header_len, zero = struct.unpack_from("<8sII", data)
    head = orjson.loads(data[16:16 + header_len])
    at = 16 + header_len
    n, m, k = head["addresses"], head["rows"], head["strings"]
    rva = np.frombuffer(data, "<u4", n, at)
    at += 4 * n + (4 * n) % 8
    proc_start = np.frombuffer(data, "<i8", n, at)
    chain_start = np.frombuffer(data, "<i8", n + 1, at + 8 * n)
    at += 8 * n + 8 * (n + 1)
    rows = np.frombuffer(data, "<i8", 3 * m, at).reshape(m, 3)
    strings = data[at + 24 * m:].decode().split("\0")
    assert (magic, zero, strings[-1], len(strings)) == (b"HDFRAMES", 0, "", k + 1)
    return {"magic": magic, "zero": zero, "head": head, "rva": rva.tolist(), "proc_start": proc_start.tolist(),
            "chain_start": chain_start.tolist(), "rows": rows.tolist(), "strings": strings[:-1], "tail": b""}


def _bytes(p: Parts) -> bytes:
    header = orjson.dumps(p["head"])
    header += b" " * (-len(header) % 8)
    rva = np.asarray(p["rva"], "<u4").tobytes()
    return b"".join((struct.pack("<8sII", p["magic"], len(header), p["zero"]), header, rva, b"\0" * (len(rva) % 8),
                     np.asarray(p["proc_start"], "<i8").tobytes(), np.asarray(p["chain_start"], "<i8").tobytes(),
                     np.asarray(p["rows"], "<i8").reshape(-1).tobytes(),
                     "".join(f"{t}\0" for t in p["strings"]).encode(), p["tail"]))


def _good(tmp_path: Path) -> Parts:
    cache = FrameCache(tmp_path, "r1")
    put(cache, "/a/app.pdb", FRAMES)
    return _parts(cache.file_for(PDB).read_bytes())


def test_the_layout_is_as_documented(tmp_path: Path) -> None:
    """Four addresses in increasing order; the one the PDB has nothing at has no rows; chains share strings."""
    p = _good(tmp_path)
    assert p["head"]["format"] == "heapdiff-frames" and p["head"]["version"] == 2 and p["head"]["reader"] == "r1"
    assert p["rva"] == [0x1004, 0x101C, 0x1041, 0x9999]
    assert p["proc_start"] == [0x1000, 0x1010, 0x1040, -1]
    assert p["chain_start"] == [0, 1, 4, 5, 5]
    s = p["strings"]
    assert [[s[f], s[i] if i >= 0 else None, n if n >= 0 else None] for f, i, n in p["rows"]] == [
        ["main", "C:\\src\\app.c", 12], ["mix", "inl.c", 4], ["make_widget", "inl.c", 9],
        ["load_texture", "inl.c", 15], ["?make_widget@@YAPEAXH@Z", None, None]]
    assert _bytes(p) == FrameCache(tmp_path, "r1").file_for(PDB).read_bytes()


def _set(key: str, value: Any) -> Callable[[Parts], None]:
    def change(p: Parts) -> None:
        p[key] = value
    return change


def _head(**fields: Any) -> Callable[[Parts], None]:
    def change(p: Parts) -> None:
        p["head"] = {**p["head"], **fields}
    return change


DAMAGE: list[tuple[str, bytes | Callable[[Parts], None]]] = [
    ("empty", b""),
    ("shorter than the prefix", b"HDFRAMES\0\0"),
    ("json, the first format", b'{"format": "heapdiff-frames", "version": 1}'),
    ("other magic", _set("magic", b"HDFRAMEZ")),
    ("prefix padding not zero", _set("zero", 1)),
    ("other format", _head(format="something-else")),
    ("other version", _head(version=1)),
    ("other reader", _head(reader="r0")),
    ("other pdb", _head(pdb={"name": "App.pdb", "guid": PDB.guid, "age": 9})),
    ("symbol file missing", _head(symbol_file=None)),
    ("a count that is not a number", _head(addresses="4")),
    ("a count that is a bool", _head(strings=True)),
    ("a negative count", _head(rows=-1)),
    ("more addresses than the file holds", _head(addresses=400)),
    ("fewer strings than the file holds", _head(strings=3)),
    ("more strings than the file holds", _head(strings=9)),
    ("addresses out of order", _set("rva", [0x101C, 0x1004, 0x1041, 0x9999])),
    ("an address twice", _set("rva", [0x1004, 0x1004, 0x1041, 0x9999])),
    ("chain starts not from 0", _set("chain_start", [1, 1, 4, 5, 5])),
    ("chain starts decreasing", _set("chain_start", [0, 4, 1, 5, 5])),
    ("chain starts not ending at the rows", _set("chain_start", [0, 1, 4, 5, 4])),
    ("no rows for an address with a procedure", _set("chain_start", [0, 0, 4, 5, 5])),
    ("rows for an address without one", _set("proc_start", [0x1000, 0x1010, -1, -1])),
    ("procedure start below -1", _set("proc_start", [0x1000, 0x1010, 0x1040, -2])),
    ("procedure start past 32 bits", _set("proc_start", [1 << 32, 0x1010, 0x1040, -1])),
    ("function index out of range", _set("rows", [[99, 0, 12], [1, 2, 4], [3, 2, 9], [4, 2, 15], [5, -1, -1]])),
    ("function index -1", _set("rows", [[-1, 0, 12], [1, 2, 4], [3, 2, 9], [4, 2, 15], [5, -1, -1]])),
    ("file index below -1", _set("rows", [[0, -2, 12], [1, 2, 4], [3, 2, 9], [4, 2, 15], [5, -1, -1]])),
    ("line below -1", _set("rows", [[0, 1, -5], [1, 2, 4], [3, 2, 9], [4, 2, 15], [5, -1, -1]])),
    ("bytes after the last string", _set("tail", b"x")),
    ("a string that is not UTF-8", _set("tail", b"\xff\0")),
]


@pytest.mark.parametrize(("what", "change"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_or_foreign_file_is_ignored_and_rewritten(tmp_path: Path, what: str,
                                                           change: bytes | Callable[[Parts], None]) -> None:
    parts = _good(tmp_path)
    cache = FrameCache(tmp_path, "r1")
    if isinstance(change, bytes):
        cache.file_for(PDB).write_bytes(change)
    else:
        change(parts)
        cache.file_for(PDB).write_bytes(_bytes(parts))
    assert cache.load(PDB).frames == {}
    put(cache, "/a/app.pdb", {7: MAIN})
    assert cache.load(PDB).frames == {7: MAIN}


def test_the_damage_table_can_fail(tmp_path: Path) -> None:
    """The file written again from its parts loads: each damage case above is what makes its file ignored."""
    parts = _good(tmp_path)
    cache = FrameCache(tmp_path, "r1")
    cache.file_for(PDB).write_bytes(_bytes(parts))
    assert cache.load(PDB).frames == FRAMES


_NO_ROWS = ResolvedColumns(np.asarray([0x2000], np.int64), np.zeros(2, np.int64), *(np.zeros(0, np.int64),) * 3, [])


@pytest.mark.parametrize(("rva", "bad"), [
    (0x2000, ResolvedColumns.of([ResolvedFrame((SourceFrame("a\0b", None, None),), 0x2000)])),
    (0x2000, ResolvedColumns.of([ResolvedFrame((SourceFrame("main", "a\0.c", 3),), 0x2000)])),
    (0x2000, ResolvedColumns.of([ResolvedFrame((SourceFrame("main", "a.c", -3),), 0x2000)])),
    (0x2000, _NO_ROWS),
    (0x2000, ResolvedColumns.of([ResolvedFrame((SourceFrame("main", "a.c", 3),), 1 << 32)])),
    (1 << 32, ResolvedColumns.of([MAIN])),
    (-1, ResolvedColumns.of([None])),
], ids=["nul in a function", "nul in a file", "negative line", "no rows", "procedure start past 32 bits",
        "address past 32 bits", "negative address"])
def test_what_the_layout_cannot_hold_is_left_out(tmp_path: Path, rva: int, bad: ResolvedColumns) -> None:
    """An answer the layout cannot hold is left out of the file (the PDB is asked again next time); the other
    answers are cached as ever, never a file the next run refuses whole."""
    cache = FrameCache(tmp_path, "r1")
    cache.add(PDB, "/a/app.pdb", [*FRAMES, rva], ResolvedColumns.of(list(FRAMES.values())).concat(bad))
    assert cache.load(PDB).frames == FRAMES
    cache.add(PDB, "/a/app.pdb", [rva], ResolvedColumns.of([MAIN]))  # (the table can fail: a good answer stays)
    assert cache.load(PDB).frames == ({**FRAMES, rva: MAIN} if 0 <= rva < 1 << 32 else FRAMES)


def test_an_unwritable_cache_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "symcache"
    blocker.write_bytes(b"a file where the folder should be")
    cache = FrameCache(blocker, "r1")
    put(cache, "/a/app.pdb", FRAMES)
    assert cache.load(PDB).frames == {}


def test_concurrent_writers_leave_a_whole_file(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def writer(base: int) -> None:
        try:
            cache = FrameCache(tmp_path, "r1")
            for i in range(20):
                put(cache, "/a/app.pdb", {base + i: MAIN})
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
    assert [p.name for p in FrameCache(tmp_path, "r1").file_for(PDB).parent.iterdir()] == ["frames.bin"]


def test_random_damage_is_ignored_never_raised(tmp_path: Path) -> None:
    """Bytes flipped, cut, repeated or inserted anywhere in a good file: the load answers a whole file's frames or
    nothing, and never raises (a seeded sweep; the table above names the cases one by one)."""
    import random

    cache = FrameCache(tmp_path, "r1")
    put(cache, "/a/app.pdb", FRAMES)
    good = cache.file_for(PDB).read_bytes()
    rng = random.Random(20261207)
    for _ in range(400):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            if not data:
                break
            at = rng.randrange(len(data))
            kind = rng.random()
            if kind < 0.5:
                data[at] = rng.randrange(256)
            elif kind < 0.7:
                del data[at:at + rng.randint(1, 16)]
            elif kind < 0.85:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            else:
                del data[at:]
        cache.file_for(PDB).write_bytes(bytes(data))
        loaded = cache.load(PDB).frames  # (a byte of a name or an address may change it and still be a file)
        assert len(loaded) <= len(FRAMES)
        assert all(f is None or isinstance(f, ResolvedFrame) for f in loaded.values())
