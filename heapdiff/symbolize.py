"""Naming the frames of a trace's stacks: ``module+0xrva`` always, and function, offset, source line and inlined
calls where the shell's :class:`~heapdiff.frames.Symbolizer` finds the image's PDB.

Every frame but the innermost is a return address: the instruction after the call. Looking up ``rva - 1`` finds
the call itself (its line, and the inline chain it sits in), while the offset shown stays the frame's own. All
distinct addresses of a trace go to the symbolizer in one batch per image, so PDBs are found and read once.
"""

from __future__ import annotations

import functools
import ntpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from heapdiff.events.images import ImageMap, LoadedImage
from heapdiff.frames import Frame, ModuleRequest, ModuleSymbols, PdbId, ResolvedFrame, Symbolizer
from heapdiff.rules import is_allocator_frame, module_of_frame

#: (frame text, image index or -1) of one frame, as the image map located it
Located = tuple[str, int]


@dataclass(frozen=True)
class ModuleOutcome:
    """One image that frames of the trace fall in, and how looking up its symbols went."""

    image: LoadedImage
    symbols: ModuleSymbols


def request_for(img: LoadedImage) -> ModuleRequest:
    pdb = (PdbId(ntpath.basename(img.pdb_name.replace("/", "\\")) or f"{img.name.rsplit('.', 1)[0]}.pdb",
                 img.pdb_guid, img.pdb_age) if img.pdb_guid else None)
    return ModuleRequest(name=img.name, path=img.path, timestamp=img.time_date_stamp or None,
                         size=img.end - img.base, pdb=pdb)


def frame_text(module: str, r: ResolvedFrame, rva: int) -> str:
    """``module!procedure+0xoff (file:line)``: the procedure that holds the address and the source line in it
    (for an address in inlined code, the line of the call that was inlined)."""
    proc = r.frames[-1]
    text = f"{module}!{proc.function}+0x{rva - r.proc_start:x}"
    if proc.file and proc.line:
        text += f" ({_file_name(proc.file)}:{proc.line})"
    return text


@functools.lru_cache(maxsize=4096)
def _file_name(path: str) -> str:
    """The last component of a source path as a PDB stores it (Windows or POSIX separators)."""
    return ntpath.basename(path.replace("/", "\\"))


def named_frame(text: str, rva: int | None, kernel: bool, r: ResolvedFrame | None) -> Frame:
    return _named(text, module_of_frame(text), rva, kernel, r, is_allocator_frame)


def _named(text: str, module: str | None, rva: int | None, kernel: bool, r: ResolvedFrame | None,
           allocator: Callable[[str | None, str | None], bool]) -> Frame:
    if r is None or module is None or rva is None or not r.frames or not r.frames[-1].function:
        return Frame(text, module, rva, kernel, not kernel and allocator(module, None))
    inner = r.frames[0]
    proc = r.frames[-1].function
    return Frame(frame_text(module, r, rva), module, rva, kernel, not kernel and allocator(module, proc),
                 function=inner.function, offset=rva - r.proc_start, file=inner.file, line=inner.line,
                 inlined=r.frames[1:])


def _rva(text: str) -> int | None:
    plus = text.rfind("+0x")
    return int(text[plus + 3:], 16) if plus > 0 and not text.startswith("0x") else None


