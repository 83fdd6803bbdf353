"""The :class:`heapdiff.frames.Symbolizer` the CLI uses: finds each module's PDB, checks it is the image's, and
resolves RVAs through the frame cache and the PDB reader.

A module's PDB identity is the trace's (its DbgID record) or, when the trace has none, read from the image found
on the symbol path by its own key (TimeDateStamp + SizeOfImage). A PDB is used only when its GUID and age equal
that identity: a PDB of the right name and another identity is never used and makes the module a ``mismatch``.
Nothing raises out of :meth:`SymbolResolver.resolve`: a missing, mismatched or damaged file is an outcome with a
note. Modules are looked up on a pool of threads (downloads of different modules overlap); each PDB identity has
a lock and an entry kept for the resolver's life, so a PDB shared by two traces resolved at once, or one after
the other, is found and opened once, and an address is asked of it once.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from heapdiff.frames import ModuleRequest, ModuleSymbols, PdbId, ResolvedColumns, SymbolStatus
from heapdiff.symbols.cachedir import DOWNLOADS, FRAMES
from heapdiff.symbols.fetch import DEFAULT_TIMEOUT, HttpFetcher, ProgressCallback
from heapdiff.symbols.framecache import CachedFrames, FrameCache
from heapdiff.symbols.locate import Locator, Trail, Wanted
from heapdiff.symbols.path import SymbolPathElement
from heapdiff.symbols.reader import ImageIdentity, OpenPdb, SymbolBackend, SymbolReadError
from heapdiff.symbols.store import pe_key

Answer = tuple[ModuleSymbols, ResolvedColumns]
#: outcomes in the order one is preferred over another when several candidates fail differently
_FAILURE_RANK: dict[SymbolStatus, int] = {"error": 0, "mismatch": 1, "not_found": 2}


@dataclass
class _Found:
    """How finding one file ended: the accepted path, or the failure to report."""

    path: Path | None
    status: SymbolStatus
    note: str | None = None


@dataclass
class _PdbEntry:
    """Everything known about one PDB identity, for the resolver's life; guarded by ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    cached: CachedFrames | None = None
    found: _Found | None = None
    reader: OpenPdb | None = None
    #: damage met under some addresses of the PDB, in this resolver's life
    problem: str | None = None


@dataclass
class _ImageEntry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    pdb: PdbId | None = None
    status: SymbolStatus = "not_found"
    note: str | None = None


def _nothing(count: int) -> ResolvedColumns:
    """Answers for ``count`` addresses, none resolved."""
    return ResolvedColumns.of([None] * count)


def _about(path: Path, err: SymbolReadError) -> str:
    """The reader's error text, naming the file when the text does not already."""
    text = str(err)
    return text if str(path) in text else f"{path}: {text}"


def _same_guid(a: str, b: str) -> bool:
    try:
        return uuid.UUID(a) == uuid.UUID(b)
    except ValueError:
        return a.lower() == b.lower()


def _stored_name(request: ModuleRequest) -> str:
    """The image's file name as the trace spells it (stores written on Windows keep that case), else the
    module's lowercased name."""
    last = request.path.replace("\\", "/").rpartition("/")[2]
    return last if last.lower() == request.name else request.name


