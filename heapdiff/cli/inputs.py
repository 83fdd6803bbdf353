"""Opening the inputs: every trace is mapped read-only; whatever cannot be opened becomes one line for exit 3."""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from heapdiff.etl.trace import TraceFile


class Unreadable(Exception):
    """An input that cannot be read: carries the one line to print."""


#: what a path that is not a regular file is, by its mode: the first test that holds names it
_NOT_A_FILE: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISFIFO, "is a pipe (FIFO), not a file: heapdiff maps traces, so give it the .etl file itself"),
    (stat.S_ISCHR, "is a device, not a trace file"),
    (stat.S_ISBLK, "is a device, not a trace file"),
    (stat.S_ISSOCK, "is a socket, not a trace file"),
)


def _kind(mode: int) -> str | None:
    """Why a file of this mode cannot be a trace (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    return next((why for test, why in _NOT_A_FILE if test(mode)), "is not a regular file")


def check_regular(path: str) -> os.stat_result:
    """The file's status; :class:`Unreadable` when it is missing or not a regular file (a FIFO would block in
    ``open()``, a device would read forever)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise Unreadable(f"{path}: cannot open: {e.strerror}") from None
    why = _kind(st.st_mode)
    if why is not None:
        raise Unreadable(f"{path}: {why}")
    return st


def map_trace(path: str) -> TraceFile:
    """Map a file read-only and open it as a trace; every failure becomes :class:`Unreadable`."""
    from heapdiff.errors import TraceError
    from heapdiff.etl.trace import open_trace

    check_regular(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, the mapping outlives it
    except OSError as e:
        raise Unreadable(f"{path}: cannot open: {e.strerror}") from None
    with fh:
        try:
            st = os.fstat(fh.fileno())
            why = _kind(st.st_mode)  # replaced between the check and the open
            if why is not None:
                raise Unreadable(f"{path}: {why}")
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if st.st_size else None
        except OSError as e:
            raise Unreadable(f"{path}: cannot read: {e.strerror}") from None
        fd = fh.fileno()

        def read_at(offset: int, n: int) -> bytes:  # the buffer headers, without faulting the mapping in
            return os.pread(fd, n, offset)

        try:
            import numpy as np

            data = np.frombuffer(mm, np.uint8) if mm is not None else np.zeros(0, np.uint8)
            # (no os.pread on Windows: the headers are read through the mapping there)
            return open_trace(data, path, mm, read_at if hasattr(os, "pread") else None)
        except TraceError as e:
            raise Unreadable(str(e.with_path(path))) from None


def map_all(paths: Sequence[str]) -> list[TraceFile]:
    """:func:`map_trace` on every path at once (threads: the buffer-map scan is numpy that releases the GIL). The
    first unreadable file in argument order is the error; the others are closed."""

    def attempt(p: str) -> TraceFile | Unreadable:
        try:
            return map_trace(p)
        except Unreadable as e:
            return e

    with ThreadPoolExecutor(max_workers=max(1, len(paths))) as pool:
        got = list(pool.map(attempt, paths))
    bad = [g for g in got if isinstance(g, Unreadable)]
    if bad:
        for g in got:
            if not isinstance(g, Unreadable):
                g.close()
        raise bad[0]
    return [g for g in got if not isinstance(g, Unreadable)]
