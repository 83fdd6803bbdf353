"""``heapdiff [OPTIONS] TRACE [TRACE2]``: the main job's arguments, outputs and exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import click

from heapdiff.cli import exits
from heapdiff.cli.documents import looks_like_json, read_document, read_suppressions
from heapdiff.cli.inputs import map_all
from heapdiff.cli.options import (
    output_options,
    suppress_option,
    symbol_options,
    thinning_options,
    window_and_tail_options,
)
from heapdiff.cli.outputs import Output, check_outputs, install_template_cache, write_output
from heapdiff.cli.params import SIZE, parse_pids
from heapdiff.cli.symbol_setup import DownloadLine, make_resolver, report_symbols
from heapdiff.cli.terminal import OutputClosed, Progress, compiling_notice, say, warn, warn_trace

if TYPE_CHECKING:
    from heapdiff.commands.report import ReportResult
    from heapdiff.document.model import Document
    from heapdiff.window import TimeSpec

#: the environment variables that name a symbol path (the debuggers')
SYMBOL_ENV = ("_NT_ALT_SYMBOL_PATH", "_NT_SYMBOL_PATH")

EXIT_GATE = 1

EXIT_CODES_HELP = """\b
Exit codes (every command):
  0  a result was produced (also from a damaged or lossy trace; warnings on stderr)
  1  a --fail-on-... gate failed (reports still written): a threshold was exceeded, or an
     input held no heap events to measure
  2  usage error (nothing is written)
  3  a trace could not be read at all (one line on stderr with the file and byte offset),
     or the machine ran out of memory or disk
  141  an output to stdout (a report given as -, info's text) lost its reader (the outputs
       to files are still written); lines on the console are dropped when nobody reads
       them, and the job goes on"""


def _allocator_modules_help() -> str:
    from heapdiff.rules import ALLOCATOR_MODULE_PREFIXES, ALLOCATOR_MODULE_STEMS

    return ", ".join(sorted(ALLOCATOR_MODULE_STEMS)) + ", " + ", ".join(f"{p}*" for p in ALLOCATOR_MODULE_PREFIXES)


MAIN_HELP = f"""Report the heap blocks still outstanding at the end of a trace, per call stack.

\b
  heapdiff after.etl                  outstanding blocks at the end of one trace
  heapdiff before.etl after.etl       per call stack: how much more (or less) is outstanding in "after"
  heapdiff main.json pr.etl           the same against a baseline: the JSON of an earlier one-trace run
  heapdiff trend R1 R2 R3 ...         which call stacks keep growing over N runs (heapdiff trend --help)
  heapdiff symbolize REPORT.json      name the frames of a report made without symbols
  heapdiff info [--json] TRACE        metadata and counts of one trace

Two traces are usually two runs: pids, heap handles and image bases differ, so call stacks are matched by their
frames, never by address: by module!function where both runs have the module's symbols (two builds still pair up),
else by module+offset. A group's module and label are its first frame outside the kernel and the allocator
modules ({_allocator_modules_help()}) and allocation functions (malloc, operator new, HeapAlloc, ...).

Frames are named from PDBs found on the symbol path (--symbols, else _NT_SYMBOL_PATH, and each trace's folder):
a PDB is used only when its GUID and age are the image's; parsed symbols are cached (see the README).

The headline of a diff is the growth: the sum of every call stack's growth, so a leak is never hidden by memory
freed elsewhere; then the shrink and the net. Gates (--fail-on-...) make CI fail on a leak, and fail on an input
that holds no heap events instead of passing on nothing.

Writes a self-contained HTML report (default heapdiff-report.html) and, with --json, the JSON document
(schema heapdiff/1, see the README); --markdown writes a summary for a ticket or a CI job. Every output path may
be '-' for standard output (one at most); outputs are checked before any work starts and never overwrite an
input. SIZE: bytes, or with a unit: 10k, 10KiB, 5M, 1G (1024 multiples)."""


def tame_malloc() -> None:
    """glibc: fixed thresholds, so that the per-batch arrays the job frees go back to the OS (glibc raises its
    mmap threshold after each large free, so later arrays of that size stayed in the heap, fragmented, and the
    resident set grew with the trace). A no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)    # M_MMAP_THRESHOLD: 1 MiB and above is mapped and unmapped
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD: do not trim the heap on every free
    except (OSError, AttributeError):
        pass