class FrameNamer:
    """Names every frame of one trace's stacks, asking the symbolizer once for all of them."""

    def __init__(self, images: ImageMap, symbolizer: Symbolizer | None) -> None:
        self._images = images
        self._symbolizer = symbolizer
        #: image index -> how its symbols went, for every image a frame fell in
        self.outcomes: dict[int, ModuleSymbols] = {}

    def name(self, places: np.ndarray, texts: Sequence[str], place_image: np.ndarray, addrs: np.ndarray,
             kernel: np.ndarray, inner: np.ndarray) -> list[Frame]:
        """The frame of each of many frames, given as columns: ``places`` indexes the places the image map found
        (each one's frame text in ``texts``, its image index in ``place_image``, -1: none), ``addrs`` are the
        frames' addresses, ``kernel`` marks the kernel's frames and ``inner`` each stack's innermost frame (the
        others are return addresses, looked up one byte back).

        Stacks share most of their frames, so each distinct frame is named once (without symbols its place
        decides it; with them, also whether it is a return address) and the answers are gathered back in one
        pass. What a frame's text would tell (its module, its rva, whether its module is allocator plumbing)
        comes from its image and address, worked out once per image, not parsed back from every text."""
        n = int(places.shape[0])
        if not n:
            return []
        images = self._images.images
        place_addr = np.zeros(len(texts), np.uint64)
        place_addr[places] = addrs
        bases = np.fromiter((img.base for img in images), np.uint64, len(images))
        place_rva = place_addr - bases[np.maximum(place_image, 0)] if images else place_addr
        # per image (index + 1; 0: in no image): the module its frames' texts name, whether that module is
        # allocator plumbing, and whether its texts read as an address (an image named 0x...: no rva)
        shared: list[tuple[str | None, bool, bool]] = [(None, False, True)]
        for img in images:
            module = module_of_frame(f"{img.name}+0x0")
            shared.append((module, is_allocator_frame(module, None), _rva(f"{img.name}+0x0") is None))
        ret = ~inner if self._symbolizer is not None else np.zeros(n, bool)
        keys = (places.astype(np.int64) << 2) | (kernel.astype(np.int64) << 1) | ret.astype(np.int64)
        distinct, back = np.unique(keys, return_inverse=True)
        kplace = distinct >> 2
        todo = []
        for place, key, idx, rva in zip(kplace.tolist(), distinct.tolist(), place_image[kplace].tolist(),
                                        place_rva[kplace].tolist(), strict=True):
            module, plumbing, no_rva = shared[idx + 1]
            frame_rva = None if no_rva else rva
            look = -1 if frame_rva is None else (frame_rva - 1 if key & 1 and frame_rva else frame_rva)
            todo.append((texts[place], idx, module, plumbing, bool(key & 2), frame_rva, look))
        answers = self._resolve({t[1] for t in todo if t[5] is not None},
                                [(t[1], t[6]) for t in todo if t[5] is not None] if self._symbolizer else [])
        allocator = functools.lru_cache(maxsize=None)(is_allocator_frame)
        named = [Frame(text, module, rva, k, not k and plumbing) if (idx, look) not in answers
                 else _named(text, module, rva, k, answers[(idx, look)], allocator)
                 for text, idx, module, plumbing, k, rva, look in todo]
        holder = np.empty(len(named), dtype=object)
        holder[:] = named
        return holder[back.reshape(-1)].tolist()  # type: ignore[no-any-return]  # the Frames gathered

    def _resolve(self, hit: set[int], lookups: Sequence[tuple[int, int]]) -> dict[tuple[int, int], ResolvedFrame]:
        """The symbolizer's answers for (image index, RVA to look up) pairs, asked in one batch per image; every
        image of ``hit`` (those frames fell in) gets an outcome."""
        wanted: dict[int, set[int]] = {idx: set() for idx in hit}
        for idx, look in lookups:
            wanted[idx].add(look)
        if not wanted:
            return {}
        order = sorted(wanted)
        if self._symbolizer is None:
            for idx in order:
                self.outcomes[idx] = ModuleSymbols("off")
            return {}
        rvas = [sorted(wanted[idx]) for idx in order]
        got = self._symbolizer.resolve([(request_for(self._images.images[idx]), r) for idx, r in
                                        zip(order, rvas, strict=True)])
        answers: dict[tuple[int, int], ResolvedFrame] = {}
        for idx, asked, (outcome, frames) in zip(order, rvas, got, strict=True):
            self.outcomes[idx] = outcome
            for rva, r in zip(asked, frames, strict=True):
                if r is not None:
                    answers[(idx, rva)] = r
        return answers

    def modules(self) -> list[ModuleOutcome]:
        """Every image a frame fell in, with its outcome, in image order."""
        return [ModuleOutcome(self._images.images[i], self.outcomes[i]) for i in sorted(self.outcomes)]
