"""heapdiff._native against the PE/PDB fixtures (fixtures/symbols) and against LLVM's own readers.

The oracle tests run llvm-symbolizer-19, llvm-pdbutil-19 and llvm-readobj-19 (Debian's ``llvm-19``; LLVM 14
misreports lines inside inlined code). Without them those tests skip with the reason, except under ``CI=true``
where they fail: CI installs llvm-19, so a missing tool there is a broken setup. The same goes for gcab and
cabextract, the independent writer and reader of cabinets.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

from heapdiff import _native
from heapdiff._native import NativeError, PdbReader, Resolution

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "symbols"
EXAMPLE = FIXTURES.parent / "example"
#: images with full debug information, each beside its PDB
FULL = ("widget.exe", "inl.exe", "pages8k.exe", "exports.dll", "x86.exe", "names.exe", "mismatch.exe",
        "../example/app.exe", "../example/plugin.dll")
#: publics-only image -> the image built from the same source with full debug information
PUBLICS_ONLY = {"names_pub.exe": "names.exe", "x86_pub.exe": "x86.exe"}


def _spelled(name: str) -> str:
    """MSVC's demangler (and LLVM, which names procedures from their publics) spells a 64-bit integer template
    argument ``__int64``; clang-cl's procedure symbols say ``long long``. Compared in one spelling."""
    return name.replace("__int64", "long long")

Frame = tuple[str, str | None, int]  # function, file base name (None: no file), line (0: none)


def _script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CALLSITES = _script(EXAMPLE / "make_callsites.py")
PATCH_AGES = _script(FIXTURES / "patch_ages.py")


def _require(*tools: str) -> Callable[..., str]:
    """Returns a runner for the named tools; skips (fails under CI=true) when one is missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        reason = f"{', '.join(missing)} not found (apt-get install llvm-19 gcab cabextract)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must have it")
        pytest.skip(reason)

    def run(*cmd: str) -> str:
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return run


@pytest.fixture(scope="module")
def llvm() -> Callable[..., str]:
    return _require("llvm-symbolizer-19", "llvm-pdbutil-19", "llvm-readobj-19", "llvm-objdump-19")


def _field(text: str, pattern: str) -> str:
    """The first group of ``pattern`` in a tool's output."""
    m = re.search(pattern, text)
    assert m, pattern
    return m.group(1)


def chains(r: Resolution) -> list[list[Frame]]:
    out = []
    for i in range(len(r.proc_start)):
        out.append([(r.strings[r.function[j]],
                     re.split(r"[\\/]", r.strings[r.file[j]])[-1] if r.file[j] >= 0 else None,
                     r.line[j]) for j in range(r.chain_start[i], r.chain_start[i + 1])])
    return out


def resolve(image: str, rvas: list[int]) -> tuple[list[int], list[list[Frame]]]:
    r = PdbReader(str((FIXTURES / image).with_suffix(".pdb"))).resolve(rvas)
    assert (r.failed, r.first_error) == (0, None)
    assert len(r.chain_start) == len(rvas) + 1
    return r.proc_start, chains(r)


# --- the example's call sites (callsites.json, written from llvm-symbolizer-19's answers) ---------------------

def test_every_example_callsite_resolves_as_recorded() -> None:
    sites = json.loads((EXAMPLE / "callsites.json").read_text())["callsites"]
    assert {s["caller"] for s in sites if s["allocation"]} >= {"cache_insert", "gfx::Texture::load", "trim_cache"}
    for module in ("app.exe", "plugin.dll"):
        mine = [s for s in sites if s["module"] == module]
        starts, got = resolve(f"../example/{module}", [s["return_rva"] - 1 for s in mine])
        for site, start, chain in zip(mine, starts, got, strict=True):
            assert site["lookup_rva"] == site["return_rva"] - 1
            want = [(f["function"], f["file"], f["line"]) for f in site["frames"]]
            assert (start, chain) == (site["function_rva"], want), site


