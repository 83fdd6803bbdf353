"""Naming the frames of a trace's stacks: ``module+0xrva`` always, and function, offset, source line and inlined
calls where the shell's :class:`~heapdiff.frames.Symbolizer` finds the image's PDB.

Every frame but the innermost is a return address: the instruction after the call. Looking up ``rva - 1`` finds
the call itself (its line, and the inline chain it sits in), while the offset shown stays the frame's own. All
distinct addresses of a trace go to the symbolizer in one batch per image, so PDBs are found and read once.
"""

from __future__ import annotations

import ntpath
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from heapdiff.events.images import ImageMap, LoadedImage
from heapdiff.frame_table import FrameTable
from heapdiff.frames import Frame, ModuleRequest, ModuleSymbols, PdbId, ResolvedFrame, Symbolizer
from heapdiff.rules import is_allocator_frame, is_allocator_function, is_allocator_module, module_of_frame

#: (frame text, image index or -1) of one frame, as the image map located it
Located = tuple[str, int]


@dataclass(frozen=True)
class ModuleOutcome:
    """One image that frames of the trace fall in, and how looking up its symbols went."""

    image: LoadedImage
    symbols: ModuleSymbols


def request_for(img: LoadedImage) -> ModuleRequest:
    rsds = img.rsds
    pdb = (PdbId(ntpath.basename(rsds.pdb_file_name.replace("/", "\\")) or f"{img.name.rsplit('.', 1)[0]}.pdb",
                 rsds.pdb_guid, rsds.pdb_age) if rsds is not None else None)
    return ModuleRequest(name=img.name, path=img.path, timestamp=img.time_date_stamp or None,
                         size=img.end - img.base, pdb=pdb)


@lru_cache(maxsize=1 << 16)
def _file_name(path: str) -> str:
    """The last component of a source path as a PDB stores it (Windows or POSIX separators)."""
    return ntpath.basename(path.replace("/", "\\"))


@lru_cache(maxsize=1 << 16)
def _allocator_function(function: str) -> bool:
    return is_allocator_function(function)


def _resolved_frames(module: str, plumbing: bool, rvas: Sequence[int], kernels: Sequence[bool],
                     answers: Sequence[ResolvedFrame | None]) -> list[Frame | None]:
    """The frames of one module that the symbols resolved, None where an answer names no procedure. A frame's
    text is ``module!procedure+0xoff (file:line)``: the procedure that holds the address and the source line in it
    (in inlined code, the line of the call that was inlined). One loop over a trace's distinct frames, not a call
    each: each chain's rows are unpacked once, and a file's name and whether a function is allocator plumbing are
    worked out once per file and per function."""
    new = tuple.__new__
    files: dict[str, str] = {}
    allocators: dict[str, bool] = {}
    out: list[Frame | None] = []
    for rva, kernel, r in zip(rvas, kernels, answers, strict=True):
        chain, proc_start = r if r is not None else ((), 0)
        if not chain or not chain[-1][0]:
            out.append(None)
            continue
        inner_function, inner_file, inner_line = chain[0]
        function, file, line = chain[-1]
        offset = rva - proc_start
        if file and line:
            name = files.get(file)
            if name is None:
                name = files[file] = _file_name(file)
            text = f"{module}!{function}+0x{offset:x} ({name}:{line})"
        else:
            text = f"{module}!{function}+0x{offset:x}"
        allocator = allocators.get(function)
        if allocator is None:
            allocator = allocators[function] = plumbing or _allocator_function(function)
        out.append(new(Frame, (text, module, rva, kernel, not kernel and allocator, inner_function, offset,
                               inner_file, inner_line, chain[1:])))  # (the fields in order)
    return out


def named_frame(text: str, rva: int | None, kernel: bool, r: ResolvedFrame | None) -> Frame:
    module = module_of_frame(text)
    got = (_resolved_frames(module, is_allocator_module(module), (rva,), (kernel,), (r,))[0]
           if module is not None and rva is not None else None)
    return got if got is not None else Frame(text, module, rva, kernel, not kernel and is_allocator_frame(module, None))


def _rva(text: str) -> int | None:
    plus = text.rfind("+0x")
    return int(text[plus + 3:], 16) if plus > 0 and not text.startswith("0x") else None


