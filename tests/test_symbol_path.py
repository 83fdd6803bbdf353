"""Symbol path parsing, table-driven: the debuggers' syntax, real-world strings, and the cases heapdiff decides."""

from __future__ import annotations

import pytest

from heapdiff.symbols.path import (
    CacheDirective,
    LocalDirectory,
    ServerChain,
    SymbolPathElement,
    is_url,
    is_windows_path,
    parse_symbol_path,
    symbol_path_from,
)

MSDL = "https://msdl.microsoft.com/download/symbols"

PARSE_CASES: list[tuple[str, tuple[SymbolPathElement, ...]]] = [
    ("", ()),
    (";;", ()),
    ("  ;  ", ()),
    ("/syms", (LocalDirectory("/syms"),)),
    (" /syms ", (LocalDirectory("/syms"),)),
    ("/a;/b", (LocalDirectory("/a"), LocalDirectory("/b"))),
    ("/a;;/b;", (LocalDirectory("/a"), LocalDirectory("/b"))),
    ("relative/dir", (LocalDirectory("relative/dir"),)),
    # Windows paths never split at the drive colon, and parse on every host
    (r"C:\Symbols", (LocalDirectory(r"C:\Symbols"),)),
    (r"C:\Symbols;D:\More", (LocalDirectory(r"C:\Symbols"), LocalDirectory(r"D:\More"))),
    (r"\\server\share\symbols", (LocalDirectory(r"\\server\share\symbols"),)),
    ("c:/forward/slashes", (LocalDirectory("c:/forward/slashes"),)),
    # server chains
    (f"srv*{MSDL}", (ServerChain((), (MSDL,)),)),
    (f"SRV*{MSDL}", (ServerChain((), (MSDL,)),)),
    (f"Srv*{MSDL}/", (ServerChain((), (MSDL,)),)),
    (rf"srv*C:\Symbols*{MSDL}", (ServerChain((r"C:\Symbols",), (MSDL,)),)),
    (rf"SRV*c:\symbols*{MSDL}", (ServerChain((r"c:\symbols",), (MSDL,)),)),
    (f"srv*/home/u/sym*{MSDL}", (ServerChain(("/home/u/sym",), (MSDL,)),)),
    (f"srv**{MSDL}", (ServerChain((None,), (MSDL,)),)),
    (rf"srv*C:\a*\\mid\store*{MSDL}", (ServerChain((r"C:\a", r"\\mid\store"), (MSDL,)),)),
    ("srv*", (ServerChain((None,), ()),)),
    ("srv*/local/store", (ServerChain(("/local/store",), ()),)),
    (f"srv * /sym * {MSDL} ", (ServerChain(("/sym",), (MSDL,)),)),
    ("srv*HTTPS://MSDL.microsoft.com/x", (ServerChain((), ("HTTPS://MSDL.microsoft.com/x",)),)),
    ("srv*http://127.0.0.1:8080/s", (ServerChain((), ("http://127.0.0.1:8080/s",)),)),
    # two servers in one chain: tried in order after the stores
    (f"srv*/s*http://a*{MSDL}", (ServerChain(("/s",), ("http://a", MSDL)),)),
    # the long form: the DLL name is skipped
    (rf"symsrv*symsrv.dll*C:\Symbols*{MSDL}", (ServerChain((r"C:\Symbols",), (MSDL,)),)),
    (f"SYMSRV*SYMSRV.DLL*{MSDL}", (ServerChain((), (MSDL,)),)),
    (f"symsrv*symsrv.dll**{MSDL}", (ServerChain((None,), (MSDL,)),)),
    # cache
    (r"cache*c:\sym", (CacheDirective(r"c:\sym"),)),
    ("CACHE*/tmp/c", (CacheDirective("/tmp/c"),)),
    ("cache*", (CacheDirective(None),)),
    (rf"cache*c:\sym;srv*{MSDL}", (CacheDirective(r"c:\sym"), ServerChain((), (MSDL,)))),
    (rf"cache*C:\MySymbols;C:\MyCode\bin;srv*{MSDL}",
     (CacheDirective(r"C:\MySymbols"), LocalDirectory(r"C:\MyCode\bin"), ServerChain((), (MSDL,)))),
    # UIforETW's and PerfView's defaults, as found in the wild
    (rf"SRV*c:\symbols*{MSDL}", (ServerChain((r"c:\symbols",), (MSDL,)),)),
    (r"SRV*C:\Users\x\AppData\Local\Temp\SymbolCache*http://msdl.microsoft.com/download/symbols;"
     r"SRV*C:\Users\x\AppData\Local\Temp\SymbolCache*http://referencesource.microsoft.com/symbols",
     (ServerChain((r"C:\Users\x\AppData\Local\Temp\SymbolCache",), ("http://msdl.microsoft.com/download/symbols",)),
      ServerChain((r"C:\Users\x\AppData\Local\Temp\SymbolCache",), ("http://referencesource.microsoft.com/symbols",)))),
    (rf".;C:\build\out;srv*{MSDL}", (LocalDirectory("."), LocalDirectory(r"C:\build\out"),
                                     ServerChain((), (MSDL,)))),
    # a bare URL names a server: read as srv*URL
    (MSDL, (ServerChain((), (MSDL,)),)),
    # keywords need their star; other words with a star are directories
    ("srv", (LocalDirectory("srv"),)),
    ("cache", (LocalDirectory("cache"),)),
    ("srvx*/a", (LocalDirectory("srvx*/a"),)),
    ("/odd*dir", (LocalDirectory("/odd*dir"),)),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES, ids=[c[0] or "<empty>" for c in PARSE_CASES])