def test_example_modules_are_as_recorded() -> None:
    modules = json.loads((EXAMPLE / "callsites.json").read_text())["modules"]
    for name, want in modules.items():
        ident = _native.pe_identity(EXAMPLE / name)
        pdb = _native.pdb_identity((EXAMPLE / name).with_suffix(".pdb"))
        assert ident.codeview is not None
        assert (ident.timestamp, ident.size_of_image) == (want["timestamp"], want["size_of_image"])
        assert (ident.codeview.pdb_name, ident.codeview.guid, ident.codeview.age) == tuple(want["pdb"].values())
        assert (pdb.guid, pdb.age) == (want["pdb"]["guid"], want["pdb"]["age"])


def test_callsites_json_is_what_llvm_says_now(llvm: Callable[..., str]) -> None:
    recorded = json.loads((EXAMPLE / "callsites.json").read_text())
    assert [s for m in CALLSITES.MODULES for s in CALLSITES.module_callsites(m)] == recorded["callsites"]
    assert {m: CALLSITES.module_identity(m) for m in CALLSITES.MODULES} == recorded["modules"]


# --- every RVA inside every procedure, against llvm-symbolizer-19 ---------------------------------------------

def _procedures(llvm: Callable[..., str], image: Path) -> list[tuple[int, int, str]]:
    sections = [int(v, 16) for v in re.findall(r"VirtualAddress: 0x([0-9A-Fa-f]+)",
                                               llvm("llvm-readobj-19", "--sections", str(image)))]
    return list(CALLSITES.procedures(image.with_suffix(".pdb"), sections))


def _rows_at_one_offset(llvm: Callable[..., str], pdb: Path, sections: dict[int, int]) -> dict[int, set[int]]:
    """RVA -> lines, where the line table has several rows at one offset (the first ones are empty)."""
    out: dict[int, set[int]] = {}
    for block in re.split(r"\n\s+(?=\d{4}:[0-9A-F]{8}-)", llvm("llvm-pdbutil-19", "dump", "-l", str(pdb))):
        head = re.match(r"(\d{4}):", block)
        if not head:
            continue
        for line, offset in re.findall(r"(\d+) ([0-9A-F]{8}) !", block):
            out.setdefault(sections[int(head.group(1))] + int(offset, 16), set()).add(int(line))
    return {rva: lines for rva, lines in out.items() if len(lines) > 1}


@pytest.mark.parametrize("image", FULL)
def test_sweep_of_every_procedure_matches_llvm_symbolizer(llvm: Callable[..., str], image: str) -> None:
    path = FIXTURES / image
    procs = _procedures(llvm, path)
    rvas = [rva for start, end, _ in procs for rva in range(start, end)]
    sections = {i + 1: int(v, 16) for i, v in enumerate(re.findall(
        r"VirtualAddress: 0x([0-9A-Fa-f]+)", llvm("llvm-readobj-19", "--sections", str(path))))}
    ambiguous = _rows_at_one_offset(llvm, path.with_suffix(".pdb"), sections)
    oracle = CALLSITES.symbolize(path, rvas)
    starts, got = resolve(image, rvas)
    for rva, start, mine, theirs in zip(rvas, starts, got, oracle, strict=True):
        want = [(_spelled(f["function"]), f["file"] or None, f["line"]) for f in theirs]
        mine = [(_spelled(f), file, line) for f, file, line in mine]
        if rva in ambiguous and mine[-1][2] in ambiguous[rva]:
            want[-1] = (want[-1][0], want[-1][1], mine[-1][2])
        assert mine == want, f"{image} RVA {rva:#x}"
        assert start == next(s for s, e, _ in procs if s <= rva < e)
    assert len(rvas) > 20


