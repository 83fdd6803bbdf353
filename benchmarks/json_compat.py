"""Does a newer heapdiff's JSON say what an older one said? Compare two documents of the same inputs, leaving out
the fields added since the older one (the schema only ever adds fields).

    python benchmarks/json_compat.py OLD.json NEW.json [--added PATH ...]

A path names a field by its keys, ``[]`` standing for every element of a list: ``groups[].frames``,
``totals.growth``. The default list is what was added to ``heapdiff/1`` with the CI gates, suppressions and
symbols. ``path`` and ``generator`` are compared too: give both runs the same inputs. Prints the first differences
(at most 20, by path) and exits 1 when there is any, 0 when the documents agree; also says whether the older
document held a field of the list (it then was not added since, and should not be left out).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ADDED = (
    "filters.match", "filters.symbols", "gates", "suppressions",
    "totals.growth", "totals.shrink", "totals.suppressed",
    "traces[].modules",
    "groups[].label", "groups[].frames", "groups[].runs", "groups[].suppressed_by",
)


def strip(doc: Any, path: list[str]) -> int:
    """Remove the field at ``path`` from ``doc`` wherever it occurs; how many were removed."""
    head, rest = path[0], path[1:]
    key, every = (head[:-2], True) if head.endswith("[]") else (head, False)
    if not isinstance(doc, dict) or key not in doc:
        return 0
    if not rest:
        del doc[key]
        return 1
    items = doc[key] if every and isinstance(doc[key], list) else [doc[key]]
    return sum(strip(item, rest) for item in items)


def differences(a: Any, b: Any, where: str, out: list[str], limit: int = 20) -> None:
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys()):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'new' if k in b else 'old'}")
            else:
                differences(a[k], b[k], f"{where}.{k}", out, limit)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} elements in old, {len(b)} in new")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            differences(x, y, f"{where}[{i}]", out, limit)
    elif a != b or type(a) is not type(b):
        out.append(f"{where}: old {json.dumps(a)[:80]}, new {json.dumps(b)[:80]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--added", nargs="*", default=list(ADDED), help="fields added since the old document")
    args = ap.parse_args()
    old, new = json.loads(args.old.read_bytes()), json.loads(args.new.read_bytes())
    kept = []
    for field in args.added:
        if strip(json.loads(args.old.read_bytes()), field.split(".")):
            kept.append(field)  # the old document has it: not added since, so it is compared
        else:
            strip(new, field.split("."))
    for field in kept:
        print(f"note: the old document has {field}: it is compared, not left out")
    diffs: list[str] = []
    differences(old, new, "$", diffs)
    groups = len(new.get("groups", []))
    if diffs:
        print(f"DIFFERENT ({groups} groups in new): first differences:")
        print("\n".join(f"  {d}" for d in diffs))
        return 1
    print(f"EQUAL: {args.new} says what {args.old} says ({groups} groups, fields left out: "
          f"{', '.join(f for f in args.added if f not in kept)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