def test_parse(text: str, expected: tuple[SymbolPathElement, ...]) -> None:
    assert parse_symbol_path(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    (r"C:\Symbols", True), ("c:/x", True), ("C:", True), (r"\\server\share", True), (r"sym\sub", True),
    (r"\\?\C:\x", True),
    ("/home/u/sym", False), ("relative", False), ("./x", False), ("/a:b/c", False), ("~/sym", False),
])
def test_is_windows_path(text: str, expected: bool) -> None:
    assert is_windows_path(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("http://x", True), ("https://x/y", True), ("HTTPS://X", True), ("ftp://x", False), ("/http://x", False),
    ("httpx://", False), (r"C:\http", False),
])
def test_is_url(text: str, expected: bool) -> None:
    assert is_url(text) is expected


@pytest.mark.parametrize(("options", "env", "expected"), [
    # no option, no environment: nothing to search
    ((), {}, ()),
    # the alternate path is searched before the main one
    ((), {"_NT_SYMBOL_PATH": "/main", "_NT_ALT_SYMBOL_PATH": "/alt"},
     (LocalDirectory("/alt"), LocalDirectory("/main"))),
    ((), {"_NT_SYMBOL_PATH": f"srv*/c*{MSDL}"}, (ServerChain(("/c",), (MSDL,)),)),
    ((), {"_NT_ALT_SYMBOL_PATH": "/alt"}, (LocalDirectory("/alt"),)),
    # --symbols replaces the environment; repeated options keep their order and each may hold several elements
    (("/opt",), {"_NT_SYMBOL_PATH": "/main"}, (LocalDirectory("/opt"),)),
    (("/a;/b", f"srv*{MSDL}"), {}, (LocalDirectory("/a"), LocalDirectory("/b"), ServerChain((), (MSDL,)))),
    # an explicitly empty option still replaces the environment (a way to say: no symbols from the environment)
    (("",), {"_NT_SYMBOL_PATH": "/main"}, ()),
])
def test_symbol_path_from(options: tuple[str, ...], env: dict[str, str],
                          expected: tuple[SymbolPathElement, ...]) -> None:
    assert symbol_path_from(options, env) == expected


def test_elements_print_back_as_symbol_path_text() -> None:
    text = rf"cache*/c;/plain;srv*C:\Symbols**{MSDL};cache*"
    assert ";".join(str(e) for e in parse_symbol_path(text)) == text
    assert parse_symbol_path(";".join(str(e) for e in parse_symbol_path(text))) == parse_symbol_path(text)
