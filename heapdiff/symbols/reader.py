"""What the resolver needs from a PDB and image reader, and that need met by the native extension.

The resolver speaks to :class:`SymbolBackend` only, so that it is tested on its own (counting how often a PDB
is opened) and the extension's columns become :class:`heapdiff.frames.ResolvedColumns` in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from heapdiff.frames import PdbId, ResolvedColumns


class SymbolReadError(Exception):
    """A PE, PDB or CAB that cannot be read; the text says why (and where in the file)."""


@dataclass(frozen=True, slots=True)
class ImageIdentity:
    """What an image's headers say: its store key parts and the PDB it was linked with (None: no RSDS record)."""

    timestamp: int
    size: int
    pdb: PdbId | None
    #: why ``pdb`` is None (no debug directory, only an old NB10 or a portable PDB's record), for a person
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """A PDB's answers for a batch of RVAs, one per RVA in order, and what went wrong for some of them (symbol
    data damaged under a few addresses: they got a public name or nothing)."""

    answers: ResolvedColumns
    problem: str | None = None


class OpenPdb(Protocol):
    def resolve(self, rvas: Sequence[int]) -> Batch:
        """Raises :class:`SymbolReadError` for a PDB damaged past reading."""
        ...


class SymbolBackend(Protocol):
    """Reads images and PDBs. Every method raises :class:`SymbolReadError` (never anything else) on bad input."""

    #: answers of another version may differ: the frame cache keeps them apart
    version: str

    def image_identity(self, path: Path) -> ImageIdentity: ...

    def pdb_identity(self, path: Path) -> tuple[str, int]:
        """The PDB's GUID (lowercase, dashed) and the age an image's RSDS record must carry to match it."""
        ...

    def open_pdb(self, path: Path) -> OpenPdb: ...

    def expand_cab(self, src: Path, dst: Path) -> None:
        """Expand the one file of the CAB ``src`` into the file ``dst``."""
        ...
