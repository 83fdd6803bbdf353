"""``heapdiff symbolize``: names the frames of a report made without symbols, from the module identities it kept.

A document lists, per trace, every image its groups' frames fall in with its identity (PDB name, GUID and age,
or the PE's TimeDateStamp and size). That is all a symbolizer needs: each frame is looked up again (return
addresses at ``rva - 1``, as the pipeline does), its allocator kind and its group's module and label are decided
again by the same rules, and every count stays as it was. Groups keep their matching: a report is renamed, not
regrouped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from heapdiff.document.model import Document, FrameRecord, GroupRecord, ModuleRecord, TraceRecord
from heapdiff.frames import ModuleRequest, ModuleSymbols, ResolvedFrame, Symbolizer
from heapdiff.rules import name_group
from heapdiff.symbolize import named_frame

#: (trace index, module name) -> the rvas to look up there
_Wanted = dict[tuple[int, str], set[int]]


def _source_trace(g: GroupRecord) -> int:
    """Which input a group's frames were taken from: the last one it is outstanding in."""
    return max(i for i, r in enumerate(g.runs) if r is not None)


def _lookup(i: int, f: FrameRecord) -> int | None:
    if f.rva is None:
        return None
    return f.rva - 1 if i and f.rva else f.rva


def _modules_by_name(t: TraceRecord) -> dict[str, ModuleRecord]:
    """The module of each name in a trace; where a name has several images, the one whose PDB is known."""
    out: dict[str, ModuleRecord] = {}
    for m in t.modules:
        if m.name not in out or (out[m.name].pdb is None and m.pdb is not None):
            out[m.name] = m
    return out


def _request(m: ModuleRecord) -> ModuleRequest:
    return ModuleRequest(name=m.name, path=m.path, timestamp=m.timestamp, size=m.size, pdb=m.pdb)


def symbolize_document(doc: Document, symbolizer: Symbolizer, symbol_path: str) -> Document:
    """The document with its frames named wherever the symbolizer finds the images' PDBs."""
    by_trace = [_modules_by_name(t) for t in doc.traces]
    wanted: _Wanted = {}
    for g in doc.groups:
        k = _source_trace(g)
        for i, f in enumerate(g.frames):
            look = _lookup(i, f)
            if look is not None and f.module is not None and f.module in by_trace[k]:
                wanted.setdefault((k, f.module), set()).add(look)
    keys = sorted(wanted)
    asked = [sorted(wanted[key]) for key in keys]
    got = symbolizer.resolve([(_request(by_trace[k][name]), rvas) for (k, name), rvas in zip(keys, asked,
                                                                                             strict=True)])
    answers: dict[tuple[int, str, int], ResolvedFrame] = {}
    outcomes: dict[tuple[int, str], ModuleSymbols] = {}
    for key, rvas, (outcome, resolved) in zip(keys, asked, got, strict=True):
        outcomes[key] = outcome
        for rva, r in zip(rvas, resolved.frames(), strict=True):  # (a document's frames: a few thousand at most)
            if r is not None:
                answers[(*key, rva)] = r
    groups = [_renamed(g, answers) for g in doc.groups]
    traces = tuple(_traced(k, t, outcomes) for k, t in enumerate(doc.traces))
    return replace(doc, traces=traces, groups=tuple(groups), filters=replace(doc.filters, symbols=symbol_path))


def _renamed(g: GroupRecord, answers: dict[tuple[int, str, int], ResolvedFrame]) -> GroupRecord:
    k = _source_trace(g)
    frames = []
    for i, f in enumerate(g.frames):
        look = _lookup(i, f)
        r = answers.get((k, f.module, look)) if f.module is not None and look is not None else None
        frames.append(named_frame(f.plain, f.rva, f.kernel, r) if r is not None else f)
    name = name_group(frames)
    return replace(g, frames=tuple(frames), module=name.module, label=name.label, label_index=name.label_index)


def _traced(k: int, t: TraceRecord, outcomes: dict[tuple[int, str], ModuleSymbols]) -> TraceRecord:
    def updated(m: ModuleRecord) -> ModuleRecord:
        o = outcomes.get((k, m.name))
        if o is None:
            return m
        return replace(m, symbols=o.status, symbol_file=o.symbol_file, note=o.note, pdb=m.pdb or o.pdb)

    return replace(t, modules=tuple(updated(m) for m in t.modules))


def unnamed_modules(doc: Document) -> Sequence[str]:
    """Modules the document's frames fall in that it keeps no identity for (a document from before modules were
    recorded): their frames cannot be named later."""
    known = {m.name for t in doc.traces for m in t.modules}
    return sorted({f.module for g in doc.groups for f in g.frames if f.module is not None and f.module not in known})
