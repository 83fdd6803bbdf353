"""Frames as module+rva: image lifetimes, kernel images serving every process, and the vectorised path agreeing
with the one-address path."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from heapdiff.events.decode import ImageEvent
from heapdiff.events.images import ImageMap, module_name

K64 = 0xFFFFF80000000000


def _img(ts: int, kind: str, pid: int, base: int, size: int, name: str) -> ImageEvent:
    return ImageEvent(ts=ts, kind=kind, pid=pid, base=base, size=size, file_name=name)


def test_module_name_is_the_last_component_lowercased() -> None:
    assert module_name("\\Device\\HarddiskVolume3\\Windows\\System32\\NTDLL.DLL") == "ntdll.dll"
    assert module_name("\\SystemRoot\\system32\\ntoskrnl.exe") == "ntoskrnl.exe"
    assert module_name("C:/x/App.exe") == "app.exe"


def test_lifetimes_and_kernel_images() -> None:
    m = ImageMap([
        _img(5, "dcstart", 10, 0x400000, 0x1000, "\\a\\app.exe"),
        _img(50, "load", 10, 0x500000, 0x1000, "\\a\\late.dll"),
        _img(80, "unload", 10, 0x500000, 0x1000, "\\a\\late.dll"),
        _img(5, "dcstart", 0, K64, 0x100000, "\\SystemRoot\\system32\\ntoskrnl.exe"),
    ], 8)
    assert m.frame(10, 0x400010, 1) == "app.exe+0x10"          # a rundown image was there from the start
    assert m.frame(10, 0x500020, 40) == "0x500020"             # not loaded yet
    assert m.frame(10, 0x500020, 60) == "late.dll+0x20"
    assert m.frame(10, 0x500020, 90) == "0x500020"             # unloaded
    assert m.frame(10, K64 + 0x30, 1) == "ntoskrnl.exe+0x30"   # kernel images serve every process
    assert m.frame(11, 0x400010, 1) == "0x400010"              # another process's image does not
    assert m.frame(10, 0x401000, 1) == "0x401000"              # one past the end


def test_32_bit_kernel_floor() -> None:
    m = ImageMap([_img(1, "dcstart", 0, 0x80400000, 0x1000, "hal.dll")], 4)
    assert m.is_kernel(0x80400000) and not m.is_kernel(0x7FFFFFFF)
    assert m.frame(77, 0x80400004, 2) == "hal.dll+0x4"


def test_the_first_table_holding_an_address_names_it() -> None:
    """Kernel addresses: System's and Idle's images come before the process's own (as :meth:`ImageMap.find`
    has it), in the vectorised paths too, even where a later table also holds the address."""
    events = [_img(1, "dcstart", 4, K64, 0x100000, "ntoskrnl.exe"),
              _img(1, "dcstart", 0, K64 + 0x1000, 0x1000, "hal.dll"),
              _img(1, "dcstart", 10, K64, 0x2000, "drv.sys"),
              _img(1, "dcstart", 10, 0x400000, 0x1000, "app.exe")]
    m = ImageMap(events, 8)
    addrs = np.array([K64 + 0x1010, K64 + 0x10, 0x400010, 0x500000], np.uint64)
    want = [m.frame(10, int(a), 5) for a in addrs.tolist()]
    assert want[2:] == ["app.exe+0x10", "0x500000"] and not any(w.startswith("drv.sys") for w in want)
    assert m.frames(10, addrs, 5) == want
    assert ImageMap(events, 8).frames_many([10], [addrs], [5]) == [want]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_vectorised_frames_agree_with_single_lookups(data: st.DataObject) -> None:
    events = []
    pids = [0, 4, 100, 200]
    for _ in range(data.draw(st.integers(0, 12))):
        pid = data.draw(st.sampled_from(pids))
        # kernel images belong to System/Idle; now and then a process's image lies there too (the kernel's
        # images come first: the first table that holds an address names it)
        kernel = data.draw(st.booleans()) if pid in (0, 4) else data.draw(st.integers(0, 4)) == 0
        base = (K64 if kernel else 0x10000) + data.draw(st.integers(0, 64)) * 0x1000
        size = data.draw(st.integers(1, 5)) * 0x1000
        kind = data.draw(st.sampled_from(["dcstart", "dcstart", "load", "unload", "dcend"]))
        events.append(_img(data.draw(st.integers(0, 100)), kind, pid, base, size, f"m{base:x}.dll"))
    m = ImageMap(events, 8)
    pid = data.draw(st.sampled_from(pids))
    ts = data.draw(st.integers(0, 110))
    # several calls on one map: answers remembered from earlier calls (static processes) must still agree
    for _ in range(3):
        addrs = np.asarray(data.draw(st.lists(st.one_of(st.integers(0x10000, 0x60000),
                                                        st.integers(K64, K64 + 0x60000)), max_size=20)), np.uint64)
        assert m.frames(pid, addrs, ts) == [m.frame(pid, int(a), ts) for a in addrs.tolist()]
    # many stacks of several processes at once
    n = data.draw(st.integers(0, 6))
    many_pids = [data.draw(st.sampled_from([*pids, 300])) for _ in range(n)]
    many_ts = [data.draw(st.integers(0, 110)) for _ in range(n)]
    many = [np.asarray(data.draw(st.lists(st.one_of(st.integers(0x10000, 0x60000), st.integers(K64, K64 + 0x60000)),
                                          max_size=8)), np.uint64) for _ in range(n)]
    fresh = ImageMap(events, 8)
    assert fresh.frames_many(many_pids, many, many_ts) == [
        [m.frame(p, int(a), t) for a in ad.tolist()] for p, ad, t in zip(many_pids, many, many_ts, strict=True)]


def test_utf16z_terminator_is_a_whole_character() -> None:
    from heapdiff.events.decode import _utf16z

    # "\u0100" is 00 01 in UTF-16-LE: with "A\0" before it the bytes hold 00 00 across two characters
    raw = "A".encode("utf-16-le") + "\u0100B".encode("utf-16-le") + b"\x00\x00" + b"zz"
    assert _utf16z(raw, 0) == ("A\u0100B", len(raw) - 2)
    assert _utf16z("abc".encode("utf-16-le"), 0) == ("abc", 6)          # unterminated: runs to the end
    assert _utf16z(b"\x00\x00x", 0) == ("", 2)
    assert _utf16z("ab".encode("utf-16-le") + b"\x00", 0) == ("ab", 5)  # odd tail byte is not a character
