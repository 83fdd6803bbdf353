"""The terminal reporter: a plain-text summary of a view, every line within the terminal's width."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

from heapdiff.report.sentences import (
    RECORD_HELP,
    gate_sentence,
    growth_sentence,
    net_sentence,
    outstanding_sentence,
    runs_sentence,
    shrink_sentence,
    suppressed_sentence,
    trend_sentence,
)
from heapdiff.report.text import format_bytes, format_count
from heapdiff.report.view import GroupRow, ReportView


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _line_cells(cells: Iterable[tuple[str, int, str]]) -> str:
    out = []
    for text, w, align in cells:
        t = _fit(text, w)
        out.append(t.rjust(w) if align == ">" else t.ljust(w))
    return "  ".join(out).rstrip()


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False) or [""]


def headline_lines(view: ReportView) -> list[str]:
    """The leak answer: growth first (never hidden by memory freed elsewhere), then shrink and net; for one
    trace, what is outstanding."""
    t, h = view.totals, view.headline
    if view.is_trend and t.before is not None:
        return [trend_sentence(len(view.traces), view.trend_classes),
                runs_sentence(t.before.bytes, t.before.blocks, t.after.bytes, t.after.blocks),
                "First to last run: " + growth_sentence(h)]
    if view.is_diff and t.before is not None:
        return [growth_sentence(h), shrink_sentence(h),
                net_sentence(h, t.before.bytes, t.before.blocks, t.after.bytes, t.after.blocks)]
    return [outstanding_sentence(t.after.bytes, t.after.blocks)]


def terminal_summary(view: ReportView, width: int = 100, *, rows: int = 10) -> str:
    """A plain-text summary for the CLI: title, headline, gates, warnings and the ``rows`` largest growths (delta
    bytes, blocks, module, innermost non-allocator frame), every line at most ``width`` characters."""
    width = max(40, width)
    diff = view.is_diff
    lines = [_fit(view.title, width)]
    for sentence in view.filters.window:
        lines.extend(_wrap(f"Leak window: {sentence}", width))
    for line in headline_lines(view):
        lines.extend(_wrap(line, width))
    if view.suppressed_count:
        lines.extend(_wrap(suppressed_sentence(view.headline, diff), width))
    for u in view.unused_suppressions:
        lines.extend(_wrap(f"Suppression pattern matched nothing: {u}", width))
    for g in view.gates:
        lines.extend(_wrap(f"Gate {gate_sentence(g)}", width))
    for e in view.empty_traces:
        lines.extend(_wrap(f"WARNING ({e.role}): {e.path} holds no heap events: it was recorded without heap "
                           f"tracing. Record one with: {RECORD_HELP[0]}", width))
    for w in view.warnings:
        lines.extend(_wrap(f"WARNING{f' ({w.role})' if w.role else ''}: {w.message}", width))
    for n in view.notices:
        lines.extend(_wrap(f"note ({n.role}): {n.message}", width))
    lines.append("")
    shown = view.rows[: max(0, rows)]
    if not shown:
        lines.append("No call stack to show.")
        return "\n".join(lines) + "\n"
    nb, nk = 11, 9
    room = width - (nb + nk + 6)
    nm = min(18, max(6, room // 3))
    nf = max(4, room - nm)
    if view.is_trend:
        return "\n".join(lines + _trend_rows(view, shown, width)) + "\n"
    head_b, head_k = ("Δ bytes", "Δ blocks") if diff else ("bytes", "blocks")
    lines.append(_line_cells([(head_b, nb, ">"), (head_k, nk, ">"), ("module", nm, "<"),
                              ("innermost frame", nf, "<")]))
    for r in shown:
        c = r.figures.delta if diff and r.figures.delta is not None else r.figures.after
        lines.append(_line_cells([(format_bytes(c.bytes, signed=diff), nb, ">"),
                                  (format_count(c.blocks, signed=diff), nk, ">"),
                                  (r.module, nm, "<"), (r.label, nf, "<")]))
    rest = view.group_count - len(shown)
    if rest > 0:
        every = sum(r.figures.growth for r in view.rows) + (view.other.figures.growth if view.other else 0)
        rest_bytes = every - sum(r.figures.growth for r in shown)
        more = "more call stack" if rest == 1 else "more call stacks"
        lines.append(_fit(f"… {rest:,} {more} ({format_bytes(rest_bytes, signed=diff)})", width))
    return "\n".join(lines) + "\n"


def _trend_rows(view: ReportView, shown: Sequence[GroupRow], width: int) -> list[str]:
    """A trend's rows: slope per run, bytes in the last run, class, module, innermost frame."""
    ns, nb, nc = 12, 11, 9
    room = width - (ns + nb + nc + 8)
    nm = min(18, max(6, room // 3))
    nf = max(4, room - nm)
    out = [_line_cells([("slope/run", ns, ">"), ("last run", nb, ">"), ("trend", nc, "<"), ("module", nm, "<"),
                        ("innermost frame", nf, "<")])]
    for r in shown:
        slope = format_bytes(round(r.slope_bytes or 0.0), signed=True)
        out.append(_line_cells([(slope, ns, ">"), (format_bytes(r.figures.after.bytes), nb, ">"),
                                (r.trend or "", nc, "<"), (r.module, nm, "<"), (r.label, nf, "<")]))
    rest = view.group_count - len(shown)
    if rest > 0:
        out.append(_fit(f"… {rest:,} more call stack{'' if rest == 1 else 's'}", width))
    return out
