"""The distinct frames of a trace's live stacks, as columns (:class:`FrameTable`), and the frame id of every
frame of every stack.

A trace may hold a million distinct stacks: a frame is a row of columns (its image's name and the offset in it,
a kernel flag, whether it is innermost), made into a :class:`~heapdiff.frames.Frame` record only when one is
asked for, and then cached. :mod:`heapdiff.symbolize` names the rows; :mod:`heapdiff.grouping` groups by them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from heapdiff.events.images import ImageMap
from heapdiff.frames import Frame
from heapdiff.rules import is_allocator_frame

#: frames made into records at once, at most (a report reads a few thousand groups' frames many times)
FRAME_CACHE = 1 << 16


@dataclass
class FrameTable:
    """The distinct frames of a trace's live stacks, as columns: a frame is its image's name and the offset in it
    (the address itself when no image holds it), a kernel flag, and whether it is innermost (looked up as is, not
    as a return address). Frames that symbols named are in ``named``."""

    module_names: list[str]
    #: module name index per frame, -1 for an address in no known image
    name: np.ndarray
    #: the RVA, or the address when ``name`` is -1
    value: np.ndarray
    kernel: np.ndarray
    innermost: np.ndarray
    #: an image the frame was found in (its identity names the PDB), -1 for none
    image: np.ndarray
    named: dict[int, Frame] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # each distinct frame's text and record made once while in use: the groups of a trace share most frames
        self.frame = lru_cache(maxsize=FRAME_CACHE)(self._frame)
        self.plain = lru_cache(maxsize=FRAME_CACHE)(self._plain)

    def __len__(self) -> int:
        return int(self.name.shape[0])

    def _plain(self, i: int) -> str:
        """``module+0xrva``, or ``0x<address>`` in no known image."""
        n = int(self.name[i])
        return f"{self.module_names[n]}+0x{int(self.value[i]):x}" if n >= 0 else f"0x{int(self.value[i]):x}"

    def _frame(self, i: int) -> Frame:
        got = self.named.get(i)
        if got is not None:
            return got
        n = int(self.name[i])
        kernel = bool(self.kernel[i])
        if n < 0:
            return Frame(self.plain(i), None, None, kernel, False)
        module = self.module_names[n]
        return Frame(self.plain(i), module, int(self.value[i]), kernel,
                     not kernel and is_allocator_frame(module, None))


def frame_table(images: ImageMap, pids: np.ndarray, starts: np.ndarray, flat: np.ndarray,
                 tss: np.ndarray) -> tuple[FrameTable, np.ndarray]:
    """The distinct frames of the stacks, and the frame id of every frame of every stack (same layout as flat)."""
    img = images.locate_flat(pids, starts, flat, tss)
    names = sorted({i.name for i in images.images})
    name_of_image = np.asarray([names.index(i.name) for i in images.images] + [-1], np.int64)
    base_of_image = np.asarray([i.base for i in images.images] + [0], np.uint64)
    name = name_of_image[img]                                       # -1 (index -1: the sentinel) for none
    value = np.where(img >= 0, flat - base_of_image[img], flat)
    kernel = flat >= np.uint64(images.kernel_floor)
    innermost = np.zeros(flat.shape[0], bool)
    innermost[starts[:-1][np.diff(starts) > 0]] = True
    order = np.lexsort((innermost, kernel, value, name))
    key = (name[order], value[order], kernel[order], innermost[order])
    new = np.ones(order.shape[0], bool)
    new[1:] = np.any([k[1:] != k[:-1] for k in key], axis=0)
    del key
    ids = np.empty(order.shape[0], np.int32)  # frame ids: a trace has far fewer than 2**31 distinct frames
    ids[order] = np.cumsum(new) - 1
    firsts = order[new]
    return FrameTable(names, name[firsts].astype(np.int32), value[firsts], kernel[firsts], innermost[firsts],
                      img[firsts].astype(np.int32)), ids
