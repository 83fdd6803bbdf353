"""The resolver's decisions, with a reader that counts: identity checks, mismatch, damage, the frame cache hit
path, caches along the symbol path, downloads, threads. The native reader on real PDBs: test_symbol_native.py.

The fake reader reads small files this test writes: a "PDB" is the MSF magic and a JSON body (its GUID, age and
answers), an "image" is MZ and a JSON body (stamp, size, PDB identity); anything else is damaged.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from symbol_server import MSF, Answer, serve

from heapdiff.frames import ModuleRequest, ModuleSymbols, PdbId, ResolvedColumns, ResolvedFrame, SourceFrame
from heapdiff.symbols.path import parse_symbol_path
from heapdiff.symbols.reader import Batch, ImageIdentity, SymbolReadError
from heapdiff.symbols.resolver import SymbolResolver

GUID = "b1d8aacf-b7de-28cf-4c4c-44205044422e"
OTHER_GUID = "00112233-4455-6677-8899-aabbccddeeff"
PDB = PdbId("app.pdb", GUID, 1)
KEY = PDB.store_key
STAMP, SIZE = 0x5F00AA00, 0x12000
PE_KEY = "5F00AA0012000"


def pdb_bytes(guid: str = GUID, age: int = 1, broken: bool = False, damaged_under: str = "") -> bytes:
    body = {"guid": guid, "age": age, "broken": broken, "damaged_under": damaged_under,
            "frames": {"4096": [4096, [["main", "app.c", 3]]], "4128": [4112, [["inner", "app.c", 9],
                                                                              ["outer", "app.c", 20]]]}}
    return MSF + json.dumps(body).encode()


def image_bytes(stamp: int = STAMP, size: int = SIZE, pdb: PdbId | None = PDB) -> bytes:
    body = {"stamp": stamp, "size": size, "pdb": None if pdb is None else [pdb.name, pdb.guid, pdb.age]}
    return b"MZ" + json.dumps(body).encode()


MAIN = ResolvedFrame((SourceFrame("main", "app.c", 3),), 0x1000)
INNER = ResolvedFrame((SourceFrame("inner", "app.c", 9), SourceFrame("outer", "app.c", 20)), 0x1010)


class FakePdb:
    def __init__(self, backend: FakeBackend, path: Path, body: dict[str, Any]) -> None:
        self.backend, self.path, self.body = backend, path, body

    def resolve(self, rvas: Sequence[int]) -> Batch:
        self.backend.asked.append(list(rvas))
        if self.body["broken"]:
            raise SymbolReadError("module stream 3 runs past the end of the file (at byte offset 0x2000)")
        if self.body.get("damaged_under"):
            problem = f"{len(rvas)} addresses: {self.body['damaged_under']}"
            return Batch(ResolvedColumns.of([None] * len(rvas)), problem)
        out: list[ResolvedFrame | None] = []
        for rva in rvas:
            entry = self.body["frames"].get(str(rva))
            out.append(None if entry is None else ResolvedFrame(
                tuple(SourceFrame(f, file, line) for f, file, line in entry[1]), entry[0]))
        return Batch(ResolvedColumns.of(out))


class FakeBackend:
    version = "fake-1"

    def __init__(self) -> None:
        self.opened: Counter[str] = Counter()
        self.identified: Counter[str] = Counter()
        self.asked: list[list[int]] = []
        self._lock = threading.Lock()

    @staticmethod
    def _body(path: Path, magic: bytes) -> dict[str, Any]:
        data = path.read_bytes()
        if not data.startswith(magic):
            raise SymbolReadError(f"bad magic (at byte offset 0x0): {data[:8]!r}")
        try:
            body: dict[str, Any] = json.loads(data[len(magic):])
        except ValueError as err:
            raise SymbolReadError(f"truncated (at byte offset {len(data):#x})") from err
        return body

    def image_identity(self, path: Path) -> ImageIdentity:
        body = self._body(path, b"MZ")
        pdb = body["pdb"]
        return ImageIdentity(body["stamp"], body["size"], None if pdb is None else PdbId(*pdb))

    def pdb_identity(self, path: Path) -> tuple[str, int]:
        with self._lock:
            self.identified[str(path)] += 1
        body = self._body(path, MSF)
        return body["guid"], body["age"]

    def open_pdb(self, path: Path) -> FakePdb:
        with self._lock:
            self.opened[str(path)] += 1
        time.sleep(0.05)  # long enough for a second thread to arrive while the first one reads
        return FakePdb(self, path, self._body(path, MSF))

    def expand_cab(self, src: Path, dst: Path) -> None:
        data = src.read_bytes()
        if not data.startswith(b"MSCF"):
            raise SymbolReadError("not a CAB (at byte offset 0x0)")
        dst.write_bytes(data[4:])


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def request(pdb: PdbId | None = PDB, name: str = "app.exe", stamp: int | None = STAMP, size: int = SIZE
            ) -> ModuleRequest:
    return ModuleRequest(name=name, path=f"\\Device\\HarddiskVolume3\\app\\{name}", timestamp=stamp, size=size,
                         pdb=pdb)


def resolver(path: str, cache: Path, backend: FakeBackend | None = None, **kw: Any) -> SymbolResolver:
    return SymbolResolver(parse_symbol_path(path), cache_root=cache, backend=backend or FakeBackend(), **kw)


def one(r: SymbolResolver, rvas: Sequence[int], req: ModuleRequest | None = None
        ) -> tuple[ModuleSymbols, list[ResolvedFrame | None]]:
    [(symbols, answers)] = r.resolve([(req or request(), rvas)])
    return symbols, answers.frames()


def test_flat_directory(tmp_path: Path) -> None:
    pdb = put(tmp_path / "build" / "app.pdb", pdb_bytes())
    symbols, frames = one(resolver(str(tmp_path / "build"), tmp_path / "cache"), [0x1000, 0x1020, 0x5000])
    assert symbols == ModuleSymbols("loaded", symbol_file=str(pdb))
    assert frames == [MAIN, INNER, None]


def test_store_layout_and_a_store_in_a_chain(tmp_path: Path) -> None:
    pdb = put(tmp_path / "store" / "app.pdb" / KEY / "app.pdb", pdb_bytes())
    for path in (str(tmp_path / "store"), f"srv*{tmp_path / 'store'}"):
        symbols, frames = one(resolver(path, tmp_path / f"cache-{len(path)}"), [0x1000])
        assert symbols.status == "loaded" and symbols.symbol_file == str(pdb)
        assert frames == [MAIN]


def test_mismatch_is_never_used(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", pdb_bytes(age=2))
    backend = FakeBackend()
    symbols, frames = one(resolver(f"cache*{tmp_path / 'c'};{tmp_path / 'a'}", tmp_path / "cache", backend),
                          [0x1000])
    assert symbols.status == "mismatch"
    assert symbols.note == (f"{tmp_path / 'a' / 'app.pdb'} is {{{GUID}}} age 2; the image wants {{{GUID}}} age 1")
    assert frames == [None]
    assert backend.opened == Counter()
    assert not (tmp_path / "c").exists()      # a mismatched file is never copied into a cache


def test_mismatch_by_guid(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", pdb_bytes(guid=OTHER_GUID))
    symbols, _ = one(resolver(str(tmp_path / "a"), tmp_path / "cache"), [0x1000])
    assert symbols.status == "mismatch" and OTHER_GUID in (symbols.note or "") and GUID in (symbols.note or "")


def test_the_matching_pdb_further_along_the_path_wins(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", pdb_bytes(age=2))
    put(tmp_path / "b" / "app.pdb", b"garbage")
    good = put(tmp_path / "c" / "app.pdb" / KEY / "app.pdb", pdb_bytes())
    path = ";".join(str(tmp_path / d) for d in "abc")
    symbols, frames = one(resolver(path, tmp_path / "cache"), [0x1000])
    assert symbols == ModuleSymbols("loaded", symbol_file=str(good))
    assert frames == [MAIN]


def test_damaged_pdb_is_an_error_not_an_exception(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", MSF + b"{\"guid\": ")
    symbols, frames = one(resolver(str(tmp_path / "a"), tmp_path / "cache"), [0x1000, 0x1020])
    assert symbols.status == "error"
    assert symbols.note == f"{tmp_path / 'a' / 'app.pdb'}: truncated (at byte offset 0x29)"
    assert frames == [None, None]


def test_damage_is_reported_before_a_mismatch(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", pdb_bytes(age=2))
    put(tmp_path / "b" / "app.pdb", b"garbage")
    symbols, _ = one(resolver(f"{tmp_path / 'a'};{tmp_path / 'b'}", tmp_path / "cache"), [0x1000])
    assert symbols.status == "error"
    assert symbols.note is not None and symbols.note.endswith("(and 1 other candidate)")


def test_a_pdb_damaged_past_its_header(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", pdb_bytes(broken=True))
    symbols, frames = one(resolver(str(tmp_path / "a"), tmp_path / "cache"), [0x1000])
    assert symbols.status == "error" and "module stream 3 runs past the end" in (symbols.note or "")
    assert frames == [None]


def test_damage_under_some_addresses_is_a_note(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", pdb_bytes(damaged_under="bad line table (at byte offset 0x3000)"))
    symbols, frames = one(resolver(str(tmp_path / "a"), tmp_path / "cache"), [0x1000, 0x1020])
    assert symbols.status == "loaded" and symbols.note == "2 addresses: bad line table (at byte offset 0x3000)"
    assert frames == [None, None]


def test_a_module_asked_for_no_address_still_gets_its_outcome(tmp_path: Path) -> None:
    assert one(resolver(str(tmp_path / "a"), tmp_path / "cache"), [])[0].status == "not_found"
    pdb = put(tmp_path / "a" / "app.pdb", pdb_bytes())
    assert one(resolver(str(tmp_path / "a"), tmp_path / "cache"), []) == (
        ModuleSymbols("loaded", symbol_file=str(pdb)), [])


def test_an_unexpected_reader_exception_is_an_error_outcome(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", pdb_bytes())
    backend = FakeBackend()
    backend.open_pdb = lambda path: 1 / 0  # type: ignore[assignment,method-assign,return-value]
    symbols, frames = one(resolver(str(tmp_path / "a"), tmp_path / "cache", backend), [0x1000])
    assert symbols == ModuleSymbols("error", note="ZeroDivisionError: division by zero")
    assert frames == [None]


def test_not_found_says_where_it_looked(tmp_path: Path) -> None:
    symbols, frames = one(resolver(f"{tmp_path / 'a'};srv*{tmp_path / 's'}", tmp_path / "cache"), [0x1000])
    assert symbols == ModuleSymbols(
        "not_found", note=f"app.pdb ({KEY}) not found: looked in {tmp_path / 'a'}, {tmp_path / 's'}")
    assert frames == [None]


def test_empty_symbol_path(tmp_path: Path) -> None:
    symbols, _ = one(resolver("", tmp_path / "cache"), [0x1000])
    assert symbols.status == "not_found" and "nowhere (the symbol path is empty)" in (symbols.note or "")


def test_file_ptr_message_becomes_the_note(tmp_path: Path) -> None:
    put(tmp_path / "s" / "app.pdb" / KEY / "file.ptr", b"MSG:withheld by the vendor")
    symbols, _ = one(resolver(str(tmp_path / "s"), tmp_path / "cache"), [0x1000])
    assert symbols.status == "not_found" and symbols.note is not None
    assert symbols.note.endswith("; withheld by the vendor")


def test_compressed_pdb_in_a_plain_directory_is_expanded_into_the_cache(tmp_path: Path) -> None:
    packed = put(tmp_path / "share" / "app.pdb" / KEY / "app.pd_", b"MSCF" + pdb_bytes())
    symbols, frames = one(resolver(str(tmp_path / "share"), tmp_path / "cache"), [0x1000])
    expanded = tmp_path / "cache" / "sym" / "app.pdb" / KEY / "app.pdb"
    assert symbols == ModuleSymbols("loaded", symbol_file=str(expanded))
    assert frames == [MAIN]
    assert sorted(p.name for p in packed.parent.iterdir()) == ["app.pd_"]   # nothing written beside the source


def test_a_damaged_cab_is_a_note(tmp_path: Path) -> None:
    put(tmp_path / "share" / "app.pdb" / KEY / "app.pd_", b"NOTACAB")
    symbols, _ = one(resolver(str(tmp_path / "share"), tmp_path / "cache"), [0x1000])
    assert symbols.status == "not_found" and "could not be expanded: not a CAB" in (symbols.note or "")


def test_cache_directive_keeps_what_elements_to_its_right_find(tmp_path: Path) -> None:
    put(tmp_path / "build" / "app.pdb", pdb_bytes())
    one(resolver(f"cache*{tmp_path / 'c'};{tmp_path / 'build'}", tmp_path / "cache"), [0x1000])
    cached = tmp_path / "c" / "app.pdb" / KEY / "app.pdb"
    assert cached.read_bytes() == pdb_bytes()
    # the cache alone finds it next time (other RVAs, so that the frame cache does not answer)
    (tmp_path / "build" / "app.pdb").unlink()
    symbols, frames = one(resolver(f"cache*{tmp_path / 'c'};{tmp_path / 'build'}", tmp_path / "cache"), [0x1020])
    assert symbols == ModuleSymbols("loaded", symbol_file=str(cached))
    assert frames == [INNER]


def test_frame_cache_answers_without_opening_the_pdb(tmp_path: Path) -> None:
    pdb = put(tmp_path / "a" / "app.pdb", pdb_bytes())
    first = FakeBackend()
    assert one(resolver(str(tmp_path / "a"), tmp_path / "cache", first), [0x1000, 0x5000])[1] == [MAIN, None]
    assert first.opened == Counter({str(pdb): 1})
    pdb.unlink()  # the proof: a second run that needed the PDB could not find it
    second = FakeBackend()
    symbols, frames = one(resolver(str(tmp_path / "a"), tmp_path / "cache", second), [0x5000, 0x1000])
    # the answers say where they come from: the cache, parsed from a PDB that is not looked for again
    assert symbols == ModuleSymbols("loaded", symbol_file=str(pdb),
                                    note=f"from heapdiff's symbol cache (parsed from {pdb})")
    assert frames == [None, MAIN]
    assert second.opened == Counter() and second.identified == Counter()


def test_frame_cache_asks_the_pdb_only_for_new_addresses(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", pdb_bytes())
    one(resolver(str(tmp_path / "a"), tmp_path / "cache"), [0x1000])
    backend = FakeBackend()
    assert one(resolver(str(tmp_path / "a"), tmp_path / "cache", backend), [0x1000, 0x1020, 0x1020])[1] == \
        [MAIN, INNER, INNER]
    assert backend.asked == [[0x1020]]


def test_frame_cache_after_the_pdb_is_gone(tmp_path: Path) -> None:
    pdb = put(tmp_path / "a" / "app.pdb", pdb_bytes())
    one(resolver(str(tmp_path / "a"), tmp_path / "cache"), [0x1000])
    pdb.unlink()
    symbols, frames = one(resolver(str(tmp_path / "a"), tmp_path / "cache"), [0x1000, 0x1020])
    assert symbols.status == "loaded" and "still answered from the frame cache" in (symbols.note or "")
    assert frames == [MAIN, None]


def test_numpy_rvas(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", pdb_bytes())
    rvas = np.array([0x1000, 0x1020], dtype=np.uint64)
    assert one(resolver(str(tmp_path / "a"), tmp_path / "cache"), rvas)[1] == [MAIN, INNER]  # type: ignore[arg-type]
    assert one(resolver(str(tmp_path / "a"), tmp_path / "cache"), rvas)[1] == [MAIN, INNER]  # type: ignore[arg-type]


def test_one_answer_per_request_in_order(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", pdb_bytes())
    other = PdbId("lib.pdb", GUID, 1)
    r = resolver(str(tmp_path / "a"), tmp_path / "cache")
    answers = r.resolve([(request(), [0x1000]), (request(other, name="lib.dll"), [0x1000]), (request(), [])])
    assert [a[0].status for a in answers] == ["loaded", "not_found", "loaded"]
    assert [a[1].frames() for a in answers] == [[MAIN], [None], []]


def test_two_threads_resolving_one_module_read_it_once(tmp_path: Path) -> None:
    pdb = put(tmp_path / "a" / "app.pdb", pdb_bytes())
    backend = FakeBackend()
    r = resolver(str(tmp_path / "a"), tmp_path / "cache", backend)
    results: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def run(i: int, rvas: list[int]) -> None:
        barrier.wait()
        results[i] = one(r, rvas)

    threads = [threading.Thread(target=run, args=(0, [0x1000, 0x1020])),
               threading.Thread(target=run, args=(1, [0x1020, 0x1000]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == (ModuleSymbols("loaded", symbol_file=str(pdb)), [MAIN, INNER])
    assert results[1] == (ModuleSymbols("loaded", symbol_file=str(pdb)), [INNER, MAIN])
    assert backend.opened == Counter({str(pdb): 1})
    assert backend.identified == Counter({str(pdb): 1})
    assert sum(len(a) for a in backend.asked) == 2   # each address asked of the PDB once


def test_a_module_twice_in_one_call(tmp_path: Path) -> None:
    pdb = put(tmp_path / "a" / "app.pdb", pdb_bytes())
    backend = FakeBackend()
    r = resolver(str(tmp_path / "a"), tmp_path / "cache", backend, workers=4)
    answers = r.resolve([(request(), [0x1000])] * 6)
    assert all((a[0], a[1].frames()) == (ModuleSymbols("loaded", symbol_file=str(pdb)), [MAIN]) for a in answers)
    assert backend.opened == Counter({str(pdb): 1})


# --- the PDB identity from the image, when the trace has no DbgID record


def test_image_in_a_store_gives_the_pdb_identity(tmp_path: Path) -> None:
    put(tmp_path / "s" / "app.exe" / PE_KEY / "app.exe", image_bytes())
    pdb = put(tmp_path / "s" / "app.pdb" / KEY / "app.pdb", pdb_bytes())
    symbols, frames = one(resolver(str(tmp_path / "s"), tmp_path / "cache"), [0x1000], request(pdb=None))
    assert symbols == ModuleSymbols("loaded", symbol_file=str(pdb), pdb=PDB)
    assert frames == [MAIN]


def test_image_by_name_in_a_plain_directory_checks_stamp_and_size(tmp_path: Path) -> None:
    put(tmp_path / "bin" / "app.exe", image_bytes(stamp=STAMP + 1))
    put(tmp_path / "bin" / "app.pdb", pdb_bytes())
    symbols, _ = one(resolver(str(tmp_path / "bin"), tmp_path / "cache"), [0x1000], request(pdb=None))
    assert symbols.status == "not_found"
    assert symbols.note == (f"no PDB identity in the trace; {tmp_path / 'bin' / 'app.exe'} is 5F00AA0112000; "
                            f"the trace's image is {PE_KEY}")
    put(tmp_path / "bin" / "app.exe", image_bytes())
    symbols, _ = one(resolver(str(tmp_path / "bin"), tmp_path / "cache2"), [0x1000], request(pdb=None))
    assert symbols.status == "loaded" and symbols.pdb == PDB


def test_image_without_a_timestamp_is_matched_by_size(tmp_path: Path) -> None:
    put(tmp_path / "bin" / "app.exe", image_bytes())
    put(tmp_path / "bin" / "app.pdb", pdb_bytes())
    symbols, _ = one(resolver(str(tmp_path / "bin"), tmp_path / "c1"), [0x1000], request(pdb=None, stamp=None))
    assert symbols.status == "loaded"
    symbols, _ = one(resolver(str(tmp_path / "bin"), tmp_path / "c2"), [0x1000],
                     request(pdb=None, stamp=None, size=SIZE + 0x1000))
    assert symbols.status == "not_found"
    symbols, _ = one(resolver(str(tmp_path / "bin"), tmp_path / "c3"), [0x1000],
                     request(pdb=None, stamp=None, size=0))
    assert symbols.status == "not_found" and "nothing to find app.exe by" in (symbols.note or "")


def test_image_without_codeview_record(tmp_path: Path) -> None:
    put(tmp_path / "bin" / "app.exe", image_bytes(pdb=None))
    symbols, _ = one(resolver(str(tmp_path / "bin"), tmp_path / "cache"), [0x1000], request(pdb=None))
    assert symbols == ModuleSymbols("not_found", note=f"{tmp_path / 'bin' / 'app.exe'} names no PDB "
                                                      "(no CodeView record)")


def test_damaged_image(tmp_path: Path) -> None:
    put(tmp_path / "bin" / "app.exe", b"MZ{")
    symbols, _ = one(resolver(str(tmp_path / "bin"), tmp_path / "cache"), [0x1000], request(pdb=None))
    assert symbols.status == "error" and "truncated" in (symbols.note or "")


def test_image_name_keeps_the_trace_case_in_stores(tmp_path: Path) -> None:
    put(tmp_path / "s" / "KernelBase.dll" / PE_KEY / "KernelBase.dll", image_bytes(pdb=PdbId("kb.pdb", GUID, 1)))
    put(tmp_path / "s" / "kb.pdb" / KEY / "kb.pdb", pdb_bytes())
    req = ModuleRequest("kernelbase.dll", "\\Windows\\System32\\KernelBase.dll", STAMP, SIZE, None)
    symbols, _ = one(resolver(str(tmp_path / "s"), tmp_path / "cache"), [0x1000], req)
    assert symbols.status == "loaded" and symbols.pdb == PdbId("kb.pdb", GUID, 1)


# --- Windows paths on another host


def test_windows_elements_are_skipped_with_a_note_on_another_host(tmp_path: Path) -> None:
    put(tmp_path / "a" / "app.pdb", pdb_bytes())
    r = resolver(rf"C:\Symbols;\\server\share;{tmp_path / 'a'};cache*D:\cache", tmp_path / "cache",
                 windows_host=False)
    assert r.path_notes == (r"C:\Symbols: C:\Symbols skipped (a Windows path, and this is not Windows)",
                            r"\\server\share: \\server\share skipped (a Windows path, and this is not Windows)",
                            r"cache*D:\cache: D:\cache skipped (a Windows path, and this is not Windows)")
    symbols, _ = one(r, [0x1000])
    assert symbols.status == "loaded"


# --- servers


def test_download_into_the_chain_store_then_found_there(tmp_path: Path) -> None:
    routes: dict[str, Answer | bytes] = {f"/app.pdb/{KEY}/app.pdb": pdb_bytes()}
    with serve(routes) as server:
        path = f"srv*{tmp_path / 'down'}*{server.url}"
        symbols, frames = one(resolver(path, tmp_path / "cache"), [0x1000])
        stored = tmp_path / "down" / "app.pdb" / KEY / "app.pdb"
        assert symbols == ModuleSymbols("loaded", symbol_file=str(stored))
        assert frames == [MAIN]
        asked = len(server.requests)
        symbols, frames = one(resolver(path, tmp_path / "cache"), [0x1020])   # new RVAs: the PDB is needed
        assert symbols.symbol_file == str(stored) and frames == [INNER]
        assert len(server.requests) == asked    # found in the store: the server is not asked again


def test_srv_url_alone_downloads_into_the_default_store(tmp_path: Path) -> None:
    with serve({f"/app.pdb/{KEY}/app.pd_": b"MSCF" + pdb_bytes()}) as server:
        symbols, frames = one(resolver(f"srv*{server.url}", tmp_path / "cache"), [0x1000])
    stored = tmp_path / "cache" / "sym" / "app.pdb" / KEY / "app.pdb"
    assert symbols == ModuleSymbols("loaded", symbol_file=str(stored))
    assert frames == [MAIN]
    assert sorted(p.name for p in stored.parent.iterdir()) == ["app.pdb"]


def test_windows_chain_store_on_another_host_downloads_into_the_default_store(tmp_path: Path) -> None:
    with serve({f"/app.pdb/{KEY}/app.pdb": pdb_bytes()}) as server:
        r = resolver(rf"srv*C:\Symbols*{server.url}", tmp_path / "cache", windows_host=False)
        symbols, _ = one(r, [0x1000])
    assert symbols.symbol_file == str(tmp_path / "cache" / "sym" / "app.pdb" / KEY / "app.pdb")
    assert r.path_notes[-1] == rf"srv*C:\Symbols*{server.url}: downloads go to {tmp_path / 'cache' / 'sym'} instead"


def test_mid_level_stores_and_caches_get_copies(tmp_path: Path) -> None:
    with serve({f"/app.pdb/{KEY}/app.pdb": pdb_bytes()}) as server:
        path = f"cache*{tmp_path / 'c'};srv*{tmp_path / 'bottom'}*{tmp_path / 'mid'}*{server.url}"
        one(resolver(path, tmp_path / "cache"), [0x1000])
    for store in ("c", "bottom", "mid"):
        assert (tmp_path / store / "app.pdb" / KEY / "app.pdb").read_bytes() == pdb_bytes()


def test_found_in_a_mid_level_store_is_copied_into_the_bottom(tmp_path: Path) -> None:
    put(tmp_path / "mid" / "app.pdb" / KEY / "app.pdb", pdb_bytes())
    one(resolver(f"srv*{tmp_path / 'bottom'}*{tmp_path / 'mid'}", tmp_path / "cache"), [0x1000])
    assert (tmp_path / "bottom" / "app.pdb" / KEY / "app.pdb").read_bytes() == pdb_bytes()


def test_a_mismatched_download_is_removed_from_the_store(tmp_path: Path) -> None:
    with serve({f"/app.pdb/{KEY}/app.pdb": pdb_bytes(age=7)}) as server:
        symbols, _ = one(resolver(f"srv*{tmp_path / 'down'}*{server.url}", tmp_path / "cache"), [0x1000])
    assert symbols.status == "mismatch"
    assert not (tmp_path / "down" / "app.pdb" / KEY / "app.pdb").exists()


def test_server_failure_note(tmp_path: Path) -> None:
    with serve({f"/app.pdb/{KEY}/app.pdb": Answer(200, b"<html>maintenance</html>")}) as server:
        symbols, _ = one(resolver(f"srv*{server.url}", tmp_path / "cache"), [0x1000])
    assert symbols.status == "not_found"
    assert symbols.note is not None and symbols.note.endswith(
        f"; {server.url}: answered app.pdb with not a PDB (starts '<html>maintenanc')")


def test_local_elements_never_contact_a_server(tmp_path: Path) -> None:
    with serve({f"/app.pdb/{KEY}/app.pdb": pdb_bytes()}) as server:
        put(tmp_path / "a" / "app.pdb", pdb_bytes())
        one(resolver(f"{tmp_path / 'a'};srv*{server.url}", tmp_path / "cache"), [0x1000])   # found before
        one(resolver(f"{tmp_path / 'b'}", tmp_path / "cache2"), [0x1000])                  # no server named
    assert server.requests == []


def test_modules_download_in_parallel(tmp_path: Path) -> None:
    names = [f"m{i}" for i in range(6)]
    routes: dict[str, Answer | bytes] = {f"/{n}.pdb/{KEY}/{n}.pdb": Answer(body=pdb_bytes(), delay=0.3)
                                         for n in names}
    with serve(routes) as server:
        r = resolver(f"srv*{server.url}", tmp_path / "cache", workers=6)
        start = time.monotonic()
        answers = r.resolve([(request(PdbId(f"{n}.pdb", GUID, 1), name=f"{n}.dll"), [0x1000]) for n in names])
        elapsed = time.monotonic() - start
    assert [a[0].status for a in answers] == ["loaded"] * 6
    assert elapsed < 0.3 * 6 / 2     # one at a time would take 1.8 s


def test_progress_hears_every_download(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def progress(event: Any) -> None:
        with lock:
            seen.append((event.file, event.state))

    with serve({f"/app.pdb/{KEY}/app.pdb": pdb_bytes()}) as server:
        one(resolver(f"srv*{server.url}", tmp_path / "cache", progress=progress), [0x1000])
    assert seen[0] == ("app.pdb", "start") and seen[-1] == ("app.pdb", "done")


@pytest.mark.parametrize("workers", [1, 3])
def test_a_dead_server_costs_one_time_out(tmp_path: Path, workers: int) -> None:
    from symbol_server import silent_server

    with silent_server() as url:
        r = resolver(f"srv*{url}", tmp_path / "cache", timeout=0.3, workers=workers)
        start = time.monotonic()
        answers = r.resolve([(request(PdbId(f"m{i}.pdb", GUID, 1), name=f"m{i}.dll"), [0x1000]) for i in range(6)])
        elapsed = time.monotonic() - start
    assert all(a[0].status == "not_found" for a in answers)
    assert all("no answer within 0.3 s" in (a[0].note or "") for a in answers)
    assert elapsed < 0.3 * (workers + 2)
