"""The symbol path: where PDBs and images may be, parsed into elements and nothing else (no file or network access).

The syntax is the debuggers' (``_NT_SYMBOL_PATH``): ``;``-separated elements searched left to right, each a plain
directory, a symbol-server chain ``srv*STORE*...*URL`` (``symsrv*symsrv.dll*...`` is the long form), or
``cache*DIR``. Elements are split at ``;`` and chains at ``*`` only, so a drive colon (``C:\\Symbols``) or a URL's
colon never splits anything, and Windows paths parse the same on every host; the lookup, not the parser, decides
what a Windows path means on the host it runs on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: searched in this order when no ``--symbols`` option is given
ENV_VARIABLES = ("_NT_ALT_SYMBOL_PATH", "_NT_SYMBOL_PATH")

_SERVER_KEYWORDS = ("srv", "symsrv")
_CACHE_KEYWORD = "cache"
_URL = re.compile(r"^https?://", re.IGNORECASE)
# a drive (C:, C:\x, C:/x) or a UNC/device path (\\server\share, \\?\C:\x), or any backslash at all
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:(?:[\\/]|$)|\\")


@dataclass(frozen=True, slots=True)
class LocalDirectory:
    """A directory searched flat (``dir/app.pdb``, ``dir/symbols/dll/app.pdb``) and as a store."""

    path: str

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class ServerChain:
    """``srv*DS1*DS2*URL``: local stores searched left to right, then the servers in order.

    A file found further right is copied into every store to its left. ``None`` is the default downstream store
    (an empty token, as in ``srv**URL``); a chain with servers but no store downloads into the default store."""

    stores: tuple[str | None, ...]
    urls: tuple[str, ...]

    def __str__(self) -> str:
        return "*".join(["srv", *("" if s is None else s for s in self.stores), *self.urls])


@dataclass(frozen=True, slots=True)
class CacheDirective:
    """``cache*DIR``: a store searched here that keeps a copy of what any element to its right finds."""

    #: None: the default downstream store (``cache*``)
    path: str | None

    def __str__(self) -> str:
        return f"cache*{self.path or ''}"


SymbolPathElement = LocalDirectory | ServerChain | CacheDirective


def is_url(text: str) -> bool:
    """Whether a chain token names an HTTP(S) symbol server (any case of the scheme)."""
    return bool(_URL.match(text))


def is_windows_path(text: str) -> bool:
    """Whether a directory is written the Windows way (drive letter, UNC share or backslash).

    Such a path is meaningless on another OS (``C:\\Symbols`` would be a relative name there), so the lookup skips
    it with a note on a non-Windows host rather than searching a directory nobody meant."""
    return bool(_WINDOWS_PATH.search(text))


def parse_symbol_path(text: str) -> tuple[SymbolPathElement, ...]:
    """Parse one symbol path string. Never raises: anything that is not a keyword form is a directory.

    Decisions where the debuggers' documentation is silent: whitespace around elements and chain tokens is
    trimmed and empty elements are dropped (``a;;b`` is two directories, not the working directory); a bare
    ``http(s)://`` element is read as ``srv*URL`` (it names a server, and nothing else could be meant); the DLL
    name of ``symsrv*DLL*...`` is ignored; a URL token anywhere in a chain is a server (tried in order after
    the chain's stores)."""
    elements: list[SymbolPathElement] = []
    for raw in text.split(";"):
        element = raw.strip()
        if element:
            elements.append(_parse_element(element))
    return tuple(elements)


def _parse_element(element: str) -> SymbolPathElement:
    keyword, star, rest = element.partition("*")
    keyword = keyword.strip().lower()
    if not star:
        if is_url(element):
            return ServerChain(stores=(), urls=(element.rstrip("/"),))
        return LocalDirectory(element)
    if keyword == _CACHE_KEYWORD:
        return CacheDirective(rest.strip() or None)
    if keyword in _SERVER_KEYWORDS:
        tokens = [t.strip() for t in rest.split("*")]
        if keyword == "symsrv":
            tokens = tokens[1:]  # the symbol-server DLL's name: heapdiff is its own symbol-server client
        return _chain(tokens)
    return LocalDirectory(element)


def _chain(tokens: Sequence[str]) -> ServerChain:
    stores: list[str | None] = []
    urls: list[str] = []
    for token in tokens:
        if is_url(token):
            urls.append(token.rstrip("/"))
        else:
            stores.append(token or None)
    if not stores and not urls:
        stores.append(None)  # "srv*" alone: the default store
    return ServerChain(tuple(stores), tuple(urls))


def symbol_path_from(options: Sequence[str], env: Mapping[str, str]) -> tuple[SymbolPathElement, ...]:
    """The symbol path heapdiff searches: the ``--symbols`` values (repeatable, each may hold several elements) in
    order when any is given, else ``_NT_ALT_SYMBOL_PATH`` then ``_NT_SYMBOL_PATH`` from ``env``."""
    texts = list(options) if options else [env.get(name, "") for name in ENV_VARIABLES]
    return tuple(e for text in texts for e in parse_symbol_path(text))
