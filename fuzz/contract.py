"""The fuzz contract: what heapdiff must do with any input, checked on one command's outcome.

Every input gives a result -- exit 0 with a valid JSON document, and a line starting ``heapdiff: warning:`` on stderr
whenever events were lost or data was damaged -- or exit 3 with exactly one stderr line naming the file and a
``byte offset``. Never a traceback, another exit code, a hang or memory past the bound (those two are the worker's
watchdog and RLIMIT_AS: :mod:`fuzz.worker`), a negative count, total, block size or per-trace delta, or fewer heap
events than the undamaged seed without a warning ("silent loss").

A failure is named by its *symptom* (``traceback:IndexError@heapdiff.etl.walk:frame_kernel``, ``negative:bytes``,
``silent-loss``...): the runner counts inputs by symptom and operator set, one class per distinct bug as far as
the symptom tells.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

WARNING: Final = "heapdiff: warning: "
ERROR: Final = "heapdiff: error: "
#: JSON fields that are signed by meaning: a diff's shrink and delta, a gate's value, a clock read from the file
SIGNED: Final = frozenset({"shrink", "delta", "value", "threshold", "perf_freq"})


@dataclass(frozen=True)
class Outcome:
    """What one command did: its exit code (None when an exception escaped ``main``) and its output."""

    command: str            # "info", "job" or "diff"
    code: int | None
    stdout: str
    stderr: str
    error: str | None = None    # the traceback, when an exception other than SystemExit escaped


@dataclass(frozen=True)
class Failure:
    symptom: str
    command: str
    detail: str


def heap_events(doc: Mapping[str, Any], command: str) -> int | None:
    """Heap records (every ``heap_*`` kind) the document says the file holds; for a diff, the second trace's."""
    try:
        events = doc["events"] if command == "info" else doc["traces"][-1]["events"]
        return sum(int(v) for k, v in events.items() if k.startswith("heap_"))
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        return None


def _where(tb: str) -> str:
    """``Type@module:function`` of the innermost heapdiff frame of a traceback text (else the innermost frame)."""
    frames = re.findall(r'File "([^"]+)", line \d+, in (\S+)', tb)
    last = tb.strip().splitlines()[-1] if tb.strip() else "?"
    etype = last.split(":", 1)[0].strip().rsplit(".", 1)[-1] or "?"
    ours = [(f, fn) for f, fn in frames if "/heapdiff/" in f]
    f, fn = (ours or frames or [("?", "?")])[-1]
    mod = f.split("/heapdiff/", 1)[-1].removesuffix(".py").replace("/", ".") if "/heapdiff/" in f else f
    return f"{etype}@{'heapdiff.' + mod if '/heapdiff/' in f else mod}:{fn}"


def _negatives(value: Any, path: str = "") -> Iterator[str]:
    if isinstance(value, bool):
        return
    if isinstance(value, int) and value < 0:
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in SIGNED:
                yield from _negatives(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _negatives(v, f"{path}[{i}]")


def _diff_consistent(doc: Mapping[str, Any]) -> str | None:
    """In a diff, every delta is after minus before, growth is never negative and shrink never positive."""
    t = doc.get("totals", {})
    for c in ("blocks", "bytes"):
        if t["delta"][c] != t["after"][c] - t["before"][c]:
            return f"totals.delta.{c}"
        if t["growth"][c] < 0 or t["shrink"][c] > 0:
            return f"totals.growth/shrink.{c}"
    for i, g in enumerate(doc.get("groups", [])):
        for c in ("blocks", "bytes"):
            if g["delta"][c] != g["after"][c] - g["before"][c]:
                return f"groups[{i}].delta.{c}"
    return None


def _generic(path: str) -> str:
    """A field path without list indices and pids: ``traces.outstanding_by_pid.*.bytes``."""
    path = re.sub(r"\[\d+\]", "", path)
    return re.sub(r"\.\d+(?=\.|$)", ".*", path)


def check(o: Outcome, path: str, seed_heap_events: int | None, exempt: str | None) -> Failure | None:
    """The first broken rule of the contract for this outcome, or None.

    ``seed_heap_events``: what the same command counted in the undamaged seed (None: no silent-loss rule, as for a
    seed that warns already); ``exempt``: why the silent-loss rule does not apply to this input (see
    :func:`fuzz.mutate.apply`)."""
    cmd = o.command
    if o.error is not None:
        return Failure(f"traceback:{_where(o.error)}", cmd, o.error[-1500:])
    lines = o.stderr.splitlines()
    if o.code == 3:
        if len(lines) == 1 and "out of memory" in lines[0]:
            return Failure("memory", cmd, lines[0])
        if o.stdout.strip():
            return Failure("exit3-with-stdout", cmd, o.stdout[:300])
        if len(lines) != 1 or not lines[0].startswith(ERROR) or path not in lines[0] \
                or "byte offset" not in lines[0]:
            return Failure("exit3-not-one-line-with-offset", cmd, o.stderr[-800:])
        return None
    if o.code != 0:
        return Failure(f"exit-code:{o.code}", cmd, o.stderr[-800:])
    try:
        doc = json.loads(o.stdout)
    except ValueError as e:
        return Failure("exit0-invalid-json", cmd, f"{e}: {o.stdout[:300]!r}")
    if not isinstance(doc, dict) or ("records" not in doc if cmd == "info" else "totals" not in doc):
        return Failure("exit0-not-a-document", cmd, o.stdout[:300])
    if cmd == "info":
        noise = [ln for ln in lines if not ln.startswith(WARNING)]
        if noise:
            return Failure("info-stderr-not-a-warning", cmd, "\n".join(noise[:3]))
    negative = list(_negatives(doc))
    if negative:
        return Failure(f"negative:{_generic(negative[0])}", cmd, ", ".join(negative[:5]))
    if cmd == "diff":
        bad = _diff_consistent(doc)
        if bad:
            return Failure(f"diff-inconsistent:{_generic(bad)}", cmd, bad)
    warned = any(ln.startswith(WARNING) for ln in lines)
    held = heap_events(doc, cmd)
    if seed_heap_events is not None and exempt is None and held is not None and held < seed_heap_events \
            and not warned:
        return Failure("silent-loss", cmd, f"{held} heap events, the seed holds {seed_heap_events}; no warning")
    return None
