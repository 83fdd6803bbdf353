"""The distinct frames of a trace's live stacks, as columns (:class:`FrameTable`), and the frame id of every
frame of every stack.

A trace may hold a million distinct stacks: a frame is a row of columns (its image's name and the offset in it,
a kernel flag, whether it is innermost), made into a :class:`~heapdiff.frames.Frame` record only when one is
asked for (the frames of many stacks at once), and kept only in a table small enough to keep whole.
:mod:`heapdiff.symbolize` names the rows; :mod:`heapdiff.grouping` groups by them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heapdiff.events.images import ImageMap
from heapdiff.frames import Frame
from heapdiff.rules import is_allocator_frame

#: a table of at most this many frames makes them all at its first read, from the columns as Python lists (one
#: numpy read per column, not per frame) and keeps them; a larger one (a trace of a million distinct stacks) makes
#: the frames asked for on each read, and keeps none
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
    #: filled (by :mod:`heapdiff.symbolize`) before any frame is read: a table kept whole does not see later ones
    named: dict[int, Frame] = field(default_factory=dict)

    def __post_init__(self) -> None:
        #: every frame's plain text and record (object arrays: a stack's worth is one gather), once read, when the
        #: table is small enough to keep them all
        self._whole: tuple[np.ndarray, np.ndarray] | None = None
        self._plumbing = [is_allocator_frame(m, None) for m in self.module_names]

    def __len__(self) -> int:
        return int(self.name.shape[0])

    def plains(self, ids: np.ndarray) -> list[str]:
        """Each frame's ``module+0xrva``, or ``0x<address>`` in no known image: the frames of many stacks, one
        after the other, in one pass."""
        self._check(ids)
        whole = self._kept()
        return whole[0][ids].tolist() if whole is not None else self._make_at(ids)[0]

    def frames(self, ids: np.ndarray) -> list[Frame]:
        """Each frame's record, symbols' when they named it, else its plain text: the frames of many stacks, one
        after the other, in one pass (a table too large to keep makes each from its columns, a few hundred
        nanoseconds a frame)."""
        return self.frames_and_plains(ids, ids[:0])[0]

    def frames_and_plains(self, ids: np.ndarray, subset: np.ndarray) -> tuple[list[Frame], list[str]]:
        """:meth:`frames` of ``ids`` and :meth:`plains` of ``subset``. When ``subset``'s frames are among ``ids``
        (a stack's signature among its displayed frames), a table too large to keep formats each text once."""
        self._check(ids)
        whole = self._kept()
        if whole is not None:
            self._check(subset)
            out: list[Frame] = whole[1][ids].tolist()
            return out, whole[0][subset].tolist()
        texts, records = self._make_at(ids)
        if self.named:
            named = self.named
            for j, i in enumerate(ids.tolist()):
                got = named.get(i)
                if got is not None:
                    records[j] = got
        text_of = dict(zip(ids.tolist(), texts, strict=True))
        try:
            plains = list(map(text_of.__getitem__, subset.tolist()))
        except KeyError:  # not a subset after all: its texts made on their own
            self._check(subset)
            plains = self._make_at(subset)[0]
        return records, plains

    def _kept(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self._whole is None and len(self) <= FRAME_CACHE:
            texts, records = self._make(0, len(self))
            for i, named in self.named.items():
                records[i] = named
            self._whole = (np.fromiter(texts, object, len(texts)), np.fromiter(records, object, len(records)))
        return self._whole

    def _make(self, lo: int, hi: int) -> tuple[list[str], list[Frame]]:
        """The plain texts and records of frames ``lo`` to ``hi`` from the columns alone (not ``named``)."""
        return self._records(self.name[lo:hi].tolist(), self.value[lo:hi].tolist(), self.kernel[lo:hi].tolist())

    def _check(self, ids: np.ndarray) -> None:
        """Every id is a frame of the table (a negative one would read from the end)."""
        if ids.shape[0] and not (int(ids.min()) >= 0 and int(ids.max()) < len(self)):
            raise IndexError(f"frame ids outside 0 .. {len(self) - 1}")

    def _make_at(self, ids: np.ndarray) -> tuple[list[str], list[Frame]]:
        """The same for the frames ``ids``, in their order."""
        return self._records(self.name[ids].tolist(), self.value[ids].tolist(), self.kernel[ids].tolist())

    def _records(self, names: list[int], values: list[int], kernel: list[bool]) -> tuple[list[str], list[Frame]]:
        mods, plumbing = self.module_names, self._plumbing
        texts = [f"{mods[n]}+0x{v:x}" if n >= 0 else f"0x{v:x}" for n, v in zip(names, values, strict=True)]
        # (each record made from its fields in order by tuple.__new__, which skips the named tuple's argument
        # parsing in Python: this runs for every frame of the trace)
        new = tuple.__new__
        records = [new(Frame, (p, mods[n], v, k, not k and plumbing[n], None, None, None, None, ())) if n >= 0
                   else new(Frame, (p, None, None, k, False, None, None, None, None, ()))
                   for p, n, v, k in zip(texts, names, values, kernel, strict=True)]
        return texts, records


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
