"""Symbols through the whole tool: written traces of the example's real images resolve to what the PDBs say (the
LLVM answers recorded in fixtures/example/callsites.json), a PDB of another identity or a damaged one is never
used, groups of two builds match by function, and a report made without symbols can be named later."""

from __future__ import annotations

import json
import pathlib
import shutil
import time
from collections.abc import Sequence
from typing import Any

import pytest
from cli_run import run

from heapdiff.frames import ModuleRequest, ModuleSymbols, ResolvedColumns, ResolvedFrame, SourceFrame
from heapdiff.tracegen.scenario import APP, IMAGES, Module, Process, Scenario
from heapdiff.tracegen.writer import TraceWriter

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "fixtures" / "example"
CALLSITES = json.loads((EXAMPLE / "callsites.json").read_text(encoding="utf-8"))


def doc_of(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[dict[str, Any], str]:
    code, out, err = run(capsys, *args, "--json", "-", "-q")
    assert code == 0, err
    d: dict[str, Any] = json.loads(out)
    return d, err


def _module(name: str, base: int, *, age: int | None = None, guid: str | None = None) -> Module:
    stamp, size, (pdb, real_guid, real_age) = IMAGES[name]
    return Module(name, APP + name, base, size, stamp, (pdb, guid or real_guid, real_age if age is None else age))


def _write(path: pathlib.Path, stacks: Sequence[Sequence[tuple[str, int]]], **identity: Any) -> None:
    """One process of the example's images; one leaking block per stack."""
    w = TraceWriter(str(path), cpus=1, buffer_size=0x4000)
    sc = Scenario(w, cpus=1)
    mods = {"app.exe": _module("app.exe", 0x7FF6_2000_0000, **identity),
            "plugin.dll": _module("plugin.dll", 0x7FFA_3000_0000, **identity),
            "ntdll.dll": Module("ntdll.dll", "C:\\Windows\\System32\\ntdll.dll", 0x7FFA_1000_0000, 0x1F8000)}
    p = Process(4242, "app.exe", mods, heaps=[0x10000], threads=[8])
    sc.start_process(p)
    for stack in stacks:
        sc.alloc(p, [("ntdll.dll", 0x3A2F0), *stack], 100)
    sc.close()


def _every_callsite() -> list[list[tuple[str, int]]]:
    """Each call site as the second frame of a stack (the innermost is ntdll): looked up at its return - 1."""
    return [[(c["module"], c["return_rva"])] for c in CALLSITES["callsites"]]


def test_every_call_site_resolves_to_what_the_pdb_says(tmp_path: pathlib.Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("app.exe", "app.pdb", "plugin.dll", "plugin.pdb"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    _write(tmp_path / "t.etl", _every_callsite())
    d, _ = doc_of(capsys, str(tmp_path / "t.etl"))
    want = {(c["module"], c["return_rva"]): c for c in CALLSITES["callsites"]}
    seen = 0
    for g in d["groups"]:
        f = g["frames"][1]
        c = want[(f["module"], int(f["rva"], 16))]
        oracle = c["frames"]  # innermost first, the procedure last: llvm-symbolizer-19 at return - 1
        assert f["function"] == oracle[0]["function"]
        assert (pathlib.PureWindowsPath(f["file"]).name, f["line"]) == (oracle[0]["file"], oracle[0]["line"])
        assert [i["function"] for i in f["inlined"]] == [o["function"] for o in oracle[1:]]
        assert [i["line"] for i in f["inlined"]] == [o["line"] for o in oracle[1:]]
        assert int(f["offset"], 16) == c["return_rva"] - c["function_rva"]
        proc = oracle[-1]
        assert f["text"] == f"{c['module']}!{proc['function']}+0x{c['return_rva'] - c['function_rva']:x} " \
                            f"({proc['file']}:{proc['line']})"
        assert g["frames"][0]["function"] is None  # ntdll: no PDB here
        seen += 1
    assert seen == len(CALLSITES["callsites"]) == 24
    modules = {m["name"]: m for m in d["traces"][0]["modules"]}
    assert modules["app.exe"]["symbols"] == "loaded" and modules["app.exe"]["symbol_file"].endswith("app.pdb")
    assert modules["app.exe"]["pdb"] == {"name": "app.pdb", "guid": IMAGES["app.exe"][2][1], "age": 1}
    assert modules["app.exe"]["timestamp"] == f"0x{IMAGES['app.exe'][0]:x}" and modules["app.exe"]["pid"] == "4242"
    assert modules["ntdll.dll"]["symbols"] == "not_found" and "not found" in modules["ntdll.dll"]["note"]


def test_the_bundled_example_names_its_leaks(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    d, err = doc_of(capsys, str(EXAMPLE / "before.etl"), str(EXAMPLE / "after.etl"), "-o", str(tmp_path / "r.html"))
    labels = [g["label"] for g in d["groups"]]
    assert labels[:2] == ["plugin.dll!gfx::Texture::load+0x56 (plugin.cpp:25)", "app.exe!parse_line+0x1e (app.c:22)"]
    assert d["groups"][0]["frames"][1]["inlined"][0]["function"] == "gfx::Texture::load"
    assert d["filters"]["match"] == "function" and d["filters"]["symbols"] == str(EXAMPLE)
    assert err == ""  # no noise about the system modules nobody asked symbols for
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert '<code class="inline">gfx::alloc_pixels (plugin.cpp:17)</code>' in html


@pytest.mark.parametrize(("identity", "why"), [
    ({"age": 2}, "age 1; the image wants {3429b01a-eb0b-e191-4c4c-44205044422e} age 2"),
    ({"guid": "00000000-1111-2222-3333-444444444444"}, "the image wants {00000000-1111-2222-3333-444444444444}"),
])
def test_a_pdb_of_another_identity_is_never_used(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str],
                                                 identity: dict[str, Any], why: str) -> None:
    shutil.copy(EXAMPLE / "app.pdb", tmp_path / "app.pdb")
    _write(tmp_path / "t.etl", [[("app.exe", 0x101E)]], **identity)
    d, err = doc_of(capsys, str(tmp_path / "t.etl"), "--symbols", str(tmp_path))
    app = next(m for m in d["traces"][0]["modules"] if m["name"] == "app.exe")
    assert app["symbols"] == "mismatch" and why in app["note"], app["note"]
    assert d["groups"][0]["label"] == "app.exe+0x101e"  # unnamed, never named from the wrong PDB
    assert "symbols: app.exe: mismatch:" in err


@pytest.fixture
def fresh_cache(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache of this test's own: what another test parsed from the good PDB must not stand in for it."""
    monkeypatch.setenv("HEAPDIFF_CACHE_DIR", str(tmp_path / "cache-root"))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.usefixtures("fresh_cache")
def test_a_damaged_pdb_gives_a_note_and_unnamed_frames(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str],
                                                       damage: str) -> None:
    good = (EXAMPLE / "app.pdb").read_bytes()
    (tmp_path / "app.pdb").write_bytes(b"\x00garbage" * 999 if damage == "garbage" else good[:len(good) // 3])
    _write(tmp_path / "t.etl", [[("app.exe", 0x101E)]])
    d, err = doc_of(capsys, str(tmp_path / "t.etl"), "--symbols", str(tmp_path))
    app = next(m for m in d["traces"][0]["modules"] if m["name"] == "app.exe")
    assert app["symbols"] in ("error", "not_found") and app["note"]
    assert d["groups"][0]["label"] == "app.exe+0x101e" and "Traceback" not in err


@pytest.mark.usefixtures("fresh_cache")
def test_a_missing_server_is_a_note_within_the_time_out(tmp_path: pathlib.Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "t.etl", [[("app.exe", 0x101E)]])
    start = time.monotonic()
    d, err = doc_of(capsys, str(tmp_path / "t.etl"), "--symbols", f"srv*{tmp_path / 'cache'}*http://127.0.0.1:9/",
                    "--symbol-timeout", "2")
    assert time.monotonic() - start < 15
    app = next(m for m in d["traces"][0]["modules"] if m["name"] == "app.exe")
    assert app["symbols"] == "not_found" and "127.0.0.1:9" in app["note"]
    assert "symbols: app.exe: not found:" in err


def test_a_windows_symbol_path_parses_everywhere(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "t.etl", [[("app.exe", 0x101E)]])
    shutil.copy(EXAMPLE / "app.pdb", tmp_path / "app.pdb")
    d, _err = doc_of(capsys, str(tmp_path / "t.etl"), "--symbols", f"C:\\Symbols;cache*D:\\sym;{tmp_path}")
    assert d["groups"][0]["label"] == "app.exe!parse_line+0x1e (app.c:22)"
    assert "C:\\Symbols" in d["filters"]["symbols"]


def test_no_symbols_and_a_later_symbolize(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    before, after = str(EXAMPLE / "before.etl"), str(EXAMPLE / "after.etl")
    d, _ = doc_of(capsys, before, after, "--no-symbols", "-o", str(tmp_path / "r.html"))
    assert d["groups"][0]["label"] == "plugin.dll+0x1056" and d["filters"]["symbols"] is None
    assert {m["symbols"] for t in d["traces"] for m in t["modules"]} == {"off"}
    (tmp_path / "plain.json").write_text(json.dumps(d), encoding="utf-8")
    code, out, _ = run(capsys, "symbolize", str(tmp_path / "plain.json"), "--symbols", str(EXAMPLE))
    assert code == 0 and "plugin.dll!gfx::Texture::load+0x56 (plugin.cpp:25)" in out
    named = json.loads((tmp_path / "plain.symbolized.json").read_text(encoding="utf-8"))
    assert [g["label"] for g in named["groups"]][:2] == ["plugin.dll!gfx::Texture::load+0x56 (plugin.cpp:25)",
                                                        "app.exe!parse_line+0x1e (app.c:22)"]
    assert [(g["stack"], g["delta"]) for g in named["groups"]] == [(g["stack"], g["delta"]) for g in d["groups"]]
    assert (tmp_path / "plain.symbolized.html").is_file()
    code, _, err = run(capsys, "symbolize", str(tmp_path / "plain.json"), "--json", str(tmp_path / "plain.json"))
    assert code == 2 and "would be overwritten" in err


def test_symbols_and_no_symbols_together_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(EXAMPLE / "after.etl"), "--symbols", "x", "--no-symbols")
    assert code == 2 and "--symbols and --no-symbols" in err


# ------------------------------------------------------------------- two builds, a fake symbolizer in-process


class _Names:
    """A symbolizer that knows two builds of app.exe by the PDB age: the same functions at other addresses."""

    def __init__(self, names: dict[tuple[int, int], str]) -> None:
        self.names = names  # (build, rva) -> function

    def resolve(self, requests: Sequence[tuple[ModuleRequest, Sequence[int]]]
                ) -> list[tuple[ModuleSymbols, ResolvedColumns]]:
        out = []
        for req, rvas in requests:
            build = req.pdb.age if req.pdb is not None else 0
            frames: list[ResolvedFrame | None] = []
            for rva in rvas:
                fn = self.names.get((build, rva))
                frames.append(ResolvedFrame((SourceFrame(fn, "C:\\src\\app.c", 10),), rva & ~0xFF)
                              if fn is not None else None)
            out.append((ModuleSymbols("loaded" if req.pdb is not None else "not_found"), ResolvedColumns.of(frames)))
        return out


def _build(path: pathlib.Path, age: int, leak_rva: int, caller_rva: int, n: int) -> None:
    _write(path, [[("app.exe", leak_rva), ("app.exe", caller_rva)]] * n, age=age)


def _report(paths: Sequence[pathlib.Path], names: _Names, match: str) -> Any:
    from heapdiff.cli.inputs import map_all
    from heapdiff.commands.report import ReportOptions, run_report

    mapped = map_all([str(p) for p in paths])
    try:
        return run_report(mapped, ReportOptions(symbolizer=names, symbol_path="(test)",
                                                match="rva" if match == "rva" else "function"))
    finally:
        for tf in mapped:
            tf.close()


def test_two_builds_match_by_function(tmp_path: pathlib.Path) -> None:
    _build(tmp_path / "v1.etl", 1, 0x1010, 0x1210, 2)
    _build(tmp_path / "v2.etl", 2, 0x1030, 0x1250, 5)   # rebuilt: the same code moved
    names = _Names({(1, 0x100F): "parse_line", (1, 0x120F): "read_config",
                    (2, 0x102F): "parse_line", (2, 0x124F): "read_config"})
    by_function = _report([tmp_path / "v1.etl", tmp_path / "v2.etl"], names, "function").document
    (g,) = by_function.groups
    assert g.status == "common" and (g.counts(0).blocks, g.counts(1).blocks) == (2, 5)
    assert g.stack == ("ntdll.dll+0x3a2f0", "app.exe!parse_line", "app.exe!read_config")
    by_rva = _report([tmp_path / "v1.etl", tmp_path / "v2.etl"], names, "rva").document
    assert sorted(g.status or "" for g in by_rva.groups) == ["gone", "new"]


def test_allocator_frames_are_known_by_function_and_names_are_escaped(tmp_path: pathlib.Path) -> None:
    _build(tmp_path / "t.etl", 1, 0x1010, 0x1210, 1)
    names = _Names({(1, 0x100F): "operator new", (1, 0x120F): "Widget<std::vector<int>>::make</script><b>"})
    result = _report([tmp_path / "t.etl"], names, "function")
    (g,) = result.document.groups
    assert g.frames[1].allocator and g.label.startswith("app.exe!Widget<std::vector<int>>::make</script><b>+0x")
    assert "</script><b>" not in result.html
    assert "Widget&lt;std::vector&lt;int&gt;&gt;::make&lt;/script&gt;&lt;b&gt;" in result.html
