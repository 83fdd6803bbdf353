"""The :class:`heapdiff.symbols.reader.SymbolBackend` of the native extension (``heapdiff._native``): its
identities as :class:`heapdiff.frames.PdbId`, its columns as :class:`heapdiff.frames.ResolvedColumns`, and
its one error type as :class:`heapdiff.symbols.reader.SymbolReadError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from heapdiff import _native
from heapdiff.frames import PdbId, ResolvedColumns
from heapdiff.symbols.reader import Batch, ImageIdentity, SymbolReadError


def _pdb_file_name(recorded: str) -> str:
    """The store name of a PDB: the text after the last ``\\`` or ``/`` of the path the image records."""
    return recorded.replace("\\", "/").rpartition("/")[2]


class NativePdb:
    """An open PDB. The extension's reader takes turns between threads without the GIL."""

    def __init__(self, path: Path) -> None:
        try:
            self._reader = _native.PdbReader(path)
        except _native.NativeError as err:
            raise SymbolReadError(str(err)) from err

    def resolve(self, rvas: Sequence[int]) -> Batch:
        try:
            r = self._reader.resolve([int(rva) for rva in rvas])
        except _native.NativeError as err:
            raise SymbolReadError(str(err)) from err
        line = np.asarray(r.line, np.int64)
        line[line == 0] = -1  # no line
        answers = ResolvedColumns(np.asarray(r.proc_start, np.int64), np.asarray(r.chain_start, np.int64),
                                  np.asarray(r.function, np.int64), np.asarray(r.file, np.int64), line, r.strings)
        problem = None
        if r.failed:
            problem = f"damaged symbol data under {r.failed} address{'es' if r.failed > 1 else ''}: {r.first_error}"
        return Batch(answers, problem)


class NativeBackend:
    """Reads images, PDBs and CABs with the native extension; every failure is a :class:`SymbolReadError`."""

    version = f"native-{_native.version()}"

    def image_identity(self, path: Path) -> ImageIdentity:
        try:
            image = _native.pe_identity(path)
        except _native.NativeError as err:
            raise SymbolReadError(str(err)) from err
        cv = image.codeview
        pdb = None if cv is None else PdbId(_pdb_file_name(cv.pdb_name), cv.guid, cv.age)
        return ImageIdentity(image.timestamp, image.size_of_image, pdb, image.note)

    def pdb_identity(self, path: Path) -> tuple[str, int]:
        try:
            identity = _native.pdb_identity(path)
        except _native.NativeError as err:
            raise SymbolReadError(str(err)) from err
        return identity.guid, identity.age

    def open_pdb(self, path: Path) -> NativePdb:
        return NativePdb(path)

    def expand_cab(self, src: Path, dst: Path) -> None:
        try:
            _native.expand_cab(src, dst)
        except _native.NativeError as err:
            raise SymbolReadError(str(err)) from err
