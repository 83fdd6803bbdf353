"""What was resolved from each PDB, kept on disk so that the next run asks the PDB only about new addresses.

One file per PDB identity, ``<cache root>/symcache/<name>/<GUID+age>/frames.bin``: per RVA looked up, the
procedure start and the inline chain (or nothing, when the PDB has nothing there), as columns over interned rows
and strings (:data:`PREFIX`: a warm run reads tens of thousands of addresses, and a binary file of columns loads
in a few numpy views where a JSON document of nested lists took most of the symbols' time). The file names its
format version and the reader's version; a file of another version, another PDB, or damaged in any way is
ignored (and replaced by the next write), never an error. Writes merge with what is on disk, go to a temporary
name and are renamed into place, so two heapdiffs filling the same file at once lose at most each other's
newest addresses, and a reader never sees half a file. The whole folder is a cache: safe to delete.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from heapdiff.frames import PdbId, ResolvedColumns, ResolvedFrame
from heapdiff.symbols.cachedir import temporary_beside

FORMAT = "heapdiff-frames"
VERSION = 2
FILE_NAME = "frames.bin"
#: the first format's file (JSON), never read again: removed when the file of this format is written beside it
OLD_FILE_NAME = "frames.json"
MAGIC = b"HDFRAMES"
#: 0x00 8s magic   0x08 u32 length of the JSON header that follows   0x0C u32 zero; then the header, padded with
#: spaces to a multiple of 8, then the columns (little-endian), each a multiple of 8 bytes:
#:   rva u32[n] (increasing; padded with one u32 when n is odd)   proc_start i64[n] (-1: nothing there)
#:   chain_start i64[n + 1] (each address's rows)   rows i64[m x 3] (function, file, line; -1: none)
#:   then the strings, UTF-8, each ended by a NUL (their count is in the header)
PREFIX = struct.Struct("<8sII")
assert PREFIX.size == 0x10


class _Damaged(Exception):
    """Anything about a cache file that is not exactly what this version writes."""


@dataclass(frozen=True, slots=True)
class CachedFrames:
    """One PDB's cached answers and the file they came from, as columns: the answer of ``rvas[i]`` (increasing)
    is ``columns`` entry ``i`` (a warm run answers tens of thousands of addresses without an object each)."""

    rvas: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    columns: ResolvedColumns = field(default_factory=lambda: ResolvedColumns.of([]))
    symbol_file: str | None = None

    @property
    def frames(self) -> dict[int, ResolvedFrame | None]:
        """Every answer by RVA (None: the PDB has nothing there)."""
        return dict(zip(self.rvas.tolist(), self.columns.frames(), strict=True))

    def answers(self, rvas: Sequence[int]) -> ResolvedColumns:
        """The answers for ``rvas``, in order (nothing there for an RVA without one)."""
        return self.columns.take(*self._places(np.asarray(rvas, np.int64)))

    def missing(self, rvas: Sequence[int]) -> list[int]:
        """The RVAs of ``rvas`` without an answer, each once, in first-seen order, as Python ints (the core may
        ask with numpy integers)."""
        asked = np.asarray(rvas, np.int64)
        present = self._places(asked)[1]
        return [] if bool(present.all()) else list(dict.fromkeys(asked[~present].tolist()))

    def merged(self, rvas: Sequence[int], answers: ResolvedColumns, symbol_file: str) -> CachedFrames:
        """These answers and ``answers`` for ``rvas`` (the newer answer where both have an RVA)."""
        every = np.concatenate((self.rvas, np.asarray(rvas, np.int64)))
        order = np.argsort(every, kind="stable")  # an RVA's newer answer last among its equals
        every = every[order]
        last = np.ones(every.shape[0], bool)
        last[:-1] = every[1:] != every[:-1]
        return CachedFrames(every[last], self.columns.concat(answers).take(order[last]), symbol_file)

    def _places(self, asked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each RVA's answer is in the columns, and whether it is there at all."""
        if not self.rvas.shape[0]:
            return np.zeros(asked.shape[0], np.int64), np.zeros(asked.shape[0], bool)
        at = np.minimum(np.searchsorted(self.rvas, asked), self.rvas.shape[0] - 1)
        return at, self.rvas[at] == asked


class FrameCache:
    """The on-disk frame cache under ``folder`` (``<cache root>/symcache``) for one reader version (answers of
    another reader, which may have resolved differently, are not reused)."""

    def __init__(self, folder: Path, reader_version: str) -> None:
        self.folder = folder
        self.reader_version = reader_version

    def file_for(self, pdb: PdbId) -> Path:
        return self.folder / pdb.name.lower() / pdb.store_key / FILE_NAME

    def load(self, pdb: PdbId) -> CachedFrames:
        """What is cached for ``pdb``; empty when nothing is, or when the file is damaged or foreign."""
        try:
            data = self.file_for(pdb).read_bytes()
        except OSError:
            return CachedFrames()
        try:
            return _decode(data, pdb, self.reader_version)
        except _Damaged:
            return CachedFrames()

    def add(self, pdb: PdbId, symbol_file: str, rvas: Sequence[int], answers: ResolvedColumns) -> None:
        """Merge the ``answers`` for ``rvas`` into the file for ``pdb`` (what another process added meanwhile is
        kept). A cache that cannot be written is no error: the next run resolves those addresses again."""
        if not len(rvas):
            return
        body = _encode(pdb, self.reader_version, self.load(pdb).merged(rvas, answers, symbol_file))
        dest = self.file_for(pdb)
        try:
            with temporary_beside(dest) as tmp:
                tmp.write_bytes(body)
                os.replace(tmp, dest)
            (dest.parent / OLD_FILE_NAME).unlink(missing_ok=True)
        except OSError:
            pass


