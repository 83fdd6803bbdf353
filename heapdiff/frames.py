"""Stack frames as the report names them, and what symbols add to them.

A frame is always known by its image and its offset in it (``module+0xrva``). When the image's PDB is found,
a frame also gets its procedure, the offset into it, the source position and the inlined calls at that address.
Finding and reading PDBs is file and network work, so it belongs to the shell (``heapdiff.symbols``); the core
only declares what it asks for (:class:`ModuleRequest`), what it gets back (:class:`ResolvedFrame`,
:class:`ModuleSymbols`) and the :class:`Symbolizer` protocol the shell implements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

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


class SourceFrame(NamedTuple):
    """One level of the inline chain at an address: a function and its source position, when known (a named
    tuple: a PDB of many inlines makes one per level, and a frozen dataclass sets each field through
    object.__setattr__)."""

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
    a return address). The answer has one entry per request, in order: the module's outcome and, per RVA, its
    :class:`ResolvedFrame` or None when the PDB has nothing there. Must not raise for a missing, damaged or
    mismatched PDB: that is an outcome with a note."""

    def resolve(self, requests: Sequence[tuple[ModuleRequest, Sequence[int]]]
                ) -> list[tuple[ModuleSymbols, list[ResolvedFrame | None]]]: ...


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
