"""Downloads from a symbol server on 127.0.0.1: each form a server serves, and each way a server fails."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from symbol_server import HTML, MSF, Answer, closed_port, serve, silent_server

from heapdiff.symbols.fetch import DownloadProgress, HttpFetcher, ServerMiss, content_problem
from heapdiff.symbols.store import Hit, Unavailable

KEY = "B1D8AACFB7DE28CF4C4C44205044422E1"
PDB_BYTES = MSF + b"\x00" * 200 + b"end"
BASE = f"/app.pdb/{KEY}"


def _upper_expand(cab: Path, out: Path) -> None:
    """A stand-in for the CAB expander: the 'CAB' is MSCF + the payload."""
    data = cab.read_bytes()
    if not data.startswith(b"MSCF"):
        raise ValueError("not a CAB")
    out.write_bytes(data[4:])


def _fetcher(timeout: float = 2.0, events: list[DownloadProgress] | None = None) -> HttpFetcher:
    return HttpFetcher(timeout=timeout, expand=_upper_expand,
                       progress=None if events is None else events.append)


def _leftovers(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())


def test_plain_file(tmp_path: Path) -> None:
    events: list[DownloadProgress] = []
    with serve({f"{BASE}/app.pdb": PDB_BYTES}) as server:
        got = _fetcher(events=events).fetch(server.url, "app.pdb", KEY, tmp_path)
    assert got == Hit(tmp_path / "app.pdb" / KEY / "app.pdb")
    assert got.path.read_bytes() == PDB_BYTES
    assert _leftovers(tmp_path) == [f"app.pdb/{KEY}/app.pdb"]   # no temporary left behind
    assert next(e.state for e in events) == "start"
    assert events[-1].state == "done" and events[-1].received == len(PDB_BYTES) == events[-1].total
    assert server.requests == [f"{BASE}/app.pdb"]


def test_compressed_file_is_expanded_into_the_store(tmp_path: Path) -> None:
    with serve({f"{BASE}/app.pd_": b"MSCF" + PDB_BYTES}) as server:
        got = _fetcher().fetch(server.url, "app.pdb", KEY, tmp_path)
    assert got == Hit(tmp_path / "app.pdb" / KEY / "app.pdb")
    assert got.path.read_bytes() == PDB_BYTES
    assert _leftovers(tmp_path) == [f"app.pdb/{KEY}/app.pdb"]   # the CAB is not kept
    assert server.requests == [f"{BASE}/app.pdb", f"{BASE}/app.pd_"]


def test_compressed_file_that_does_not_expand(tmp_path: Path) -> None:
    def broken(cab: Path, out: Path) -> None:
        raise ValueError("CAB checksum mismatch")

    with serve({f"{BASE}/app.pd_": b"MSCF" + b"\x00" * 40}) as server:
        got = HttpFetcher(timeout=2, expand=broken).fetch(server.url, "app.pdb", KEY, tmp_path)
    assert isinstance(got, ServerMiss) and got.failed
    assert "app.pd_ could not be expanded: CAB checksum mismatch" in got.note
    assert _leftovers(tmp_path) == []


def test_compressed_file_holding_something_else(tmp_path: Path) -> None:
    with serve({f"{BASE}/app.pd_": b"MSCF" + HTML}) as server:
        got = _fetcher().fetch(server.url, "app.pdb", KEY, tmp_path)
    assert isinstance(got, ServerMiss)
    assert "app.pd_ holds not a PDB" in got.note
    assert _leftovers(tmp_path) == []


def test_file_ptr_path_and_msg(tmp_path: Path) -> None:
    real = tmp_path / "share" / "app.pdb"
    real.parent.mkdir()
    real.write_bytes(PDB_BYTES)
    store = tmp_path / "store"
    with serve({f"{BASE}/file.ptr": f"PATH:{real}".encode()}) as server:
        assert _fetcher().fetch(server.url, "app.pdb", KEY, store) == Hit(real)
    with serve({f"{BASE}/file.ptr": b"MSG:removed for legal reasons"}) as server:
        assert _fetcher().fetch(server.url, "app.pdb", KEY, store) == Unavailable("removed for legal reasons")
    assert server.requests == [f"{BASE}/app.pdb", f"{BASE}/app.pd_", f"{BASE}/file.ptr"]
    assert _leftovers(store) == []


def test_not_on_the_server(tmp_path: Path) -> None:
    with serve({}) as server:
        got = _fetcher().fetch(server.url, "app.pdb", KEY, tmp_path)
    assert got == ServerMiss(f"{server.url}: not found", failed=False)
    assert len(server.requests) == 3
    assert _leftovers(tmp_path) == []


def test_an_html_page_with_status_200_never_enters_the_store(tmp_path: Path) -> None:
    events: list[DownloadProgress] = []
    with serve({f"{BASE}/app.pdb": Answer(200, HTML, {"Content-Type": "text/html"})}) as server:
        got = _fetcher(events=events).fetch(server.url, "app.pdb", KEY, tmp_path)
    assert isinstance(got, ServerMiss) and got.failed
    assert "answered app.pdb with not a PDB (starts '<!DOCTYPE html><')" in got.note
    assert _leftovers(tmp_path) == []
    assert events[-1].state == "failed"
    assert server.requests == [f"{BASE}/app.pdb"]   # a lying server is not asked for the other forms


def test_http_error_status(tmp_path: Path) -> None:
    with serve({f"{BASE}/app.pdb": Answer(503, b"busy")}) as server:
        fetcher = _fetcher()
        got = fetcher.fetch(server.url, "app.pdb", KEY, tmp_path)
        assert got == ServerMiss(f"{server.url}: HTTP 503 Service Unavailable for app.pdb", failed=True)
        # a status is an answer: the server is asked again for the next module
        fetcher.fetch(server.url, "other.pdb", KEY, tmp_path)
    assert f"/other.pdb/{KEY}/other.pdb" in server.requests


def test_redirect_is_followed(tmp_path: Path) -> None:
    with serve({f"{BASE}/app.pdb": Answer(302, b"", {"Location": "/blob/1234"}), "/blob/1234": PDB_BYTES}) as server:
        got = _fetcher().fetch(server.url, "app.pdb", KEY, tmp_path)
    assert isinstance(got, Hit) and got.path.read_bytes() == PDB_BYTES


def test_transfer_broken_off(tmp_path: Path) -> None:
    with serve({f"{BASE}/app.pdb": Answer(200, PDB_BYTES, claimed_length=len(PDB_BYTES) + 1000)}) as server:
        got = _fetcher().fetch(server.url, "app.pdb", KEY, tmp_path)
    assert isinstance(got, ServerMiss) and got.failed
    assert "app.pdb" in got.note and ("truncated" in got.note or "broken off" in got.note)
    assert _leftovers(tmp_path) == []


def test_a_server_that_never_answers(tmp_path: Path) -> None:
    fetcher = _fetcher(timeout=0.3)
    with silent_server() as url:
        start = time.monotonic()
        got = fetcher.fetch(url, "app.pdb", KEY, tmp_path)
        first = time.monotonic() - start
        assert got == ServerMiss(f"{url}: no answer within 0.3 s", failed=True)
        assert first < 2.0
        # the next module does not wait again on the same server
        start = time.monotonic()
        again = fetcher.fetch(url, "b.pdb", KEY, tmp_path)
        assert time.monotonic() - start < 0.1
        assert again == ServerMiss(f"{url}: skipped, no answer within 0.3 s earlier", failed=True)
    assert _leftovers(tmp_path) == []


def test_a_closed_port(tmp_path: Path) -> None:
    url = closed_port()
    got = _fetcher().fetch(url, "app.pdb", KEY, tmp_path)
    assert got == ServerMiss(f"{url}: connection refused", failed=True)


def test_unknown_host(tmp_path: Path) -> None:
    got = _fetcher(timeout=2).fetch("http://no-such-host.invalid", "app.pdb", KEY, tmp_path)
    assert isinstance(got, ServerMiss) and got.failed
    assert got.note.startswith("http://no-such-host.invalid: ")


def test_a_store_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "store"
    blocker.write_bytes(b"a file where the store folder should be")
    with serve({f"{BASE}/app.pdb": PDB_BYTES}) as server:
        got = _fetcher().fetch(server.url, "app.pdb", KEY, blocker)
    assert isinstance(got, ServerMiss) and got.note.startswith(f"cannot write app.pdb into {blocker}")


def test_images_are_fetched_by_their_key(tmp_path: Path) -> None:
    pe = b"MZ" + b"\x00" * 100
    with serve({"/app.dll/5F00AA0012000/app.dll": pe}) as server:
        got = _fetcher().fetch(server.url, "app.dll", "5F00AA0012000", tmp_path)
    assert isinstance(got, Hit) and got.path.read_bytes() == pe


def test_parallel_downloads_from_threads(tmp_path: Path) -> None:
    routes: dict[str, Answer | bytes] = {f"/m{i}.pdb/{KEY}/m{i}.pdb": PDB_BYTES + bytes([i]) for i in range(8)}
    fetcher = _fetcher()
    results: dict[int, object] = {}
    with serve(routes) as server:
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(
            i, fetcher.fetch(server.url, f"m{i}.pdb", KEY, tmp_path))) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i in range(8):
        got = results[i]
        assert isinstance(got, Hit) and got.path.read_bytes() == PDB_BYTES + bytes([i])


@pytest.mark.parametrize(("head", "name", "problem"), [
    (MSF, "app.pdb", None),
    (b"Microsoft C/C++ program database 2.00\r\n", "app.pdb", None),  # old MSF: the reader says what it thinks
    (MSF, "APP.PDB", None),
    (b"Microsoft MSFZ Container\r\n\x1aALD\x00\x00", "app.pdb", "an MSFZ container, which heapdiff cannot read"),
    (b"BSJB\x01\x00", "app.pdb", "a portable (.NET) PDB, which heapdiff cannot read"),
    (HTML, "app.pdb", "not a PDB (starts '<!DOCTYPE html><')"),
    (b"", "app.pdb", "not a PDB (empty)"),
    (b"MSCF\x00\x00", "app.pd_", None),
    (MSF, "app.pd_", "not a CAB (starts 'Microsoft C/C++ ')"),
    (b"MZ\x90\x00", "app.dll", None),
    (b"\x7fELF", "app.dll", "not an image (starts '.ELF')"),
])
def test_content_problem(head: bytes, name: str, problem: str | None) -> None:
    assert content_problem(head, name) == problem
