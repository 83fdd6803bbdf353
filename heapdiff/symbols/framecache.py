"""What was resolved from each PDB, kept on disk so that the next run asks the PDB only about new addresses.

One file per PDB identity, ``<cache root>/symcache/<name>/<GUID+age>/frames.json``: the interned strings and, per
RVA looked up, the procedure start and the inline chain (or nothing, when the PDB has nothing there). The file
names its format version and the reader's version; a file of another version, another PDB, or damaged in any way
is ignored (and replaced by the next write), never an error. Writes merge with what is on disk, go to a temporary
name and are renamed into place, so two heapdiffs filling the same file at once lose at most each other's
newest addresses, and a reader never sees half a file. The whole folder is a cache: safe to delete.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from heapdiff.frames import PdbId, ResolvedFrame, SourceFrame
from heapdiff.symbols.cachedir import temporary_beside
from heapdiff.symbols.columns import resolved_frames

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
    rows: dict[SourceFrame, list[int]] = {}  # chains share rows: each encoded once

    def intern(text: str | None) -> int:
        return -1 if text is None else strings.setdefault(text, len(strings))

    def row(source: SourceFrame) -> list[int]:
        got = rows.get(source)
        if got is None:
            got = rows[source] = [intern(source.function), intern(source.file),
                                  -1 if source.line is None else source.line]
        return got

    rvas = sorted(frames)
    entries: list[list[int] | None] = []
    for rva in rvas:
        frame = frames[rva]
        if frame is None:
            entries.append(None)
            continue
        entry = [frame.proc_start]
        for source in frame.frames:
            entry += row(source)
        entries.append(entry)
    return {
        "format": FORMAT, "version": VERSION, "reader": reader,
        "pdb": {"name": pdb.name, "guid": pdb.guid, "age": pdb.age},
        "symbol_file": symbol_file,
        "strings": list(strings),
        "rvas": rvas, "entries": entries,
    }


def _decode(doc: Any, pdb: PdbId, reader: str) -> CachedFrames:
    """The file's frames, every value checked: whole columns at a time (a file holds tens of thousands of
    addresses, and checking them one by one was most of a warm run's symbol time)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise _Damaged
    if doc.get("reader") != reader or doc.get("pdb") != {"name": pdb.name, "guid": pdb.guid, "age": pdb.age}:
        raise _Damaged
    strings, rvas, entries, symbol_file = doc.get("strings"), doc.get("rvas"), doc.get("entries"), \
        doc.get("symbol_file")
    if not (isinstance(strings, list) and _all(strings, str)):
        raise _Damaged
    if not (isinstance(rvas, list) and isinstance(entries, list) and len(rvas) == len(entries)):
        raise _Damaged
    if not isinstance(symbol_file, str):
        raise _Damaged
    _check_u32(_ints(rvas))
    # an entry is None (nothing there) or [proc_start, (function, file, line) ...]: one or more rows
    present = [e for e in entries if e is not None]
    if not _all(present, list):
        raise _Damaged
    lens = np.fromiter(map(len, present), np.int64, len(present))
    if bool(np.any((lens < 4) | ((lens - 1) % 3 != 0))):
        raise _Damaged
    values = _ints(list(itertools.chain.from_iterable(present)))
    heads = np.cumsum(lens) - lens
    proc_start = values[heads]
    _check_u32(proc_start)
    is_head = np.zeros(values.shape[0], bool)
    is_head[heads] = True
    rows = values[~is_head].reshape(-1, 3)
    function, file, line = rows[:, 0], rows[:, 1], rows[:, 2]
    if bool(np.any((function < 0) | (function >= len(strings)) | (file < -1) | (file >= len(strings)))):
        raise _Damaged
    chain_start = np.concatenate(([0], np.cumsum((lens - 1) // 3))).tolist()
    answers = iter(resolved_frames(proc_start.tolist(), chain_start, function, file, np.maximum(line, -1),
                                   strings))
    frames = dict(zip(rvas, (None if e is None else next(answers) for e in entries), strict=True))
    return CachedFrames(frames, symbol_file)


def _all(values: list[Any], kind: type) -> bool:
    """Every value is exactly of ``kind`` (bool is an int subclass and never a valid entry)."""
    return set(map(type, values)) <= {kind}


def _ints(values: list[Any]) -> np.ndarray:
    if not _all(values, int):
        raise _Damaged
    try:
        return np.asarray(values, np.int64)
    except OverflowError:  # past 64 bits: no field heapdiff writes is
        raise _Damaged from None


def _check_u32(values: np.ndarray) -> None:
    if values.shape[0] and (int(values.min()) < 0 or int(values.max()) >= 1 << 32):
        raise _Damaged


def missing(cached: CachedFrames, rvas: Iterable[int]) -> list[int]:
    """The RVAs of ``rvas`` the cache has no answer for, each once, in first-seen order, as Python ints (the
    core may ask with numpy integers)."""
    return [int(rva) for rva in dict.fromkeys(rvas) if rva not in cached.frames]
