"""Finding PDBs for heapdiff's frames: the symbol path, local stores, symbol servers, caches, and the resolver.

The shell's side of symbols (the core declares what it asks in :mod:`heapdiff.frames`). The CLI parses the path
(:func:`symbol_path_from`), picks the cache root (:func:`cache_root`) and resolves through a
:class:`SymbolResolver`.
"""

from heapdiff.symbols.cachedir import cache_root
from heapdiff.symbols.fetch import DEFAULT_TIMEOUT, DownloadProgress, ProgressCallback
from heapdiff.symbols.path import (
    ENV_VARIABLES,
    CacheDirective,
    LocalDirectory,
    ServerChain,
    SymbolPathElement,
    parse_symbol_path,
    symbol_path_from,
)
from heapdiff.symbols.resolver import SymbolResolver

__all__ = [
    "DEFAULT_TIMEOUT",
    "ENV_VARIABLES",
    "CacheDirective",
    "DownloadProgress",
    "LocalDirectory",
    "ProgressCallback",
    "ServerChain",
    "SymbolPathElement",
    "SymbolResolver",
    "cache_root",
    "parse_symbol_path",
    "symbol_path_from",
]
