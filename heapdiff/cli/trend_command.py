"""``heapdiff trend RUN1 RUN2 RUN3 ...``: which call stacks keep growing over N runs."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from heapdiff.cli import options as opt
from heapdiff.cli.documents import looks_like_json, read_document, read_suppressions
from heapdiff.cli.inputs import map_all
from heapdiff.cli.outputs import Output, check_outputs, install_template_cache
from heapdiff.cli.params import SIZE
from heapdiff.cli.report_command import EXIT_CODES_HELP, check_document_fits, deliver, tame_malloc
from heapdiff.cli.symbol_setup import DownloadLine, make_resolver
from heapdiff.cli.terminal import Progress, compiling_notice, warn

if TYPE_CHECKING:
    from heapdiff.document.model import Document
    from heapdiff.window import TimeSpec

TREND_HELP = """Which call stacks keep growing over N runs (N >= 3), in the order given.

\b
  heapdiff trend run1.etl run2.etl run3.etl run4.etl
  heapdiff trend nightly-*.json tonight.etl --fail-on-trend 64k

Each run is a trace, or the JSON document of one trace (heapdiff TRACE --json FILE: CI can keep one per night
and read only the newest trace). Call stacks are matched across runs as a diff matches them. Each one gets its
outstanding bytes per run, their least-squares slope (bytes per run) and a class:

\b
  growing    grows in all but at most one step, and holds more in the last run than in the first: a leak
  plateau    grew, then stayed within 5 % over the last half of the runs: a cache that filled
  shrinking  holds less in the last run than in the first
  flat       anything else

The report lists the steepest growth first, with a sparkline per call stack; the figures beside it compare the
last run with the first. The traces are read two at a time, each let go once grouped: memory grows with the
call stacks of the runs, not with their blocks."""


@click.command("trend", help=TREND_HELP, epilog=EXIT_CODES_HELP,
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("runs", nargs=-1, type=click.Path())
@opt.output_options("heapdiff-trend.html", "Also write the JSON document there (mode \"trend\"; '-' for stdout).",
                "every run")
@opt.thinning_options("change from the first run to the last")
@click.option("--fail-on-trend", default=None, type=SIZE, metavar="SIZE",
              help="Exit 1 when a growing call stack's slope exceeds SIZE per run.")
@click.option("--fail-on-growth", default=None, type=SIZE, metavar="SIZE",
              help="Exit 1 when the total growth from the first run to the last exceeds SIZE.")
@opt.suppress_option()
@opt.symbol_options("Match call stacks across runs by module!function where every run has symbols, or always by "
                   "module+offset.")
@opt.window_and_tail_options()
def trend_command(runs: Sequence[str], html_path: str, json_path: str | None, markdown_path: str | None,
                  process_name: str | None, min_bytes: int, top: int, fail_on_trend: int | None,
                  fail_on_growth: int | None, suppress_files: tuple[str, ...], symbol_paths: tuple[str, ...],
                  no_symbols: bool, symbol_timeout: float, match: str, window_from: TimeSpec | None,
                 window_to: TimeSpec | None, window_at: TimeSpec | None, kernel_frames: bool, quiet: bool) -> int:
    from heapdiff.commands.trend import MIN_RUNS

    if len(runs) < MIN_RUNS:
        raise click.UsageError(f"a trend needs at least {MIN_RUNS} runs (two are a diff: heapdiff BEFORE AFTER), "
                               f"got {len(runs)}")
    if no_symbols and symbol_paths:
        raise click.UsageError("--symbols and --no-symbols together: give one of them")
    outputs = [Output("--html", html_path)]
    outputs += [Output("--json", json_path)] if json_path is not None else []
    outputs += [Output("--markdown", markdown_path)] if markdown_path is not None else []
    check_outputs(outputs, runs)
    _warn_repeats(runs)
    suppressions = read_suppressions(suppress_files)
    documents = {k: _run_document(p, kernel_frames, process_name) for k, p in enumerate(runs) if looks_like_json(p)}
    trace_paths = [p for k, p in enumerate(runs) if k not in documents]

    from heapdiff.commands.report import ReportOptions
    from heapdiff.commands.trend import RunInput, run_trend
    from heapdiff.document.gates import GateRequest
    from heapdiff.etl.trace import TraceFile
    from heapdiff.window import WindowRequest

    gates = ((GateRequest("trend", fail_on_trend),) if fail_on_trend is not None else ()) + (
        (GateRequest("growth", fail_on_growth),) if fail_on_growth is not None else ())
    tame_malloc()
    compiling_notice()
    install_template_cache()
    mapped = iter(map_all(trace_paths))
    inputs: list[RunInput] = [documents[k] if k in documents else next(mapped) for k in range(len(runs))]
    line = DownloadLine(not quiet)
    resolver, symbol_path = (None, None) if no_symbols else make_resolver(symbol_paths, trace_paths,
                                                                          symbol_timeout, line)
    opts = ReportOptions(process=process_name, kernel_frames=kernel_frames, min_bytes=min_bytes, top=top,
                         gates=gates, suppressions=suppressions, symbolizer=resolver, symbol_path=symbol_path,
                         match="rva" if match == "rva" else "function",
                         window=WindowRequest(window_from, window_to, window_at))
    progress = [Progress(os.path.basename(p), not quiet) if k not in documents else None
                for k, p in enumerate(runs)]
    try:
        result = run_trend(inputs, opts, progress=progress)
    finally:
        for pr in progress:
            if pr is not None:
                pr.done()
        line.done()
        for r in inputs:
            if isinstance(r, TraceFile):
                r.close()
        if resolver is not None:
            resolver.close()
    return deliver(result, outputs, quiet, trace_paths, resolver is not None, symbol_path, bool(symbol_paths))


def _run_document(path: str, kernel_frames: bool, process: str | None) -> Document:
    """A run given as the JSON document of one trace, checked to fit the others."""
    from heapdiff.commands.trend import check_run_document

    doc = read_document(path)
    check_document_fits(doc, path, kernel_frames, process, check_run_document)
    return doc


def _warn_repeats(runs: Sequence[str]) -> None:
    seen: dict[tuple[int, int], str] = {}
    for p in runs:
        try:
            st = os.stat(p)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # reported as unreadable when opened
        first = seen.setdefault((st.st_dev, st.st_ino), p)
        if first != p or list(runs).count(p) > 1:
            warn(f"{p} is given twice: the same run counts twice in the trend")
            return
