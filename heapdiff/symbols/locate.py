"""Walking the symbol path for one file: every place that may hold it, in order, as candidates to check.

The symbol path is turned once into steps (probe a store, probe a plain directory, ask a server), each knowing
the stores a file it finds must be copied into: a chain's stores to the left of where the file was found, and
every ``cache*`` element to the left of the step. Candidates come lazily, so that a server is asked only when no
local candidate was accepted; the caller checks each one's identity and calls :meth:`Locator.keep` on the one it
takes (only then is it copied into caches: a file never enters a store under a key it does not match).

A compressed file (``name.pd_``) is expanded into a store heapdiff writes: the chain's bottom store, the
``cache*`` directory it was found in, or for a plain directory the first ``cache*`` to its left or the default
store; never beside a file in a plain directory, which may be a read-only share.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from heapdiff.symbols.cachedir import install_copy, install_expanded
from heapdiff.symbols.fetch import Expander, HttpFetcher, ServerMiss
from heapdiff.symbols.path import CacheDirective, LocalDirectory, ServerChain, SymbolPathElement, is_windows_path
from heapdiff.symbols.store import Hit, Unavailable, compressed_name, flat_candidates, probe_store


@dataclass(frozen=True, slots=True)
class Wanted:
    """A file to find: its store name (``app.pdb``, ``app.dll``), its store key (None: unknown, so only plain
    directories can be searched, by name), and the image it is for (plain directories sort by its extension)."""

    name: str
    key: str | None
    image_name: str


@dataclass(frozen=True, slots=True)
class Candidate:
    path: Path
    #: the symbol path element it came from, for notes
    origin: str
    #: stores to copy it into once accepted
    caches: tuple[Path, ...]
    #: heapdiff wrote this file (a download or an expansion): a rejected one may be removed
    owned: bool


@dataclass
class Trail:
    """What one search saw: the places looked in, and the notes worth showing when nothing was accepted."""

    looked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        where = ", ".join(dict.fromkeys(self.looked)) or "nowhere (the symbol path is empty)"
        return "; ".join([f"looked in {where}", *dict.fromkeys(self.notes)])


@dataclass(frozen=True, slots=True)
class _Step:
    kind: str  # "store", "directory" or "server"
    where: str  # a folder, or a server's URL
    caches: tuple[Path, ...]
    #: where a compressed file found here is expanded (a store heapdiff may write)
    expand_into: Path
    #: the symbol path element, for notes
    origin: str


class Locator:
    """The symbol path as steps. Thread-safe: a search keeps its state in its own :class:`Trail`."""

    def __init__(self, elements: Sequence[SymbolPathElement], *, default_store: Path, fetcher: HttpFetcher,
                 expand: Expander, windows_host: bool = os.name == "nt") -> None:
        self._fetcher = fetcher
        self._expand = expand
        self._windows_host = windows_host
        self._default = default_store
        self.notes: list[str] = []
        self._steps = self._plan(elements)

    def _local(self, text: str | None, origin: str) -> Path | None:
        """A directory of the path on this host: None for the default store, a Windows path on another OS
        skipped with a note."""
        if text is None:
            return self._default
        if not self._windows_host and is_windows_path(text):
            self.notes.append(f"{origin}: {text} skipped (a Windows path, and this is not Windows)")
            return None
        return Path(text).expanduser()

    def _plan(self, elements: Sequence[SymbolPathElement]) -> list[_Step]:
        steps: list[_Step] = []
        caches: list[Path] = []  # the cache* directories seen so far
        for element in elements:
            origin = str(element)
            if isinstance(element, CacheDirective):
                root = self._local(element.path, origin)
                if root is not None:
                    steps.append(_Step("store", str(root), tuple(caches), root, origin))
                    caches.append(root)
            elif isinstance(element, LocalDirectory):
                root = self._local(element.path, origin)
                if root is not None:
                    expand_into = caches[0] if caches else self._default
                    steps.append(_Step("directory", str(root), tuple(caches), expand_into, origin))
            else:
                steps += self._chain_steps(element, caches, origin)
        return steps

    def _chain_steps(self, chain: ServerChain, caches: list[Path], origin: str) -> list[_Step]:
        stores = [p for p in (self._local(s, origin) for s in chain.stores) if p is not None]
        if not stores:
            # "srv*URL" has no store of its own, and a Windows store on another OS is none: downloads still
            # need one, the default downstream store (the debuggers do the same)
            stores = [self._default]
            if chain.stores and chain.stores != (None,):
                self.notes.append(f"{origin}: downloads go to {self._default} instead")
        bottom = stores[0]
        steps = [_Step("store", str(store), tuple(stores[:i]) + tuple(caches), bottom, origin)
                 for i, store in enumerate(stores)]
        steps += [_Step("server", url, tuple(stores[1:]) + tuple(caches), bottom, origin) for url in chain.urls]
        return steps

    @property
    def uses_servers(self) -> bool:
        return any(step.kind == "server" for step in self._steps)

    def search(self, wanted: Wanted, trail: Trail) -> Iterator[Candidate]:
        """Every candidate for ``wanted``, in symbol path order (store layout before flat in a plain
        directory). Store and server steps need the key; without one only plain directories are searched."""
        for step in self._steps:
            trail.looked.append(step.where)
            if step.kind == "server":
                if wanted.key is not None:
                    yield from self._from_server(step, wanted, trail)
                continue
            root = Path(step.where)
            if wanted.key is not None:
                yield from self._from_store(step, root, wanted, wanted.key, trail)
            if step.kind == "directory":
                for path in flat_candidates(root, wanted.name, wanted.image_name):
                    yield Candidate(path, step.origin, step.caches, owned=False)

    def _from_store(self, step: _Step, root: Path, wanted: Wanted, key: str, trail: Trail) -> Iterator[Candidate]:
        found = probe_store(root, wanted.name, key)
        if isinstance(found, Unavailable):
            trail.notes.append(found.note)
        elif isinstance(found, Hit):
            candidate = self._usable(found, step, wanted, key, trail, downloaded=False)
            if candidate is not None:
                yield candidate

    def _from_server(self, step: _Step, wanted: Wanted, trail: Trail) -> Iterator[Candidate]:
        assert wanted.key is not None
        found = self._fetcher.fetch(step.where, wanted.name, wanted.key, step.expand_into)
        if isinstance(found, ServerMiss):
            if found.failed:
                trail.notes.append(found.note)
        elif isinstance(found, Unavailable):
            trail.notes.append(found.note)
        else:
            candidate = self._usable(found, step, wanted, wanted.key, trail, downloaded=True)
            if candidate is not None:
                yield candidate

    def _usable(self, hit: Hit, step: _Step, wanted: Wanted, key: str, trail: Trail, *, downloaded: bool
                ) -> Candidate | None:
        """A hit as a candidate: a compressed one expanded first (a note when that fails)."""
        if not hit.compressed:
            owned = downloaded and hit.path.is_relative_to(step.expand_into)
            return Candidate(hit.path, step.origin, step.caches, owned=owned)
        dest = step.expand_into / wanted.name / key / wanted.name
        try:
            install_expanded(hit.path, dest, self._expand)
        except Exception as err:  # the expander's own error type: a damaged CAB is a note, never a crash
            trail.notes.append(f"{hit.path} ({compressed_name(wanted.name)}) could not be expanded: {err}")
            return None
        caches = tuple(c for c in step.caches if c != step.expand_into)
        return Candidate(dest, step.origin, caches, owned=True)

    def keep(self, candidate: Candidate, wanted: Wanted) -> None:
        """Copy an accepted candidate into the stores that cache it. A cache that cannot be written is no
        error: the file is used from where it is."""
        if wanted.key is None:
            return
        for store in candidate.caches:
            with contextlib.suppress(OSError):
                install_copy(candidate.path, store / wanted.name / wanted.key / wanted.name)

    @staticmethod
    def discard(candidate: Candidate) -> None:
        """Remove a rejected file heapdiff put into a store (a download under a key it does not match)."""
        if candidate.owned:
            with contextlib.suppress(OSError):
                candidate.path.unlink()
