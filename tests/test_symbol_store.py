"""Store keys and the probing of local directories: flat, store layout, two-tier, compressed, file.ptr, key case."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heapdiff.frames import PdbId
from heapdiff.symbols.cachedir import cache_root, install_copy, install_expanded
from heapdiff.symbols.store import (
    Hit,
    Unavailable,
    compressed_name,
    flat_candidates,
    pe_key,
    probe_store,
    read_pointer,
)

PDB = PdbId("app.pdb", "b1d8aacf-b7de-28cf-4c4c-44205044422e", 1)
KEY = "B1D8AACFB7DE28CF4C4C44205044422E1"


def _put(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_keys() -> None:
    assert PDB.store_key == KEY
    assert PdbId("a.pdb", "a6259241-788d-4907-4c4c-44205044422e", 0x1A).store_key.endswith("2E1A")
    assert pe_key(0x63E6C7F7, 0x8000) == "63E6C7F78000"   # the documented ShowSSEConfig.exe key
    assert pe_key(0x1234, 0x268000) == "00001234268000"   # the stamp padded to 8 digits, the size not
    assert compressed_name("app.pdb") == "app.pd_"
    assert compressed_name("ntdll.dll") == "ntdll.dl_"


@pytest.mark.parametrize("layout", [
    "app.pdb/{key}/app.pdb",
    "app.pdb/{lower}/app.pdb",   # written by a tool that lowercases keys, on a case-sensitive file system
])
def test_store_layout_upper_then_lower_key(tmp_path: Path, layout: str) -> None:
    file = _put(tmp_path / layout.format(key=KEY, lower=KEY.lower()))
    assert probe_store(tmp_path, "app.pdb", KEY) == Hit(file)


def test_upper_case_key_is_preferred(tmp_path: Path) -> None:
    upper = _put(tmp_path / f"app.pdb/{KEY}/app.pdb")
    _put(tmp_path / f"app.pdb/{KEY.lower()}/app.pdb")
    assert probe_store(tmp_path, "app.pdb", KEY) == Hit(upper)


def test_name_case_from_the_trace_or_lower(tmp_path: Path) -> None:
    file = _put(tmp_path / f"kernelbase.pdb/{KEY}/kernelbase.pdb")
    assert probe_store(tmp_path, "KernelBase.pdb", KEY) == Hit(file)


def test_missing_and_other_key(tmp_path: Path) -> None:
    assert probe_store(tmp_path, "app.pdb", KEY) is None
    _put(tmp_path / "app.pdb/0000/app.pdb")
    assert probe_store(tmp_path, "app.pdb", KEY) is None
    assert probe_store(tmp_path / "no-such-dir", "app.pdb", KEY) is None


def test_two_tier_store(tmp_path: Path) -> None:
    _put(tmp_path / "index2.txt", b"")
    file = _put(tmp_path / f"ap/app.pdb/{KEY}/app.pdb")
    assert probe_store(tmp_path, "app.pdb", KEY) == Hit(file)
    # without index2.txt the two-tier folder is not looked at
    (tmp_path / "index2.txt").unlink()
    assert probe_store(tmp_path, "app.pdb", KEY) is None


def test_two_tier_store_falls_back_to_one_tier(tmp_path: Path) -> None:
    _put(tmp_path / "index2.txt", b"")
    file = _put(tmp_path / f"app.pdb/{KEY}/app.pdb")
    assert probe_store(tmp_path, "app.pdb", KEY) == Hit(file)


def test_compressed_and_order(tmp_path: Path) -> None:
    folder = tmp_path / "app.pdb" / KEY
    packed = _put(folder / "app.pd_")
    assert probe_store(tmp_path, "app.pdb", KEY) == Hit(packed, compressed=True)
    plain = _put(folder / "app.pdb")
    assert probe_store(tmp_path, "app.pdb", KEY) == Hit(plain)  # the plain file before the compressed one


def test_file_ptr_path(tmp_path: Path) -> None:
    real = _put(tmp_path / "elsewhere" / "app.pdb")
    _put(tmp_path / f"store/app.pdb/{KEY}/file.ptr", f"PATH:{real}\r\n".encode())
    assert probe_store(tmp_path / "store", "app.pdb", KEY) == Hit(real)


def test_file_ptr_to_compressed_file(tmp_path: Path) -> None:
    real = _put(tmp_path / "elsewhere" / "app.pd_")
    _put(tmp_path / f"store/app.pdb/{KEY}/file.ptr", f"PATH:{real}".encode())
    assert probe_store(tmp_path / "store", "app.pdb", KEY) == Hit(real, compressed=True)


@pytest.mark.parametrize(("content", "note_has"), [
    (b"MSG:Withheld by the publisher", "Withheld by the publisher"),
    (b"msg: lowercase keyword", "lowercase keyword"),
    (b"PATH:/no/such/file.pdb", "which does not exist"),
    (b"hello", "not a file pointer"),
    (b"", "not a file pointer"),
    (b"PATH:", "not a file pointer"),
    (b"PATH:" + b"x" * 5000, "too long"),
])
def test_file_ptr_unavailable(tmp_path: Path, content: bytes, note_has: str) -> None:
    _put(tmp_path / f"app.pdb/{KEY}/file.ptr", content)
    found = probe_store(tmp_path, "app.pdb", KEY)
    assert isinstance(found, Unavailable)
    assert note_has in found.note


@pytest.mark.skipif(os.name == "nt", reason="a Windows path is a real path on Windows")
def test_file_ptr_to_a_windows_path_on_another_host(tmp_path: Path) -> None:
    found = read_pointer(tmp_path / "file.ptr", rb"PATH:\\symsrv\share\app.pdb\KEY\app.pdb")
    assert isinstance(found, Unavailable)
    assert "a Windows path" in found.note


def test_file_ptr_relative_path_is_relative_to_the_pointer(tmp_path: Path) -> None:
    real = _put(tmp_path / "store/real/app.pdb")
    pointer = _put(tmp_path / f"store/app.pdb/{KEY}/file.ptr", b"PATH:../../real/app.pdb")
    assert read_pointer(pointer, pointer.read_bytes()) == Hit(pointer.parent / "../../real/app.pdb")
    assert real.samefile(pointer.parent / "../../real/app.pdb")


def test_flat_candidates_in_debugger_order(tmp_path: Path) -> None:
    a = _put(tmp_path / "symbols/dll/app.pdb")
    b = _put(tmp_path / "dll/app.pdb")
    c = _put(tmp_path / "app.pdb")
    _put(tmp_path / "symbols/exe/app.pdb")   # another image kind's folder
    assert flat_candidates(tmp_path, "app.pdb", "app.dll") == [a, b, c]
    assert flat_candidates(tmp_path, "app.pdb", "App.DLL") == [a, b, c]
    assert flat_candidates(tmp_path, "other.pdb", "app.dll") == []


def test_flat_candidates_lowercase_name(tmp_path: Path) -> None:
    file = _put(tmp_path / "kernelbase.pdb")
    assert [p.name for p in flat_candidates(tmp_path, "KernelBase.pdb", "kernelbase.dll")] == [file.name]


def test_flat_candidate_image_without_extension(tmp_path: Path) -> None:
    file = _put(tmp_path / "app.pdb")
    assert flat_candidates(tmp_path, "app.pdb", "app") == [file]


@pytest.mark.parametrize(("env", "platform", "expected"), [
    ({"HEAPDIFF_CACHE_DIR": "/x/c"}, "linux", "/x/c"),
    ({"HEAPDIFF_CACHE_DIR": "/x/c", "XDG_CACHE_HOME": "/xdg"}, "linux", "/x/c"),
    ({}, "linux", "/home/u/.cache/heapdiff"),
    ({"XDG_CACHE_HOME": "/xdg"}, "linux", "/xdg/heapdiff"),
    ({"XDG_CACHE_HOME": "relative"}, "linux", "/home/u/.cache/heapdiff"),   # the XDG spec: ignore a relative one
    ({"XDG_CACHE_HOME": ""}, "linux", "/home/u/.cache/heapdiff"),
    ({}, "darwin", "/home/u/Library/Caches/heapdiff"),
    ({"XDG_CACHE_HOME": "/xdg"}, "darwin", "/home/u/Library/Caches/heapdiff"),
    ({"LOCALAPPDATA": "/lad"}, "win32", "/lad/heapdiff"),
    ({}, "win32", "/home/u/AppData/Local/heapdiff"),
    ({}, "freebsd14", "/home/u/.cache/heapdiff"),
])
def test_cache_root(env: dict[str, str], platform: str, expected: str) -> None:
    assert cache_root(env, platform=platform, home=Path("/home/u")) == Path(expected)


def test_install_copy_and_expanded_leave_no_temporary(tmp_path: Path) -> None:
    src = _put(tmp_path / "src" / "a.pdb", b"data")
    dest = tmp_path / "store" / "a.pdb" / KEY / "a.pdb"
    assert install_copy(src, dest) == dest
    assert dest.read_bytes() == b"data"
    assert install_copy(dest, dest) == dest          # copying a file onto itself is a no-op
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.pdb"]

    def expand(cab: Path, out: Path) -> None:
        out.write_bytes(cab.read_bytes().upper())

    def broken(cab: Path, out: Path) -> None:
        out.write_bytes(b"half")
        raise ValueError("bad CAB")

    other = tmp_path / "store" / "b.pdb" / KEY / "b.pdb"
    install_expanded(src, other, expand)
    assert other.read_bytes() == b"DATA"
    with pytest.raises(ValueError, match="bad CAB"):
        install_expanded(src, tmp_path / "store" / "c.pdb" / KEY / "c.pdb", broken)
    assert list((tmp_path / "store" / "c.pdb" / KEY).iterdir()) == []   # no half file, no temporary
