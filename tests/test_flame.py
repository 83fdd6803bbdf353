"""The call trees of the report (``heapdiff.report.flame``): model-based against plain sums over the groups,
pruning that never changes a parent's totals, kernel frames left out and allocator frames folded away, and the
bound on nodes and time however large the input."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import pytest
from view_docs import big_tree_doc, document, frame, group

from heapdiff.document.model import Document, FrameRecord, GroupRecord
from heapdiff.grouping import ZERO, Counts
from heapdiff.report.flame import MAX_DEPTH, MAX_KEPT, OTHER_FRAMES, OUTER_FRAMES, _groups, build_tree, call_trees
from heapdiff.report.view import CallNode, CallTree
from heapdiff.rules import NO_STACK


def random_doc(seed: int, n: int, diff: bool) -> Document:
    """Stacks from a small alphabet (so paths share prefixes and split), kernel frames on top and sometimes in
    the middle, allocator frames inside the label, no-stack and suppressed groups, zero and negative deltas."""
    rng = random.Random(seed)
    outer = [f"ntdll.dll+0x{k:x}" for k in range(2)]
    users = [f"app.exe+0x{k:x}" for k in range(12)] + [f"lib{k}.dll+0x{k:x}" for k in range(4)]
    groups = []
    for _ in range(n):
        frames: list[FrameRecord] = []
        if rng.random() < 0.9:
            frames += [frame(f"ntoskrnl.exe+0x{rng.randrange(3):x}", "k") for _ in range(rng.randrange(3))]
            frames += [frame(rng.choice(["ntdll.dll+0x3a1b0", "ucrtbase.dll+0x10"]), "a")
                       for _ in range(rng.randrange(3))]
            frames += [frame(rng.choice(users)) for _ in range(rng.randrange(0, 6))]
            if rng.random() < 0.1:
                frames.insert(len(frames) // 2, frame("ntoskrnl.exe+0x99", "k"))
            frames += [frame(f) for f in outer[:rng.randrange(3)]]
        blocks = rng.randrange(0, 5)
        after = (blocks, blocks * rng.choice([0, 16, 64, 1000]))
        before = (rng.randrange(0, 5), rng.randrange(0, 5000)) if diff else None
        if before is not None and before[0] == 0:
            before = (0, 0)
        if rng.random() < 0.05:
            after = before or after  # an unchanged group
        groups.append(group(frames, before, after, "pattern" if rng.random() < 0.05 else None))
    return document(groups, diff)


# --------------------------------------------------------------------------------------------- the model


def model_path(g: GroupRecord) -> tuple[str, ...]:
    """What a group contributes, innermost first, from its own frames: the allocating function (the first frame
    that is neither kernel nor allocator) and its callers, kernel frames left out."""
    if not g.frames:
        return (NO_STACK,)
    first = next((i for i, f in enumerate(g.frames) if not f.kernel and not f.allocator), None)
    if first is None:
        first = next((i for i, f in enumerate(g.frames) if not f.kernel), 0)
    return tuple(f.text for f in g.frames[first:] if not f.kernel) or (g.label,)


Sums = tuple[int, int, int, int, int, int, int]


def model_sums(gs: Sequence[GroupRecord], diff: bool) -> Sums:
    """A plain sum: after blocks/bytes, before blocks/bytes, growth, shrink, groups."""
    out = [0] * 7
    for g in gs:
        a = g.last
        b = g.counts(0) if diff else ZERO
        d = a.bytes - b.bytes
        for k, v in enumerate((a.blocks, a.bytes, b.blocks, b.bytes, max(d, 0), min(d, 0), 1)):
            out[k] += v
    return tuple(out)  # type: ignore[return-value]


def node_sums(n: CallNode) -> Sums:
    f = n.figures
    b = f.before or ZERO
    return (f.after.blocks, f.after.bytes, b.blocks, b.bytes, n.growth, n.shrink, n.groups)


def directed(g: GroupRecord, direction: str) -> tuple[str, ...]:
    p = model_path(g)
    return p if direction == "bottom_up" else p[::-1]


def node_paths(tree: CallTree) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for n in tree.nodes:
        paths.append(() if n.parent < 0 else (*paths[n.parent], n.frame))
    return paths


def kids_of(tree: CallTree) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {i: [] for i in range(len(tree.nodes))}
    for i, n in enumerate(tree.nodes):
        if n.parent >= 0:
            kids[n.parent].append(i)
    return kids


def check_against_model(doc: Document, tree: CallTree) -> None:
    """Each frame node sums exactly the groups whose path runs through it; each "other" node sums the groups of
    its parent that continue into no kept sibling; every parent is its own groups plus its children."""
    diff = doc.is_diff
    live = [g for g in doc.groups if g.suppressed_by is None]
    paths = {id(g): directed(g, tree.direction) for g in live}
    npaths = node_paths(tree)
    kids = kids_of(tree)
    for i, n in enumerate(tree.nodes):
        if n.other:
            parent = npaths[n.parent]
            kept = {tree.nodes[k].frame for k in kids[n.parent] if not tree.nodes[k].other}
            through = [g for g in live if paths[id(g)][:len(parent)] == parent and len(paths[id(g)]) > len(parent)
                       and paths[id(g)][len(parent)] not in kept]
            assert n.frame == OTHER_FRAMES and not kids[i]
            # every collapsed sibling frame is counted
            assert n.other == len({paths[id(g)][len(parent)] for g in through})
        else:
            p = npaths[i]
            through = [g for g in live if paths[id(g)][:len(p)] == p]
        assert node_sums(n) == model_sums(through, diff), (i, npaths[i] if not n.other else "other")
        # pruning never changes a parent's totals: its own groups plus its children make it up exactly
        if not n.other:
            own = [g for g in live if paths[id(g)] == npaths[i]]
            acc = model_sums(own, diff)
            for k in kids[i]:
                acc = tuple(x + y for x, y in zip(acc, node_sums(tree.nodes[k]), strict=True))  # type: ignore[assignment]
            assert acc == node_sums(n), i


def check_shape(tree: CallTree) -> None:
    """Preorder (a parent before its children), siblings largest first, one "other" node last among them,
    sizes never growing from a parent to a child."""
    kids = kids_of(tree)
    for i, n in enumerate(tree.nodes):
        assert n.parent < i
        sizes = [tree.nodes[k].size for k in kids[i] if not tree.nodes[k].other]
        assert sizes == sorted(sizes, reverse=True)
        others = [k for k in kids[i] if tree.nodes[k].other]
        assert len(others) <= 1 and (not others or others[0] == kids[i][-1])
        assert all(tree.nodes[k].size <= n.size for k in kids[i])


@pytest.mark.parametrize("diff", [True, False])
@pytest.mark.parametrize(("min_share", "max_kept"), [(0.0, 10**6), (0.01, 10**6), (0.2, 10**6), (0.0, 7),
                                                     (0.001, 40)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_trees_match_a_plain_sum_over_the_groups(seed: int, diff: bool, min_share: float, max_kept: int) -> None:
    doc = random_doc(seed, 300, diff)
    gs = _groups(doc)
    for direction in ("top_down", "bottom_up"):
        tree = build_tree(gs, direction, diff, min_share=min_share, max_kept=max_kept)
        check_against_model(doc, tree)
        check_shape(tree)
        kept = [n for n in tree.nodes if not n.other]
        assert len(kept) <= max_kept
        root = tree.nodes[0]
        assert root.frame == "" and root.parent == -1
        # the root is every group that is not suppressed: the document's totals
        assert root.figures.after == doc.totals.last
        if diff:
            assert root.figures.before == doc.totals.runs[0]
            assert (root.growth, root.shrink) == (doc.totals.growth.bytes, doc.totals.shrink.bytes)
        else:
            assert root.figures.before is None and root.shrink == 0 and root.growth == doc.totals.last.bytes
        threshold = max(min_share * root.size, 1)
        assert all(n.size >= threshold for n in kept[1:])
        if max_kept >= 10**6:  # no cap: exactly the nodes at or above the share are kept
            assert not tree.capped


def test_unpruned_tree_keeps_every_frame_node() -> None:
    doc = random_doc(7, 200, True)
    tree = build_tree(_groups(doc), "bottom_up", True, min_share=0.0, max_kept=10**6)
    live = [g for g in doc.groups if g.suppressed_by is None]
    moved = {directed(g, "bottom_up")[:k] for g in live for k in range(1, len(directed(g, "bottom_up")) + 1)
             if model_sums([h for h in live if directed(h, "bottom_up")[:k] == directed(g, "bottom_up")[:k]],
                           True)[4:6] != (0, 0)}
    assert {p for p in node_paths(tree)[1:]} >= moved


# ------------------------------------------------------------------------------- kernel and allocator frames


def test_kernel_frames_left_out_and_allocator_frames_folded() -> None:
    stack = [frame("ntoskrnl.exe+0x2f8ab1", "k"), frame("ntdll.dll+0x3a1b0", "a"), frame("ucrtbase.dll+0x10e2a", "a"),
             frame("app.exe+0x1a2b"), frame("ntoskrnl.exe+0x1", "k"), frame("app.exe+0x4410"),
             frame("kernel32.dll+0x17614"), frame("ntdll.dll+0x526f1")]
    other = [frame("ntdll.dll+0x3a1b0", "a"), frame("app.exe+0x2210"), frame("app.exe+0x4410"),
             frame("kernel32.dll+0x17614"), frame("ntdll.dll+0x526f1")]
    doc = document([group(stack, (0, 0), (3, 300)), group(other, (1, 100), (0, 0))], True)
    top, bottom = call_trees(doc)
    texts = {n.frame for t in (top, bottom) for n in t.nodes}
    assert not any(t.startswith("ntoskrnl") for t in texts)
    assert "ntdll.dll+0x3a1b0" not in texts and "ucrtbase.dll+0x10e2a" not in texts
    # bottom-up: rooted at the allocating functions, then their callers
    assert [n.frame for n in bottom.nodes] == ["", "app.exe+0x1a2b", "app.exe+0x4410", "kernel32.dll+0x17614",
                                               "ntdll.dll+0x526f1", "app.exe+0x2210", "app.exe+0x4410",
                                               "kernel32.dll+0x17614", "ntdll.dll+0x526f1"]
    # top-down: the shared callers once, splitting at the allocating functions; growth and shrink kept apart
    assert [(n.frame, n.growth, n.shrink) for n in top.nodes] == [
        ("", 300, -100), ("ntdll.dll+0x526f1", 300, -100), ("kernel32.dll+0x17614", 300, -100),
        ("app.exe+0x4410", 300, -100), ("app.exe+0x1a2b", 300, 0), ("app.exe+0x2210", 0, -100)]
    assert top.nodes[3].size == 400  # what moved, never the net 200
    assert top.nodes[3].figures.delta == Counts(2, 200)


def test_stacks_without_a_label_frame() -> None:
    only_alloc = [frame("ntoskrnl.exe+0x1", "k"), frame("ntdll.dll+0x3a1b0", "a"), frame("ntdll.dll+0x526f1", "a")]
    only_kernel = [frame("ntoskrnl.exe+0x1", "k"), frame("ntoskrnl.exe+0x2", "k")]
    doc = document([group([], None, (1, 50)), group(only_alloc, None, (1, 40)), group(only_kernel, None, (1, 30))],
                   False)
    _, bottom = call_trees(doc)
    assert [(n.frame, n.figures.after.bytes) for n in bottom.nodes] == [
        ("", 120), (NO_STACK, 50), ("ntdll.dll+0x3a1b0", 40), ("ntdll.dll+0x526f1", 40), ("ntoskrnl.exe+0x1", 30)]


def test_suppressed_groups_are_left_out() -> None:
    a = [frame("app.exe+0x1")]
    doc = document([group(a, None, (1, 100)), group([frame("bad.dll+0x1")], None, (1, 5000), "bad.dll")], False)
    for t in call_trees(doc):
        assert [n.frame for n in t.nodes] == ["", "app.exe+0x1"]
        assert t.nodes[0].figures.after == Counts(1, 100)


def test_a_deep_stack_keeps_the_frames_nearest_its_allocating_function() -> None:
    deep = [frame("ntdll.dll+0x3a1b0", "a")] + [frame(f"app.exe+0x{k:x}") for k in range(1000)]
    _, bottom = call_trees(document([group(deep, None, (1, 64))], False))
    assert len(bottom.nodes) == MAX_DEPTH + 1
    assert [n.frame for n in bottom.nodes[1:4]] == ["app.exe+0x0", "app.exe+0x1", "app.exe+0x2"]
    assert bottom.nodes[-1].frame == OUTER_FRAMES


def test_frame_text_is_cleaned() -> None:
    doc = document([group([frame("app\u2028.exe+0x1\x1b[31m")], None, (1, 64))], False)
    assert call_trees(doc)[0].nodes[1].frame == "app\\u2028.exe+0x1\\x1b[31m"


def test_empty_and_unchanged_documents() -> None:
    for doc in (document([], True), document([group([frame("a.dll+0x1")], (2, 64), (2, 64))], True)):
        for t in call_trees(doc):
            assert t.nodes[0].size == 0
            # nothing moved: the unchanged groups are one "other" node, so the root still sums them
            check_against_model(doc, t)


# ---------------------------------------------------------------------------------------------------- bounds


@pytest.fixture(scope="module")
def doc_100k() -> Document:
    return big_tree_doc(100_000, 40)


def test_100k_groups_deep_stacks_stay_bounded(doc_100k: Document) -> None:
    t0 = time.perf_counter()
    trees = call_trees(doc_100k)
    took = time.perf_counter() - t0
    print(f"\ncall trees of 100,000 groups 40 frames deep: {took:.2f} s, nodes "
          f"{[len(t.nodes) for t in trees]}, capped {[t.capped for t in trees]}")
    for t in trees:
        assert len(t.nodes) <= 2 * MAX_KEPT + 1
        assert sum(not n.other for n in t.nodes) <= MAX_KEPT
        assert t.capped
        check_shape(t)
        root = t.nodes[0]
        assert (root.growth, root.shrink) == (doc_100k.totals.growth.bytes, doc_100k.totals.shrink.bytes)
        kids = kids_of(t)
        for i, n in enumerate(t.nodes):  # the parent's totals are its children's plus its own groups' (none here)
            if kids[i]:
                assert tuple(map(sum, zip(*(node_sums(t.nodes[k]) for k in kids[i]), strict=True))) == node_sums(n)
    # the time is the groups' (their paths, one partition per taken node), not the full tree's
    assert took < 20


def test_pruned_tree_sums_match_the_model_under_the_cap() -> None:
    doc = big_tree_doc(2000, 12)
    gs = _groups(doc)
    for direction in ("top_down", "bottom_up"):
        tree = build_tree(gs, direction, True, max_kept=120)
        assert tree.capped
        check_against_model(doc, tree)
        check_shape(tree)


def _as_args(tree: CallTree) -> list[Any]:
    return [(n.frame, n.parent, node_sums(n), n.other) for n in tree.nodes]


def test_trees_are_deterministic() -> None:
    a = call_trees(random_doc(11, 500, True))
    b = call_trees(random_doc(11, 500, True))
    assert [_as_args(t) for t in a] == [_as_args(t) for t in b]
