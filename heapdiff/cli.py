"""The command line: the only module that touches click, the terminal and the file system.

Exit codes, the same for every command:
  0  a result was produced (also from a damaged or lossy trace: warnings on stderr)
  1  the growth threshold of --fail-on-growth was exceeded (reports are still written)
  2  usage error
  3  a trace could not be read at all (one line on stderr naming the file and the byte offset)
"""

from __future__ import annotations

import contextlib
import gc
import json
import mmap
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from heapdiff.etl.trace import TraceFile

EXIT_OK, EXIT_GROWTH, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3

EXIT_CODES_HELP = """\b
Exit codes (every command):
  0  a result was produced (also from a damaged or lossy trace; warnings on stderr)
  1  --fail-on-growth: total delta bytes exceeded the threshold (reports still written)
  2  usage error
  3  a trace could not be read at all (one line on stderr with the file and byte offset)"""

ALLOCATOR_MODULES_HELP = "ntdll, kernelbase, kernel32, ucrtbase, msvcrt, vcruntime*, msvcp*"


class Unreadable(Exception):
    """A trace that cannot be read: carries the one line to print."""


def _fail(line: str) -> NoReturn:
    click.echo(f"heapdiff: error: {line}", err=True)
    sys.exit(EXIT_UNREADABLE)


def map_trace(path: str) -> TraceFile:
    """Map a file read-only and open it as a trace; every failure becomes :class:`Unreadable`."""
    from heapdiff.errors import TraceError
    from heapdiff.etl.trace import open_trace

    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, the mapping outlives it
    except OSError as e:
        raise Unreadable(f"{path}: cannot open: {e.strerror}") from None
    with fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            if os.path.isdir(path):
                raise Unreadable(f"{path}: is a directory")
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
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


def _map_all(paths: Sequence[str]) -> list[TraceFile]:
    """:func:`map_trace` on every path at once (threads: the buffer-map scan is numpy that releases the GIL;
    measured 0.50 -> 0.25 s on the 10M benchmark pair, 1.07 -> 0.75 s on the 30M pair). The first unreadable
    file in argument order is the error; the others are closed."""
    from concurrent.futures import ThreadPoolExecutor

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
        _fail(str(bad[0]))
    return [g for g in got if not isinstance(g, Unreadable)]


def _tame_malloc() -> None:
    """glibc: fixed thresholds, so that the per-batch arrays the job frees go back to the OS.

    glibc raises its mmap threshold after each large free, so later arrays of that size come from the heap
    and stay there, fragmented: the resident set grew with the trace. Measured on the 10M benchmark pair:
    peak RSS 405-419 -> 351-353 MB for ~3% more time (30M pair: 502 -> 389 MB). A no-op elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)    # M_MMAP_THRESHOLD: 1 MiB and above is mapped and unmapped
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD: do not trim the heap on every free
    except (OSError, AttributeError):
        pass


class _Progress:
    """Progress on stderr for long reads, only when stderr is a terminal."""

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


# ------------------------------------------------------------------------------------------------------------
# heapdiff info
# ------------------------------------------------------------------------------------------------------------
@click.command("info", epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout instead of text.")
@click.argument("trace", type=click.Path(dir_okay=False))
def info_command(as_json: bool, trace: str) -> None:
    """Metadata and record counts of one .etl trace: header, buffers, providers, events, stacks, anomalies."""
    from heapdiff.events.scan import scan
    from heapdiff.info import info_dict, info_text

    try:
        tf = map_trace(trace)
    except Unreadable as e:
        _fail(str(e))
    prog = _Progress(os.path.basename(trace), True)
    with tf:
        result = scan(tf, progress=prog)
    prog.done()
    d = info_dict(result)
    if as_json:
        click.echo(json.dumps(d, indent=1))
    else:
        click.echo(info_text(d))
    _warn_anomalies(d["path"], d["anomalies"], d["events_lost"], d["buffers_lost"])


def _warn_anomalies(path: str, anomalies: dict[str, int], events_lost: int, buffers_lost: int) -> None:
    if events_lost or buffers_lost:
        click.echo(f"heapdiff: warning: {path}: the trace lost {events_lost:,} events and {buffers_lost:,} "
                   "buffers while recording; counts may be short", err=True)
    if anomalies:
        total = sum(anomalies.values())
        kinds = ", ".join(f"{k} {v:,}" for k, v in anomalies.items())
        click.echo(f"heapdiff: warning: {path}: {total:,} anomalies counted ({kinds})", err=True)


# ------------------------------------------------------------------------------------------------------------
# heapdiff [OPTIONS] TRACE [TRACE2]
# ------------------------------------------------------------------------------------------------------------
MAIN_HELP = f"""Report the heap blocks still outstanding at the end of a trace, per call stack.

