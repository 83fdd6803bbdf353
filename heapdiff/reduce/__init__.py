"""The reducer: time-ordered heap events folded into the blocks still live, with every misfit counted.

:class:`Reducer` (the shell: batches in, tables grown, the trace ended) drives the fold kernel
(:mod:`heapdiff.reduce.fold`: the rules) over the open-addressing tables of :mod:`heapdiff.reduce.tables`; at the end
the overlap pass (:mod:`heapdiff.reduce.overlap`) ends the blocks a lost Free left live, and the result is a
:class:`LiveBlocks`.
"""

from heapdiff.reduce.live import LiveBlocks
from heapdiff.reduce.reducer import Reducer

__all__ = ["LiveBlocks", "Reducer"]
