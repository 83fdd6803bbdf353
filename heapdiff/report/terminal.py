"""The terminal reporter: a plain-text summary of a view, every line within the terminal's width."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from heapdiff.report.text import format_bytes, format_count
from heapdiff.report.view import ReportView


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _line_cells(cells: Iterable[tuple[str, int, str]]) -> str:
    out = []
    for text, w, align in cells:
        t = _fit(text, w)
        out.append(t.rjust(w) if align == ">" else t.ljust(w))
    return "  ".join(out).rstrip()


def terminal_summary(view: ReportView, width: int = 100, *, rows: int = 10) -> str:
    """A plain-text summary for the CLI: title, totals, warnings and the ``rows`` largest growths (delta
    bytes, blocks, module, innermost non-allocator frame), every line at most ``width`` characters."""
    width = max(40, width)
    diff = view.is_diff
    lines = [_fit(view.title, width)]
    t = view.totals
    if diff and t.before is not None and t.delta is not None:
        lines.append(_fit(
            f"Total: {format_bytes(t.delta.bytes, signed=True)} in "
            f"{format_count(t.delta.blocks, signed=True)} blocks (before {format_bytes(t.before.bytes)} in "
            f"{format_count(t.before.blocks)}, after "
            f"{format_bytes(t.after.bytes)} in {format_count(t.after.blocks)})", width))
    else:
        lines.append(_fit(f"Total: {format_bytes(t.after.bytes)} in {format_count(t.after.blocks)} "
                          "outstanding blocks", width))
    for w in view.warnings:
        lines.extend(textwrap.wrap(f"WARNING{f' ({w.role})' if w.role else ''}: {w.message}", width,
                                   subsequent_indent="  ", break_on_hyphens=False))
    lines.append("")
    shown = view.rows[: max(0, rows)]
    if not shown:
        lines.append("No call stack to show.")
        return "\n".join(lines) + "\n"
    nb, nk = 11, 9
    room = width - (nb + nk + 6)
    nm = min(18, max(6, room // 3))
    nf = max(4, room - nm)
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
        lines.append(_fit(f"… {rest:,} more groups ({format_bytes(rest_bytes, signed=diff)})", width))
    return "\n".join(lines) + "\n"
