"""Grouping of outstanding blocks (heapdiff.diff.group_blocks) on hand-made columns."""

from __future__ import annotations

import numpy as np

from heapdiff.diff import SAMPLE_ADDRESSES, LiveColumns, group_blocks
from heapdiff.etl.reader import SequenceTable
from heapdiff.events.images import ImageMap


def _live(rows: list[tuple[int, int, int, int]]) -> LiveColumns:
    """rows: (stack id, address, size, ts), all in pid 7, heap 0x10000."""
    n = len(rows)
    col = np.array(rows, np.int64).reshape(n, 4)
    return LiveColumns(pid=np.full(n, 7, np.int64), heap=np.full(n, 0x10000, np.uint64),
                       addr=col[:, 1].astype(np.uint64), size=col[:, 2].astype(np.uint64), ts=col[:, 3],
                       source=np.zeros(n, np.uint8), stack=col[:, 0])


def test_samples_are_the_oldest_blocks_whatever_the_stack_numbering() -> None:
    seq = SequenceTable()
    a = seq.intern(np.array([0x401000, 0x402000], np.uint64))
    b = seq.intern(np.array([0x501000], np.uint64))
    # the same frames under a second id (as two traces' tables, or a resolved and a re-interned stack, may give)
    seq2 = SequenceTable()
    b2 = seq2.intern(np.array([0x501000], np.uint64))
    a2 = seq2.intern(np.array([0x401000, 0x402000], np.uint64))
    assert (a, b) != (a2, b2)
    rows = [(a, 0x9000, 16, 50), (a, 0x1000, 16, 90), (a, 0x5000, 16, 10), (a, 0x7000, 16, 10),
            (b, 0x3000, 32, 5), (a, 0x8000, 16, 70), (a, 0x2000, 16, 30), (a, 0x6000, 16, 20)]
    images = ImageMap([], 8)
    first = group_blocks(_live(rows), seq, images, kernel_frames=False)
    renumbered = [({a: a2, b: b2}[s], ad, sz, t) for s, ad, sz, t in rows]
    second = group_blocks(_live(renumbered[::-1]), seq2, images, kernel_frames=False)
    for g in (first, second):
        ga = g.groups[("0x401000", "0x402000")]
        assert ga.blocks == 7 and ga.bytes == 7 * 16
        # oldest first, ties by address; at most SAMPLE_ADDRESSES
        assert ga.sample_addresses == [0x5000, 0x7000, 0x6000, 0x2000, 0x9000][:SAMPLE_ADDRESSES]
        assert g.groups[("0x501000",)].sample_addresses == [0x3000]


def test_signature_leaves_kernel_frames_out_unless_asked_and_marks_them_in_the_display() -> None:
    from heapdiff.diff import _signature

    floor = 0xFFFF800000000000
    addrs = np.array([0xFFFFF80000001000, 0x401000, 0x402000], np.uint64)
    names = ["ntoskrnl.exe+0x1000", "app.exe+0x1000", "0x402000"]
    assert _signature(names, addrs, floor, kernel_frames=False) == (
        ("app.exe+0x1000", "0x402000"), ("[k] ntoskrnl.exe+0x1000", "app.exe+0x1000", "0x402000"), 2, 1)
    assert _signature(names, addrs, floor, kernel_frames=True) == (
        tuple(names), ("[k] ntoskrnl.exe+0x1000", "app.exe+0x1000", "0x402000"), 3, 1)
    user = np.array([0x401000, 0x402000], np.uint64)
    assert _signature(names[1:], user, floor, kernel_frames=False) == (tuple(names[1:]), tuple(names[1:]), 2, 1)
    assert _signature(None, None, floor, kernel_frames=False) == ((), (), 0, 0)