@pytest.mark.parametrize("image", sorted(PUBLICS_ONLY))
def test_publics_only_pdbs_name_functions_as_their_full_pdbs_do(llvm: Callable[..., str], image: str) -> None:
    """Each RVA takes the nearest public at or below it, unless a section contribution (code without a public:
    a static function) starts in between; the name equals what the full PDB's procedure is called."""
    def publics(pdb: Path) -> dict[str, int]:
        text = llvm("llvm-pdbutil-19", "dump", "-publics", str(pdb))
        return {name: 0x1000 + int(off) for name, off in
                re.findall(r"S_PUB32 \[size = \d+\] `(.+)`\n\s+flags = function, addr = 0001:(\d+)", text)}
    path, full = FIXTURES / image, FIXTURES / PUBLICS_ONLY[image]
    pubs, full_pubs = publics(path.with_suffix(".pdb")), publics(full.with_suffix(".pdb"))
    _, full_names = resolve(PUBLICS_ONLY[image], [full_pubs[n] for n in pubs])
    name_at = {pubs[n]: chain[-1][0] for n, chain in zip(pubs, full_names, strict=True)}
    contribs = [0x1000 + int(o) for o in re.findall(r"SC\[\.text\]\s+\| mod = \d+, 0001:(\d+), size = [1-9]",
                                                   llvm("llvm-pdbutil-19", "dump", "-section-contribs",
                                                        str(path.with_suffix(".pdb"))))]
    starts = sorted(set(name_at) | set(contribs))
    rvas = list(range(starts[0], starts[-1] + 16))
    got_starts, got = resolve(image, rvas)
    for rva, start, chain in zip(rvas, got_starts, got, strict=True):
        nearest = max(s for s in starts if s <= rva)
        if nearest in name_at:
            name = name_at[nearest]
            assert (start, [_spelled(c[0]) for c in chain], chain[0][1:]) == (nearest, [_spelled(name)], (None, 0)), \
                f"{image} RVA {rva:#x}"
        else:
            assert (start, chain) == (-1, []), f"{image} RVA {rva:#x}"
    assert any(s not in name_at for s in starts) == (image == "x86_pub.exe")  # x86.c's static cache_evict


def test_names_keep_templates_and_drop_arguments() -> None:
    _, got = resolve("names.exe", [0x1000, 0x1040, 0x1060, 0x10C0, 0x10D0])
    assert [c[-1][0] for c in got] == ["operator new", "gfx::Texture::load", "gfx::Texture::area",
                                       "gfx::clamp_max<int>", "gfx::clamp_max<long long>"]


# --- identities ------------------------------------------------------------------------------------------------

IMAGES = (*FULL, *PUBLICS_ONLY)


@pytest.mark.parametrize("image", IMAGES)
def test_pe_identity_equals_llvm_readobj(llvm: Callable[..., str], image: str) -> None:
    path = FIXTURES / image
    text = llvm("llvm-readobj-19", "--file-headers", "--coff-debug-directory", str(path))
    ident = _native.pe_identity(str(path))
    assert ident.machine == int(_field(text, r"Machine: .*\((0x[0-9A-F]+)\)"), 16)
    assert ident.timestamp == int(_field(text, r"TimeDateStamp: .*\((0x[0-9A-F]+)\)"), 16)
    assert ident.size_of_image == int(_field(text, r"SizeOfImage: (\d+)"))
    cv = ident.codeview
    assert cv is not None and ident.note is None
    assert (cv.pdb_name, cv.guid, cv.age) == (_field(text, r"PDBFileName: (.+)"),
                                              _field(text, r"PDBGUID: \{(.+)\}").lower(),
                                              int(_field(text, r"PDBAge: (\d+)")))


@pytest.mark.parametrize("image", IMAGES)
def test_pdb_identity_equals_llvm_pdbutil(llvm: Callable[..., str], image: str) -> None:
    pdb = (FIXTURES / image).with_suffix(".pdb")
    yaml = llvm("llvm-pdbutil-19", "pdb2yaml", "-pdb-stream", "-dbi-stream", str(pdb))
    info_age, dbi_age = (int(a) for a in re.findall(r"\n  Age:\s+(\d+)", yaml))
    guid = _field(yaml, r"Guid:\s+'\{(.+)\}'").lower()
    machine = {"Amd64": 0x8664, "x86": 0x14C}[_field(yaml, r"MachineType:\s+(\S+)")]
    ident = _native.pdb_identity(str(pdb))
    assert (ident.guid, ident.age, ident.info_age, ident.machine) == (guid, dbi_age, info_age, machine)
    # what `dump -summary` calls the age is the info stream's
    summary = llvm("llvm-pdbutil-19", "dump", "-summary", str(pdb))
    assert int(_field(summary, r"Age: (\d+)")) == ident.info_age
    reader = PdbReader(str(pdb))
    assert (reader.guid, reader.age, reader.identity.info_age) == (guid, dbi_age, info_age)


