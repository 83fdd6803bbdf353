"""Resolved frames from columns: the native reader's answer and the frame cache's file both hold each address's
inline chain as rows of (function, file, line) over an interned string table.

Tens of thousands of addresses come at once, and most of the time turning them into objects went into making one
:class:`~heapdiff.frames.SourceFrame` per row. Neighbouring addresses share rows (the procedure's own row, the
line of an inlined call), so each distinct row becomes one object, found by a numpy pass over the rows, and each
address's chain is a slice of the rows' objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from heapdiff.frames import ResolvedFrame, SourceFrame


def resolved_frames(proc_start: Sequence[int], chain_start: Sequence[int], function: np.ndarray, file: np.ndarray,
                    line: np.ndarray, strings: Sequence[str]) -> list[ResolvedFrame | None]:
    """One answer per address: None where ``proc_start`` is negative (nothing there), else the rows
    ``chain_start[i]`` to ``chain_start[i + 1]`` as its chain. In a row, -1 stands for no function (an empty
    name), no file and no line; the others index ``strings``. The caller has checked every index."""
    rows = tuple(_row_objects(np.asarray(function, np.int64), np.asarray(file, np.int64),
                              np.asarray(line, np.int64), strings))
    # (a slice of the tuple is each chain: no list made per address; the named tuples are made from their fields
    # in order by tuple.__new__, without their constructor's argument parsing: tens of thousands at a time)
    new = tuple.__new__
    return [None if start < 0 else new(ResolvedFrame, (rows[a:b], start))
            for start, a, b in zip(proc_start, chain_start[:-1], chain_start[1:], strict=True)]


def _row_objects(function: np.ndarray, file: np.ndarray, line: np.ndarray, strings: Sequence[str]
                 ) -> list[SourceFrame]:
    """A SourceFrame per row, one object per distinct (function, file, line)."""
    if not function.shape[0]:
        return []
    bits = [(int(col.max()) + 1).bit_length() for col in (function, file, line)]  # each column >= -1
    if sum(bits) <= 63:  # one integer key per row: a plain sort finds the distinct rows
        key = ((function + 1) << (bits[1] + bits[2])) | ((file + 1) << bits[2]) | (line + 1)
        _, first, back = np.unique(key, return_index=True, return_inverse=True)
    else:  # lines past what fits beside the indices: sort the rows themselves
        _, first, back = np.unique(np.stack([function, file, line], axis=1), axis=0, return_index=True,
                                   return_inverse=True)
    new = tuple.__new__  # (as in resolved_frames)
    made = [new(SourceFrame, (strings[f] if f >= 0 else "", strings[p] if p >= 0 else None, n if n >= 0 else None))
            for f, p, n in zip(function[first].tolist(), file[first].tolist(), line[first].tolist(), strict=True)]
    holder = np.empty(len(made), dtype=object)
    holder[:] = made
    return holder[back.reshape(-1)].tolist()  # type: ignore[no-any-return]  # the SourceFrames gathered
