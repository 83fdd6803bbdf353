"""The options every command that reads traces shares, declared once: symbols, the leak window, the last few."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from heapdiff.cli.params import TIME, WINDOW_HELP
from heapdiff.cli.symbol_setup import SYMBOLS_HELP

F = TypeVar("F", bound=Callable[..., Any])


def _all(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """The decorators applied as if written in this order above a function (so ``--help`` lists them so)."""
    def apply(f: F) -> F:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


def output_options(html_default: str, json_help: str, inputs: str) -> Callable[[F], F]:
    """``-o/--html``, ``--json``, ``--markdown`` and ``--process`` (``inputs``: what the filter applies to)."""
    return _all(
        click.option("-o", "--html", "html_path", default=html_default, show_default=True, metavar="PATH",
                     help="Where to write the HTML report ('-' for stdout)."),
        click.option("--json", "json_path", default=None, metavar="PATH", help=json_help),
        click.option("--markdown", "markdown_path", default=None, metavar="PATH",
                     help="Also write a Markdown summary there, for a ticket or a CI job summary ('-' for stdout)."),
        click.option("--process", "process_name", default=None, metavar="NAME",
                     help=f"Only processes with this image name (case-insensitive), in {inputs}."),
    )


def thinning_options(size_of: str) -> Callable[[F], F]:
    """``--min-bytes`` and ``--top``: how many rows the terminal, HTML and Markdown show (``size_of``: what a row's
    size is); never what the JSON holds."""
    return _all(
        click.option("--min-bytes", default=0, show_default=True, type=click.IntRange(min=0),
                     help=f"Hide call stacks whose {size_of} is smaller than this in terminal and HTML; "
                          "never in JSON."),
        click.option("--top", default=50, show_default=True, type=click.IntRange(min=1),
                     help="Show at most this many call stacks in terminal and HTML (the rest as one 'other' row); "
                          "never in JSON."),
    )


def suppress_option() -> Callable[[F], F]:
    return click.option("--suppress", "suppress_files", multiple=True, metavar="FILE",
                        help="Leave the call stacks that match a pattern of FILE out of totals and gates (repeatable; "
                             "one module!function or module+0xRVA pattern per line, * and ? wildcards, # comments).")


def symbol_options(match_help: str) -> Callable[[F], F]:
    """``--symbols``, ``--no-symbols``, ``--symbol-timeout`` and ``--match``."""
    return _all(
        click.option("--symbols", "symbol_paths", multiple=True, metavar="PATH", help=SYMBOLS_HELP),
        click.option("--no-symbols", is_flag=True, help="Do not look for symbols: frames stay module+offset."),
        click.option("--symbol-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
                     metavar="SECONDS", help="How long to wait on a symbol server for each answer."),
        click.option("--match", "match", default="function", show_default=True,
                     type=click.Choice(["function", "rva"]), help=match_help),
    )


def window_and_tail_options() -> Callable[[F], F]:
    """``--from``, ``--to``, ``--at`` (the leak window), ``--kernel-frames`` and ``-q``."""
    return _all(
        click.option("--from", "window_from", default=None, type=TIME, metavar="T", help=WINDOW_HELP["from"]),
        click.option("--to", "window_to", default=None, type=TIME, metavar="T", help=WINDOW_HELP["to"]),
        click.option("--at", "window_at", default=None, type=TIME, metavar="T", help=WINDOW_HELP["at"]),
        click.option("--kernel-frames", is_flag=True, help="Keep kernel frames in stack signatures and in the JSON."),
        click.option("-q", "--quiet", is_flag=True, help="No summary on the terminal."),
    )
