"""The layout table: which payload fields the record walk copies into columns, in the array form its kernel reads.

``events`` declares the rows (:class:`LayoutRow`, in :mod:`heapdiff.events.layout`); :class:`Layout` turns them
into ``lut[(hook << 1) | (ptr == 8)]`` -> row or -1, and per row ``[min_len, max_len (-1: open), flags
(ROW_KEEP_RAW | ROW_DEFER_TAIL | ROW_LINK | ROW_LINK_TARGET), tail_off (-1: none), off0, width0, ..., off5, width5,
link_ts_field, link_tid_field]``. The walk never interprets a field: what a column means is the table's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NF = 6                      # field columns per record
ROW_LEN = 6 + 2 * NF        # min, max, flags, tail offset, NF x (offset, width), link ts field, link tid field
R_MIN, R_MAX, R_FLAGS, R_TAIL = 0, 1, 2, 3
R_FIELDS = 4                # (offset, width) of field k at R_FIELDS + 2k, R_FIELDS + 2k + 1
R_LINK_TS = 4 + 2 * NF
R_LINK_TID = 5 + 2 * NF
LUT_SIZE = 1 << 18          # hooks up to 0x1FFFF (pseudo groups 0x100+ for GUID-only providers), x2 pointer sizes

# layout row flags (column R_FLAGS)
ROW_KEEP_RAW = 1            # hand the payload bytes to a Python decoder
ROW_DEFER_TAIL = 2          # the tail may be a deferred reference (heapdiff.etl.sequences)
ROW_LINK = 4                # the record names an earlier one of its buffer; its deferred tail may go there
ROW_LINK_TARGET = 8         # a record that may take a linked record's tail


@dataclass(frozen=True)
class FieldSpec:
    """One payload field to copy into a column: byte offset and width (1, 2, 4 or 8)."""

    offset: int
    width: int


@dataclass(frozen=True)
class LayoutRow:
    """What to pull out of records of one hook and pointer size (declared by ``events``)."""

    hook: int
    ptr: int
    min_len: int
    max_len: int                      # -1: no upper bound
    fields: Sequence[FieldSpec] = ()
    tail_offset: int = -1             # pointer-sized values from here to the end are interned as one sequence
    keep_raw: bool = False            # hand the payload bytes over for a Python decoder
    defer_tail: bool = False          # the tail may stay a deferred reference (heapdiff.etl.sequences)
    link: tuple[int, int] | None = None  # field indexes of (timestamp, thread) naming an earlier record
    link_target: bool = False         # records of this row may take a linked record's tail


class Layout:
    """The layout table in the array form the kernel reads."""

    def __init__(self, rows: Sequence[LayoutRow], tail_marks: tuple[int, int] = (1 << 32, (1 << 64) - 1)) -> None:
        """``tail_marks``: (4-byte, 8-byte) value at or above which a deferred tail's last value sets its flag."""
        self.marks = np.array(tail_marks, np.uint64)
        self.lut = np.full(LUT_SIZE, -1, np.int32)
        self.rows = np.zeros((max(1, len(rows)), ROW_LEN), np.int32)
        for i, r in enumerate(rows):
            if len(r.fields) > NF:
                raise ValueError(f"hook {r.hook:#x}: at most {NF} fields")
            key = (r.hook << 1) | (1 if r.ptr == 8 else 0)
            if self.lut[key] >= 0:
                raise ValueError(f"hook {r.hook:#x} ptr {r.ptr} declared twice")
            self.lut[key] = i
            if r.link is not None and (not r.defer_tail or r.keep_raw
                                       or not all(0 <= k < len(r.fields) for k in r.link)):
                raise ValueError(f"hook {r.hook:#x}: a linking row defers its tail, keeps no payload and names "
                                 "two of its fields")
            flags = ((ROW_KEEP_RAW if r.keep_raw else 0) | (ROW_DEFER_TAIL if r.defer_tail else 0)
                     | (ROW_LINK if r.link is not None else 0) | (ROW_LINK_TARGET if r.link_target else 0))
            row = [r.min_len, r.max_len, flags, r.tail_offset]
            for k in range(NF):
                if k < len(r.fields):
                    row += [r.fields[k].offset, r.fields[k].width]
                    if r.fields[k].offset + r.fields[k].width > r.min_len:
                        raise ValueError(f"hook {r.hook:#x}: field {k} ends past the minimum payload")
                else:
                    row += [0, 0]
            row += list(r.link) if r.link is not None else [0, 0]
            self.rows[i] = row