class FrameNamer:
    """Names every frame of one trace's stacks, asking the symbolizer once for all of them."""

    def __init__(self, images: ImageMap, symbolizer: Symbolizer | None) -> None:
        self._images = images
        self._symbolizer = symbolizer
        self._memo: dict[tuple[str, bool, int, int], Frame] = {}
        #: image index -> how its symbols went, for every image a frame fell in
        self.outcomes: dict[int, ModuleSymbols] = {}

    def name(self, stacks: Sequence[Sequence[Located]], kernel: Sequence[Sequence[bool]]) -> list[list[Frame]]:
        """The frames of each stack, innermost first; ``kernel`` marks each frame that is the kernel's."""
        answers = self._resolve(stacks)
        out = []
        for stack, kflags in zip(stacks, kernel, strict=True):
            frames = []
            for i, ((text, idx), k) in enumerate(zip(stack, kflags, strict=True)):
                rva = _rva(text) if idx >= 0 else None
                look = (rva - 1 if i and rva else rva) if rva is not None else -1
                key = (text, k, idx, look)
                f = self._memo.get(key)
                if f is None:
                    f = self._memo[key] = named_frame(text, rva, k, answers.get((idx, look)))
                frames.append(f)
            out.append(frames)
        return out

    def _resolve(self, stacks: Sequence[Sequence[Located]]) -> dict[tuple[int, int], ResolvedFrame]:
        wanted: dict[int, set[int]] = {}
        for stack in stacks:
            for i, (text, idx) in enumerate(stack):
                if idx < 0:
                    continue
                rva = _rva(text)
                if rva is not None:
                    wanted.setdefault(idx, set()).add(rva - 1 if i and rva else rva)
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

    def name_table(self, table: FrameTable) -> None:
        """Name the distinct frames of a trace (:class:`~heapdiff.frame_table.FrameTable`) in place: every frame in
        an image is asked of the symbolizer, a return address at ``rva - 1``; the named ones go to
        ``table.named``. Every image a frame falls in gets an outcome ("off" without a symbolizer)."""
        hit = np.flatnonzero(table.image >= 0)
        if not hit.shape[0]:
            return
        if self._symbolizer is None:  # symbols off: each image's outcome, nothing looked up or sorted
            for idx in np.unique(table.image[hit]).tolist():
                self.outcomes[idx] = ModuleSymbols("off")
            return
        img = table.image[hit]
        rva = table.value[hit].astype(np.int64)
        look = np.where(table.innermost[hit] | (rva == 0), rva, rva - 1)
        order = np.lexsort((look, img))
        img, look, hit = img[order], look[order], hit[order]
        cut = np.flatnonzero(img[1:] != img[:-1]) + 1
        firsts = np.concatenate(([0], cut))
        groups = list(zip(img[firsts].tolist(), np.split(look, cut), np.split(hit, cut), strict=True))
        asked_of = [np.unique(looks) for _, looks, _ in groups]
        requests = [(request_for(self._images.images[idx]), asked.tolist())
                    for (idx, _, _), asked in zip(groups, asked_of, strict=True)]
        answers = self._symbolizer.resolve(requests)
        for (idx, looks, frames), asked, (outcome, resolved) in zip(groups, asked_of, answers, strict=True):
            self.outcomes[idx] = outcome
            if len(resolved) != len(asked):
                raise ValueError(f"the symbolizer answered {len(resolved)} of {len(asked)} addresses")
            if all(r is None for r in resolved):
                continue
            # one image: one module name, and whether it is allocator plumbing, for all its frames
            module = table.module_names[int(table.name[frames[0]])]
            plumbing = is_allocator_module(module)
            # each frame's answer by its address's place among those asked (sorted, as np.unique made them)
            made = _resolved_frames(module, plumbing, table.value[frames].tolist(), table.kernel[frames].tolist(),
                                    [resolved[k] for k in np.searchsorted(asked, looks).tolist()])
            table.named.update((i, f) for i, f in zip(frames.tolist(), made, strict=True) if f is not None)

    def modules(self) -> list[ModuleOutcome]:
        """Every image a frame fell in, with its outcome, in image order."""
        return [ModuleOutcome(self._images.images[i], self.outcomes[i]) for i in sorted(self.outcomes)]
