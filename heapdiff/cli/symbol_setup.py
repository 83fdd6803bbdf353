"""The symbol options: the symbol path the user gave (or the environment's), the traces' own folders, the cache,
a download line on a terminal, and what the run's symbol lookups ended in, said once."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from heapdiff.cli.terminal import warn

if TYPE_CHECKING:
    from heapdiff.document.model import TraceRecord
    from heapdiff.symbols import DownloadProgress, SymbolResolver

SYMBOLS_HELP = ("Where PDBs are: a directory (flat or a symbol store), srv*CACHE*URL for a symbol server, cache*DIR; "
                "';'-separated, repeatable; Windows paths parse on every OS. Default: _NT_SYMBOL_PATH. The folder "
                "of each trace is searched too; a server is contacted only when the path names one.")


class DownloadLine:
    """One line on stderr, rewritten in place, while symbol files download (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._lock = threading.Lock()
        self._active: dict[str, tuple[int, int | None]] = {}
        self._done = 0
        self._last = 0.0
        self._shown = False

    def __call__(self, p: DownloadProgress) -> None:
        if not self.enabled:
            return
        with self._lock:
            if p.state in ("done", "failed"):
                self._active.pop(p.url, None)
                self._done += p.state == "done"
            else:
                self._active[p.url] = (p.received, p.total)
            now = time.monotonic()
            if now - self._last < 0.2 and p.state == "data":
                return
            self._last = now
            got = sum(r for r, _ in self._active.values())
            names = ", ".join(sorted({u.rsplit("/", 1)[-1] for u in self._active}))[:50]
            line = (f"symbols: downloading {len(self._active)} file(s) ({got / 1e6:.1f} MB) {names}"
                    if self._active else f"symbols: {self._done} file(s) downloaded")
            sys.stderr.write("\r" + line[:78].ljust(78))
            sys.stderr.flush()
            self._shown = True

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * 78 + "\r")
            sys.stderr.flush()


def make_resolver(options: Sequence[str], trace_paths: Sequence[str], timeout: float,
                  line: DownloadLine) -> tuple[SymbolResolver, str]:
    """The resolver for this run, and its symbol path as text (what the document records)."""
    from heapdiff.symbols import LocalDirectory, SymbolResolver, cache_root, symbol_path_from

    elements = list(symbol_path_from(options, os.environ))
    for p in trace_paths:
        folder = os.path.dirname(os.path.abspath(p))
        if LocalDirectory(folder) not in elements:
            elements.append(LocalDirectory(folder))
    resolver = SymbolResolver(elements, cache_root=cache_root(os.environ), timeout=timeout, progress=line)
    for note in resolver.path_notes:
        warn(f"symbol path: {note}")
    return resolver, ";".join(str(e) for e in elements)


def report_symbols(traces: Sequence[TraceRecord], servers: bool, asked: bool) -> None:
    """One line per module whose PDB was refused or damaged (and, with a server on the path, not found), then a
    count per trace when some are missing and the user gave a symbol path; the notes are in the JSON's
    traces[].modules too."""
    for t in traces:
        mods = [m for m in t.modules if m.symbols != "off"]
        if not mods:
            continue
        for m in mods:
            if m.symbols in ("mismatch", "error") or (servers and m.symbols == "not_found" and m.note):
                warn(f"symbols: {m.name}: {m.symbols.replace('_', ' ')}: {m.note or ''}".rstrip(": "))
        loaded = sum(m.symbols == "loaded" for m in mods)
        if loaded < len(mods) and asked:
            warn(f"{t.path}: symbols for {loaded} of {len(mods)} modules; the others show as module+offset")
