"""heapdiff's native core (Rust, ``native/``): PE and PDB identities, PDB lookups, symbol-server cabinets.

Every function that reads a file raises :class:`NativeError` when the file is unreadable, truncated, garbage or
unsupported; the message names the file and, where known, the byte offset. Calls release the GIL.
"""

import os
from collections.abc import Sequence
from typing import Final, final

__all__ = [
    "CodeView",
    "NativeError",
    "PdbIdentity",
    "PdbReader",
    "PeIdentity",
    "Resolution",
    "expand_cab",
    "pdb_identity",
    "pe_identity",
    "version",
]

_StrPath = str | os.PathLike[str]

class NativeError(Exception):
    """A file is unreadable, truncated, garbage or unsupported."""

def version() -> str:
    """The native crate's version, to tell a stale build."""

@final
class CodeView:
    """An image's CodeView (RSDS) record: the PDB it was linked with."""

    #: as stored in the image: a bare name, a Windows path or a POSIX path
    pdb_name: Final[str]
    #: lowercase, dashed 8-4-4-4-12 in Windows string order (``uuid.UUID(bytes_le=...)``)
    guid: Final[str]
    age: Final[int]

@final
class PeIdentity:
    """What names an image and its PDB in a symbol store."""

    #: COFF Machine: 0x8664 x64, 0x14C x86, 0xAA64 ARM64
    machine: Final[int]
    #: TimeDateStamp (a content hash in deterministic images)
    timestamp: Final[int]
    size_of_image: Final[int]
    #: the first RSDS record that is not a portable PDB's, if any
    codeview: Final[CodeView | None]
    #: why ``codeview`` is None (no debug directory; only NB10 or portable-PDB entries), for a person
    note: Final[str | None]

@final
class PdbIdentity:
    """What an image's RSDS record must match: GUID and age."""

    guid: Final[str]
    #: the DBI stream's age (the one images name); the info stream's when the DBI age is 0 or there is no DBI
    age: Final[int]
    #: the info stream's age, bumped by tools that rewrite a PDB (what ``llvm-pdbutil dump -summary`` prints)
    info_age: Final[int]
    #: the DBI stream's Machine; 0 without a DBI stream
    machine: Final[int]

def pe_identity(path: _StrPath) -> PeIdentity:
    """Machine, TimeDateStamp, SizeOfImage and the CodeView record of a PE image (reads headers only)."""

def pdb_identity(path: _StrPath) -> PdbIdentity:
    """GUID and ages of a PDB. Portable (.NET), MSFZ, old-format (2.00) and fastlink PDBs raise NativeError."""

def expand_cab(src: _StrPath, dst: _StrPath) -> str:
    """Expands a one-file cabinet (MSZIP or LZX; a symbol server's ``.pd_``) to ``dst``; returns the member's
    name. On error ``dst`` is removed."""

@final
class Resolution:
    """A batch's answer as columns over an interned string table.

    RVA ``i`` lies in the procedure starting at ``proc_start[i]`` (-1: nothing there). Its inline chain is
    entries ``chain_start[i]`` to ``chain_start[i + 1]`` of ``function``/``file``/``line``, innermost first, the
    last one the procedure itself; empty when nothing is there. ``function`` and ``file`` index ``strings``.
    Names are undecorated and qualified, without argument lists (``gfx::Texture::load``, ``max<int>``);
    ``file`` is the path as the PDB stores it (often a Windows path)."""

    strings: Final[list[str]]
    proc_start: Final[list[int]]
    #: ``len(rvas) + 1`` offsets into the frame columns
    chain_start: Final[list[int]]
    function: Final[list[int]]
    #: -1: no source file (a public symbol)
    file: Final[list[int]]
    #: 0: no line
    line: Final[list[int]]
    #: how many RVAs met damaged symbol data (then named from public symbols only, or not at all)
    failed: Final[int]
    #: the first such failure, for a note
    first_error: Final[str | None]

@final
class PdbReader:
    """An open PDB. ``resolve`` may be called from several threads; lookups take turns without the GIL."""

    def __new__(cls, path: _StrPath) -> PdbReader:
        """Opens and indexes the PDB; raises NativeError as :func:`pdb_identity` does."""
    guid: Final[str]
    #: as :attr:`PdbIdentity.age`
    age: Final[int]
    identity: Final[PdbIdentity]
    def resolve(self, rvas: Sequence[int]) -> Resolution:
        """Looks up each RVA exactly as given (subtract 1 from return addresses first). RVAs outside
        0..2**32 resolve to nothing. Raises NativeError only if the lookup met an internal error; the
        reader is then unusable."""
