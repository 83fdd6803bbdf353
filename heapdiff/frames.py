"""Stack frames as the report names them, and what symbols add to them.

A frame is always known by its image and its offset in it (``module+0xrva``). When the image's PDB is found,
a frame also gets its procedure, the offset into it, the source position and the inlined calls at that address.
Finding and reading PDBs is file and network work, so it belongs to the shell (``heapdiff.symbols``); the core
only declares what it asks for (:class:`ModuleRequest`), what it gets back (:class:`ResolvedColumns`, or one
:class:`ResolvedFrame` per address; :class:`ModuleSymbols`) and the :class:`Symbolizer` protocol the shell
implements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import numpy as np

from heapdiff._runs import run_positions

#: how a module's symbols ended: loaded; no PDB found; a PDB of that name with another GUID or age; a PDB that
#: could not be read; symbols turned off
SymbolStatus = Literal["loaded", "not_found", "mismatch", "error", "off"]


@dataclass(frozen=True, slots=True)
class PdbId:
    """A PDB's identity, as an image's CodeView (RSDS) record names it."""

    #: the file name only (``app.pdb``), whatever path the record holds
    name: str
    #: lowercase, dashed 8-4-4-4-12, in the string order Windows tools print (``uuid.UUID(bytes_le=...)``)
    guid: str
    age: int

    @property
    def store_key(self) -> str:
        """The symbol-store folder key: the GUID's 32 hex digits in upper case, then the age in hex."""
        return self.guid.replace("-", "").upper() + f"{self.age:X}"


@dataclass(frozen=True, slots=True)
class ModuleRequest:
    """One loaded image whose frames want names."""

    #: the frame's module name: the last path component, lowercased (``app.exe``)
    name: str
    #: the image path as the trace gives it (may be a Windows path, a device path or empty)
    path: str
    #: the PE header's TimeDateStamp and SizeOfImage, when the trace gives them (the symbol-store key of the PE)
    timestamp: int | None
    size: int
    #: the PDB identity from the trace's DbgID_RSDS event, when it has one
    pdb: PdbId | None


@dataclass(frozen=True)
class SourceFrame:
    """One level of the inline chain at an address: a function and its source position, when known. A dataclass
    with a ``__dict__``: the JSON writes a report's inline chains, tens of thousands of rows, and orjson writes
    such an object natively as ``{"function", "file", "line"}`` (a named tuple it would write as an array, and a
    dict made per row took a third of the named frames' JSON time; benchmarks/RESULTS.md)."""

    function: str
    file: str | None
    line: int | None


class ResolvedFrame(NamedTuple):
    """What a PDB says about one looked-up address.

    ``frames`` is the inline chain, innermost first: the first entry is the innermost source position (an
    inlined callee when there is one), the last is the procedure itself. ``proc_start`` is the procedure's RVA,
    so that the core computes offsets from the frame's own address."""

    frames: tuple[SourceFrame, ...]
    proc_start: int


