"""Suppressions: frame patterns that mark known, accepted allocations, so that gates and totals skip them.

A suppression file holds one pattern per line; ``#`` starts a comment; blank lines are ignored. A pattern is
``module!function`` or ``module+0xRVA``, with ``*`` and ``?`` wildcards in either part; module names match
case-insensitively, functions case-sensitively (C++ names differ by case). A group is suppressed when any frame
of its full stack (kernel frames included) matches a pattern. ``module!*`` matches every frame of the module,
with symbols or without; another function pattern needs the frame named by symbols (its function or any
inlined call at that address). As LeakSanitizer does, a pattern that matched nothing is reported.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from heapdiff.document.model import FrameRecord
from heapdiff.errors import HeapdiffError


class SuppressionError(HeapdiffError):
    """A suppression file line that is not a pattern: names the file and the line."""


@dataclass(frozen=True)
class Pattern:
    text: str
    source: str
    line: int
    kind: Literal["function", "rva"]
    module: re.Pattern[str]
    rest: re.Pattern[str]
    #: ``module!*``: any frame of the module, named by symbols or not
    any_function: bool


def _compile(glob: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(glob), re.IGNORECASE if ignore_case else 0)


def parse_pattern(text: str, source: str = "<pattern>", line: int = 0) -> Pattern:
    where = f"{source}:{line}" if line else source
    if "!" in text:
        module, rest = text.split("!", 1)
        kind: Literal["function", "rva"] = "function"
    elif "+0x" in text.lower():
        cut = text.lower().index("+0x")
        module, rest = text[:cut], text[cut + 3:]
        kind = "rva"
        if not rest or not re.fullmatch(r"[0-9a-fA-F*?]+", rest):
            raise SuppressionError(f"{where}: {text!r}: the RVA after +0x must be hex digits (wildcards * and ?)")
        rest = rest.lower().lstrip("0") or "0" if not any(c in rest for c in "*?") else rest.lower()
    else:
        raise SuppressionError(f"{where}: {text!r} is not module!function or module+0xRVA")
    if not module or not rest:
        raise SuppressionError(f"{where}: {text!r} needs both a module and a function or RVA")
    return Pattern(text, source, line, kind, _compile(module, True), _compile(rest, kind == "rva"),
                   kind == "function" and rest == "*")


def parse_suppressions(text: str, source: str) -> list[Pattern]:
    """Every pattern of a suppression file's text, with its line number."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        body = raw.split("#", 1)[0].strip()
        if body:
            out.append(parse_pattern(body, source, n))
    return out


def frame_matches(p: Pattern, f: FrameRecord) -> bool:
    if f.module is None or not p.module.match(f.module):
        return False
    if p.kind == "rva":
        return f.rva is not None and p.rest.match(f"{f.rva:x}") is not None
    if p.any_function:
        return True
    names = [f.function] if f.function is not None else []
    names += [i.function for i in f.inlined]
    return any(p.rest.match(n) for n in names)


def first_match(patterns: Sequence[Pattern], frames: Sequence[FrameRecord]) -> Pattern | None:
    """The first pattern (in file order) that matches any frame of the stack."""
    for p in patterns:
        if any(frame_matches(p, f) for f in frames):
            return p
    return None
