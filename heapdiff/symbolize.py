"""Naming the frames of a trace's stacks: ``module+0xrva`` always, and function, offset, source line and inlined
calls where the shell's :class:`~heapdiff.frames.Symbolizer` finds the image's PDB.

Every frame but the innermost is a return address: the instruction after the call. Looking up ``rva - 1`` finds
the call itself (its line, and the inline chain it sits in), while the offset shown stays the frame's own. All
distinct addresses of a trace go to the symbolizer in one batch per image, so PDBs are found and read once; the
answers come back as columns and are named column by column (a trace names tens of thousands of frames at once).
"""

from __future__ import annotations

import ntpath
import operator
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat

import numpy as np

from heapdiff._runs import run_positions
from heapdiff.events.images import ImageMap, LoadedImage
from heapdiff.frame_table import FrameTable
from heapdiff.frames import (
    Frame,
    ModuleRequest,
    ModuleSymbols,
    PdbId,
    ResolvedColumns,
    ResolvedFrame,
    Symbolizer,
    source_frames,
)
from heapdiff.rules import is_allocator_frame, is_allocator_function, is_allocator_module, module_of_frame


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


def named_frames(module: str, rvas: np.ndarray, kernels: np.ndarray, answers: ResolvedColumns
                 ) -> tuple[np.ndarray, list[Frame]]:
    """The frames of one module that symbols named: their positions in ``rvas`` and their records. Frame ``i``
    is at RVA ``rvas[i]``, is the kernel's where ``kernels[i]``, and its address resolved to ``answers`` entry
    ``i``; it is named when that answer has a procedure with a name. Its text is ``module!procedure+0xoff
    (file:line)``: the procedure that holds the address and the source line in it (in inlined code, the line of
    the call that was inlined). Column by column, with the Python work done once per distinct function and file;
    long because it is one walk down a record's fields."""
    strings = answers.strings
    function, file, line = answers.function, answers.file, answers.line
    if not function.shape[0]:
        return np.zeros(0, np.int64), []
    inner, proc = answers.chain_start[:-1], answers.chain_start[1:] - 1
    # strings by index, the last entry standing for -1: "" as a function (no name), None as a file
    names = np.empty(len(strings) + 1, object)
    names[:-1] = strings
    names[-1] = ""
    files = names.copy()
    files[-1] = None
    has_name = names.astype(bool)
    chosen = np.flatnonzero((answers.proc_start >= 0) & (proc >= inner)
                            & has_name[function[np.maximum(proc, 0)]])
    inner, proc = inner[chosen], proc[chosen]
    rva = np.asarray(rvas, np.int64)[chosen]
    kernel = np.asarray(kernels, bool)[chosen]
    offset = rva - answers.proc_start[chosen]
    proc_function, proc_file, proc_line = function[proc], file[proc], line[proc]
    if is_allocator_module(module):
        allocator = np.ones(len(strings) + 1, bool)
    else:
        allocator = np.zeros(len(strings) + 1, bool)
        for i in _distinct(proc_function, len(strings)):
            allocator[i] = is_allocator_function(strings[i])
    file_names = np.empty(len(strings) + 1, object)
    for i in _distinct(proc_file, len(strings)):
        file_names[i] = _file_name(strings[i]) if i >= 0 else ""
    # ``(file:line)`` where the procedure's row has a file and a line (not 0, not none)
    placed = has_name[proc_file] & (proc_line != 0) & (proc_line != -1)
    at, bare = np.flatnonzero(placed), np.flatnonzero(~placed)
    texts = np.empty(chosen.shape[0], object)
    texts[at] = list(map(operator.mod, repeat("%s!%s+0x%x (%s:%d)"), zip(
        repeat(module), names[proc_function[at]].tolist(), offset[at].tolist(), file_names[proc_file[at]].tolist(),
        proc_line[at].tolist())))
    texts[bare] = list(map(operator.mod, repeat("%s!%s+0x%x"), zip(
        repeat(module), names[proc_function[bare]].tolist(), offset[bare].tolist())))
    # the enclosing inlined calls outward (rows inner + 1 to proc): one SourceFrame per distinct row, and a tuple
    # per frame made by zip from one column of them per level, for the frames of each depth
    levels = proc - inner
    cut = np.zeros(chosen.shape[0] + 1, np.int64)
    np.cumsum(levels, out=cut[1:])
    rows = run_positions(inner + 1, levels)
    sources = np.fromiter(source_frames(function[rows], file[rows], line[rows], strings), object, rows.shape[0])
    inlined = np.empty(chosen.shape[0], object)
    inlined.fill(())
    depths = np.flatnonzero(np.bincount(levels, minlength=1))
    for depth in depths[depths > 0].tolist():
        these = np.flatnonzero(levels == depth)
        chains = zip(*(sources[cut[these] + j].tolist() for j in range(depth)), strict=True)
        inlined[these] = np.fromiter(chains, object, these.shape[0])
    new = tuple.__new__  # (named tuples made from their fields in order, without their argument parsing)
    records = zip(texts.tolist(), repeat(module), rva.tolist(), kernel.tolist(),
                  (allocator[proc_function] & ~kernel).tolist(), names[function[inner]].tolist(), offset.tolist(),
                  files[file[inner]].tolist(), _lines(line[inner]), inlined.tolist())
    return chosen, list(map(new, repeat(Frame), records))