\b
  heapdiff after.etl                  outstanding blocks at the end of one trace
  heapdiff before.etl after.etl       per call stack: how much more (or less) is outstanding in "after"
  heapdiff info [--json] TRACE        metadata and counts of one trace

Two traces are usually two runs: pids, heap handles and image bases differ, so call stacks are matched by their
frames (module+offset), never by address. A group's module is its first frame outside the allocator modules
({ALLOCATOR_MODULES_HELP}).

Writes a self-contained HTML report (default heapdiff-report.html) and, with --json, the JSON document
(schema heapdiff/1, see the README)."""


@click.command("heapdiff", help=MAIN_HELP, epilog=EXIT_CODES_HELP,
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("traces", nargs=-1, type=click.Path(dir_okay=False))
@click.option("-o", "--html", "html_path", default="heapdiff-report.html", show_default=True, metavar="PATH",
              help="Where to write the HTML report.")
@click.option("--json", "json_path", default=None, metavar="PATH",
              help="Also write the JSON document there ('-' for stdout: then stdout holds only the JSON).")
@click.option("--process", "process_name", default=None, metavar="NAME",
              help="Only processes with this image name (case-insensitive), in both traces.")
@click.option("--pid", "pid_spec", default=None, metavar="N|BEFORE:AFTER",
              help="Only this process id (one trace), or BEFORE:AFTER ids (two traces).")
@click.option("--min-bytes", default=0, show_default=True, type=click.IntRange(min=0),
              help="Hide groups smaller than this (absolute delta in a diff) in terminal and HTML; never in JSON.")
@click.option("--top", default=50, show_default=True, type=click.IntRange(min=1),
              help="Show at most this many groups in terminal and HTML (the rest as one 'other' row); never in JSON.")
@click.option("--fail-on-growth", default=None, type=click.IntRange(min=0), metavar="BYTES",
              help="Exit 1 when total delta bytes (total outstanding with one trace) exceed BYTES.")
@click.option("--kernel-frames", is_flag=True, help="Keep kernel frames in stack signatures and in the JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No summary on the terminal.")
def main_command(traces: Sequence[str], html_path: str, json_path: str | None, process_name: str | None,
                 pid_spec: str | None, min_bytes: int, top: int, fail_on_growth: int | None, kernel_frames: bool,
                 quiet: bool) -> None:
    if not traces:
        raise click.UsageError("give one trace (outstanding blocks) or two (before and after)")
    if len(traces) > 2:
        raise click.UsageError(f"at most two traces (before and after), got {len(traces)}")
    pids = _parse_pids(pid_spec, len(traces))
    out_abs = {os.path.realpath(p) for p in traces}
    if os.path.realpath(html_path) in out_abs:
        raise click.UsageError(f"--html {html_path} would overwrite an input trace")
    if json_path not in (None, "-") and os.path.realpath(json_path) in out_abs:
        raise click.UsageError(f"--json {json_path} would overwrite an input trace")

    from heapdiff.job import JobOptions, run_job

    _tame_malloc()

    opts = JobOptions(process=process_name, pids=pids, kernel_frames=kernel_frames, min_bytes=min_bytes, top=top)
    mapped = _map_all(traces)
    progress = [_Progress(os.path.basename(p), not quiet) for p in traces]
    try:
        result = run_job(mapped, opts, progress=progress)
    finally:
        for pr in progress:
            pr.done()
        for tf in mapped:
            tf.close()
    summary_to = sys.stderr if json_path == "-" else sys.stdout
    for t in result.doc["traces"]:
        _warn_anomalies(t["path"], t["anomalies"], t["events_lost"], t["buffers_lost"])
    try:
        with open(html_path, "w", encoding="utf-8") as fh:
            fh.write(result.html)
    except OSError as e:
        raise click.UsageError(f"cannot write --html {html_path}: {e.strerror}") from None
    data = json_bytes(result.doc) + b"\n"
    if json_path == "-":
        out = getattr(sys.stdout, "buffer", None)
        if out is not None:
            sys.stdout.flush()
            out.write(data)
            out.flush()
        else:  # a text-only stream
            sys.stdout.write(data.decode("utf-8"))
    elif json_path is not None:
        try:
            with open(json_path, "wb") as fb:
                fb.write(data)
        except OSError as e:
            raise click.UsageError(f"cannot write --json {json_path}: {e.strerror}") from None
    if not quiet:
        print(result.summary, file=summary_to)
        print(f"HTML report: {html_path}" + (f"   JSON: {json_path}" if json_path not in (None, "-") else ""),
              file=summary_to)
    elif json_path != "-":
        pass
    if fail_on_growth is not None and result.growth_bytes > fail_on_growth:
        click.echo(f"heapdiff: growth {result.growth_bytes:,} bytes exceeds --fail-on-growth {fail_on_growth:,}",
                   err=True)
        sys.exit(EXIT_GROWTH)


def json_bytes(doc: Any) -> bytes:
    """The JSON document as compact UTF-8.

    orjson, not the standard library: the document of the 10M benchmark pair (5,516 groups, 7 MB) took 0.14 s to
    encode with ``json`` and 0.027 s with orjson, on the job's serial tail after the last trace is read. The
    text is the same for ASCII; other characters are written as UTF-8 instead of ``\\u`` escapes (both are the
    same JSON). A string orjson refuses (a file name with bytes that are not UTF-8 reaches Python as lone
    surrogates) sends the whole document through ``json``, whose ASCII escapes can carry it.
    """
    import orjson

    try:
        return orjson.dumps(doc)
    except TypeError:
        return json.dumps(doc, separators=(",", ":")).encode("ascii")


def _parse_pids(spec: str | None, n_traces: int) -> tuple[int, ...] | None:
    if spec is None:
        return None
    parts = spec.split(":")
    try:
        vals = tuple(int(p, 0) for p in parts)
    except ValueError:
        raise click.BadParameter(f"{spec!r} is not N or BEFORE:AFTER", param_hint="--pid") from None
    if len(vals) == 1 and n_traces == 1:
        return vals
    if len(vals) == 1 and n_traces == 2:
        raise click.BadParameter("with two traces give BEFORE:AFTER (a run's pids differ)", param_hint="--pid")
    if len(vals) == 2 and n_traces == 2:
        return vals
    raise click.BadParameter(f"{spec!r} does not fit {n_traces} trace(s)", param_hint="--pid")


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a command runs (restored after: tests call :func:`main` in-process).

    Why: the job's data is acyclic (arrays, and dicts and lists of them) and freed by reference counting;
    the collector found nothing to free but walked every object of numba's registries and the job's
    documents in each full pass. Measured on the 10M benchmark pair: 0.36-0.44 s in 5 full passes, and
    4.87-4.93 s against 5.04-5.61 s wall, with the same peak RSS (270 against 275 MB). Any cycle made anyway
    is freed when the process ends or when the collector is back on.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point: a first argument ``info`` is the subcommand; anything else (``./info`` too) is a trace.

    As the program (no ``argv``), every object is frozen out of the cyclic collector once the command is done
    (outputs written and closed), just before the interpreter exits. Why: the interpreter's exit runs full
    collections that walk every object numba and the job made, and nothing is left to free that exit would
    not free anyway. Measured (perf): ~0.22 s of the tiny pair's exit was in the collector; with the objects
    frozen its exit took 0.03 s instead of 0.27 s. In-process callers (tests) keep their collector as it was.

    As the program, numpy's OpenBLAS also gets one thread unless the environment says otherwise (the job does no
    linear algebra). Why: OpenBLAS starts a thread per core when numpy is imported, and they spin for a while,
    on the cores the import and the first reads need (perf, 10M pair: ~0.25 s of CPU in the first 0.5 s; the
    import of the job used 0.34-0.61 s of CPU against 0.49-0.75 s, alternated).
    """
    if argv is None:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        _main(argv)
    finally:
        if argv is None:
            gc.freeze()


def _main(argv: Sequence[str] | None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    cmd = info_command if args[:1] == ["info"] else main_command
    if cmd is info_command:
        args = args[1:]
    try:
        with _collector_paused():
            rv = cmd.main(args=args, prog_name="heapdiff info" if cmd is info_command else "heapdiff",
                          standalone_mode=False)
    except click.exceptions.Exit as e:  # --help
        sys.exit(e.exit_code)
    except click.ClickException as e:  # usage errors: exit 2 (click's own code for them)
        e.show()
        sys.exit(EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code)
    except Unreadable as e:
        _fail(str(e))
    except (KeyboardInterrupt, click.exceptions.Abort):
        # not click's "Aborted!" with exit 1: 1 means the growth threshold was exceeded
        click.echo("heapdiff: interrupted", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)  # like click's standalone mode: always a SystemExit


if __name__ == "__main__":  # pragma: no cover
    main()