@dataclass(frozen=True, slots=True)
class ResolvedColumns:
    """What a PDB says about many addresses, as columns: a trace asks about tens of thousands at once, and an
    object per address took most of a warm run's symbol time.

    Address ``i`` resolved to nothing when ``proc_start[i]`` is -1; else to the procedure at RVA ``proc_start[i]``
    and the inline chain of rows ``chain_start[i]`` to ``chain_start[i + 1]`` (as :attr:`ResolvedFrame.frames`,
    innermost first; an answer without rows names nothing). A row is ``function``, ``file`` and ``line``: the
    first two index ``strings``, -1 standing for no function (an empty name) and no file; a line of -1 is none.
    Every index is in range (the makers check)."""

    proc_start: np.ndarray
    chain_start: np.ndarray
    function: np.ndarray
    file: np.ndarray
    line: np.ndarray
    strings: Sequence[str]

    def __len__(self) -> int:
        return int(self.proc_start.shape[0])

    @classmethod
    def of(cls, frames: Sequence[ResolvedFrame | None]) -> ResolvedColumns:
        """The columns of answers given one object each (a symbolizer that holds them so; tests)."""
        strings: dict[str, int] = {}
        rows: list[tuple[int, int, int]] = []
        proc_start: list[int] = []
        chain_start = [0]
        for r in frames:
            if r is not None and r.frames:
                rows.extend((strings.setdefault(s.function, len(strings)),
                             -1 if s.file is None else strings.setdefault(s.file, len(strings)),
                             -1 if s.line is None else s.line) for s in r.frames)
                proc_start.append(r.proc_start)
            else:
                proc_start.append(-1)
            chain_start.append(len(rows))
        table = np.asarray(rows, np.int64).reshape(-1, 3)
        return cls(np.asarray(proc_start, np.int64), np.asarray(chain_start, np.int64), table[:, 0].copy(),
                   table[:, 1].copy(), table[:, 2].copy(), list(strings))

    def take(self, index: np.ndarray, present: np.ndarray | None = None) -> ResolvedColumns:
        """The answers at ``index``, in its order; where ``present`` is False, nothing (an address not asked)."""
        index = np.asarray(index, np.int64)
        if not len(self):  # nothing to take from: every answer is nothing (``present`` can only be all False)
            if present is not None and bool(np.any(present)):
                raise IndexError("answers taken from no answers")
            return ResolvedColumns.of([None] * index.shape[0])
        starts = self.chain_start[index]
        lens = self.chain_start[index + 1] - starts
        proc_start = self.proc_start[index]
        if present is not None:
            lens = np.where(present, lens, 0)
            proc_start = np.where(present, proc_start, -1)
        chain_start = np.zeros(index.shape[0] + 1, np.int64)
        np.cumsum(lens, out=chain_start[1:])
        rows = run_positions(starts, lens)
        return ResolvedColumns(proc_start, chain_start, self.function[rows], self.file[rows], self.line[rows],
                               self.strings)

    def concat(self, other: ResolvedColumns) -> ResolvedColumns:
        """These answers, then ``other``'s (its strings after these: the same text may then stand twice)."""
        shift = len(self.strings)
        rows = int(self.chain_start[-1])
        return ResolvedColumns(
            np.concatenate((self.proc_start, other.proc_start)),
            np.concatenate((self.chain_start[:-1], other.chain_start + rows)),
            np.concatenate((self.function, np.where(other.function >= 0, other.function + shift, -1))),
            np.concatenate((self.file, np.where(other.file >= 0, other.file + shift, -1))),
            np.concatenate((self.line, other.line)),
            [*self.strings, *other.strings])

    def frames(self) -> list[ResolvedFrame | None]:
        """One object per address (None: nothing there), each distinct row one :class:`SourceFrame`: for the
        paths that keep answers by address (the frame cache's merge, a document's frames named again)."""
        rows = tuple(source_frames(self.function, self.file, self.line, self.strings))
        # (a slice of the tuple is each chain: no list made per address; the named tuples are made from their
        # fields in order by tuple.__new__, without their constructor's argument parsing)
        new = tuple.__new__
        return [None if start < 0 else new(ResolvedFrame, (rows[a:b], start))
                for start, a, b in zip(self.proc_start.tolist(), self.chain_start[:-1].tolist(),
                                       self.chain_start[1:].tolist(), strict=True)]