class SymbolResolver:
    """Finds, downloads, caches and reads PDBs for the modules of one or more traces.

    ``elements`` is the parsed symbol path; ``cache_root`` holds the default downstream store
    (``<root>/sym``) and the frame cache (``<root>/symcache``); ``timeout`` bounds each wait on a server;
    ``progress`` hears about every download (from worker threads); ``workers`` modules are looked up at once.
    ``backend`` reads images and PDBs (the native extension when None). Servers are contacted only when the
    symbol path names one."""

    def __init__(self, elements: Sequence[SymbolPathElement], *, cache_root: Path,
                 timeout: float = DEFAULT_TIMEOUT, progress: ProgressCallback | None = None, workers: int = 8,
                 backend: SymbolBackend | None = None, windows_host: bool = os.name == "nt") -> None:
        if backend is None:
            from heapdiff.symbols.native import NativeBackend

            backend = NativeBackend()
        self._backend = backend
        self._workers = max(1, workers)
        fetcher = HttpFetcher(timeout=timeout, progress=progress, expand=backend.expand_cab)
        self._locator = Locator(elements, default_store=cache_root / DOWNLOADS, fetcher=fetcher,
                                expand=backend.expand_cab, windows_host=windows_host)
        self._frames = FrameCache(cache_root / FRAMES, backend.version)
        self._lock = threading.Lock()
        self._pdbs: dict[PdbId, _PdbEntry] = {}
        self._images: dict[tuple[str, int | None, int], _ImageEntry] = {}

    @property
    def path_notes(self) -> tuple[str, ...]:
        """Notes about the symbol path itself (elements skipped on this host), to show once."""
        return tuple(self._locator.notes)

    def resolve(self, requests: Sequence[tuple[ModuleRequest, Sequence[int]]]) -> list[Answer]:
        if len(requests) <= 1 or self._workers == 1:
            return [self._module_guarded(request, rvas) for request, rvas in requests]
        with ThreadPoolExecutor(min(self._workers, len(requests)), thread_name_prefix="heapdiff-symbols") as pool:
            return list(pool.map(lambda item: self._module_guarded(*item), requests))

    def close(self) -> None:
        """Let go of the open PDBs (the next resolve finds and opens them again)."""
        with self._lock:
            self._pdbs.clear()
            self._images.clear()

    def _module_guarded(self, request: ModuleRequest, rvas: Sequence[int]) -> Answer:
        try:
            return self._module(request, rvas)
        except Exception as err:  # the protocol's promise: an outcome with a note, never an exception
            return ModuleSymbols("error", note=f"{type(err).__name__}: {err}"), _nothing(len(rvas))

    def _module(self, request: ModuleRequest, rvas: Sequence[int]) -> Answer:
        from_image: PdbId | None = None
        pdb = request.pdb
        if pdb is None:
            image = self._image_identity(request)
            if image.pdb is None:
                return ModuleSymbols(image.status, note=image.note), _nothing(len(rvas))
            pdb = from_image = image.pdb
        with self._lock:
            entry = self._pdbs.setdefault(pdb, _PdbEntry())
        with entry.lock:
            if entry.cached is None:
                entry.cached = self._frames.load(pdb)
            need = entry.cached.missing(rvas)
            if need or (len(rvas) == 0 and entry.found is None):  # nothing asked: still say if there is a PDB
                self._read(pdb, request, entry, need)
            return self._outcome(entry, entry.cached, rvas, from_image), entry.cached.answers(rvas)

    def _read(self, pdb: PdbId, request: ModuleRequest, entry: _PdbEntry, need: list[int]) -> None:
        """Resolve ``need`` with the PDB (found and opened on first use) and add the answers to the cache."""
        if entry.found is None:
            entry.found = self._find_pdb(pdb, request)
            if entry.found.path is not None:
                try:
                    entry.reader = self._backend.open_pdb(entry.found.path)
                except SymbolReadError as err:
                    entry.found = _Found(None, "error", _about(entry.found.path, err))
        if entry.reader is None or entry.found.path is None or not need or entry.cached is None:
            return
        try:
            batch = entry.reader.resolve(need)
        except SymbolReadError as err:
            entry.found, entry.reader = _Found(None, "error", _about(entry.found.path, err)), None
            return
        if len(batch.answers) != len(need):
            entry.found, entry.reader = _Found(None, "error", f"{entry.found.path}: the reader answered "
                                               f"{len(batch.answers)} of {len(need)} addresses"), None
            return
        if batch.problem is not None:
            entry.problem = batch.problem
        entry.cached = entry.cached.merged(need, batch.answers, str(entry.found.path))
        self._frames.add(pdb, str(entry.found.path), need, batch.answers)

    @staticmethod
    def _outcome(entry: _PdbEntry, cached: CachedFrames, rvas: Sequence[int], from_image: PdbId | None
                 ) -> ModuleSymbols:
        found = entry.found
        if found is not None and found.path is not None:  # the PDB was read
            return ModuleSymbols("loaded", symbol_file=str(found.path), note=entry.problem, pdb=from_image)
        if found is None:  # all from the cache: the PDB was not looked for, so say where the answers come from
            note = f"from heapdiff's symbol cache (parsed from {cached.symbol_file})"
            return ModuleSymbols("loaded", symbol_file=cached.symbol_file, note=note, pdb=from_image)
        if len(cached.missing(rvas)) < len(set(rvas)):
            note = f"{found.note} (addresses resolved in an earlier run still answered from the frame cache)"
            return ModuleSymbols("loaded", symbol_file=cached.symbol_file, note=note, pdb=from_image)
        return ModuleSymbols(found.status, note=found.note, pdb=from_image)

    def _find_pdb(self, pdb: PdbId, request: ModuleRequest) -> _Found:
        """The first PDB on the symbol path whose GUID and age are ``pdb``'s (then copied into the caches)."""
        wanted = Wanted(pdb.name, pdb.store_key, request.name)
        trail = Trail()
        failures: list[_Found] = []
        for candidate in self._locator.search(wanted, trail):
            try:
                guid, age = self._backend.pdb_identity(candidate.path)
            except SymbolReadError as err:
                failures.append(_Found(candidate.path, "error", _about(candidate.path, err)))
                self._locator.discard(candidate)
                continue
            if _same_guid(guid, pdb.guid) and age == pdb.age:
                self._locator.keep(candidate, wanted)
                return _Found(candidate.path, "loaded")
            failures.append(_Found(candidate.path, "mismatch",
                                   f"{candidate.path} is {{{guid}}} age {age}; the image wants "
                                   f"{{{pdb.guid}}} age {pdb.age}"))
            self._locator.discard(candidate)
        return _failure(failures, f"{pdb.name} ({pdb.store_key}) not found: {trail.summary()}")

    def _image_identity(self, request: ModuleRequest) -> _ImageEntry:
        """The PDB identity read from the image itself (the trace had no DbgID record), found once per image."""
        key = (request.name, request.timestamp, request.size)
        with self._lock:
            entry = self._images.setdefault(key, _ImageEntry())
        with entry.lock:
            if not entry.done:
                self._find_image(request, entry)
                entry.done = True
        return entry

    def _find_image(self, request: ModuleRequest, entry: _ImageEntry) -> None:
        """Find the image by its store key (or by name in plain directories, checking stamp and size) and read
        its CodeView record. Without a TimeDateStamp only SizeOfImage can be checked, and a name-only match is
        never taken (that is how wrong symbols happen)."""
        name = _stored_name(request)
        key = None if request.timestamp is None else pe_key(request.timestamp, request.size)
        wanted = Wanted(name, key, request.name)
        trail = Trail()
        failures: list[_Found] = []
        described = f"{request.name} ({key or f'size {request.size:#x}, no timestamp'})"
        if request.timestamp is None and request.size == 0:
            entry.note = f"no PDB identity in the trace, and nothing to find {request.name} by"
            return
        for candidate in self._locator.search(wanted, trail):
            try:
                image: ImageIdentity = self._backend.image_identity(candidate.path)
            except SymbolReadError as err:
                failures.append(_Found(candidate.path, "error", _about(candidate.path, err)))
                self._locator.discard(candidate)
                continue
            stamp_ok = request.timestamp is None or image.timestamp == request.timestamp
            if stamp_ok and image.size == request.size:
                self._locator.keep(candidate, wanted)
                if image.pdb is None:
                    entry.note = f"{candidate.path} names no PDB ({image.note or 'no CodeView record'})"
                else:
                    entry.pdb = image.pdb
                return
            failures.append(_Found(candidate.path, "mismatch",
                                   f"{candidate.path} is {pe_key(image.timestamp, image.size)}; "
                                   f"the trace's image is {key or f'size {request.size:#x}'}"))
            self._locator.discard(candidate)
        found = _failure(failures, f"no PDB identity in the trace, and the image {described} was not found: "
                                   f"{trail.summary()}")
        # an image of that name with another stamp or size found no PDB: not found, and the note says why
        entry.status = "error" if found.status == "error" else "not_found"
        entry.note = found.note if found.status == "not_found" else f"no PDB identity in the trace; {found.note}"


def _failure(failures: list[_Found], not_found: str) -> _Found:
    """The failure to report: a damaged file before a mismatched one before nothing at all."""
    if not failures:
        return _Found(None, "not_found", not_found)
    first = min(failures, key=lambda f: _FAILURE_RANK[f.status])
    more = len(failures) - 1
    note = first.note if not more else f"{first.note} (and {more} other candidate{'s' if more > 1 else ''})"
    return _Found(None, first.status, note)
