"""The grouping names each distinct frame once, from columns; every frame must still be what naming it on its own
gives (:func:`heapdiff.symbolize.named_frame` on its text, the return addresses looked up one byte back)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from heapdiff.etl.sequences import InternedStacks
from heapdiff.events.decode import ImageEvent
from heapdiff.events.images import ImageMap
from heapdiff.frames import ModuleRequest, ModuleSymbols, ResolvedFrame, SourceFrame
from heapdiff.grouping import group_blocks
from heapdiff.reduce import LiveBlocks
from heapdiff.symbolize import FrameNamer, named_frame

K64 = 0xFFFFF80000000000
#: user images at 0x10000 * (k + 1); names a frame's text parses oddly with too (a ``!``, ``+0x``, a leading 0x)
NAMES = ["app.exe", "ntdll.dll", "a!b.dll", "x+0xy.dll", "0xdead.dll", "lib.dll"]
FUNCTIONS = ["main", "malloc", "operator new", "", "std::allocator<int>::allocate", "parse"]


def answer(module: str, rva: int) -> ResolvedFrame | None:
    """What the fake PDBs say at an rva: nothing, a procedure, an inline chain, an empty name."""
    if rva % 4 == 3:
        return None
    proc = SourceFrame(FUNCTIONS[rva % len(FUNCTIONS)], "C:\\src\\a.c" if rva % 2 else "/src/b.c", rva % 7 or None)
    chain = (SourceFrame("inl", "h.h", 3), proc) if rva % 5 == 0 else (proc,)
    return ResolvedFrame(chain, rva - rva % 16)


class FakeSymbolizer:
    def __init__(self) -> None:
        self.asked: list[tuple[str, list[int]]] = []

    def resolve(self, requests: Sequence[tuple[ModuleRequest, Sequence[int]]]
                ) -> list[tuple[ModuleSymbols, list[ResolvedFrame | None]]]:
        self.asked += [(req.name, list(rvas)) for req, rvas in requests]
        return [(ModuleSymbols("loaded" if req.name != "lib.dll" else "not_found"),
                 [answer(req.name, rva) if req.name != "lib.dll" else None for rva in rvas]) for req, rvas in requests]


def _rva(text: str) -> int | None:
    plus = text.rfind("+0x")
    return int(text[plus + 3:], 16) if plus > 0 and not text.startswith("0x") else None


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_frame_is_named_as_on_its_own(data: st.DataObject) -> None:
    events = [ImageEvent(ts=1, kind="dcstart", pid=7, base=0x10000 * (k + 1), size=0x8000, file_name=name)
              for k, name in enumerate(NAMES)]
    events.append(ImageEvent(ts=1, kind="dcstart", pid=0, base=K64, size=0x10000, file_name="ntoskrnl.exe"))
    if data.draw(st.booleans()):  # an image that comes and goes: that process's stacks go one by one
        events += [ImageEvent(ts=3, kind="load", pid=7, base=0x90000, size=0x1000, file_name="late.dll"),
                   ImageEvent(ts=60, kind="unload", pid=7, base=0x90000, size=0x1000, file_name="late.dll")]
    images = ImageMap(events, 8)
    addr = st.one_of(st.integers(0x10000, 0x70000), st.integers(0x90000, 0x91000), st.integers(K64, K64 + 0x11000))
    stacks = data.draw(st.lists(st.lists(addr, max_size=8), min_size=1, max_size=12))
    seq = InternedStacks()
    sids = [seq.intern(np.asarray(s, np.uint64)) for s in stacks]
    n = len(sids)
    live = LiveBlocks(pid=np.full(n, 7, np.int64), heap=np.full(n, 0x10000, np.uint64),
                      addr=(np.arange(n) * 16 + 0x100000).astype(np.uint64), size=np.full(n, 32, np.uint64),
                      ts=np.asarray(data.draw(st.lists(st.integers(2, 90), min_size=n, max_size=n)), np.int64),
                      source=np.zeros(n, np.uint8), stack=np.asarray(sids, np.int64))
    for symbols in (False, True):
        fake = FakeSymbolizer() if symbols else None
        namer = FrameNamer(images, fake)
        got = group_blocks(live, seq, images, True, namer)
        by_sig = got.by_signature()
        seen_images: set[int] = set()
        for sid in sorted(set(sids)):
            addrs = seq.get(sid)
            located = images.located(7, addrs, int(live.ts[live.stack == sid].min()))
            want = []
            for i, ((text, idx), k) in enumerate(zip(located, (addrs >= np.uint64(K64)).tolist(), strict=True)):
                rva = _rva(text) if idx >= 0 else None
                look = (rva - 1 if i and rva else rva) if rva is not None else -1
                if rva is not None:
                    seen_images.add(idx)
                module = images.images[idx].name if idx >= 0 else ""
                r = (answer(module, look) if fake is not None and rva is not None and module != "lib.dll"
                     else None)
                want.append(named_frame(text, rva, k, r))
            # stacks of the same texts share a group: the same texts name the same frames
            assert by_sig[tuple(text for text, _ in located)].frames == tuple(want)
        assert set(namer.outcomes) == seen_images
        assert all(o.status == ("off" if fake is None else "not_found" if images.images[i].name == "lib.dll"
                                else "loaded") for i, o in namer.outcomes.items())
        if fake is not None:  # one batch per image, each rva once, sorted
            assert all(rvas == sorted(set(rvas)) for _, rvas in fake.asked)
            assert len({name for name, _ in fake.asked}) == len(fake.asked)