@click.command("heapdiff", help=MAIN_HELP, epilog=EXIT_CODES_HELP,
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("traces", nargs=-1, type=click.Path())
@output_options("heapdiff-report.html",
                "Also write the JSON document there ('-' for stdout: then stdout holds only the JSON).", "every trace")
@click.option("--pid", "pid_spec", default=None, metavar="N|BEFORE:AFTER",
              help="Only this process id (one trace), or BEFORE:AFTER ids (two traces).")
@thinning_options("size (in a diff, the absolute delta)")
@click.option("--fail-on-growth", default=None, type=SIZE, metavar="SIZE",
              help="Exit 1 when the total growth exceeds SIZE (one trace: what is outstanding).")
@click.option("--fail-on-stack-growth", default=None, type=SIZE, metavar="SIZE",
              help="Exit 1 when one call stack grew by more than SIZE (one trace: holds more than SIZE).")
@click.option("--fail-on-new", default=None, type=SIZE, metavar="SIZE",
              help="Exit 1 when a call stack new in 'after' holds more than SIZE there (two inputs only).")
@suppress_option()
@symbol_options("Match the groups of two inputs by module!function where both have symbols (two builds of a "
                   "program still pair up), or always by module+offset.")
@window_and_tail_options()
def main_command(traces: Sequence[str], html_path: str, json_path: str | None, markdown_path: str | None,
                 process_name: str | None, pid_spec: str | None, min_bytes: int, top: int,
                 fail_on_growth: int | None, fail_on_stack_growth: int | None, fail_on_new: int | None,
                 suppress_files: tuple[str, ...], symbol_paths: tuple[str, ...], no_symbols: bool,
                 symbol_timeout: float, match: str, window_from: TimeSpec | None,
                 window_to: TimeSpec | None, window_at: TimeSpec | None, kernel_frames: bool, quiet: bool) -> int:
    if not traces:
        raise click.UsageError("give one trace (outstanding blocks) or two (before and after)")
    if len(traces) > 2:
        raise click.UsageError(f"at most two inputs (before and after), got {len(traces)}")
    outputs = [Output("--html", html_path)]
    outputs += [Output("--json", json_path)] if json_path is not None else []
    outputs += [Output("--markdown", markdown_path)] if markdown_path is not None else []
    check_outputs(outputs, traces)
    baseline_path, trace_paths = _split_baseline(traces)
    if fail_on_new is not None and len(traces) < 2:
        raise click.UsageError("--fail-on-new needs two inputs: a call stack is new in 'after' against 'before'")
    pids = parse_pids(pid_spec, len(trace_paths))
    if len(traces) == 2 and _same_file(traces[0], traces[1]):
        warn(f"{traces[0]} and {traces[1]} are the same file: the diff can only show no change")
    suppressions = read_suppressions(suppress_files)
    baseline = None
    if baseline_path is not None:
        from heapdiff.commands.report import check_baseline

        baseline = read_document(baseline_path)
        check_document_fits(baseline, baseline_path, kernel_frames, process_name, check_baseline)

    from heapdiff.commands.report import ReportOptions, run_report
    from heapdiff.document.gates import GateRequest
    from heapdiff.window import WindowRequest

    gates = tuple(r for r in (GateRequest("growth", fail_on_growth) if fail_on_growth is not None else None,
                              GateRequest("stack_growth", fail_on_stack_growth) if fail_on_stack_growth is not None
                              else None,
                              GateRequest("new", fail_on_new) if fail_on_new is not None else None) if r is not None)
    if no_symbols and symbol_paths:
        raise click.UsageError("--symbols and --no-symbols together: give one of them")
    tame_malloc()
    compiling_notice()
    install_template_cache()
    mapped = map_all(trace_paths)
    line = DownloadLine(not quiet)
    resolver, symbol_path = (None, None) if no_symbols else make_resolver(symbol_paths, trace_paths,
                                                                          symbol_timeout, line)
    opts = ReportOptions(process=process_name, pids=pids, kernel_frames=kernel_frames, min_bytes=min_bytes,
                         top=top, gates=gates, suppressions=suppressions, symbolizer=resolver,
                         symbol_path=symbol_path, match="rva" if match == "rva" else "function",
                         window=WindowRequest(window_from, window_to, window_at))
    progress = [Progress(os.path.basename(p), not quiet) for p in trace_paths]
    try:
        result = run_report(mapped, opts, progress=progress, baseline=baseline)
    finally:
        for pr in progress:
            pr.done()
        line.done()
        for tf in mapped:
            tf.close()
        if resolver is not None:
            resolver.close()
    return deliver(result, outputs, quiet, trace_paths, resolver is not None, symbol_path, bool(symbol_paths))


def deliver(result: ReportResult, outputs: Sequence[Output], quiet: bool, read: Sequence[str], symbols: bool,
            symbol_path: str | None, symbols_asked: bool) -> int:
    """What every job does with its result: warnings on stderr about the traces it ``read`` (not about the
    documents it was given), the outputs written, the summary printed, the gates' exit code (shared by the main
    job and ``trend``)."""
    exits.keep(result)  # (as the program: never freed object by object)
    fresh = [t for t in result.document.traces if t.path in set(read)]
    from heapdiff.document import write_document
    from heapdiff.report.sentences import RECORD_HELP, gate_sentence

    if symbols:
        report_symbols(fresh,
                       servers="srv*" in (symbol_path or "").lower() or "http" in (symbol_path or "").lower(),
                       asked=symbols_asked or any(os.environ.get(v) for v in SYMBOL_ENV))
    for t in fresh:
        warn_trace(t.path, t.anomalies, t.events_lost, t.buffers_lost)
        for note in t.notes:
            warn(note)
    for e in result.view.empty_traces:
        warn(f"{e.path} holds no heap events: it was recorded without heap tracing for the program; record one "
             f"with: {RECORD_HELP[0]}")
    for u in result.view.unused_suppressions:
        warn(f"suppression pattern matched nothing: {u}")
    closed: OutputClosed | None = None
    for o in outputs:
        try:
            if o.option == "--json":  # written as a stream: a document of a million groups is never held whole
                write_output(o, partial(write_document, result.document))
            else:
                write_output(o, (result.html if o.option == "--html" else result.markdown).encode("utf-8"))
        except OutputClosed as e:  # the outputs to files are still written; the exit says stdout lost its reader
            closed = e
    if closed is not None:
        raise closed
    if not quiet:
        summary_to = sys.stderr if any(o.to_stdout for o in outputs) else sys.stdout
        say(result.summary, file=summary_to)
        files = "   ".join(f"{o.option[2:].upper()}: {o.path}" for o in outputs if not o.to_stdout)
        if files:
            say(files.replace("HTML:", "HTML report:"), file=summary_to)
    failed = [g for g in result.view.gates if g.failed]
    for g in failed:
        say(f"heapdiff: gate {gate_sentence(g)}", err=True)
    return EXIT_GATE if failed else 0


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _split_baseline(paths: Sequence[str]) -> tuple[str | None, list[str]]:
    """A JSON document may stand first (the baseline); every other input is a trace."""
    json_at = [i for i, p in enumerate(paths) if looks_like_json(p)]
    if not json_at:
        return None, list(paths)
    if json_at != [0] or len(paths) != 2:
        where = paths[json_at[-1]]
        raise click.UsageError(f"{where} is a JSON document: a baseline document stands first, before one trace "
                               "(heapdiff BASELINE.json AFTER.etl)")
    return paths[0], list(paths[1:])


def check_document_fits(doc: Document, path: str, kernel_frames: bool, process: str | None,
                         check: Callable[[Document, str], None]) -> None:
    from heapdiff.errors import DocumentError

    try:
        check(doc, path)
    except DocumentError as e:
        raise click.UsageError(str(e)) from None
    if doc.filters.kernel_frames != kernel_frames:
        made = "with" if doc.filters.kernel_frames else "without"
        raise click.UsageError(f"{path} was made {made} --kernel-frames: give the same option, or its call stacks "
                               "cannot match")
    if doc.filters.window.given:
        warn(f"{path} was made with a window ({_window_words(doc)}): its blocks are that window's")
    if (doc.filters.process or "").lower() != (process or "").lower():
        warn(f"{path} was made with --process {doc.filters.process or '(none)'}, this run with --process "
             f"{process or '(none)'}")


def _window_words(doc: Document) -> str:
    w = doc.filters.window
    return ", ".join(f"--{k} {v}" for k, v in (("from", w.from_text), ("to", w.to_text), ("at", w.at_text))
                     if v is not None)
