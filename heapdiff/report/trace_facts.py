"""The header of a view: each trace's facts, the warnings and notices about them, the leak window and the title.

Every string from a trace is untrusted: it is cleaned and capped here (:func:`~heapdiff.report.text.clean`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from heapdiff.document.model import Document, TraceRecord
from heapdiff.report.text import MAX_COMMAND_LINE, MAX_HISTOGRAM, MAX_NAME, MAX_PATH, MAX_PROCESSES, clean, plural
from heapdiff.report.view import InputMessage, ProcessFacts, TraceFacts
from heapdiff.rules import INFORMATIONAL_ANOMALIES

#: a trace whose share of unresolved frames is above this gets a warning
UNRESOLVED_WARN_SHARE: Final = 0.05
HEAP_EVENT_KINDS: Final = ("heap_alloc", "heap_free", "heap_realloc")


def _duration(start: str, end: str) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (ValueError, TypeError):
        return None


def trace_facts(t: TraceRecord) -> TraceFacts:
    processes = tuple(
        ProcessFacts(pid=p.pid, image_name=clean(p.image_name, MAX_NAME),
                     command_line=clean(p.command_line, MAX_COMMAND_LINE), outstanding=t.outstanding_by_pid.get(p.pid))
        for p in t.processes[:MAX_PROCESSES])
    start, end = clean(t.start_utc, 64), clean(t.end_utc, 64)
    anomalies = tuple(sorted(((clean(k), v) for k, v in t.anomalies.items() if v), key=lambda kv: (-kv[1], kv[0])))
    return TraceFacts(
        role=t.role, path=clean(t.path, MAX_PATH), pointer_size=t.pointer_size, start_utc=start, end_utc=end,
        duration_s=_duration(start, end), records=t.records,
        events=tuple((clean(k), v) for k, v in t.events.items() if v),
        heap_events=sum(t.events.get(k, 0) for k in HEAP_EVENT_KINDS),
        events_lost=t.events_lost, buffers_lost=t.buffers_lost, outstanding=t.outstanding,
        unmatched_frees=t.unmatched_frees, anomalies=anomalies[:MAX_HISTOGRAM], processes=processes,
        processes_omitted=max(0, len(t.processes) - MAX_PROCESSES), frames=t.unresolved_frames.frames,
        unresolved_frames=t.unresolved_frames.unresolved)


def trace_warnings(traces: Sequence[TraceFacts]) -> list[InputMessage]:
    """Data loss only: lost events or buffers, damage counted while reading, unattributed stacks."""
    out: list[InputMessage] = []
    for t in traces:
        if t.events_lost:
            out.append(InputMessage(t.role, f"{plural(t.events_lost, 'event was', 'events were')} lost while "
                                             "tracing: outstanding blocks may be missing or never freed in "
                                             "this report."))
        if t.buffers_lost:
            out.append(InputMessage(t.role, f"{plural(t.buffers_lost, 'buffer was', 'buffers were')} lost while "
                                             "tracing: whole stretches of events are missing from this "
                                             "report."))
        loss = [(k, n) for k, n in t.anomalies if k not in INFORMATIONAL_ANOMALIES]
        n_loss = sum(n for _, n in loss)
        if n_loss:
            kinds = ", ".join(f"{k} ({n:,})" for k, n in loss[:8])
            more = f" and {len(loss) - 8} more kinds" if len(loss) > 8 else ""
            out.append(InputMessage(t.role, f"{plural(n_loss, 'anomaly was', 'anomalies were')} counted "
                                             f"while reading: {kinds}{more}."))
        share = t.unresolved_share
        if share is not None and share > UNRESOLVED_WARN_SHARE:
            out.append(InputMessage(t.role, f"{share:.1%} of stack frames ({t.unresolved_frames:,} of "
                                             f"{t.frames:,}) could not be mapped to a module: call stacks "
                                             "may be split or unreadable."))
    sizes = {t.pointer_size for t in traces if t.role in ("before", "after", "baseline")}
    if len(sizes) > 1:
        out.append(InputMessage("", "The before and after traces have different pointer sizes "
                                     f"({' and '.join(f'{s * 8}-bit' for s in sorted(sizes))}): their call "
                                     "stacks rarely match."))
    return out


_NOTICE_WORDS: Final = {
    "unmatched_frees": ("free of a block", "frees of blocks", "allocated before the trace started"),
    "unmatched_realloc": ("reallocation of a block", "reallocations of blocks", "allocated before the trace started"),
    "freed_by_process_end": ("block", "blocks", "freed when its process ended"),
}


def trace_notices(traces: Sequence[TraceFacts]) -> list[InputMessage]:
    """Counted misfits that are normal: tracing starts while the program runs."""
    out = []
    for t in traces:
        for k, n in t.anomalies:
            words = _NOTICE_WORDS.get(k)
            if words is not None:
                out.append(InputMessage(t.role, f"{plural(n, words[0], words[1])} {words[2]} (normal: tracing "
                                          "starts while the program runs)."))
    return out


def window_sentences(traces: Sequence[TraceRecord], roles: Sequence[str]) -> tuple[str, ...]:
    """What the leak window kept, per input that has one, in seconds from its start."""
    out = []
    for role, t in zip(roles, traces, strict=True):
        w = t.window
        if w is None:
            continue
        def s(us: int) -> str:
            return f"{us / 1e6:,.3f} s"
        allocated = ("allocated " + (f"from {s(w.from_us)} " if w.from_us is not None else "")
                     + (f"before {s(w.to_us)}" if w.to_us is not None else "to the end" if w.from_us is not None
                        else "at any time")).strip()
        measured = f"outstanding at {s(w.at_us)}" if w.at_us is not None else "outstanding at the end"
        who = f"{role}: " if len(traces) > 1 else ""
        out.append(clean(f"{who}blocks {allocated}, {measured}", MAX_PATH))
    return tuple(out)


def report_title(doc: Document, traces: Sequence[TraceFacts]) -> str:
    def base(t: TraceFacts) -> str:
        return t.path.replace("\\", "/").rsplit("/", 1)[-1] or t.path or "?"

    if doc.is_diff and len(traces) == 2:
        return f"Heap growth: {base(traces[0])} → {base(traces[1])}"
    if doc.is_trend and traces:
        return f"Heap trend over {len(traces)} runs: {base(traces[0])} … {base(traces[-1])}"
    if traces:
        return f"Outstanding heap: {base(traces[0])}"
    return "heapdiff report"
