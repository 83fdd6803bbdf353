"""The resolver with the native reader on the fixture images and PDBs (fixtures/symbols): real identities, real
CABs, the identity mismatch of mismatch.exe, damaged PDBs, the frame cache and threads, local stores and a symbol
server on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from symbol_server import HTML, Answer, serve

from heapdiff import _native
from heapdiff.frames import ModuleRequest, ModuleSymbols, PdbId, ResolvedFrame, Symbolizer
from heapdiff.symbols import SymbolResolver, parse_symbol_path
from heapdiff.symbols.native import NativeBackend
from heapdiff.symbols.store import pe_key

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "symbols"
EXAMPLE = FIXTURES.parent / "example"


def identity(image: Path) -> tuple[int, int, PdbId]:
    pe = _native.pe_identity(image)
    assert pe.codeview is not None
    return pe.timestamp, pe.size_of_image, PdbId(pe.codeview.pdb_name, pe.codeview.guid, pe.codeview.age)


def request(image: Path, *, with_pdb: bool = True) -> ModuleRequest:
    stamp, size, pdb = identity(image)
    return ModuleRequest(image.name.lower(), f"C:\\app\\{image.name}", stamp, size, pdb if with_pdb else None)


def resolver(path: str, cache: Path, **kw: Any) -> SymbolResolver:
    return SymbolResolver(parse_symbol_path(path), cache_root=cache, **kw)


def one(r: SymbolResolver, req: ModuleRequest, rvas: list[int]) -> tuple[ModuleSymbols, list[ResolvedFrame | None]]:
    [(symbols, answers)] = r.resolve([(req, rvas)])
    return symbols, answers.frames()


def store_put(store: Path, src: Path, name: str, key: str, as_name: str | None = None) -> Path:
    dest = store / name / key / (as_name or name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def callsites(module: str) -> list[dict[str, Any]]:
    doc = json.loads((EXAMPLE / "callsites.json").read_text(encoding="utf-8"))
    return [c for c in doc["callsites"] if c["module"] == module]


def _brief(frame: ResolvedFrame | None) -> list[tuple[str, str | None, int | None]]:
    assert frame is not None
    return [(f.function, None if f.file is None else f.file.replace("\\", "/").rpartition("/")[2], f.line)
            for f in frame.frames]


@pytest.mark.parametrize("image", ["app.exe", "plugin.dll"])
def test_the_example_agrees_with_llvm_symbolizer(tmp_path: Path, image: str) -> None:
    sites = callsites(image)
    symbols, frames = one(resolver(str(EXAMPLE), tmp_path), request(EXAMPLE / image),
                          [c["lookup_rva"] for c in sites])
    assert symbols == ModuleSymbols("loaded", symbol_file=str(EXAMPLE / image.replace(".exe", ".pdb")
                                                                .replace(".dll", ".pdb")))
    for site, frame in zip(sites, frames, strict=True):
        assert _brief(frame) == [(f["function"], f["file"], f["line"]) for f in site["frames"]], site
        assert frame is not None and frame.proc_start == site["function_rva"]


def test_nothing_there_is_none(tmp_path: Path) -> None:
    _, frames = one(resolver(str(FIXTURES), tmp_path), request(FIXTURES / "widget.exe"), [0x0, 0xFFFFFF])
    assert frames == [None, None]


def test_identity_mismatch_is_refused(tmp_path: Path) -> None:
    """mismatch.exe wants age 2; mismatch.pdb has DBI age 1 (and info age 3, which must not fool the check)."""
    req = request(FIXTURES / "mismatch.exe")
    assert req.pdb is not None and req.pdb.age == 2
    symbols, frames = one(resolver(str(FIXTURES), tmp_path), req, [0x1000])
    assert symbols.status == "mismatch"
    guid = req.pdb.guid
    assert symbols.note == f"{FIXTURES / 'mismatch.pdb'} is {{{guid}}} age 1; the image wants {{{guid}}} age 2"
    assert frames == [None]


def test_widget_pdb_is_not_taken_for_another_guid(tmp_path: Path) -> None:
    _, _, inl = identity(FIXTURES / "inl.exe")
    shutil.copyfile(FIXTURES / "widget.pdb", tmp_path / "inl.pdb")   # right name, another PDB
    req = ModuleRequest("inl.exe", "", None, 0, inl)
    symbols, _ = one(resolver(str(tmp_path), tmp_path / "cache"), req, [0x1000])
    assert symbols.status == "mismatch" and "4464ad3e-15e0-7305-4c4c-44205044422e" in (symbols.note or "")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "zeroed directory"])
def test_damaged_pdb_is_an_error(tmp_path: Path, damage: str) -> None:
    data = (FIXTURES / "widget.pdb").read_bytes()
    broken = {"truncated": data[: len(data) // 3], "garbage": bytes(range(256)) * 40, "empty": b"",
              "zeroed directory": data[:0x1000] + b"\x00" * (len(data) - 0x1000)}[damage]
    (tmp_path / "widget.pdb").write_bytes(broken)
    symbols, frames = one(resolver(str(tmp_path), tmp_path / "cache"), request(FIXTURES / "widget.exe"),
                          [0x1000, 0x1010])
    assert symbols.status == "error", symbols
    assert symbols.note is not None and symbols.note.startswith(f"{tmp_path / 'widget.pdb'}: ")
    assert frames == [None, None]


def test_frame_cache_hit_does_not_open_the_pdb(tmp_path: Path) -> None:
    shutil.copyfile(FIXTURES / "widget.pdb", tmp_path / "widget.pdb")
    req = request(FIXTURES / "widget.exe")
    first = one(resolver(str(tmp_path), tmp_path / "cache"), req, [0x1000, 0x1010, 0xFFFFFF])
    assert first[0].status == "loaded"
    (tmp_path / "widget.pdb").unlink()
    second = one(resolver(str(tmp_path), tmp_path / "cache"), req, [0xFFFFFF, 0x1010, 0x1000])
    assert second[1] == [first[1][2], first[1][1], first[1][0]]
    assert (second[0].status, second[0].symbol_file) == ("loaded", first[0].symbol_file)
    assert second[0].note == f"from heapdiff's symbol cache (parsed from {first[0].symbol_file})"


def test_two_threads_on_one_module(tmp_path: Path) -> None:
    sites = callsites("app.exe")
    rvas = [c["lookup_rva"] for c in sites]
    r = resolver(str(EXAMPLE), tmp_path)
    req = request(EXAMPLE / "app.exe")
    results: list[Any] = [None] * 4
    barrier = threading.Barrier(4)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = one(r, req, rvas[i % 2:] + rvas[: i % 2])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == results[2] and results[1] == results[3]
    assert results[0][1][1:] == results[1][1][:-1]
    assert all(f is not None for f in results[0][1])


def test_store_layout_two_tier_and_lower_case_keys(tmp_path: Path) -> None:
    _, _, pdb = identity(FIXTURES / "widget.exe")
    req = request(FIXTURES / "widget.exe")
    store_put(tmp_path / "one", FIXTURES / "widget.pdb", "widget.pdb", pdb.store_key)
    two = tmp_path / "two"
    store_put(two / "wi", FIXTURES / "widget.pdb", "widget.pdb", pdb.store_key)
    (two / "index2.txt").write_bytes(b"")
    store_put(tmp_path / "lower", FIXTURES / "widget.pdb", "widget.pdb", pdb.store_key.lower())
    for store in ("one", "two", "lower"):
        symbols, frames = one(resolver(str(tmp_path / store), tmp_path / f"cache-{store}"), req, [0x1000])
        assert symbols.status == "loaded" and symbols.symbol_file is not None, store
        assert symbols.symbol_file.startswith(str(tmp_path / store)) and frames[0] is not None


@pytest.mark.parametrize("cab", ["inl.pd_", "widget_lzx.pd_"])
def test_compressed_pdb_in_a_local_store(tmp_path: Path, cab: str) -> None:
    module = cab.split("_")[0].split(".")[0]
    _, _, pdb = identity(FIXTURES / f"{module}.exe")
    store_put(tmp_path / "s", FIXTURES / cab, pdb.name, pdb.store_key, as_name=f"{module}.pd_")
    symbols, frames = one(resolver(str(tmp_path / "s"), tmp_path / "cache"), request(FIXTURES / f"{module}.exe"),
                          [0x1000])
    expanded = tmp_path / "cache" / "sym" / pdb.name / pdb.store_key / pdb.name
    assert symbols == ModuleSymbols("loaded", symbol_file=str(expanded))
    assert expanded.read_bytes() == (FIXTURES / f"{module}.pdb").read_bytes()
    assert frames[0] is not None


def test_file_ptr_path_and_msg(tmp_path: Path) -> None:
    _, _, pdb = identity(FIXTURES / "widget.exe")
    folder = tmp_path / "s" / pdb.name / pdb.store_key
    folder.mkdir(parents=True)
    (folder / "file.ptr").write_text(f"PATH:{FIXTURES / 'widget.pdb'}")
    symbols, _ = one(resolver(str(tmp_path / "s"), tmp_path / "c1"), request(FIXTURES / "widget.exe"), [0x1000])
    assert symbols == ModuleSymbols("loaded", symbol_file=str(FIXTURES / "widget.pdb"))
    (folder / "file.ptr").write_text("MSG:Symbols for this build were not published")
    symbols, _ = one(resolver(str(tmp_path / "s"), tmp_path / "c2"), request(FIXTURES / "widget.exe"), [0x1000])
    assert symbols.status == "not_found"
    assert (symbols.note or "").endswith("; Symbols for this build were not published")


def test_identity_from_the_image_in_a_store(tmp_path: Path) -> None:
    stamp, size, pdb = identity(FIXTURES / "names.exe")
    store_put(tmp_path / "s", FIXTURES / "names.exe", "names.exe", pe_key(stamp, size))
    store_put(tmp_path / "s", FIXTURES / "names.pdb", pdb.name, pdb.store_key)
    symbols, frames = one(resolver(str(tmp_path / "s"), tmp_path / "cache"),
                          request(FIXTURES / "names.exe", with_pdb=False), [0x1000])
    assert symbols.status == "loaded" and symbols.pdb == pdb
    assert frames[0] is not None


def test_identity_from_the_image_by_name_needs_its_stamp(tmp_path: Path) -> None:
    req = request(FIXTURES / "widget.exe", with_pdb=False)
    symbols, _ = one(resolver(str(FIXTURES), tmp_path), req, [0x1000])
    assert symbols.status == "loaded" and symbols.pdb == identity(FIXTURES / "widget.exe")[2]
    other = ModuleRequest(req.name, req.path, (req.timestamp or 0) + 1, req.size, None)
    symbols, _ = one(resolver(str(FIXTURES), tmp_path / "c2"), other, [0x1000])
    assert symbols.status == "not_found" and "widget.exe is 9FE92C595000" in (symbols.note or "")


def test_a_garbage_image_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "widget.exe").write_bytes(b"MZ" + b"\xff" * 100)
    symbols, _ = one(resolver(str(tmp_path), tmp_path / "cache"), request(FIXTURES / "widget.exe", with_pdb=False),
                     [0x1000])
    assert symbols.status == "error" and (symbols.note or "").startswith("no PDB identity in the trace; ")


def test_the_backend_raises_only_its_own_error(tmp_path: Path) -> None:
    from heapdiff.symbols.reader import SymbolReadError

    backend = NativeBackend()
    (tmp_path / "x").write_bytes(b"junk")
    for call in (backend.image_identity, backend.pdb_identity, backend.open_pdb):
        with pytest.raises(SymbolReadError):
            call(tmp_path / "x")
    with pytest.raises(SymbolReadError):
        backend.expand_cab(tmp_path / "x", tmp_path / "y")
    with pytest.raises(SymbolReadError):
        backend.pdb_identity(tmp_path / "missing")


# --- a symbol server serving the fixtures


def _server_routes() -> tuple[dict[str, Answer | bytes], dict[str, ModuleRequest]]:
    routes: dict[str, Answer | bytes] = {}
    reqs: dict[str, ModuleRequest] = {}
    for module in ("widget", "inl", "names", "x86", "names_pub"):
        reqs[module] = request(FIXTURES / f"{module}.exe")
    widget, inl, names, x86 = (reqs[m].pdb for m in ("widget", "inl", "names", "x86"))
    assert widget and inl and names and x86
    routes[f"/widget.pdb/{widget.store_key}/widget.pdb"] = (FIXTURES / "widget.pdb").read_bytes()
    routes[f"/inl.pdb/{inl.store_key}/inl.pd_"] = (FIXTURES / "inl.pd_").read_bytes()
    routes[f"/names.pdb/{names.store_key}/file.ptr"] = f"PATH:{FIXTURES / 'names.pdb'}".encode()
    routes[f"/x86.pdb/{x86.store_key}/x86.pdb"] = Answer(200, HTML, {"Content-Type": "text/html"})
    return routes, reqs


def test_a_symbol_server(tmp_path: Path) -> None:
    routes, reqs = _server_routes()
    progress: list[str] = []
    lock = threading.Lock()

    def hear(event: Any) -> None:
        with lock:
            progress.append(f"{event.file}:{event.state}")

    with serve(routes) as server:
        r = resolver(f"srv*{tmp_path / 'sym'}*{server.url}", tmp_path / "cache", timeout=2, progress=hear)
        answers = r.resolve([(reqs[m], [0x1000]) for m in ("widget", "inl", "names", "x86", "names_pub")])
    statuses = {m: a[0] for m, a in zip(("widget", "inl", "names", "x86", "names_pub"), answers, strict=True)}
    stored = tmp_path / "sym"
    for module in ("widget", "inl"):
        pdb = reqs[module].pdb
        assert pdb is not None
        path = stored / pdb.name / pdb.store_key / pdb.name
        assert statuses[module] == ModuleSymbols("loaded", symbol_file=str(path))
        assert path.read_bytes() == (FIXTURES / pdb.name).read_bytes()
    assert statuses["names"] == ModuleSymbols("loaded", symbol_file=str(FIXTURES / "names.pdb"))
    assert statuses["x86"].status == "not_found" and "answered x86.pdb with not a PDB" in (statuses["x86"].note or "")
    assert statuses["names_pub"].status == "not_found"
    assert not (stored / "x86.pdb").exists() or not any((stored / "x86.pdb").rglob("x86.pdb"))
    assert "widget.pdb:done" in progress and "inl.pd_:done" in progress
    assert not [p for p in stored.rglob("*") if p.is_file() and p.name.endswith((".tmp", ".pd_"))]


def test_image_and_pdb_from_a_server_for_a_trace_without_dbgid(tmp_path: Path) -> None:
    stamp, size, pdb = identity(FIXTURES / "names.exe")
    routes: dict[str, Answer | bytes] = {
        f"/names.exe/{pe_key(stamp, size)}/names.exe": (FIXTURES / "names.exe").read_bytes(),
        f"/names.pdb/{pdb.store_key}/names.pdb": (FIXTURES / "names.pdb").read_bytes(),
    }
    with serve(routes) as server:
        r = resolver(f"srv*{tmp_path / 'sym'}*{server.url}", tmp_path / "cache", timeout=2)
        symbols, frames = one(r, request(FIXTURES / "names.exe", with_pdb=False), [0x1000])
    assert symbols == ModuleSymbols("loaded", symbol_file=str(tmp_path / "sym" / "names.pdb" / pdb.store_key /
                                                             "names.pdb"), pdb=pdb)
    assert (tmp_path / "sym" / "names.exe" / pe_key(stamp, size) / "names.exe").is_file()
    assert frames[0] is not None


def test_a_windows_path_is_never_searched_as_a_relative_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """On Linux, ``C:\\Symbols`` is a legal relative folder name; a symbol path meaning a Windows drive must not
    find a folder of that name in the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "C:\\Symbols").mkdir()
    shutil.copyfile(FIXTURES / "widget.pdb", tmp_path / "C:\\Symbols" / "widget.pdb")
    req = request(FIXTURES / "widget.exe")
    skipped = resolver("C:\\Symbols", tmp_path / "cache", windows_host=False)
    assert one(skipped, req, [0x1000])[0].status == "not_found"
    assert one(resolver("C:\\Symbols", tmp_path / "cache", windows_host=True), req, [0x1000])[0].status == "loaded"


def test_the_resolver_is_the_core_s_symbolizer(tmp_path: Path) -> None:
    symbolizer: Symbolizer = resolver(str(FIXTURES), tmp_path)   # mypy checks the protocol here
    assert symbolizer.resolve([]) == []
