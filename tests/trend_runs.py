"""A program run several times, written as traces: the trend tests' and the trend page's input."""

from __future__ import annotations

import pathlib

from heapdiff.tracegen.scenario import Module, Process, Scenario
from heapdiff.tracegen.writer import TraceWriter

MODS = {"app.exe": Module("app.exe", "C:\\x\\app.exe", 0x7FF6_0100_0000, 0x80000)}
LEAK, CACHE, SHRINK, CONST = ([("app.exe", rva)] for rva in (0x100, 0x200, 0x300, 0x400))


def write_run(path: pathlib.Path, run: int) -> None:
    """Run ``run`` (0-based) of a program with a leak (+1,000 B a run), a cache that fills by run 2, memory given
    back (4,000 B less a run) and a constant 500 B."""
    w = TraceWriter(str(path), cpus=1, buffer_size=0x2000)
    sc = Scenario(w, cpus=1)
    p = Process(4242, "app.exe", MODS, heaps=[0x10000], threads=[8])
    sc.start_process(p)
    for _ in range(run + 1):
        sc.alloc(p, LEAK, 1000, heap=0x10000)
    for _ in range(min(run, 2) + 1):
        sc.alloc(p, CACHE, 3000, heap=0x10000)
    for _ in range(5 - run):
        sc.alloc(p, SHRINK, 4000, heap=0x10000)
    sc.alloc(p, CONST, 500, heap=0x10000)
    sc.close()
