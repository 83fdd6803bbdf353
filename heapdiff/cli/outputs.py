"""Writing the outputs: checked before any work starts, written whole or not at all, never over an input.

``-`` means standard output for every output path (one output at most may take it). Other paths are checked up
front (the folder exists, the path is not a folder, no two outputs share a file, no output is an input, by file
identity so a hard link or a symlink to a trace is caught) and written to a temporary file beside the target,
then renamed into place, so a reader never sees half a report and an interrupted run leaves the old one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import jinja2

from heapdiff.cli.terminal import OutputClosed

STDOUT = "-"


class OutOfSpace(Exception):
    """The disk filled up while writing an output: one line, exit 3."""


@dataclass(frozen=True)
class Output:
    #: the option that names it, for messages (``--html``)
    option: str
    path: str

    @property
    def to_stdout(self) -> bool:
        return self.path == STDOUT


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs: Sequence[Output], inputs: Sequence[str]) -> None:
    """Refuse, before any work, every output that could not be written or would destroy something."""
    to_stdout = [o.option for o in outputs if o.to_stdout]
    if len(to_stdout) > 1:
        raise click.UsageError(f"only one output can go to standard output ('-'), not {' and '.join(to_stdout)}")
    files = [o for o in outputs if not o.to_stdout]
    for i, o in enumerate(files):
        if not o.path:
            raise click.UsageError(f"{o.option}: an empty path")
        folder = os.path.dirname(os.path.abspath(o.path))
        if not os.path.isdir(folder):
            raise click.UsageError(f"{o.option} {o.path}: the folder {folder} does not exist")
        if os.path.isdir(o.path):
            raise click.UsageError(f"{o.option} {o.path}: is a directory")
        if not os.access(folder, os.W_OK):
            raise click.UsageError(f"{o.option} {o.path}: the folder {folder} is not writable")
        for p in inputs:
            if _same_file(o.path, p):
                raise click.UsageError(f"{o.option} {o.path} is the input {p}: it would be overwritten")
        for other in files[:i]:
            if _same_file(o.path, other.path):
                raise click.UsageError(f"{other.option} and {o.option} name the same file {o.path}")


#: what produces an output: called once with a function that takes the output's bytes, piece by piece
Producer = Callable[[Callable[[bytes], object]], None]


def _write_stdout(produce: Producer) -> None:
    out = getattr(sys.stdout, "buffer", None)
    sys.stdout.flush()
    if out is not None:
        produce(out.write)
        out.flush()
    else:  # a text-only stream
        produce(lambda b: sys.stdout.write(b.decode("utf-8")))


def _replace_atomically(path: str, produce: Producer) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            produce(fh.write)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a report is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _whole(data: bytes) -> Producer:
    def produce(write: Callable[[bytes], object]) -> None:
        write(data)

    return produce


def write_output(o: Output, data: bytes | Producer) -> None:
    """Write one output whole: stdout, a device or pipe as it is, a file by a rename of a complete temporary copy;
    ``data`` is the bytes, or what writes them piece by piece (a large JSON document). A full disk raises
    :class:`OutOfSpace`; another failure :class:`click.UsageError`."""
    produce = _whole(data) if isinstance(data, bytes) else data
    try:
        if o.to_stdout:
            _write_stdout(produce)
            return
        try:
            special = not stat.S_ISREG(os.stat(o.path).st_mode)
        except FileNotFoundError:
            special = False
        if special:  # /dev/null, a pipe: nothing to replace
            with open(o.path, "wb") as fh:
                produce(fh.write)
        else:
            _replace_atomically(o.path, produce)
    except BrokenPipeError:
        raise OutputClosed(f"{o.option} {o.path}") from None
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutOfSpace(f"cannot write {o.option} {o.path}: {e.strerror}") from None
        raise click.UsageError(f"cannot write {o.option} {o.path}: {e.strerror}") from None


class TemplateCache(jinja2.FileSystemBytecodeCache):
    """Compiled report templates kept like Python's own bytecode: read always, written unless the interpreter
    writes no bytecode (``PYTHONDONTWRITEBYTECODE``), never an error (a read-only install compiles each time).
    Jinja checks an entry against a hash of the source and its own bytecode version, so an edited template or
    another Python never loads a stale one."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if sys.dont_write_bytecode:
            return
        with contextlib.suppress(OSError):
            Path(self.directory).mkdir(exist_ok=True)
            super().dump_bytecode(bucket)


def install_template_cache() -> None:
    """Keep compiled templates in ``__pycache__`` beside the templates, when they are files."""
    from heapdiff.report.html import set_bytecode_cache, template_root

    root = template_root()
    if isinstance(root, Path):
        set_bytecode_cache(TemplateCache(str(root / "__pycache__"), "%s.jinja-cache"))
