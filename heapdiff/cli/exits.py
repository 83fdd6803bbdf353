"""How the program ends: once its command is done and its streams are flushed, the process leaves at once.

A job's result holds every group, frame and record of its traces, hundreds of thousands of objects or millions.
Returning from the command freed them one at a time, and the interpreter's teardown then walked what was left;
the operating system takes a whole process back at once. So, run as the program, the job keeps its result
referenced (:func:`keep`) and the program ends with :func:`hard_exit` (mypy ends the same way). Atexit handlers
do not run: heapdiff registers none, those of its libraries (numba, llvmlite, concurrent.futures, logging) only
tear down state in memory, and heapdiff's files are closed as they are written. Called in-process (tests, with
``argv``), nothing is kept and the command ends in SystemExit as ever.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from heapdiff.cli.terminal import drop_console

_kept: list[object] = []
_enabled = False
#: the process's end (a test stands in for it)
_end_process = os._exit


def enable() -> None:
    """This process is the program: :func:`keep` keeps, and it ends with :func:`hard_exit`."""
    global _enabled
    _enabled = True


def keep(result: object) -> None:
    """Keep ``result`` referenced until the process ends (only when it is the program), so that it is never freed
    object by object."""
    if _enabled:
        _kept.append(result)


def hard_exit(code: object) -> NoReturn:
    """End the process with the exit status of ``SystemExit(code)`` (None: 0; a text: printed, then 1), after
    flushing stdout and stderr. A stream whose reader has gone is dropped, as at any exit of heapdiff: what was
    still to be written to it is lines for a person (the outputs on stdout flush as they are written)."""
    if code is None or isinstance(code, int):
        status = 0 if code is None else code
    else:
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            drop_console(stream)
    _end_process(status)
    raise AssertionError("the process did not end")  # (only a test's stand-in returns)
