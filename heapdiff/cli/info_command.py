"""``heapdiff info [--json] TRACE``: what a trace holds."""

from __future__ import annotations

import json
import os

import click

from heapdiff.cli.inputs import map_trace
from heapdiff.cli.terminal import OutputClosed, Progress, compiling_notice, warn_trace

EPILOG_EXIT_CODES = """\b
Exit codes (every command):
  0  a result was produced (also from a damaged or lossy trace; warnings on stderr)
  2  usage error
  3  a trace could not be read at all (one line on stderr with the file and byte offset)
  141  the reader of stdout went away before the output was written"""


@click.command("info", epilog=EPILOG_EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout instead of text.")
@click.argument("trace", type=click.Path())
def info_command(as_json: bool, trace: str) -> None:
    """Metadata and record counts of one .etl trace: header, buffers, providers, events, stacks, anomalies."""
    from heapdiff.commands.info import info_text, run_info

    tf = map_trace(trace)
    compiling_notice(reduces=False)
    prog = Progress(os.path.basename(trace), True)
    with tf:
        d = run_info(tf, progress=prog)
    prog.done()
    try:
        click.echo(json.dumps(d, indent=1) if as_json else info_text(d))
    except BrokenPipeError:
        raise OutputClosed("info") from None
    warn_trace(d["path"], d["anomalies"], d["events_lost"], d["buffers_lost"])
