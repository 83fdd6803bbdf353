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
from heapdiff.rules import is_allocator_frame, is_allocator_function, module_of_frame

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
        place_rva = (place_addr - bases[np.maximum(place_image, 0)] if images else place_addr).astype(np.int64)
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
        kimg = place_image[kplace]
        krva = place_rva[kplace]
        has_rva = ~np.asarray([no_rva for _, _, no_rva in shared], bool)[kimg + 1]
        look = np.where(has_rva, krva - ((distinct & 1).astype(bool) & (krva != 0)), -1)
        answers = self._answers(kimg, look, has_rva)
        named = self._frames(kplace.tolist(), kimg.tolist(), krva.tolist(), ((distinct & 2) != 0).tolist(),
                             answers, texts, shared)
        holder = np.empty(len(named), dtype=object)
        holder[:] = named
        return holder[back.reshape(-1)].tolist()  # type: ignore[no-any-return]  # the Frames gathered

    def _answers(self, image: np.ndarray, look: np.ndarray, has_rva: np.ndarray) -> list[ResolvedFrame | None]:
        """The symbolizer's answer at each frame's lookup RVA, asked in one batch per image (each RVA once, in
        order); every image a frame with an rva fell in gets an outcome."""
        out = np.full(image.shape[0], None, dtype=object)
        order = np.unique(image[has_rva]).tolist()
        if self._symbolizer is None:
            for idx in order:
                self.outcomes[idx] = ModuleSymbols("off")
            return out.tolist()  # all None
        members = [np.flatnonzero(has_rva & (image == idx)) for idx in order]
        asked = [np.unique(look[m]) for m in members]
        got = self._symbolizer.resolve([(request_for(self._images.images[idx]), rvas.tolist())
                                        for idx, rvas in zip(order, asked, strict=True)])
        for idx, m, rvas, (outcome, frames) in zip(order, members, asked, got, strict=True):
            self.outcomes[idx] = outcome
            answer = np.empty(len(frames), dtype=object)
            answer[:] = frames
            out[m] = answer[np.searchsorted(rvas, look[m])]
        return out.tolist()  # ResolvedFrame or None each

    @staticmethod
    def _frames(places: list[int], image: list[int], rvas: list[int], kernel: list[bool],
                answers: list[ResolvedFrame | None], texts: Sequence[str],
                shared: list[tuple[str | None, bool, bool]]) -> list[Frame]:
        """One Frame per distinct frame: :func:`named_frame` without its per-frame parsing, the text's parts of
        a procedure made once (its rows are shared objects)."""
        named = []
        heads: dict[tuple[str, int], tuple[str, str, bool]] = {}
        for place, idx, rva, k, r in zip(places, image, rvas, kernel, answers, strict=True):
            module, plumbing, no_rva = shared[idx + 1]
            chain = r.frames if r is not None else ()
            if not chain or module is None or no_rva or not chain[-1].function:
                named.append(Frame(texts[place], module, None if no_rva else rva, k, not k and plumbing))
                continue
            assert r is not None
            proc = chain[-1]
            head = heads.get((module, id(proc)))
            if head is None:
                tail = f" ({_file_name(proc.file)}:{proc.line})" if proc.file and proc.line else ""
                head = heads[(module, id(proc))] = (f"{module}!{proc.function}+0x", tail,
                                                    plumbing or is_allocator_function(proc.function))
            offset = rva - r.proc_start
            first = chain[0]
            named.append(Frame(f"{head[0]}{offset:x}{head[1]}", module, rva, k, not k and head[2], first.function,
                               offset, first.file, first.line, chain[1:]))
        return named

    def modules(self) -> list[ModuleOutcome]:
        """Every image a frame fell in, with its outcome, in image order."""
        return [ModuleOutcome(self._images.images[i], self.outcomes[i]) for i in sorted(self.outcomes)]
