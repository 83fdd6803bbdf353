"""Grouping of outstanding blocks (heapdiff.grouping.group_blocks) on hand-made columns, and the diff of two."""

from __future__ import annotations

import numpy as np
import pytest

from heapdiff.diff import status_of
from heapdiff.document.build import _combine
from heapdiff.document.model import GroupRecord, RunDetails
from heapdiff.etl.sequences import InternedStacks
from heapdiff.events.images import ImageMap
from heapdiff.frames import Frame
from heapdiff.grouping import SAMPLE_ADDRESSES, Counts, Grouping, _same_rows, group_blocks, signature
from heapdiff.reduce import LiveBlocks
from heapdiff.rules import name_group


def _live(rows: list[tuple[int, int, int, int]]) -> LiveBlocks:
    """rows: (stack id, address, size, ts), all in pid 7, heap 0x10000."""
    n = len(rows)
    col = np.array(rows, np.int64).reshape(n, 4)
    return LiveBlocks(pid=np.full(n, 7, np.int64), heap=np.full(n, 0x10000, np.uint64),
                       addr=col[:, 1].astype(np.uint64), size=col[:, 2].astype(np.uint64), ts=col[:, 3],
                       source=np.zeros(n, np.uint8), stack=col[:, 0])


def _index(g: Grouping) -> dict[tuple[str, ...], int]:
    """Each group's index by its signature: the grouping's columns are read at it."""
    return {sig: i for i, sig in enumerate(g.stacks(np.arange(len(g)))[0])}


def _run(starts: np.ndarray, values: np.ndarray, i: int) -> list[int]:
    """Group ``i``'s run of a column kept as offsets into values (its heaps, its sample addresses)."""
    out: list[int] = values[int(starts[i]):int(starts[i + 1])].tolist()
    return out


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
        ia, ib = _index(g)[("0x401000", "0x402000")], _index(g)[("0x501000",)]
        assert g.blocks[ia] == 7 and g.bytes[ia] == 7 * 16
        # oldest first, ties by address; at most SAMPLE_ADDRESSES
        assert _run(g.sample_starts, g.samples, ia) == [0x5000, 0x7000, 0x6000, 0x2000, 0x9000][:SAMPLE_ADDRESSES]
        assert _run(g.sample_starts, g.samples, ib) == [0x3000]


def test_signature_leaves_kernel_frames_out_unless_asked_and_marks_them_in_the_display() -> None:
    names = ["ntoskrnl.exe+0x1000", "app.exe+0x1000", "0x402000"]
    shown = (Frame("ntoskrnl.exe+0x1000", "ntoskrnl.exe", 0x1000, True, False),
             Frame("app.exe+0x1000", "app.exe", 0x1000, False, False), Frame("0x402000", None, None, False, False))
    assert signature(names, shown, False) == ("app.exe+0x1000", "0x402000")
    assert signature(names, shown, True) == tuple(names)
    assert signature(names[1:], shown[1:], False) == tuple(names[1:])
    assert signature([], [], False) == ()


def test_grouping_matches_a_block_by_block_fold() -> None:
    """The vectorised grouping against the plain definition, one block at a time: random blocks over several
    processes, heaps, sources and stacks, two of which resolve to the same signature (one group)."""
    from collections import Counter

    from heapdiff.grouping import HIST_BOUNDS, HIST_LABELS

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
        addrs = seq.get(sid) if sid >= 0 else np.zeros(0, np.uint64)
        sig = tuple(f"0x{int(a):x}" for a in addrs)
        w = want.setdefault(sig, {"blocks": 0, "bytes": 0, "heaps": set(), "sources": Counter(),
                                  "hist": [0] * len(HIST_LABELS), "ts": [], "rows": []})
        size = int(live.size[i])
        w["blocks"] += 1  # type: ignore[operator]
        w["bytes"] += size  # type: ignore[operator]
        w["heaps"].add(int(live.heap[i]))  # type: ignore[attr-defined]
        w["sources"][int(live.source[i])] += 1  # type: ignore[index]
        w["hist"][sum(1 for b in HIST_BOUNDS if size > b)] += 1  # type: ignore[index]
        w["rows"].append((int(live.ts[i]), int(live.addr[i])))  # type: ignore[attr-defined]
    by_sig = _index(got)
    assert set(by_sig) == set(want)
    for sig, w in want.items():
        i = by_sig[sig]
        rows = sorted(w["rows"])  # type: ignore[call-overload]
        heaps = _run(got.heap_starts, got.heaps, i)
        sources = {k: c for k, c in enumerate(got.sources[i].tolist()) if c}
        assert (got.blocks[i], got.bytes[i]) == (w["blocks"], w["bytes"])
        assert (set(heaps), sources) == (w["heaps"], w["sources"])
        assert heaps == sorted(heaps)
        assert got.histogram[i].tolist() == w["hist"]
        assert (got.first_ts[i], got.last_ts[i]) == (rows[0][0], rows[-1][0])
        assert _run(got.sample_starts, got.samples, i) == [a for _, a in rows[:SAMPLE_ADDRESSES]]


