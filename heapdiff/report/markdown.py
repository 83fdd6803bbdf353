"""The Markdown reporter: a short summary for a ticket or a CI job summary (GitHub, GitLab, Azure DevOps).

Headline, gates, data-loss warnings, then the largest call stacks with their frames. Trace and symbol strings
are untrusted: in text and table cells every character Markdown or HTML could read as markup is escaped as an
entity, and a stack sits in a code fence longer than any run of backticks it holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from heapdiff.report import sentences as say
from heapdiff.report.text import format_bytes, format_count
from heapdiff.report.view import GroupRow, ReportView

#: call stacks shown with their frames
ROWS: Final = 10
#: frames shown per stack
FRAMES: Final = 24

_PUNCT = re.compile(r"[\\`*_\[\]|~]")
_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def md(text: str) -> str:
    """Untrusted text as Markdown that renders as the same characters: no code span, emphasis, link, table break
    or HTML (punctuation that Markdown reads is backslash-escaped, ``<``, ``>`` and ``&`` become entities)."""
    text = _PUNCT.sub(lambda m: "\\" + m.group(0), text.replace("\r", " ").replace("\n", " "))
    return "".join(_HTML.get(c, c) for c in text)


def _fence(lines: list[str]) -> list[str]:
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, *lines, fence]


def _stack(r: GroupRow) -> list[str]:
    frames = [("[kernel] " if f.kernel else "") + f.text for f in r.frames[:FRAMES]]
    more = len(r.frames) - FRAMES + r.frames_omitted
    if more > 0:
        frames.append(f"... {more:,} more frames")
    return _fence(frames or ["(no stack)"])


def markdown_summary(view: ReportView, rows: int = ROWS) -> str:
    diff = view.is_diff
    t, h = view.totals, view.headline
    out = [f"### {md(view.title)}", ""]
    out += [f"Leak window: {md(w)}" for w in view.filters.window] + ([""] if view.filters.window else [])
    if view.is_trend and t.before is not None:
        out += [f"**{md(say.trend_sentence(len(view.traces), view.trend_classes))}**", "",
                md(say.runs_sentence(t.before.bytes, t.before.blocks, t.after.bytes, t.after.blocks)), ""]
    elif diff and t.before is not None:
        net = say.net_sentence(h, t.before.bytes, t.before.blocks, t.after.bytes, t.after.blocks)
        out += [f"**{md(say.growth_sentence(h))}**", "", f"{md(say.shrink_sentence(h))}; {md(net)}", ""]
    else:
        out += [f"**{md(say.outstanding_sentence(t.after.bytes, t.after.blocks))}**", ""]
    if view.suppressed_count:
        out += [md(say.suppressed_sentence(h, diff)), ""]
    for u in view.unused_suppressions:
        out += [f"Suppression pattern matched nothing: {md(u)}", ""]
    if view.gates:
        out += ["| Gate | Result |", "|---|---|"]
        out += [f"| {md(g.option)} | {'**FAILED**' if g.failed else 'passed'}: {md(say.gate_body(g))} |"
                for g in view.gates]
        out.append("")
    for e in view.empty_traces:
        out += [f"> **Warning ({md(e.role)})**: {md(e.path)} holds no heap events: it was recorded without heap "
                f"tracing. Record one with `{say.RECORD_HELP[0]}`", ""]
    for w in view.warnings:
        out += [f"> **Warning{f' ({md(w.role)})' if w.role else ''}**: {md(w.message)}", ""]
    shown = view.rows[:max(0, rows)]
    if not shown:
        out.append("No call stack to show.")
        return "\n".join(out) + "\n"
    what = "steepest growth per run" if view.is_trend else "largest growth" if diff else "largest outstanding"
    out += [f"{what[0].upper()}{what[1:]} first ({len(shown):,} of {view.group_count:,} call stacks):", ""]
    out += _table(view, shown)
    out.append("")
    for r in shown:
        out += [f"<details><summary>#{r.rank} {md(r.label)}</summary>", "", *_stack(r), "", "</details>", ""]
    return "\n".join(out)


def _table(view: ReportView, shown: Sequence[GroupRow]) -> list[str]:
    diff = view.is_diff
    if view.is_trend:
        head = "| # | Slope per run | Last run | Trend | Module | Innermost frame |"
    elif diff:
        head = "| # | Status | Δ bytes | Δ blocks | Module | Innermost frame |"
    else:
        head = "| # | Bytes | Blocks | Module | Innermost frame |"
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in shown:
        if view.is_trend:
            cells = [str(r.rank), format_bytes(round(r.slope_bytes or 0.0), signed=True),
                     format_bytes(r.figures.after.bytes), md(r.trend or ""), md(r.module), md(r.label)]
        else:
            c = r.figures.delta if diff and r.figures.delta is not None else r.figures.after
            cells = [str(r.rank)] + ([md(r.status or "")] if diff else []) + [
                format_bytes(c.bytes, signed=diff), format_count(c.blocks, signed=diff), md(r.module),
                md(r.label)]
        out.append("| " + " | ".join(cells) + " |")
    return out