def test_age_mismatch_fixture_reports_both_ages() -> None:
    image = _native.pe_identity(str(FIXTURES / "mismatch.exe")).codeview
    pdb = _native.pdb_identity(str(FIXTURES / "mismatch.pdb"))
    assert image is not None and image.guid == pdb.guid
    assert (image.age, pdb.age, pdb.info_age) == (2, 1, 3)
    good = _native.pe_identity(str(FIXTURES / "widget.exe")).codeview
    assert good is not None and good.guid != pdb.guid


# --- what is refused, and how ------------------------------------------------------------------------------------

def _info_stream(pdb: bytes | bytearray) -> int:
    return int(PATCH_AGES.info_stream_offset(pdb))


@pytest.mark.parametrize(("head", "says"), [
    (b"BSJB\x01\x00\x01\x00" + bytes(200), "portable (.NET) PDB"),
    (b"Microsoft MSFZ Container\r\n\x1aALD\0\0" + bytes(200), "MSFZ"),
    (b"Microsoft C/C++ program database 2.00\r\n\x1aJG\0\0" + bytes(200), "program database 2.00"),
    (b"MZ" + bytes(300), "not a PDB"),
    (b"", "truncated"),
])
def test_foreign_and_old_pdb_formats_are_named(tmp_path: Path, head: bytes, says: str) -> None:
    path = tmp_path / "x.pdb"
    path.write_bytes(head)
    for call in (_native.pdb_identity, PdbReader):
        with pytest.raises(NativeError, match=re.escape(says)) as err:
            call(str(path))
        assert str(path) in str(err.value)


def test_fastlink_pdb_is_refused(tmp_path: Path) -> None:
    pdb = bytearray((FIXTURES / "widget.pdb").read_bytes())
    start = _info_stream(pdb)
    vc140 = pdb.index(struct.pack("<I", 20140508), start, start + 4096)  # the feature codes after the name map
    struct.pack_into("<I", pdb, vc140, 0x494E494D)  # MinimalDebugInfo
    path = tmp_path / "fast.pdb"
    path.write_bytes(pdb)
    with pytest.raises(NativeError, match="FASTLINK"):
        _native.pdb_identity(str(path))


