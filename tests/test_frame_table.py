"""The frame table makes its records all at once and keeps them (a small table), or those asked for on each read
(a large one): every read, in any order, gives the frame the columns say (symbols' record where they named it)."""

from __future__ import annotations

import numpy as np
import pytest

from heapdiff import frame_table
from heapdiff.frame_table import FrameTable
from heapdiff.frames import Frame, SourceFrame


def _table() -> FrameTable:
    """Ten frames: eight in two images (ntdll.dll is allocator plumbing), one kernel frame, one in no image."""
    names = [0, 0, 0, 1, 1, 1, 1, 0, -1, 1]
    values = [0x10, 0x20, 0x30, 0x3A2F0, 0x40, 0x50, 0x60, 0x70, 0x7FF6_1234_0000, 0x80]
    kernel = [False] * 9 + [True]
    return FrameTable(["app.exe", "ntdll.dll"], np.asarray(names, np.int32), np.asarray(values, np.uint64),
                      np.asarray(kernel), np.zeros(10, bool), np.asarray([n if n >= 0 else -1 for n in names],
                                                                           np.int32))


def _expected(t: FrameTable, i: int) -> Frame:
    n, v, k = int(t.name[i]), int(t.value[i]), bool(t.kernel[i])
    if n < 0:
        return Frame(f"0x{v:x}", None, None, k, False)
    return Frame(f"{t.module_names[n]}+0x{v:x}", t.module_names[n], v, k, not k and n == 1)


@pytest.mark.parametrize("kept", [1 << 16, 10, 9, 4, 1])
def test_every_read_gives_the_columns_frame(monkeypatch: pytest.MonkeyPatch, kept: int) -> None:
    monkeypatch.setattr(frame_table, "FRAME_CACHE", kept)
    t = _table()
    named = Frame("app.exe!Load+0x2 (load.c:7)", "app.exe", 0x20, False, False, "Load", 2, "load.c", 7,
                  (SourceFrame("Load", "load.c", 7),))
    t.named[1] = named
    want = [named if i == 1 else _expected(t, i) for i in range(10)]
    order = [9, 0, 5, 1, 8, 2, 7, 3, 6, 4, 0, 9, 1]
    assert [t.frames(np.asarray([i]))[0] for i in order] == [want[i] for i in order]
    assert t.frames(np.asarray(order)) == [want[i] for i in order]
    # plain even where symbols named it
    assert t.plains(np.asarray(order)) == [_expected(t, i).text for i in order]
    assert (t._whole is not None) == (kept >= 10)
    assert want[3].allocator and not want[9].allocator  # ntdll is plumbing; a kernel frame is not
    assert t.plains(np.asarray([8])) == ["0x7ff612340000"]


@pytest.mark.parametrize("kept", [1 << 16, 4])
def test_repeats_symbols_and_an_empty_read(monkeypatch: pytest.MonkeyPatch, kept: int) -> None:
    """A read of many stacks' frames at once says what reading them one by one says: repeats, symbols' records
    and an empty read included."""
    monkeypatch.setattr(frame_table, "FRAME_CACHE", kept)
    t = _table()
    t.named[5] = Frame("ntdll.dll!RtlAllocateHeap+0x10", "ntdll.dll", 0x50, False, True, "RtlAllocateHeap", 0x10)
    ids = np.asarray([3, 5, 5, 9, 0, 8, 5, 1], np.int32)
    assert t.frames(ids) == [t.frames(np.asarray([i]))[0] for i in ids.tolist()]
    assert t.frames(ids)[1] is t.named[5]
    assert t.plains(ids) == [t.plains(np.asarray([i]))[0] for i in ids.tolist()]
    assert t.frames(ids[:0]) == [] and t.plains(ids[:0]) == []
    # the plain texts of frames among those made (a signature among a stack's frames), and of some that are not
    assert t.frames_and_plains(ids, ids[[4, 1, 7]]) == (t.frames(ids), t.plains(ids[[4, 1, 7]]))
    assert t.frames_and_plains(ids[:2], np.asarray([4, 3])) == (t.frames(ids[:2]), t.plains(np.asarray([4, 3])))
    with pytest.raises(IndexError):
        t.frames_and_plains(ids[:2], np.asarray([10]))


@pytest.mark.parametrize("kept", [1 << 16, 4])
def test_a_frame_past_the_table_is_an_index_error(monkeypatch: pytest.MonkeyPatch, kept: int) -> None:
    """Past the end, or negative (which would read from the end of a kept table), for frames and plain texts."""
    monkeypatch.setattr(frame_table, "FRAME_CACHE", kept)
    t = _table()
    for bad in ([10], [0, 4096], [-1], [0, -1]):
        with pytest.raises(IndexError):
            t.frames(np.asarray(bad))
        with pytest.raises(IndexError):
            t.plains(np.asarray(bad))
