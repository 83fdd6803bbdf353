"""Where heapdiff keeps symbol files and parsed symbols, and how a file is put there safely.

Everything under the cache root is a cache and safe to delete at any time (a run downloads or parses again what
it needs): ``<root>/sym`` is the default downstream symbol store (downloads and expanded ``.pd_`` files, in
symbol-store layout, when the symbol path names no store of its own), and ``<root>/symcache`` holds what was
resolved from each PDB (:mod:`heapdiff.symbols.framecache`). The root is ``$HEAPDIFF_CACHE_DIR`` when set, else
the platform's cache folder + ``heapdiff``.

Files are always written to a temporary name in the destination folder and renamed into place, so a reader (or a
second heapdiff at the same time) sees either no file or a whole one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

#: the default downstream store, under the cache root
DOWNLOADS = "sym"
#: parsed symbols, under the cache root
FRAMES = "symcache"


def cache_root(env: Mapping[str, str], *, platform: str = sys.platform, home: Path | None = None) -> Path:
    """``$HEAPDIFF_CACHE_DIR``, else ``%LOCALAPPDATA%`` (Windows), ``~/Library/Caches`` (macOS) or
    ``$XDG_CACHE_HOME`` / ``~/.cache`` (elsewhere), + ``heapdiff``."""
    explicit = env.get("HEAPDIFF_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    home = home if home is not None else Path.home()
    if platform.startswith("win"):
        base = env.get("LOCALAPPDATA")
        folder = Path(base) if base else home / "AppData" / "Local"
    elif platform == "darwin":
        folder = home / "Library" / "Caches"
    else:
        xdg = env.get("XDG_CACHE_HOME")
        # the XDG spec: a relative XDG_CACHE_HOME is invalid and must be ignored
        folder = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".cache"
    return folder / "heapdiff"


@contextlib.contextmanager
def temporary_beside(dest: Path) -> Iterator[Path]:
    """A fresh temporary path in ``dest``'s folder (created if missing), removed on the way out unless it was
    renamed onto ``dest`` meanwhile. Same folder, so the final rename is atomic."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def install_copy(src: Path, dest: Path) -> Path:
    """Copy ``src`` to ``dest`` (temporary name, then rename). Returns ``dest``."""
    if src.resolve() == dest.resolve():
        return dest
    with temporary_beside(dest) as tmp:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    return dest


def install_expanded(cab: Path, dest: Path, expand: Callable[[Path, Path], None]) -> Path:
    """Expand a compressed ``name.xx_`` (a CAB) into ``dest`` (temporary name, then rename), never beside the
    compressed file unless that is where ``dest`` is. Errors of ``expand`` go to the caller."""
    with temporary_beside(dest) as tmp:
        expand(cab, tmp)
        os.replace(tmp, dest)
    return dest
