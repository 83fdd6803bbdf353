"""The command line: the only part of heapdiff that touches click, the terminal and the file system.

It parses arguments, checks and opens the inputs, calls one command (:mod:`heapdiff.commands`), writes what it
returns and maps every outcome to an exit code, the same for every command:

  0  a result was produced (also from a damaged or lossy trace: warnings on stderr)
  1  a --fail-on-... gate was exceeded (reports are still written)
  2  usage error (nothing is written)
  3  a trace could not be read at all (one line naming the file and the byte offset), or the machine ran out of
     memory or disk (one line)
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterator, Sequence
from typing import NoReturn

import click

from heapdiff import __version__
from heapdiff.cli import exits
from heapdiff.cli.info_command import info_command
from heapdiff.cli.inputs import Unreadable, map_trace
from heapdiff.cli.outputs import OutOfSpace
from heapdiff.cli.report_command import main_command
from heapdiff.cli.symbolize_command import symbolize_command
from heapdiff.cli.terminal import OutputClosed, drop_console, fail
from heapdiff.cli.trend_command import trend_command
from heapdiff.errors import HeapdiffError, TraceError

__all__ = ["EXIT_GATE", "EXIT_OK", "EXIT_OUTPUT_CLOSED", "EXIT_UNREADABLE", "EXIT_USAGE", "main", "map_trace"]

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3
#: a report or ``info`` going to stdout lost its reader: a shell's code for a program ended by SIGPIPE (128 + 13)
EXIT_OUTPUT_CLOSED = 141

#: first argument -> subcommand; anything else (``./info`` too) is a trace of the main job
SUBCOMMANDS: dict[str, click.Command] = {"info": info_command, "symbolize": symbolize_command,
                                         "trend": trend_command}


@contextlib.contextmanager
def _collector_paused(restore: bool) -> Iterator[None]:
    """No cyclic garbage collection while a command runs. The job's data is acyclic (arrays, and records and
    lists of them) and freed by reference counting; the collector found nothing to free but walked every object
    of numba's registries and the job's documents. ``restore`` turns it back on after (tests call :func:`main`
    in-process); the program leaves it off, since the first collection after turning it on walked every object
    the job made just before the process ends."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was and restore:
            gc.enable()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point. As the program (no ``argv``), numpy's OpenBLAS gets one thread unless the environment says
    otherwise (the job does no linear algebra, and OpenBLAS's spinning threads took the cores the first reads
    need), and the process ends at once when the command is done (:mod:`heapdiff.cli.exits`); should a command
    end in a traceback instead, every object is frozen out of the cyclic collector first (the interpreter's exit
    would otherwise walk every object numba and the job made). In-process callers (tests) keep their collector
    as it was and get the SystemExit."""
    program = argv is None
    if program:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        exits.enable()
    try:
        _main(argv)
    except SystemExit as done:
        if program:
            exits.hard_exit(done.code)
        raise
    finally:
        if program:
            gc.freeze()


def _main(argv: Sequence[str] | None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--version"], ["-V"]):
        click.echo(f"heapdiff {__version__}")
        sys.exit(EXIT_OK)
    name = args[0] if args and args[0] in SUBCOMMANDS else None
    cmd = SUBCOMMANDS[name] if name is not None else main_command
    if name is not None:
        args = args[1:]
    try:
        with _collector_paused(restore=argv is not None):
            rv = cmd.main(args=args, prog_name=f"heapdiff {name}" if name else "heapdiff", standalone_mode=False)
    except click.exceptions.Exit as e:  # --help
        sys.exit(e.exit_code)
    except click.ClickException as e:  # usage errors: exit 2 (click's own code for them)
        e.show()
        sys.exit(EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code)
    except Unreadable as e:
        fail(str(e), EXIT_UNREADABLE)
    except TraceError as e:
        fail(str(e), EXIT_UNREADABLE)
    except HeapdiffError as e:  # what the inputs showed the arguments to be wrong (a filter matching nothing)
        click.echo(f"Error: {e}", err=True)
        sys.exit(EXIT_USAGE)
    except OutOfSpace as e:
        fail(str(e), EXIT_UNREADABLE)
    except MemoryError:
        fail("out of memory: the trace needs more memory than this machine has free (the README's "
             "\"Memory and time\" says how much a trace needs)", EXIT_UNREADABLE)
    except OutputClosed:
        drop_console(sys.stdout)
        drop_console(sys.stderr)
        sys.exit(EXIT_OUTPUT_CLOSED)
    except (KeyboardInterrupt, click.exceptions.Abort):
        # not click's "Aborted!" with exit 1: 1 means a gate was exceeded
        click.echo("heapdiff: interrupted", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)  # like click's standalone mode: always a SystemExit