@pytest.mark.parametrize("name", ["widget.pdb", "widget.exe", "inl.pd_"])
def test_truncated_files_raise_native_error_with_an_offset(tmp_path: Path, name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    call: Callable[[str], object] = {
        ".pdb": PdbReader, ".exe": _native.pe_identity,
        ".pd_": lambda p: _native.expand_cab(p, str(tmp_path / "out")),
    }[Path(name).suffix]
    # an image is read up to its CodeView record (widget.exe: 0x638..0x65B), not beyond
    cuts = [0, 1, 2, 40, 63, 64, 200, 0x400, 0x640] if name.endswith(".exe") else \
        [0, 1, 31, 56, 4095, 4097, len(data) // 2, len(data) - 1]
    for cut in (c for c in cuts if c < len(data)):
        path = tmp_path / f"cut{cut}"
        path.write_bytes(data[:cut])
        with pytest.raises(NativeError) as err:
            call(str(path))
        assert not (tmp_path / "out").exists()
        assert "byte offset" in str(err.value), (cut, str(err.value))


def test_missing_file_is_a_native_error(tmp_path: Path) -> None:
    for call in (_native.pe_identity, _native.pdb_identity, PdbReader):
        with pytest.raises(NativeError, match="cannot read"):
            call(str(tmp_path / "absent"))


@pytest.mark.parametrize("name", ["inl.pdb", "names_pub.pdb", "../example/app.pdb", "../example/app.exe"])
def test_bit_flipped_files_raise_native_error_or_read(tmp_path: Path, name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    rng = random.Random(name)
    for i in range(60):
        bad = bytearray(data)
        for bit in rng.sample(range(len(data) * 8), 1 + i % 3):
            bad[bit // 8] ^= 1 << (bit % 8)
        path = tmp_path / f"flip{i}"
        path.write_bytes(bad)
        try:
            if name.endswith(".exe"):
                _native.pe_identity(str(path))
            else:
                r = PdbReader(str(path)).resolve(list(range(0x1000, 0x1200)))
                assert len(r.chain_start) == 0x201
        except NativeError as e:
            assert str(path) in str(e)


def test_a_panic_inside_a_parser_reaches_python_as_native_error(tmp_path: Path) -> None:
    """A flip that makes the PDB reader slice past a buffer (found by sampling; pinned in cargo test too)."""
    bad = bytearray((FIXTURES / "names.pdb").read_bytes())
    bad[341_560 // 8] ^= 1 << (341_560 % 8)
    (tmp_path / "p.pdb").write_bytes(bad)
    reader = PdbReader(str(tmp_path / "p.pdb"))
    with pytest.raises(NativeError, match="internal error"):
        reader.resolve(list(range(0x1000, 0x1400)))
    with pytest.raises(NativeError, match="open the PDB again"):
        reader.resolve([0x1000])


# --- cabinets -----------------------------------------------------------------------------------------------------

def test_expand_cab_gives_the_original_bytes(tmp_path: Path) -> None:
    for cab, member in (("inl.pd_", "inl.pdb"), ("widget_lzx.pd_", "widget.pdb")):
        assert _native.expand_cab(FIXTURES / cab, tmp_path / member) == member
        assert (tmp_path / member).read_bytes() == (FIXTURES / member).read_bytes()


def test_expand_cab_of_a_fresh_gcab_cabinet(tmp_path: Path) -> None:
    run = _require("gcab", "cabextract")
    for member in ("names.pdb", "x86_pub.pdb"):
        shutil.copy(FIXTURES / member, tmp_path / member)
        run("gcab", "-c", "-n", "-z", str(tmp_path / "s.pd_"), str(tmp_path / member))
        assert _native.expand_cab(str(tmp_path / "s.pd_"), str(tmp_path / "out.pdb")) == member
        assert (tmp_path / "out.pdb").read_bytes() == (FIXTURES / member).read_bytes()
    # the hand-made LZX cabinet is one an independent reader accepts
    assert "widget.pdb  OK" in run("cabextract", "-t", str(FIXTURES / "widget_lzx.pd_"))


def test_cabinet_of_two_files_is_refused(tmp_path: Path) -> None:
    run = _require("gcab")
    for member in ("inl.pdb", "widget.pdb"):
        shutil.copy(FIXTURES / member, tmp_path / member)
    run("gcab", "-c", "-n", "-z", str(tmp_path / "two.cab"), str(tmp_path / "inl.pdb"), str(tmp_path / "widget.pdb"))
    with pytest.raises(NativeError, match="a cabinet of 2 files"):
        _native.expand_cab(str(tmp_path / "two.cab"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# --- the module itself ------------------------------------------------------------------------------------------

def test_resolve_from_several_threads_agrees_with_one() -> None:
    reader = PdbReader(str(EXAMPLE / "app.pdb"))
    batches = [list(range(0x1000 + i, 0x1400, 7)) for i in range(8)]
    alone = [chains(reader.resolve(b)) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda b: chains(reader.resolve(b)), batches * 3))
    assert together == alone * 3


def test_rvas_outside_32_bits_resolve_to_nothing() -> None:
    r = PdbReader(str(FIXTURES / "widget.pdb")).resolve([-1, 2**32, 2**40])
    assert (r.proc_start, r.chain_start, r.strings) == ([-1, -1, -1], [0, 0, 0, 0], [])


def test_stub_matches_the_extension() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy.stubtest", "heapdiff._native"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
