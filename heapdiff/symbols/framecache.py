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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from heapdiff.frames import PdbId, ResolvedFrame, SourceFrame
from heapdiff.symbols.cachedir import temporary_beside
from heapdiff.symbols.columns import resolved_frames

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


@dataclass(slots=True)
class CachedFrames:
    """One PDB's cached answers: RVA -> frame (None: the PDB has nothing there), and the file they came from."""

    frames: dict[int, ResolvedFrame | None] = field(default_factory=dict)
    symbol_file: str | None = None


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

    def add(self, pdb: PdbId, symbol_file: str, frames: Mapping[int, ResolvedFrame | None]) -> None:
        """Merge ``frames`` into the file for ``pdb`` (what another process added meanwhile is kept). A cache
        that cannot be written is no error: the next run resolves those addresses again."""
        if not frames:
            return
        merged = self.load(pdb).frames
        merged.update(frames)
        body = _encode(pdb, self.reader_version, symbol_file, merged)
        dest = self.file_for(pdb)
        try:
            with temporary_beside(dest) as tmp:
                tmp.write_bytes(body)
                os.replace(tmp, dest)
            (dest.parent / OLD_FILE_NAME).unlink(missing_ok=True)
        except OSError:
            pass


def _encode(pdb: PdbId, reader: str, symbol_file: str, frames: Mapping[int, ResolvedFrame | None]) -> bytes:
    """The file's bytes. An answer the layout cannot hold (a NUL inside a name, an address, procedure start or
    line out of its column's range, a chain without rows) is left out: that address is asked of the PDB again."""
    strings: dict[str, int] = {}
    rows: dict[SourceFrame, int] = {}  # chains share rows: each interned once
    row_values: list[int] = []

    def intern(text: str | None) -> int:
        return -1 if text is None else strings.setdefault(text, len(strings))

    def row(source: SourceFrame) -> int:
        got = rows.get(source)
        if got is None:
            got = rows[source] = len(rows)
            row_values.extend((intern(source.function), intern(source.file),
                               -1 if source.line is None else source.line))
        return got

    rvas = sorted(rva for rva, frame in frames.items() if _fits(rva, frame))
    proc_start: list[int] = []
    chain: list[int] = []
    chain_start = [0]
    for rva in rvas:
        frame = frames[rva]
        if frame is not None:
            chain.extend(row(source) for source in frame.frames)
        proc_start.append(-1 if frame is None else frame.proc_start)
        chain_start.append(len(chain))
    header = orjson.dumps({
        "format": FORMAT, "version": VERSION, "reader": reader,
        "pdb": {"name": pdb.name, "guid": pdb.guid, "age": pdb.age}, "symbol_file": symbol_file,
        "addresses": len(rvas), "rows": len(chain), "strings": len(strings),
    })
    header += b" " * (-len(header) % 8)
    rva_column = np.asarray(rvas, np.uint32).tobytes()
    row_table = np.asarray(row_values, np.int64).reshape(-1, 3)
    return b"".join((
        PREFIX.pack(MAGIC, len(header), 0), header,
        rva_column, b"\0" * (-len(rva_column) % 8),
        np.asarray(proc_start, np.int64).tobytes(), np.asarray(chain_start, np.int64).tobytes(),
        row_table[np.asarray(chain, np.int64)].tobytes() if chain else b"",
        "".join(f"{t}\0" for t in strings).encode("utf-8", "surrogatepass"),
    ))


def _fits(rva: int, frame: ResolvedFrame | None) -> bool:
    """Whether the layout holds this answer as it is (what the decoder would otherwise refuse, whole file and all)."""
    if not 0 <= rva < 1 << 32:
        return False
    if frame is None:
        return True
    return bool(frame.frames) and 0 <= frame.proc_start < 1 << 32 and all(
        "\0" not in s.function and (s.file is None or "\0" not in s.file) and (s.line is None or 0 <= s.line < 1 << 63)
        for s in frame.frames)


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
    answers = resolved_frames(proc_start.tolist(), chain_start.tolist(), function, file, line, strings)
    return CachedFrames(dict(zip(rvas.tolist(), answers, strict=True)), symbol_file)


def missing(cached: CachedFrames, rvas: Iterable[int]) -> list[int]:
    """The RVAs of ``rvas`` the cache has no answer for, each once, in first-seen order, as Python ints (the
    core may ask with numpy integers)."""
    return [int(rva) for rva in dict.fromkeys(rvas) if rva not in cached.frames]
