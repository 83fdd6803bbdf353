"""Naming frames from symbols' answers as columns (heapdiff.symbolize.named_frames, heapdiff.frames.ResolvedColumns),
checked against a plain model: one frame at a time, from one answer object each."""

from __future__ import annotations

import ntpath
import random

import numpy as np
import pytest

from heapdiff.frames import Frame, ResolvedColumns, ResolvedFrame, SourceFrame
from heapdiff.rules import is_allocator_function, is_allocator_module
from heapdiff.symbolize import named_frame, named_frames


def model_frame(module: str, rva: int, kernel: bool, r: ResolvedFrame | None) -> Frame | None:
    """What a frame is named, from its answer alone, the plain way."""
    if r is None or not r.frames or not r.frames[-1].function:
        return None
    inner, proc = r.frames[0], r.frames[-1]
    offset = rva - r.proc_start
    text = f"{module}!{proc.function}+0x{offset:x}"
    if proc.file and proc.line:
        text += f" ({ntpath.basename(proc.file.replace('/', chr(92)))}:{proc.line})"
    allocator = not kernel and (is_allocator_module(module) or is_allocator_function(proc.function))
    return Frame(text, module, rva, kernel, allocator, inner.function, offset, inner.file, inner.line,
                 r.frames[1:])


def named_by_columns(module: str, rvas: list[int], kernels: list[bool], answers: list[ResolvedFrame | None]
                     ) -> list[Frame | None]:
    chosen, made = named_frames(module, np.asarray(rvas, np.int64), np.asarray(kernels, bool),
                                ResolvedColumns.of(answers))
    out: list[Frame | None] = [None] * len(rvas)
    for i, f in zip(chosen.tolist(), made, strict=True):
        out[i] = f
    return out


MAIN = SourceFrame("main", "C:\\src\\app.c", 12)
CASES: list[tuple[str, ResolvedFrame | None]] = [
    ("nothing there", None),
    ("a procedure with a file and line", ResolvedFrame((MAIN,), 0x1000)),
    ("a public symbol: no file, no line", ResolvedFrame((SourceFrame("?f@@YAXXZ", None, None),), 0x1000)),
    ("a file without a line", ResolvedFrame((SourceFrame("f", "a.c", None),), 0x1000)),
    ("line 0", ResolvedFrame((SourceFrame("f", "a.c", 0),), 0x1000)),
    ("an empty file name", ResolvedFrame((SourceFrame("f", "", 3),), 0x1000)),
    ("a POSIX source path", ResolvedFrame((SourceFrame("f", "/src/lib/b.c", 7),), 0x1000)),
    ("a procedure without a name", ResolvedFrame((SourceFrame("", "a.c", 3),), 0x1000)),
    ("an empty chain", ResolvedFrame((), 0x1000)),
    ("an inlined call", ResolvedFrame((SourceFrame("mix", "inl.h", 4), MAIN), 0x1000)),
    ("two inlined calls, the inner one without a file",
     ResolvedFrame((SourceFrame("mix", None, None), SourceFrame("make", "inl.h", 9), MAIN), 0x1000)),
    ("an inlined call without a name", ResolvedFrame((SourceFrame("", "inl.h", 4), MAIN), 0x1000)),
    ("an allocator function", ResolvedFrame((SourceFrame("HeapAlloc", "heap.c", 1),), 0x1000)),
    ("C++ templates", ResolvedFrame((SourceFrame("std::vector<int>::push_back", "<vector>", 5),), 0x1000)),
]


@pytest.mark.parametrize(("module", "kernel"), [("app.exe", False), ("app.exe", True), ("ntdll.dll", False)])
@pytest.mark.parametrize(("what", "answer"), CASES, ids=[c[0] for c in CASES])
def test_each_kind_of_answer_names_a_frame_as_the_model_does(what: str, answer: ResolvedFrame | None, module: str,
                                                             kernel: bool) -> None:
    assert named_by_columns(module, [0x1034], [kernel], [answer]) == [model_frame(module, 0x1034, kernel, answer)]
    assert named_frame(f"{module}+0x1034", 0x1034, kernel, answer) == (
        model_frame(module, 0x1034, kernel, answer) or
        Frame(f"{module}+0x1034", module, 0x1034, kernel, not kernel and is_allocator_module(module)))


def _random_answer(rng: random.Random) -> ResolvedFrame | None:
    if rng.random() < 0.15:
        return None
    names = ["", "f", "g", "operator new", "malloc", "ns::T<a, b>::h"]
    files = [None, "", "a.c", "C:\\src\\b.cpp", "/u/c.h"]
    lines = [None, 0, 1, 77, 1 << 40]
    chain = tuple(SourceFrame(rng.choice(names), rng.choice(files), rng.choice(lines))
                  for _ in range(rng.choice([0, 1, 1, 2, 3, 5])))
    return ResolvedFrame(chain, rng.randrange(0, 0x3000))


@pytest.mark.parametrize("seed", range(20))
def test_many_frames_at_once_are_named_as_the_model_names_each(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(0, 60)
    answers = [_random_answer(rng) for _ in range(n)]
    rvas = [rng.randrange(0, 0x4000) for _ in range(n)]
    kernels = [rng.random() < 0.2 for _ in range(n)]
    module = rng.choice(["app.exe", "ucrtbase.dll"])
    assert named_by_columns(module, rvas, kernels, answers) == [
        model_frame(module, rva, k, r) for rva, k, r in zip(rvas, kernels, answers, strict=True)]


@pytest.mark.parametrize("seed", range(10))
def test_columns_take_and_give_back_the_answers(seed: int) -> None:
    rng = random.Random(seed)
    answers = [_random_answer(rng) for _ in range(rng.randrange(1, 40))]
    # an empty chain is nothing there, in columns as in naming
    plain = [None if r is None or not r.frames else r for r in answers]
    columns = ResolvedColumns.of(answers)
    assert len(columns) == len(answers)
    assert columns.frames() == plain
    index = [rng.randrange(len(answers)) for _ in range(rng.randrange(0, 50))]
    present = [rng.random() < 0.8 for _ in index]
    taken = columns.take(np.asarray(index, np.int64), np.asarray(present, bool))
    assert taken.frames() == [plain[i] if p else None for i, p in zip(index, present, strict=True)]
    assert columns.take(np.asarray(index, np.int64)).frames() == [plain[i] for i in index]


def test_columns_of_no_answers_give_nothing_for_addresses_not_there() -> None:
    none = ResolvedColumns.of([])
    assert none.take(np.zeros(2, np.int64), np.zeros(2, bool)).frames() == [None, None]
    with pytest.raises(IndexError):
        none.take(np.zeros(1, np.int64), np.ones(1, bool))
