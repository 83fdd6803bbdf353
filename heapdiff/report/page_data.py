"""The data the page's own script draws from: the call trees and the rows' stacks, as one JSON block.

The block is a ``<script type="application/json">`` element: the browser never runs it (the page's script reads
its text), and its text is raw: HTML entities are not decoded inside a script element, so the JSON cannot be
HTML-escaped. :func:`script_json` makes it inert instead: every ``<``, ``>`` and ``&`` becomes a JSON escape, so
no string can end the element or open a comment, and every non-ASCII character (U+2028 and U+2029 included) is
escaped too. Frame texts are kept once, in ``names``; trees and stacks refer to them by index. Trees are columns
(one list per field, one entry per node, in preorder) to keep the block small.
"""

from __future__ import annotations

import json
from typing import Any, Final

from heapdiff.report.view import CallTree, GroupRow, ReportView

#: bumped when the block's shape changes (the script checks it)
DATA_VERSION: Final = 1
_INERT: Final = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe as the text of a script element: no ``<``, ``>``, ``&`` nor non-ASCII
    character is left in it."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False).translate(_INERT)


class _Names:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []

    def __call__(self, text: str) -> int:
        k = self.index.get(text)
        if k is None:
            k = self.index[text] = len(self.names)
            self.names.append(text)
        return k


def _tree(t: CallTree, names: _Names) -> dict[str, Any]:
    n = t.nodes
    # a tree of a diff carries before figures; one of a single trace does not
    diff = bool(n) and n[0].figures.before is not None
    cols: dict[str, Any] = {
        "name": [names(x.frame) for x in n],
        "parent": [x.parent for x in n],
        "other": [x.other for x in n],
        "groups": [x.groups for x in n],
        "after_bytes": [x.figures.after.bytes for x in n],
        "after_blocks": [x.figures.after.blocks for x in n],
        "growth": [x.growth for x in n],
        "shrink": [x.shrink for x in n],
    }
    if diff:
        cols["before_bytes"] = [x.figures.before.bytes if x.figures.before else 0 for x in n]
        cols["before_blocks"] = [x.figures.before.blocks if x.figures.before else 0 for x in n]
    return {"direction": t.direction, "delta": diff, "min_share": t.min_share, "capped": t.capped, "cols": cols}


def stack_key(row: GroupRow, suppressed_index: int | None = None) -> str:
    """The key of a row's stack in the block: ``g<rank>`` for a row, ``s<i>`` for the i-th suppressed row."""
    return f"s{suppressed_index}" if suppressed_index is not None else f"g{row.rank}"


def page_data(view: ReportView) -> dict[str, Any]:
    """The block's value: what the flame graph, the trees, the search and the copy buttons need."""
    names = _Names()
    names("")  # the root's name is index 0
    stacks: dict[str, Any] = {}
    for key, row in [*((stack_key(r), r) for r in view.rows),
                     *((stack_key(r, i), r) for i, r in enumerate(view.suppressed_rows))]:
        stacks[key] = {"frames": [names(f.text) for f in row.frames], "omitted": row.frames_omitted,
                       "label": names(row.label)}
    trees = [_tree(t, names) for t in view.call_trees]
    return {"version": DATA_VERSION, "mode": view.mode, "names": names.names, "trees": trees, "stacks": stacks}
