"""``heapdiff symbolize REPORT.json``: a report made without symbols, named from PDBs afterwards."""

from __future__ import annotations

import sys
from functools import partial

import click

from heapdiff.cli.documents import read_document
from heapdiff.cli.outputs import Output, check_outputs, install_template_cache, write_output
from heapdiff.cli.symbol_setup import SYMBOLS_HELP, DownloadLine, make_resolver, report_symbols
from heapdiff.cli.terminal import say, warn

EPILOG = """\b
Exit codes (every command):
  0  a result was produced
  2  usage error (nothing is written)
  3  the machine ran out of memory or disk"""


def _beside(report: str, suffix: str) -> str:
    stem = report[:-5] if report.lower().endswith(".json") else report
    return f"{stem}.symbolized{suffix}"


@click.command("symbolize", epilog=EPILOG,
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--symbols", "symbol_paths", multiple=True, metavar="PATH", help=SYMBOLS_HELP)
@click.option("--symbol-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="How long to wait on a symbol server for each answer.")
@click.option("--json", "json_path", default=None, metavar="PATH",
              help="Where to write the named document (default: REPORT.symbolized.json beside it; '-' for stdout).")
@click.option("-o", "--html", "html_path", default=None, metavar="PATH",
              help="Where to write its HTML report (default: REPORT.symbolized.html beside it; '-' for stdout).")
@click.option("--top", default=50, show_default=True, type=click.IntRange(min=1),
              help="Show at most this many groups in terminal and HTML.")
@click.option("-q", "--quiet", is_flag=True, help="No summary on the terminal.")
def symbolize_command(report: str, symbol_paths: tuple[str, ...], symbol_timeout: float, json_path: str | None,
                      html_path: str | None, top: int, quiet: bool) -> None:
    """Name the frames of a JSON report made without symbols (or with too few): every frame is looked up in the
    PDBs of the images the report records, and a new JSON document and HTML report are written; the counts and
    the groups stay as they were."""
    outputs = [Output("--json", json_path or _beside(report, ".json")),
               Output("--html", html_path or _beside(report, ".html"))]
    check_outputs(outputs, [report])
    doc = read_document(report)

    from heapdiff.commands.symbolize import symbolize_document, unnamed_modules
    from heapdiff.document import write_document
    from heapdiff.report.html import render_html
    from heapdiff.report.terminal import terminal_summary
    from heapdiff.report.view_build import build_view

    missing = unnamed_modules(doc)
    if missing:
        warn(f"{report} records no identity for {', '.join(missing[:8])}: it was made before heapdiff recorded "
             "modules, so their frames cannot be named")
    install_template_cache()
    line = DownloadLine(not quiet)
    resolver, symbol_path = make_resolver(symbol_paths, [report], symbol_timeout, line)
    try:
        named = symbolize_document(doc, resolver, symbol_path)
    finally:
        line.done()
        resolver.close()
    report_symbols(named.traces, servers="srv*" in symbol_path.lower() or "http" in symbol_path.lower(),
                   asked=True)
    view = build_view(named, top=top, min_bytes=0)
    for o in outputs:
        write_output(o, partial(write_document, named) if o.option == "--json" else render_html(view).encode("utf-8"))
    if not quiet:
        to = sys.stderr if any(o.to_stdout for o in outputs) else sys.stdout
        say(terminal_summary(view), file=to)
        say("   ".join(f"{o.option[2:].upper()}: {o.path}" for o in outputs if not o.to_stdout), file=to)