def _encode(pdb: PdbId, reader: str, cached: CachedFrames) -> bytes:
    """The file's bytes. An answer the layout cannot hold (a NUL inside a name, an address, procedure start or
    line out of its column's range, a procedure without rows) is left out: that address is asked of the PDB
    again. Only the strings the rows use are written, each text once."""
    c = cached.columns
    rows_of = np.diff(c.chain_start)
    found = c.proc_start >= 0
    bad_string = np.fromiter(("\0" in t for t in c.strings), bool, len(c.strings))
    bad_row = ((c.line < -1) | ((c.function >= 0) & bad_string[np.maximum(c.function, 0)])
               | ((c.file >= 0) & bad_string[np.maximum(c.file, 0)]))
    bad = np.bincount(np.repeat(np.arange(len(c)), rows_of)[bad_row], minlength=len(c)) > 0
    fits = ((cached.rvas >= 0) & (cached.rvas < 1 << 32) & ~(found & ((rows_of == 0) | (c.proc_start >= 1 << 32)))
            & ~(found & bad))
    kept = np.flatnonzero(fits)
    c = c.take(kept, found[kept])  # (nothing there: no rows)
    # the strings the rows use, each text once; a row without a function names "" (the layout has no -1 there)
    texts = [*c.strings, ""]
    index: dict[str, int] = {}
    new_index = np.fromiter((index.setdefault(t, len(index)) for t in texts), np.int64, len(texts))
    function = new_index[np.where(c.function >= 0, c.function, len(texts) - 1)]
    file = np.where(c.file >= 0, new_index[np.maximum(c.file, 0)], -1)
    used = np.zeros(len(index), bool)
    used[function] = True
    used[file[file >= 0]] = True
    compact = np.cumsum(used) - 1
    strings = [t for t, u in zip(index, used.tolist(), strict=True) if u]
    rows = np.stack((compact[function], np.where(file >= 0, compact[np.maximum(file, 0)], -1), c.line), axis=1)
    header = orjson.dumps({
        "format": FORMAT, "version": VERSION, "reader": reader,
        "pdb": {"name": pdb.name, "guid": pdb.guid, "age": pdb.age}, "symbol_file": cached.symbol_file,
        "addresses": len(kept), "rows": int(rows.shape[0]), "strings": len(strings),
    })
    header += b" " * (-len(header) % 8)
    rva_column = cached.rvas[kept].astype(np.uint32).tobytes()
    return b"".join((
        PREFIX.pack(MAGIC, len(header), 0), header,
        rva_column, b"\0" * (-len(rva_column) % 8),
        c.proc_start.astype("<i8").tobytes(), c.chain_start.astype("<i8").tobytes(), rows.astype("<i8").tobytes(),
        "".join(f"{t}\0" for t in strings).encode("utf-8", "surrogatepass"),
    ))


def _decode(data: bytes, pdb: PdbId, reader: str) -> CachedFrames:
    """The file's frames, every value checked: whole columns at a time (a file holds tens of thousands of
    addresses). Long because it is one walk down the layout, each column checked as it is taken."""
    if len(data) < PREFIX.size:
        raise _Damaged
    magic, header_len, zero = PREFIX.unpack_from(data)
    at = PREFIX.size + header_len
    if magic != MAGIC or zero or header_len % 8 or at > len(data):
        raise _Damaged
    try:
        head = orjson.loads(data[PREFIX.size:at])
    except orjson.JSONDecodeError:
        raise _Damaged from None
    if not isinstance(head, dict) or head.get("format") != FORMAT or head.get("version") != VERSION:
        raise _Damaged
    if head.get("reader") != reader or head.get("pdb") != {"name": pdb.name, "guid": pdb.guid, "age": pdb.age}:
        raise _Damaged
    symbol_file, n, m, k = (head.get(key) for key in ("symbol_file", "addresses", "rows", "strings"))
    if not isinstance(symbol_file, str) or not all(type(v) is int and 0 <= v < 1 << 32 for v in (n, m, k)):
        raise _Damaged
    assert isinstance(n, int) and isinstance(m, int) and isinstance(k, int)

    def take(dtype: type, count: int) -> np.ndarray:
        nonlocal at
        size = np.dtype(dtype).itemsize * count
        if at + size > len(data):
            raise _Damaged
        out = np.frombuffer(data, np.dtype(dtype).newbyteorder("<"), count, at)
        at += size + (-size % 8)
        return out

    rvas, proc_start, chain_start = take(np.uint32, n), take(np.int64, n), take(np.int64, n + 1)
    rows = take(np.int64, 3 * m).reshape(m, 3)
    try:
        strings = data[at:].decode("utf-8", "surrogatepass").split("\0")
    except UnicodeDecodeError:
        raise _Damaged from None
    if len(strings) != k + 1 or strings[-1]:
        raise _Damaged
    lens = np.diff(chain_start)
    if int(chain_start[0]) != 0 or int(chain_start[-1]) != m:
        raise _Damaged
    if n and not (bool(np.all(rvas[1:] > rvas[:-1])) and bool(np.all(lens >= 0))
                  and bool(np.all((proc_start >= -1) & (proc_start < 1 << 32)))
                  and bool(np.all((lens > 0) == (proc_start >= 0)))):
        raise _Damaged
    function, file, line = rows[:, 0], rows[:, 1], rows[:, 2]
    if m and bool(np.any((function < 0) | (function >= k) | (file < -1) | (file >= k) | (line < -1))):
        raise _Damaged
    def native(column: np.ndarray) -> np.ndarray:
        return column.astype(np.int64, copy=False)

    columns = ResolvedColumns(native(proc_start), native(chain_start), native(function), native(file), native(line),
                              strings[:-1])
    return CachedFrames(rvas.astype(np.int64), columns, symbol_file)
