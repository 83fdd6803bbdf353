"""What was resolved from each PDB, kept on disk so that the next run asks the PDB only about new addresses.

One file per PDB identity, ``<cache root>/symcache/<name>/<GUID+age>/frames.json``: the interned strings and, per
RVA looked up, the procedure start and the inline chain (or nothing, when the PDB has nothing there). The file
names its format version and the reader's version; a file of another version, another PDB, or damaged in any way
is ignored (and replaced by the next write), never an error. Writes merge with what is on disk, go to a temporary
name and are renamed into place, so two heapdiffs filling the same file at once lose at most each other's
newest addresses, and a reader never sees half a file. The whole folder is a cache: safe to delete.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from heapdiff.frames import PdbId, ResolvedFrame, SourceFrame
from heapdiff.symbols.cachedir import temporary_beside

FORMAT = "heapdiff-frames"
VERSION = 1
FILE_NAME = "frames.json"


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
            return _decode(orjson.loads(data), pdb, self.reader_version)
        except (orjson.JSONDecodeError, _Damaged):
            return CachedFrames()

    def add(self, pdb: PdbId, symbol_file: str, frames: Mapping[int, ResolvedFrame | None]) -> None:
        """Merge ``frames`` into the file for ``pdb`` (what another process added meanwhile is kept). A cache
        that cannot be written is no error: the next run resolves those addresses again."""
        if not frames:
            return
        merged = self.load(pdb).frames
        merged.update(frames)
        body = orjson.dumps(_encode(pdb, self.reader_version, symbol_file, merged))
        dest = self.file_for(pdb)
        try:
            with temporary_beside(dest) as tmp:
                tmp.write_bytes(body)
                os.replace(tmp, dest)
        except OSError:
            pass


def _encode(pdb: PdbId, reader: str, symbol_file: str, frames: Mapping[int, ResolvedFrame | None]
            ) -> dict[str, Any]:
    strings: dict[str | None, int] = {}

    def intern(text: str | None) -> int:
        return -1 if text is None else strings.setdefault(text, len(strings))

    rvas = sorted(frames)
    entries: list[list[int] | None] = []
    for rva in rvas:
        frame = frames[rva]
        if frame is None:
            entries.append(None)
            continue
        row = [frame.proc_start]
        for source in frame.frames:
            row += [intern(source.function), intern(source.file), -1 if source.line is None else source.line]
        entries.append(row)
    return {
        "format": FORMAT, "version": VERSION, "reader": reader,
        "pdb": {"name": pdb.name, "guid": pdb.guid, "age": pdb.age},
        "symbol_file": symbol_file,
        "strings": list(strings),
        "rvas": rvas, "entries": entries,
    }


def _decode(doc: Any, pdb: PdbId, reader: str) -> CachedFrames:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise _Damaged
    if doc.get("reader") != reader or doc.get("pdb") != {"name": pdb.name, "guid": pdb.guid, "age": pdb.age}:
        raise _Damaged
    strings, rvas, entries, symbol_file = doc.get("strings"), doc.get("rvas"), doc.get("entries"), \
        doc.get("symbol_file")
    if not (isinstance(strings, list) and all(isinstance(s, str) for s in strings)):
        raise _Damaged
    if not (isinstance(rvas, list) and isinstance(entries, list) and len(rvas) == len(entries)):
        raise _Damaged
    if not isinstance(symbol_file, str):
        raise _Damaged
    frames: dict[int, ResolvedFrame | None] = {}
    for rva, entry in zip(rvas, entries, strict=True):
        frames[_u32(rva)] = None if entry is None else _frame(entry, strings)
    return CachedFrames(frames, symbol_file)


def _frame(entry: Any, strings: list[str]) -> ResolvedFrame:
    if not isinstance(entry, list) or len(entry) < 4 or len(entry) % 3 != 1:
        raise _Damaged
    chain = []
    for i in range(1, len(entry), 3):
        line = _int(entry[i + 2])
        chain.append(SourceFrame(_string(entry[i], strings), _optional_string(entry[i + 1], strings),
                                 None if line < 0 else line))
    return ResolvedFrame(tuple(chain), _u32(entry[0]))


def _int(value: Any) -> int:
    if type(value) is not int:  # bool is an int subclass and never a valid entry
        raise _Damaged
    return value


def _u32(value: Any) -> int:
    number = _int(value)
    if not 0 <= number < 1 << 32:
        raise _Damaged
    return number


def _string(value: Any, strings: list[str]) -> str:
    index = _int(value)
    if not 0 <= index < len(strings):
        raise _Damaged
    return strings[index]


def _optional_string(value: Any, strings: list[str]) -> str | None:
    return None if value == -1 and type(value) is int else _string(value, strings)


def missing(cached: CachedFrames, rvas: Iterable[int]) -> list[int]:
    """The RVAs of ``rvas`` the cache has no answer for, each once, in first-seen order, as Python ints (the
    core may ask with numpy integers)."""
    return [int(rva) for rva in dict.fromkeys(rvas) if rva not in cached.frames]
