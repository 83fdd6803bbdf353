"""The ``heapdiff/1`` JSON text of a :class:`Document` (fields are only ever added, never renamed or removed).

Pids are decimal-string keys, addresses and handles lowercase hex strings, times ISO 8601 UTC. A diff group keeps
its descriptive fields (heaps, sources, sizes, times, samples) from the run it is outstanding in now ("after", else
"before") at the top level, as the first version of the schema did, and names each run's own facts under
``runs``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from heapdiff.document.model import (
    Counts,
    Document,
    FrameRecord,
    GroupRecord,
    ModuleRecord,
    RunDetails,
    TraceRecord,
)
from heapdiff.frames import SourceFrame


def _bb(c: Counts) -> dict[str, int]:
    return {"blocks": c.blocks, "bytes": c.bytes}


def _hex(v: int | None) -> str | None:
    return None if v is None else f"0x{v:x}"


def trace_json(t: TraceRecord) -> dict[str, Any]:
    return {
        "role": t.role,
        "path": t.path,
        "pointer_size": t.pointer_size,
        "start_utc": t.start_utc,
        "end_utc": t.end_utc,
        "records": t.records,
        "events": dict(t.events),
        "events_lost": t.events_lost,
        "buffers_lost": t.buffers_lost,
        "stack_refs": t.stack_refs,
        "stacks_matched": t.stacks_matched,
        "outstanding": _bb(t.outstanding),
        "outstanding_by_pid": {str(p): _bb(c) for p, c in t.outstanding_by_pid.items()},
        "unmatched_frees": t.unmatched_frees,
        "anomalies": dict(t.anomalies),
        "processes": [{"pid": p.pid, "image_name": p.image_name, "command_line": p.command_line}
                      for p in t.processes],
        "unresolved_frames": {"frames": t.unresolved_frames.frames, "unresolved": t.unresolved_frames.unresolved},
        "notes": list(t.notes),
        "modules": [module_json(m) for m in t.modules],
        "window": None if t.window is None else {"from_us": t.window.from_us, "to_us": t.window.to_us,
                                                 "at_us": t.window.at_us},
        "timeline": None if t.timeline is None else {"time_us": list(t.timeline.time_us),
                                                      "bytes": list(t.timeline.bytes),
                                                      "blocks": list(t.timeline.blocks)},
    }


def module_json(m: ModuleRecord) -> dict[str, Any]:
    return {"name": m.name, "path": m.path, "pid": None if m.pid is None else str(m.pid), "base": _hex(m.base),
            "size": _hex(m.size), "timestamp": _hex(m.timestamp),
            "pdb": None if m.pdb is None else {"name": m.pdb.name, "guid": m.pdb.guid, "age": m.pdb.age},
            "symbols": m.symbols, "symbol_file": m.symbol_file, "note": m.note}


def frame_json(f: FrameRecord) -> dict[str, Any]:
    """A frame's JSON object; its inline chain as it is (a tuple of SourceFrames: :func:`json_bytes` writes each as
    ``{"function", "file", "line"}``)."""
    text, module, rva, kernel, allocator, function, offset, file, line, inlined = f
    return {"text": text, "module": module, "rva": None if rva is None else f"0x{rva:x}", "kernel": kernel,
            "allocator": allocator, "function": function, "offset": None if offset is None else f"0x{offset:x}",
            "file": file, "line": line, "inlined": inlined}


def _plain(m: Mapping[str, int]) -> dict[str, int]:
    """The mapping as a dict for orjson (which takes no other mapping); a dict as it is (records hold dicts)."""
    return m if type(m) is dict else dict(m)


def _details(r: RunDetails, series: bool = True) -> dict[str, Any]:
    """One run's facts; ``series``: with its timeline bytes, when it has them (only the largest groups do, so
    the field is left out rather than null)."""
    d: dict[str, Any] = {
        "heaps": [f"0x{h:x}" for h in r.heaps],
        "sources": _plain(r.sources),
        "size_histogram": _plain(r.size_histogram),
        "first_alloc_utc": r.first_alloc_utc,
        "last_alloc_utc": r.last_alloc_utc,
        "sample_addresses": [f"0x{a:x}" for a in r.sample_addresses],
    }
    if series and r.timeline_bytes is not None:
        d["timeline_bytes"] = list(r.timeline_bytes)
    return d


#: distinct frames whose JSON objects are kept for reuse, at most
_FRAME_MEMO = 1 << 16


class _FrameCache:
    """Each distinct frame's JSON object and display text made once (groups share most of their frames).

    Keyed by the frame object's identity, not its value: the groups of a trace share one object per distinct
    frame, and hashing a frame's every field (its inline chain too) on each lookup cost more than the JSON it
    saved. The memo holds each frame it keys, so an id is never reused while it is a key; an equal frame that is
    another object only gets its JSON made again."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[FrameRecord, dict[str, Any], str]] = {}

    def __len__(self) -> int:
        return len(self._memo)

    def of(self, frames: tuple[FrameRecord, ...]) -> tuple[list[str], list[dict[str, Any]]]:
        """The frames' ``stack_display`` texts and their JSON objects."""
        memo = self._memo
        texts: list[str] = []
        objects: list[dict[str, Any]] = []
        for f in frames:
            got = memo.get(id(f))
            if got is None:
                got = memo[id(f)] = (f, frame_json(f), ("[k] " if f.kernel else "") + f.text)
            objects.append(got[1])
            texts.append(got[2])
        return texts, objects


