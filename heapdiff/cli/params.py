"""Option values the CLI parses: sizes with units, pid pairs, suppression files, baseline documents."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import click

if TYPE_CHECKING:
    from heapdiff.window import TimeSpec

V = TypeVar("V")

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """``4096``, ``10k``, ``10KiB``, ``1.5M``, ``5MiB``, ``1G``: bytes; K, M, G and T are 1024 multiples (so are
    KB, MB and GB here, as Windows counts them)."""
    m = _SIZE.fullmatch(text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 4096, 10k, 10KiB, 5M, 1G)")
    return int(float(m.group(1)) * _UNITS[unit]) if "." in m.group(1) else int(m.group(1)) * _UNITS[unit]


class Parsed(click.ParamType, Generic[V]):  # type: ignore[type-arg]  # generic only in newer click stubs
    """An option value that ``parse`` reads from its text; a ValueError from it is the usage error's sentence. A
    value that is not text (a default, a value given by a caller in Python) was parsed already and passes."""

    def __init__(self, name: str, parse: Callable[[str], V]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> V:
        if not isinstance(value, str):
            return cast("V", value)
        try:
            return self._parse(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


def _parse_time(text: str) -> TimeSpec:
    from heapdiff.window import parse_time  # imported when a window is given: numpy stays out of --help

    return parse_time(text)


SIZE = Parsed("SIZE", parse_size)
#: a time of a trace (heapdiff.window): seconds from the start, negative from the end, ISO 8601, mark:NAME
TIME = Parsed("T", _parse_time)

#: the three options' help, shared by every command that reads traces
WINDOW_HELP = {
    "from": "Count only blocks allocated at or after T: seconds from the trace's start (12.5), negative seconds "
            "from its end (-2), an ISO 8601 time (UTC unless it says otherwise), or mark:NAME (a mark that "
            "xperf -m wrote). With several traces, T is resolved in each.",
    "to": "Count only blocks allocated before T (as --from).",
    "at": "Measure what is outstanding at T instead of at the trace's end (as --from; from the end or at a mark, "
          "the trace is read twice: the first read finds its end and marks).",
}


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
