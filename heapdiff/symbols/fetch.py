"""Downloads from HTTP(S) symbol servers into a local store, with the standard library's urllib.

A server is asked for ``URL/name/KEY/name``, then the compressed ``name.xx_``, then ``file.ptr``, as symbol
servers serve them; a 404 moves on to the next form. What arrives must start with the magic of what was asked
for (MSF for a PDB, MSCF for a CAB, MZ for an image): a dead server that answers an HTML page with status 200
never gets into the store. Files are written to a temporary name and renamed into place; a ``.pd_`` is expanded
into the store and the CAB dropped. The time-out bounds the connection and each wait for data (a large PDB on a
slow link still arrives). A server that refuses, does not answer or cannot be resolved is remembered as down for
the life of the :class:`HttpFetcher`, so that the next modules are not each held up by the same time-out.

urllib rather than an HTTP library: one GET at a time per module, redirects (msdl sends hits to blob storage) and
proxies (``https_proxy``) are all it needs, and it adds no dependency. urllib, http.client and ssl are imported at
the first download (:func:`_http`), not with this module: most runs name no server, and they cost a warm run
as much as a tenth of what its symbols add.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, BinaryIO, Literal

from heapdiff import __version__
from heapdiff.symbols.cachedir import install_expanded, temporary_beside
from heapdiff.symbols.store import POINTER, Hit, Unavailable, compressed_name, read_pointer

if TYPE_CHECKING:
    import http.client
    import urllib.request


def _http() -> tuple[ModuleType, ModuleType, ModuleType, ModuleType]:
    """``http.client``, ``urllib.error``, ``urllib.parse`` and ``urllib.request``, imported now."""
    import http.client
    import urllib.error
    import urllib.parse
    import urllib.request

    return http.client, urllib.error, urllib.parse, urllib.request

DEFAULT_TIMEOUT = 10.0
_CHUNK = 1 << 16
_MSF = b"Microsoft C/C++ "  # MSF 7.00 and the old 2.00 both start so; the reader tells them apart
_MSFZ = b"Microsoft MSFZ Container"
_PORTABLE_PDB = b"BSJB"
_CAB = b"MSCF"
_PE = b"MZ"
_MAGIC_BYTES = 32


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """One step of one download, for a progress line. Sent from worker threads, several downloads at a time."""

    file: str
    url: str
    received: int
    #: the Content-Length, when the server sent one
    total: int | None
    state: Literal["start", "data", "done", "failed"]


ProgressCallback = Callable[[DownloadProgress], None]
#: expand a CAB (first path) into a file (second path); raises on a damaged CAB
Expander = Callable[[Path, Path], None]


@dataclass(frozen=True, slots=True)
class ServerMiss:
    """The server does not have the file (404 for every form), or failed with a note saying how."""

    note: str
    failed: bool


FetchOutcome = Hit | Unavailable | ServerMiss


class _Failure(Exception):
    """A request that ended without the file: ``note`` says why; ``down`` when the server itself is unreachable
    (refused, no answer, unknown host), so that no later request waits on it again."""

    def __init__(self, note: str, *, down: bool = False) -> None:
        super().__init__(note)
        self.note = note
        self.down = down


#: the other containers a file named ``.pdb`` may be, and why heapdiff cannot read them
_NOT_MSF_PDB = ((_MSFZ, "an MSFZ container, which heapdiff cannot read"),
                (_PORTABLE_PDB, "a portable (.NET) PDB, which heapdiff cannot read"))


def content_problem(first_bytes: bytes, name: str) -> str | None:
    """Why a file named ``name`` cannot be these bytes, or None when its magic is right."""
    if name.endswith("_"):
        return None if first_bytes.startswith(_CAB) else _describe(first_bytes, "a CAB")
    if not name.lower().endswith(".pdb"):
        return None if first_bytes.startswith(_PE) else _describe(first_bytes, "an image")
    if first_bytes.startswith(_MSF):
        return None
    return next((why for magic, why in _NOT_MSF_PDB if first_bytes.startswith(magic)),
                _describe(first_bytes, "a PDB"))


def _describe(first_bytes: bytes, wanted: str) -> str:
    head = "".join(chr(b) if 32 <= b < 127 else "." for b in first_bytes[:16])
    return f"not {wanted} (starts {head!r})" if first_bytes else f"not {wanted} (empty)"


class HttpFetcher:
    """Fetches store entries from HTTP(S) servers. Thread-safe: modules are fetched in parallel."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, progress: ProgressCallback | None = None,
                 expand: Expander) -> None:
        self.timeout = timeout
        self._progress = progress
        self._expand = expand
        self._opener: urllib.request.OpenerDirector | None = None
        self._down: dict[str, str] = {}
        self._lock = threading.Lock()

    def fetch(self, server: str, name: str, key: str, store: Path) -> FetchOutcome:
        """Bring ``name`` under ``key`` from ``server`` into ``store`` (``store/name/KEY/name``): a :class:`Hit`
        on the stored file, :class:`Unavailable` for a ``file.ptr`` that gives none, else a :class:`ServerMiss`."""
        with self._lock:
            down = self._down.get(server)
        if down is not None:
            return ServerMiss(f"{server}: skipped, {down} earlier", failed=True)
        quote = _http()[2].quote
        base = f"{server.rstrip('/')}/{quote(name)}/{quote(key)}/"
        dest = store / name / key / name
        try:
            if self._download(base + quote(name), name, dest):
                return Hit(dest)
            packed = compressed_name(name)
            with temporary_beside(dest.with_name(packed)) as cab:
                if self._download(base + quote(packed), packed, cab):
                    return self._expanded(cab, dest, server)
            pointer = self._read_small(base + POINTER)
        except _Failure as failure:
            if failure.down:
                with self._lock:
                    self._down.setdefault(server, failure.note)
            return ServerMiss(f"{server}: {failure.note}", failed=True)
        except OSError as err:  # the store, not the server: a full disk or a folder heapdiff may not write
            return ServerMiss(f"cannot write {name} into {store}: {err}", failed=True)
        if pointer is not None:
            return read_pointer(base + POINTER, pointer)
        return ServerMiss(f"{server}: not found", failed=False)

    def _expanded(self, cab: Path, dest: Path, server: str) -> FetchOutcome:
        try:
            install_expanded(cab, dest, self._expand)
        except Exception as err:  # the expander's own error type: a damaged CAB is a note, never a crash
            return ServerMiss(f"{server}: {compressed_name(dest.name)} could not be expanded: {err}", failed=True)
        with dest.open("rb") as f:
            problem = content_problem(f.read(_MAGIC_BYTES), dest.name)
        if problem is not None:
            dest.unlink()
            return ServerMiss(f"{server}: {compressed_name(dest.name)} holds {problem}", failed=True)
        return Hit(dest)

    def _open(self, url: str, name: str) -> http.client.HTTPResponse | None:
        """The response, or None for a 404/410; raises :class:`_Failure` for any other outcome."""
        client, error, _, request_module = _http()
        with self._lock:
            if self._opener is None:
                self._opener = request_module.build_opener()
            opener = self._opener
        request = request_module.Request(url, headers={"User-Agent": f"heapdiff/{__version__}"})
        try:
            response: http.client.HTTPResponse = opener.open(request, timeout=self.timeout)
        except error.HTTPError as err:
            err.close()
            if err.code in (404, 410):
                return None
            raise _Failure(f"HTTP {err.code} {err.reason} for {name}") from err
        except (error.URLError, OSError, client.HTTPException) as err:
            raise _Failure(_connection_problem(err, self.timeout), down=True) from err
        return response

    def _download(self, url: str, name: str, dest: Path) -> bool:
        """Stream ``url`` into ``dest`` (temporary + rename) after checking its magic. False on 404."""
        response = self._open(url, name)
        if response is None:
            return False
        with response:
            length = response.getheader("Content-Length")
            total = int(length) if length and length.isdigit() else None
            self._report(name, url, 0, total, "start")
            try:
                with temporary_beside(dest) as tmp:
                    with tmp.open("wb") as out:
                        received = self._copy(response, out, name, total)
                    os.replace(tmp, dest)
            except BaseException:
                self._report(name, url, 0, total, "failed")
                raise
        self._report(name, url, received, total, "done")
        return True

    def _copy(self, response: http.client.HTTPResponse, out: BinaryIO, name: str, total: int | None) -> int:
        url = response.geturl()
        head = self._read(response, _MAGIC_BYTES, name)
        problem = content_problem(head, name)
        if problem is not None:
            raise _Failure(f"answered {name} with {problem}")
        out.write(head)
        received = len(head)
        while chunk := self._read(response, _CHUNK, name):
            out.write(chunk)
            received += len(chunk)
            self._report(name, url, received, total, "data")
        if total is not None and received != total:
            raise _Failure(f"{name} arrived truncated ({received} of {total} bytes)")
        return received

    def _read(self, response: http.client.HTTPResponse, n: int, name: str) -> bytes:
        """Up to ``n`` bytes (fewer only at the end); a stall or a broken connection is a :class:`_Failure`."""
        data = b""
        try:
            while len(data) < n:
                chunk = response.read(n - len(data))
                if not chunk:
                    break
                data += chunk
        except TimeoutError as err:
            raise _Failure(f"{name}: {_connection_problem(err, self.timeout)}", down=True) from err
        except (OSError, _http()[0].HTTPException) as err:
            raise _Failure(f"{name} broken off ({_connection_problem(err, self.timeout)})") from err
        return data

    def _read_small(self, url: str) -> bytes | None:
        response = self._open(url, POINTER)
        if response is None:
            return None
        with response:
            return self._read(response, 4097, POINTER)

    def _report(self, name: str, url: str, received: int, total: int | None,
                state: Literal["start", "data", "done", "failed"]) -> None:
        if self._progress is not None:
            self._progress(DownloadProgress(name, url, received, total, state))


def _connection_problem(err: BaseException, timeout: float) -> str:
    """One phrase for a person: what went wrong talking to the server."""
    client, error, _, _ = _http()
    reason: object = err.reason if isinstance(err, error.URLError) else err
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host not found"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, client.HTTPException):
        return f"broken HTTP answer ({type(reason).__name__})"
    return f"cannot connect ({reason})"