def _distinct(index: np.ndarray, size: int) -> list[int]:
    """The distinct values of ``index`` (each -1 to ``size - 1``), by marks rather than a sort or a hash."""
    seen = np.zeros(size + 1, bool)
    seen[index] = True  # (-1 marks the last place)
    found: list[int] = np.flatnonzero(seen[:-1]).tolist()
    return [*found, -1] if seen[-1] else found


def _lines(line: np.ndarray) -> list[int | None]:
    """Line numbers as Python ints, None for -1 (none)."""
    out = line.astype(object)
    out[line == -1] = None
    return out.tolist()  # type: ignore[no-any-return]  # ints and Nones


def named_frame(text: str, rva: int | None, kernel: bool, r: ResolvedFrame | None) -> Frame:
    """One frame: named by ``r`` where it names a procedure, else as ``text`` (``module+0xrva``, an address)."""
    module = module_of_frame(text)
    if module is not None and rva is not None and r is not None:
        _, made = named_frames(module, np.asarray([rva], np.int64), np.asarray([kernel]), ResolvedColumns.of([r]))
        if made:
            return made[0]
    return Frame(text, module, rva, kernel, not kernel and is_allocator_frame(module, None))


class FrameNamer:
    """Names every frame of one trace's stacks, asking the symbolizer once for all of them."""

    def __init__(self, images: ImageMap, symbolizer: Symbolizer | None) -> None:
        self._images = images
        self._symbolizer = symbolizer
        #: image index -> how its symbols went, for every image a frame fell in
        self.outcomes: dict[int, ModuleSymbols] = {}

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
        asked_of = [looks[np.flatnonzero(np.diff(looks, prepend=-1))] for _, looks, _ in groups]  # (sorted)
        requests = [(request_for(self._images.images[idx]), asked.tolist())
                    for (idx, _, _), asked in zip(groups, asked_of, strict=True)]
        answers = self._symbolizer.resolve(requests)
        for (idx, looks, frames), asked, (outcome, resolved) in zip(groups, asked_of, answers, strict=True):
            self.outcomes[idx] = outcome
            if len(resolved) != len(asked):
                raise ValueError(f"the symbolizer answered {len(resolved)} of {len(asked)} addresses")
            # one image: one module name for all its frames; each frame's answer by its address's place among
            # those asked (sorted)
            module = table.module_names[int(table.name[frames[0]])]
            chosen, made = named_frames(module, table.value[frames], table.kernel[frames],
                                        resolved.take(np.searchsorted(asked, looks)))
            table.named.update(zip(frames[chosen].tolist(), made, strict=True))

    def modules(self) -> list[ModuleOutcome]:
        """Every image a frame fell in, with its outcome, in image order."""
        return [ModuleOutcome(self._images.images[i], self.outcomes[i]) for i in sorted(self.outcomes)]
