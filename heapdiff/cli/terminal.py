"""What the CLI prints besides the reports: progress on a terminal, warnings, and errors, all on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import NoReturn

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


def warn(line: str) -> None:
    click.echo(f"heapdiff: warning: {line}", err=True)


def fail(line: str, code: int) -> NoReturn:
    click.echo(f"heapdiff: error: {line}", err=True)
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
