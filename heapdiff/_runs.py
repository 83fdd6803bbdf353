"""Runs of a flat column: the positions of many runs ``[start, start + length)`` at once, one after the other.

Why: stacks, inline chains and a group's frames are each stored as runs of one flat column (offsets beside it);
gathering the runs of many rows is one numpy pass, written once here.
"""

from __future__ import annotations

import numpy as np


def run_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions ``starts[i]`` to ``starts[i] + lengths[i] - 1`` of every run ``i``, runs in order (int64)."""
    lengths = np.asarray(lengths, np.int64)
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if ends.shape[0] else 0
    return np.repeat(np.asarray(starts, np.int64) - (ends - lengths), lengths) + np.arange(total, dtype=np.int64)
