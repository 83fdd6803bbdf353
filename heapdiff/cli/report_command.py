"""``heapdiff [OPTIONS] TRACE [TRACE2]``: the main job's arguments, outputs and exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from heapdiff.cli.inputs import map_all
from heapdiff.cli.outputs import Output, check_outputs, install_template_cache, write_output
from heapdiff.cli.terminal import Progress, warn_trace

EXIT_GROWTH = 1

EXIT_CODES_HELP = """\b
Exit codes (every command):
  0  a result was produced (also from a damaged or lossy trace; warnings on stderr)
  1  --fail-on-growth: total delta bytes exceeded the threshold (reports still written)
  2  usage error (nothing is written)
  3  a trace could not be read at all (one line on stderr with the file and byte offset),
     or the machine ran out of memory or disk"""


def _allocator_modules_help() -> str:
    from heapdiff.rules import ALLOCATOR_MODULE_PREFIXES, ALLOCATOR_MODULE_STEMS

    return ", ".join(sorted(ALLOCATOR_MODULE_STEMS)) + ", " + ", ".join(f"{p}*" for p in ALLOCATOR_MODULE_PREFIXES)


MAIN_HELP = f"""Report the heap blocks still outstanding at the end of a trace, per call stack.

\b
  heapdiff after.etl                  outstanding blocks at the end of one trace
  heapdiff before.etl after.etl       per call stack: how much more (or less) is outstanding in "after"
  heapdiff info [--json] TRACE        metadata and counts of one trace

Two traces are usually two runs: pids, heap handles and image bases differ, so call stacks are matched by their
frames (module+offset), never by address. A group's module and label are its first frame outside the kernel and
the allocator modules ({_allocator_modules_help()}).

Writes a self-contained HTML report (default heapdiff-report.html) and, with --json, the JSON document
(schema heapdiff/1, see the README). Every output path may be '-' for standard output (one at most); outputs are
checked before any work starts and never overwrite an input."""


def parse_pids(spec: str | None, n_traces: int) -> tuple[int, ...] | None:
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


def _tame_malloc() -> None:
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
@click.argument("traces", nargs=-1, type=click.Path(dir_okay=False))
@click.option("-o", "--html", "html_path", default="heapdiff-report.html", show_default=True, metavar="PATH",
              help="Where to write the HTML report ('-' for stdout).")
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
    pids = parse_pids(pid_spec, len(traces))
    outputs = [Output("--html", html_path)] + ([Output("--json", json_path)] if json_path is not None else [])
    check_outputs(outputs, traces)

    from heapdiff.commands.report import ReportOptions, run_report
    from heapdiff.document import encode

    _tame_malloc()
    install_template_cache()
    opts = ReportOptions(process=process_name, pids=pids, kernel_frames=kernel_frames, min_bytes=min_bytes,
                         top=top)
    mapped = map_all(traces)
    progress = [Progress(os.path.basename(p), not quiet) for p in traces]
    try:
        result = run_report(mapped, opts, progress=progress)
    finally:
        for pr in progress:
            pr.done()
        for tf in mapped:
            tf.close()
    for t in result.document.traces:
        warn_trace(t.path, t.anomalies, t.events_lost, t.buffers_lost)
    for o in outputs:
        write_output(o, result.html.encode("utf-8") if o.option == "--html" else encode(result.document))
    if not quiet:
        summary_to = sys.stderr if any(o.to_stdout for o in outputs) else sys.stdout
        print(result.summary, file=summary_to)
        files = "   ".join(f"{o.option[2:].upper()}: {o.path}" for o in outputs if not o.to_stdout)
        if files:
            print(files.replace("HTML:", "HTML report:"), file=summary_to)
    growth = result.document.totals.delta.bytes
    if fail_on_growth is not None and growth > fail_on_growth:
        click.echo(f"heapdiff: growth {growth:,} bytes exceeds --fail-on-growth {fail_on_growth:,}", err=True)
        sys.exit(EXIT_GROWTH)
