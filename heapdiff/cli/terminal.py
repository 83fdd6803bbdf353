"""What the CLI prints besides the reports: progress on a terminal, warnings, and errors, all on stderr, and
the summary.

Lines for a person are best effort (:func:`say`): when the reader of the console goes away (``heapdiff ... 2>&1 |
head -1``), the job goes on without them, writes its reports and exits with its own code, since a closed console
must neither cost the reports nor turn the exit code into 1, which says that a gate failed.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Mapping
from typing import NoReturn, TextIO

import click


class Progress:
    """Progress of one long read, on stderr, only when stderr is a terminal (and after the first second)."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.last = 0.0
        self.start = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2 or now - self.start < 1.0:
            return
        self.last = now
        pct = 100.0 * done / total if total else 100.0
        sys.stderr.write(f"\r{self.label}: {pct:5.1f}% of {total / 1e6:,.0f} MB")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\r" + " " * 70 + "\r")
            sys.stderr.flush()


def compiling_notice(reduces: bool = True) -> None:
    """On a terminal, say so when this run compiles the kernels (the first after an install) rather than sit
    silent for that long: the reader's, and the reducer's when the command ``reduces``."""
    if not sys.stderr.isatty():
        return
    from heapdiff._jit import cache_is_cold
    from heapdiff.etl.walk import frame_kernel

    kernels: list[object] = [frame_kernel]
    if reduces:
        from heapdiff.reduce.fold import fold_kernel

        kernels.append(fold_kernel)
    if any(cache_is_cold(k) for k in kernels):
        click.echo("heapdiff: compiling its kernels for this machine (once after an install: 20 s or more)...",
                   err=True)


class OutputClosed(Exception):
    """An output going to stdout (a report given as ``-``, ``info``'s text) lost its reader. Not an ``OSError``:
    click would turn that into exit code 1, which says a gate failed."""


def say(text: str, file: TextIO | None = None, err: bool = False) -> None:
    """A line for a person on ``file`` (else stdout, or stderr with ``err``), dropped once nobody reads it."""
    try:
        click.echo(text, file=file, err=err)
    except BrokenPipeError:
        drop_console(file if file is not None else sys.stderr if err else sys.stdout)


def drop_console(stream: TextIO) -> None:
    """Send what is still to be written to ``stream``, now and at exit, to the null device: its reader has gone.
    (Left as it is, the interpreter's last flush would fail again and make the exit code 120.)"""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)


def warn(line: str) -> None:
    say(f"heapdiff: warning: {line}", err=True)


def fail(line: str, code: int) -> NoReturn:
    say(f"heapdiff: error: {line}", err=True)
    sys.exit(code)


def warn_trace(path: str, anomalies: Mapping[str, int], events_lost: int, buffers_lost: int) -> None:
    """What a trace lost while it was recorded, and what the reader counted as not fitting."""
    if events_lost or buffers_lost:
        warn(f"{path}: the trace lost {events_lost:,} events and {buffers_lost:,} buffers while recording; "
             "counts may be short")
    from heapdiff.rules import INFORMATIONAL_ANOMALIES

    # what is normal (frees of blocks older than the trace) is in the JSON and the report's notes, not a warning
    lossy = {k: v for k, v in anomalies.items() if k not in INFORMATIONAL_ANOMALIES}
    if lossy:
        total = sum(lossy.values())
        kinds = ", ".join(f"{k} {v:,}" for k, v in lossy.items())
        warn(f"{path}: {total:,} anomalies counted ({kinds})")