def group_json(g: GroupRecord, frames: _FrameCache) -> dict[str, Any]:
    display, objects = frames.of(g.frames)
    d: dict[str, Any] = {
        "stack": list(g.stack),
        "stack_display": display,
        "frames": objects,
        "module": g.module,
        "label": g.label,
        "suppressed_by": g.suppressed_by,
    }
    # a run's series stays under its run (``runs``) when there are several
    top = g.details
    several = len(g.runs) > 1
    if g.trend is not None:  # a trend over N runs
        d.update(_details(top, series=not several))
        d["series"] = list(g.series)
        d["trend"] = {"slope_bytes": round(g.trend.slope_bytes, 3), "class": g.trend.klass}
        d["runs"] = [None if r is None else {**_bb(r.counts), **_details(r)} for r in g.runs]
        return d
    if g.status is None:
        d.update(_details(top, series=not several))
        c = g.last
        d["blocks"] = c.blocks
        d["bytes"] = c.bytes
        return d
    before, after = g.runs
    runs = {"before": _details(before) if before is not None else None,
            "after": _details(after) if after is not None else None}
    # the run the group is described by is one of the two: its facts are encoded once (without its series)
    own = runs["after" if top is after else "before"]
    d.update(own if own is not None and "timeline_bytes" not in own else _details(top, series=False))
    if before is not None and after is not None:
        d["heaps_before"] = [f"0x{h:x}" for h in before.heaps]
    d["before"] = _bb(g.counts(0))
    d["after"] = _bb(g.counts(1))
    d["delta"] = _bb(g.delta)
    d["status"] = g.status
    d["runs"] = runs
    return d


def head_json(doc: Document) -> dict[str, Any]:
    """Every field of the document but its groups, in the schema's field order (the groups come last)."""
    f = doc.filters
    out: dict[str, Any] = {
        "schema": doc.schema,
        "mode": doc.mode,
        "generator": doc.generator,
        "filters": {"process": f.process, "pid": list(f.pid) if f.pid else None, "kernel_frames": f.kernel_frames,
                    "min_bytes": f.min_bytes, "top": f.top, "match": f.match, "symbols": f.symbols,
                    "window": {"from_us": f.window.from_us, "to_us": f.window.to_us, "at_us": f.window.at_us,
                               "from": f.window.from_text, "to": f.window.to_text, "at": f.window.at_text}},
        "traces": [trace_json(t) for t in doc.traces],
    }
    t = doc.totals
    if doc.is_trend:
        out["totals"] = {"runs": [_bb(c) for c in t.runs], "delta": _bb(t.delta), "growth": _bb(t.growth),
                         "shrink": _bb(t.shrink), "suppressed": _bb(t.suppressed)}
    elif doc.is_diff:
        out["totals"] = {"before": _bb(t.runs[0]), "after": _bb(t.runs[1]), "delta": _bb(t.delta),
                         "growth": _bb(t.growth), "shrink": _bb(t.shrink), "suppressed": _bb(t.suppressed)}
    else:
        out["totals"] = {**_bb(t.last), "growth": _bb(t.growth), "shrink": _bb(t.shrink),
                         "suppressed": _bb(t.suppressed)}
    out["gates"] = [{"name": g.name, "threshold": g.threshold, "value": g.value, "failed": g.failed,
                     "groups": list(g.groups), "reason": g.reason} for g in doc.gates]
    out["suppressions"] = [{"pattern": s.pattern, "source": s.source, "line": s.line, "groups": s.groups}
                           for s in doc.suppressions]
    return out


def document_json(doc: Document) -> dict[str, Any]:
    """The document as JSON values (dicts, lists, strings, numbers), in the schema's field order: its JSON text
    read back, so that there is one encoding."""
    import orjson

    value: dict[str, Any] = orjson.loads(encode(doc))
    return value


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON. orjson is several times faster than the standard library on the job's serial tail;
    names with non-ASCII characters are written as UTF-8. A string orjson refuses (a file name with bytes that
    are not UTF-8 reaches Python as lone surrogates) sends the value through ``json``, whose ASCII escapes can
    carry it. Both write a SourceFrame (a dataclass) as an object of its fields."""
    import orjson

    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), default=_fields).encode("ascii")


def _fields(value: object) -> dict[str, Any]:
    if isinstance(value, SourceFrame):
        return {"function": value.function, "file": value.file, "line": value.line}
    raise TypeError(f"{type(value).__name__} is not JSON")


#: groups encoded per write: large enough to amortise the calls, small enough to bound what is held
_GROUPS_PER_WRITE = 256


def write_document(doc: Document, write: Callable[[bytes], object]) -> None:
    """The document's JSON text written piece by piece, the groups a few hundred at a time, so that a document of
    a million groups is never held whole: the same bytes as :func:`encode`."""
    head = json_bytes(head_json(doc))
    write(head[:-1] + b',"groups":[')
    frames = _FrameCache()
    batch: list[bytes] = []
    first = True
    for g in doc.groups:
        batch.append(json_bytes(group_json(g, frames)))
        if len(batch) == _GROUPS_PER_WRITE:
            if not first:
                write(b",")
            write(b",".join(batch))
            first, batch = False, []
        if len(frames) > _FRAME_MEMO:  # a huge trace: frames repeat little, so keep the memo small
            frames = _FrameCache()
    if batch:
        if not first:
            write(b",")
        write(b",".join(batch))
    write(b"]}\n")


def encode(doc: Document) -> bytes:
    """The document's JSON text, UTF-8, compact, ending with a newline."""
    parts: list[bytes] = []
    write_document(doc, parts.append)
    return b"".join(parts)