def source_frames(function: np.ndarray, file: np.ndarray, line: np.ndarray, strings: Sequence[str]
                 ) -> list[SourceFrame]:
    """A SourceFrame per row (function and file index ``strings``, -1: none, as in :class:`ResolvedColumns`), one
    object per distinct (function, file, line): neighbouring addresses share rows (the procedure's own, the line
    of an inlined call)."""
    if not function.shape[0]:
        return []
    function, file, line = (np.asarray(c, np.int64) for c in (function, file, line))
    bits = [(int(col.max()) + 1).bit_length() for col in (function, file, line)]  # each column >= -1
    if sum(bits) <= 63:  # one integer key per row: a plain sort finds the distinct rows
        key = ((function + 1) << (bits[1] + bits[2])) | ((file + 1) << bits[2]) | (line + 1)
        _, first, back = np.unique(key, return_index=True, return_inverse=True)
    else:  # lines past what fits beside the indices: sort the rows themselves
        _, first, back = np.unique(np.stack([function, file, line], axis=1), axis=0, return_index=True,
                                   return_inverse=True)
    made = [SourceFrame(strings[f] if f >= 0 else "", strings[p] if p >= 0 else None, n if n >= 0 else None)
            for f, p, n in zip(function[first].tolist(), file[first].tolist(), line[first].tolist(), strict=True)]
    return np.fromiter(made, object, len(made))[back.reshape(-1)].tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class ModuleSymbols:
    """How looking up one module's symbols went."""

    status: SymbolStatus
    #: the PDB used (or the mismatched one found), when there is one
    symbol_file: str | None = None
    #: one line for a person: why not found, which GUID/age mismatched, what a server answered
    note: str | None = None
    #: the PDB identity read from the image itself, when the trace had none and the PE was found
    pdb: PdbId | None = None


class Symbolizer(Protocol):
    """Resolves addresses to names; the shell's implementation finds, downloads, caches and reads PDBs.

    ``requests`` pairs each module with the RVAs to look up (already adjusted: the core asks for ``rva - 1`` for
    a return address). The answer has one entry per request, in order: the module's outcome and the answers for
    its RVAs, in order, as :class:`ResolvedColumns` (nothing there where the PDB has nothing, or none was read).
    Must not raise for a missing, damaged or mismatched PDB: that is an outcome with a note."""

    def resolve(self, requests: Sequence[tuple[ModuleRequest, Sequence[int]]]
                ) -> list[tuple[ModuleSymbols, ResolvedColumns]]: ...


class Frame(NamedTuple):
    """One displayed frame of a call stack, innermost first; the symbol fields are None when no PDB named it.
    A named tuple: a trace makes one per distinct frame, tens of thousands, and the report's tail waits on them
    (a frozen dataclass sets each of its ten fields through object.__setattr__; benchmarks/RESULTS.md).

    ``function``, ``file`` and ``line`` are the innermost source position at the frame's address (an inlined
    callee when there is one); ``inlined`` lists the enclosing inlined calls outward, ending with the procedure
    itself, and is empty when nothing is inlined there. ``offset`` counts from the procedure's start."""

    #: ``module!procedure+0xoff (file:line)`` when symbols named it, else ``module+0xrva``, or ``0x<address>``
    #: for an address in no known image
    text: str
    #: None for an address in no known image
    module: str | None
    rva: int | None
    kernel: bool
    allocator: bool
    function: str | None = None
    offset: int | None = None
    file: str | None = None
    line: int | None = None
    inlined: tuple[SourceFrame, ...] = ()

    @property
    def procedure(self) -> SourceFrame | None:
        """The procedure that holds the address, with the source position in it (the call site of any inline)."""
        if self.inlined:
            return self.inlined[-1]
        if self.function is None:
            return None
        return SourceFrame(self.function, self.file, self.line)

    @property
    def plain(self) -> str:
        """The frame as an image and an offset: ``module+0xrva`` (or the address), whatever symbols say."""
        if self.module is None or self.rva is None:
            return self.text
        return f"{self.module}+0x{self.rva:x}"

    @property
    def function_keys(self) -> tuple[str, ...]:
        """What two builds of a program share for this frame: ``module!function`` of each level of the inline
        chain, innermost first, ending with the procedure; the plain frame when symbols did not name it."""
        if self.function is None or self.module is None:
            return (self.plain,)
        return (f"{self.module}!{self.function}", *(f"{self.module}!{s.function}" for s in self.inlined))
