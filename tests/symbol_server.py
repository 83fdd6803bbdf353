"""A symbol server on 127.0.0.1 for tests: serves a dict of path -> answer from a thread, and the two broken
servers a client meets in the wild (one that never answers, one whose port is closed)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MSF = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\x00\x00\x00"
HTML = b"<!DOCTYPE html><html><body>Service moved</body></html>"


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: announce this Content-Length but send only ``body`` and close (a transfer broken off)
    claimed_length: int | None = None
    #: seconds to wait before answering (a slow server)
    delay: float = 0.0


@dataclass
class SymbolServer:
    url: str
    routes: dict[str, Answer]
    #: every path asked for, in order
    requests: list[str]


@contextlib.contextmanager
def serve(routes: dict[str, Answer | bytes]) -> Iterator[SymbolServer]:
    """Serve ``routes`` (path -> answer, bytes meaning 200 with that body); anything else is 404."""
    table = {path: (a if isinstance(a, Answer) else Answer(body=a)) for path, a in routes.items()}
    asked: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with lock:
                asked.append(self.path)
            answer = table.get(self.path, Answer(404, b"not here"))
            time.sleep(answer.delay)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            length = answer.claimed_length if answer.claimed_length is not None else len(answer.body)
            self.send_header("Content-Length", str(length))
            if answer.claimed_length is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer.body)
            if answer.claimed_length is not None:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield SymbolServer(f"http://127.0.0.1:{server.server_address[1]}", table, asked)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A server that accepts connections (the kernel's backlog does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def closed_port() -> str:
    """A URL on a port nobody listens on (bound, then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
