"""Grouping of outstanding blocks (heapdiff.diff.group_blocks) on hand-made columns."""

from __future__ import annotations

import numpy as np

from heapdiff.diff import SAMPLE_ADDRESSES, group_blocks
from heapdiff.etl.sequences import InternedStacks
from heapdiff.events.images import ImageMap
from heapdiff.reduce import LiveBlocks


def _live(rows: list[tuple[int, int, int, int]]) -> LiveBlocks:
    """rows: (stack id, address, size, ts), all in pid 7, heap 0x10000."""
    n = len(rows)
    col = np.array(rows, np.int64).reshape(n, 4)
    return LiveBlocks(pid=np.full(n, 7, np.int64), heap=np.full(n, 0x10000, np.uint64),
                       addr=col[:, 1].astype(np.uint64), size=col[:, 2].astype(np.uint64), ts=col[:, 3],
                       source=np.zeros(n, np.uint8), stack=col[:, 0])


def test_samples_are_the_oldest_blocks_whatever_the_stack_numbering() -> None:
    seq = InternedStacks()
    a = seq.intern(np.array([0x401000, 0x402000], np.uint64))
    b = seq.intern(np.array([0x501000], np.uint64))
    # the same frames under a second id (as two traces' tables, or a resolved and a re-interned stack, may give)
    seq2 = InternedStacks()
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


def test_grouping_matches_a_block_by_block_fold() -> None:
    """The vectorised grouping against the plain definition, one block at a time: random blocks over several
    processes, heaps, sources and stacks, two of which resolve to the same signature (one group)."""
    from collections import Counter

    from heapdiff.diff import HIST_BOUNDS, HIST_LABELS, _signature

    rng = np.random.default_rng(7)
    seq = InternedStacks()
    frames = [np.array(f, np.uint64) for f in ([0x401000, 0x402000], [0x501000], [0x601000, 0x401000], [0x501000])]
    sids = [seq.intern(f) for f in frames] + [-1]  # the 4th is the 2nd again (same id); -1: no stack
    n = 3000
    live = LiveBlocks(pid=rng.choice([4, 9, 12], n).astype(np.int64),
                       heap=rng.choice([0x10000, 0x20000, 0x30000], n).astype(np.uint64),
                       addr=(rng.permutation(n) * 16 + 0x100000).astype(np.uint64),
                       size=rng.choice([1, 16, 100, 5000, 1 << 21], n).astype(np.uint64),
                       ts=rng.integers(0, 50, n).astype(np.int64), source=rng.choice([0, 1, 5], n).astype(np.uint8),
                       stack=rng.choice(sids, n).astype(np.int64))
    images = ImageMap([], 8)
    got = group_blocks(live, seq, images, kernel_frames=False)

    want: dict[tuple[str, ...], dict[str, object]] = {}
    for i in range(n):
        sid = int(live.stack[i])
        names = [f"0x{int(a):x}" for a in seq.get(sid)] if sid >= 0 else None
        sig = _signature(names, seq.get(sid) if sid >= 0 else None, images.kernel_floor, False)[0]
        w = want.setdefault(sig, {"blocks": 0, "bytes": 0, "heaps": set(), "sources": Counter(),
                                  "hist": [0] * len(HIST_LABELS), "ts": [], "rows": []})
        size = int(live.size[i])
        w["blocks"] += 1  # type: ignore[operator]
        w["bytes"] += size  # type: ignore[operator]
        w["heaps"].add(int(live.heap[i]))  # type: ignore[attr-defined]
        w["sources"][int(live.source[i])] += 1  # type: ignore[index]
        w["hist"][sum(1 for b in HIST_BOUNDS if size > b)] += 1  # type: ignore[index]
        w["rows"].append((int(live.ts[i]), int(live.addr[i])))  # type: ignore[attr-defined]
    assert set(got.groups) == set(want)
    for sig, w in want.items():
        g = got.groups[sig]
        rows = sorted(w["rows"])  # type: ignore[call-overload]
        assert (g.blocks, g.bytes, g.heaps, g.sources) == (w["blocks"], w["bytes"], w["heaps"], w["sources"])
        assert g.histogram.tolist() == w["hist"]
        assert (g.first_ts, g.last_ts) == (rows[0][0], rows[-1][0])
        assert g.sample_addresses == [a for _, a in rows[:SAMPLE_ADDRESSES]]


def test_grouping_counts_kernel_and_unresolved_frames_as_the_plain_signature_does() -> None:
    """The whole-column frame counts of the grouping against :func:`_signature` finding them stack by stack:
    user, kernel-only, mixed and empty stacks, frames in an image, in the kernel's images and in none, with and
    without kernel frames in the signature."""
    from heapdiff.diff import _signature
    from heapdiff.events.decode import ImageEvent

    k64 = 0xFFFFF80000000000
    images = ImageMap([ImageEvent(ts=1, kind="dcstart", pid=7, base=0x400000, size=0x10000, file_name="\\a\\app.exe"),
                       ImageEvent(ts=1, kind="dcstart", pid=0, base=k64, size=0x100000, file_name="ntoskrnl.exe")],
                      8)
    stacks = [[0x401000, 0x402000], [k64 + 0x10, k64 + 0x20], [k64 + 0x10, 0x401000, 0x900000],
              [], [0x900000, 0x401000, 0xFFFFF90000000000], [0x403000]]
    seq = InternedStacks()
    sids = [seq.intern(np.array(f, np.uint64)) for f in stacks]
    n = len(sids) * 3
    live = LiveBlocks(pid=np.full(n, 7, np.int64), heap=np.full(n, 0x10000, np.uint64),
                       addr=(np.arange(n) * 16 + 0x100000).astype(np.uint64), size=np.full(n, 32, np.uint64),
                       ts=np.arange(n, dtype=np.int64) + 5, source=np.zeros(n, np.uint8),
                       stack=np.array(sids * 3, np.int64))
    for kernel_frames in (False, True):
        got = group_blocks(live, seq, images, kernel_frames)
        want_frames = want_unres = 0
        want: dict[tuple[str, ...], tuple[str, ...]] = {}
        for sid in sorted(sids):  # the grouping's pair order; a signature's first stack gives its display
            addrs = seq.get(sid)
            names = images.frames(7, addrs, 5)
            sig, display, nfr, nunres = _signature(names, addrs, images.kernel_floor, kernel_frames)
            want_frames += nfr
            want_unres += nunres
            want.setdefault(sig, display)
        assert (got.frames, got.unresolved) == (want_frames, want_unres)
        assert {s: g.display for s, g in got.groups.items()} == want
        assert want_unres > 0 and any(d[:1] == ("[k] ntoskrnl.exe+0x10",) for d in want.values())