def test_grouping_counts_kernel_and_unresolved_frames_as_the_plain_signature_does() -> None:
    """The whole-column frame counts of the grouping against :func:`signature` finding them stack by stack:
    user, kernel-only, mixed and empty stacks, frames in an image, in the kernel's images and in none, with and
    without kernel frames in the signature."""
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
            kernel = (addrs >= np.uint64(images.kernel_floor)).tolist()
            unresolved = [n.startswith("0x") for n in names]
            sig = tuple(n for n, k in zip(names, kernel, strict=True) if kernel_frames or not k)
            want_frames += len(sig)
            want_unres += sum(u for u, k in zip(unresolved, kernel, strict=True) if kernel_frames or not k)
            want.setdefault(sig, tuple(("[k] " if k else "") + n for n, k in zip(names, kernel, strict=True)))
        assert (got.frames, got.unresolved) == (want_frames, want_unres)
        frames = got.stacks(np.arange(len(got)))[1]
        shown = {s: tuple(("[k] " if f.kernel else "") + f.text for f in frames[i]) for s, i in _index(got).items()}
        assert shown == want
        assert want_unres > 0 and any(d[:1] == ("[k] ntoskrnl.exe+0x10",) for d in want.values())


def _record(sig: tuple[str, ...], blocks: int, nbytes: int) -> GroupRecord:
    frames = tuple(Frame(f, f.split("+")[0], int(f.split("+")[1], 16), False, False) for f in sig)
    name = name_group(frames)
    run = RunDetails(Counts(blocks, nbytes), (0x10000,), {"main path": blocks}, {"<=64": blocks}, None, None, ())
    return GroupRecord(sig, frames, name.module, name.label, name.label_index, None, (run,))


def test_two_inputs_match_by_signature_and_the_status_is_decided_once() -> None:
    a, b, c, d = ("app.exe+0x10",), ("app.exe+0x20",), ("app.exe+0x30",), ("app.exe+0x40",)
    before = [_record(a, 2, 64), _record(b, 5, 500), _record(d, 1, 10)]
    after = [_record(a, 3, 96), _record(c, 1, 4000), _record(d, 1, 10)]
    rows = _combine([before, after], None)
    assert [(g.stack, g.status, g.delta) for g in rows] == [
        (c, "new", Counts(1, 4000)), (a, "common", Counts(1, 32)), (d, "common", Counts(0, 0)),
        (b, "gone", Counts(-5, -500))]
    assert rows[0].runs[0] is None and rows[-1].runs[1] is None
    assert status_of(Counts(0, 0), Counts(0, 0)) == "new"


def test_equal_rows_are_found_alike_by_the_matrix_and_by_the_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Model: a dict of tuples. The matrix path and the dict path (past MATRIX_CELLS) number rows the same way
    up to renaming: equal rows get equal numbers, different rows different ones."""
    import heapdiff.grouping as G

    rng = np.random.default_rng(3)
    rows = [tuple(rng.integers(0, 4, rng.integers(0, 5)).tolist()) for _ in range(3000)]
    ids = np.asarray([x for r in rows for x in r], np.int64)
    starts = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(np.int64)
    model: dict[tuple[int, ...], int] = {}
    want = [model.setdefault(r, len(model)) for r in rows]
    for cells in (G.MATRIX_CELLS, 0):
        monkeypatch.setattr(G, "MATRIX_CELLS", cells)
        got = _same_rows(ids, starts).tolist()
        pairs = set(zip(got, want, strict=True))
        assert len(pairs) == len(set(got)) == len(set(want))  # a renaming, one to one
