"""The heap ops the events layer hands to the reducer: op codes and a columnar batch, in time order.

Declared here, by the producer, so that imports flow one way (events -> reduce).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

OP_ALLOC: Final = 1
OP_FREE: Final = 2
OP_REALLOC: Final = 3
OP_CREATE: Final = 4
OP_DESTROY: Final = 5
OP_PROCESS_END: Final = 6
OP_ATTACH: Final = 7




OP_COLUMNS: Final[tuple[tuple[str, Any], ...]] = (
    ("op", np.uint8), ("ts", np.int64), ("pid", np.int64), ("tid", np.int64), ("serial", np.int64),
    ("heap", np.uint64), ("addr", np.uint64), ("size", np.uint64), ("old_addr", np.uint64),
    ("source", np.uint8), ("stack", np.int64))


@dataclass(frozen=True)
class OpBatch:
    """Heap ops in time order, as equal-length columns (what the reducer's kernel loops over).

    ``serial`` is the unique id of the event record; for an ATTACH it is the serial of the event its ``stack``
    belongs to. ``addr`` is the Alloc/Free address and the ReAlloc's new address, ``size`` the Alloc size and
    the ReAlloc's new size, ``old_addr`` the ReAlloc's old address. ``stack`` is the ATTACH's stack id, and on an
    Alloc/ReAlloc its stack when already known (its walk came in the same batch), else -1 (an ATTACH follows).
    """

    op: npt.NDArray[np.uint8]
    ts: npt.NDArray[np.int64]
    pid: npt.NDArray[np.int64]
    tid: npt.NDArray[np.int64]
    serial: npt.NDArray[np.int64]
    heap: npt.NDArray[np.uint64]
    addr: npt.NDArray[np.uint64]
    size: npt.NDArray[np.uint64]
    old_addr: npt.NDArray[np.uint64]
    source: npt.NDArray[np.uint8]
    stack: npt.NDArray[np.int64]

    COLUMNS: ClassVar[tuple[str, ...]] = tuple(name for name, _ in OP_COLUMNS)

    def __post_init__(self) -> None:
        n = None
        for name, dt in OP_COLUMNS:
            col = np.ascontiguousarray(getattr(self, name), dtype=dt)
            if col.ndim != 1:
                raise ValueError(f"OpBatch.{name}: expected a 1-d column, got shape {col.shape}")
            if n is None:
                n = col.shape[0]
            elif col.shape[0] != n:
                raise ValueError(f"OpBatch.{name}: {col.shape[0]} rows, expected {n}")
            object.__setattr__(self, name, col)

    def __len__(self) -> int:
        return int(self.op.shape[0])

    @classmethod
    def empty(cls) -> OpBatch:
        return cls.from_columns(op=np.zeros(0, np.uint8))

    @classmethod
    def from_columns(cls, **columns: npt.ArrayLike) -> OpBatch:
        """From keyword columns; ``op`` is required, a missing column is zeros (``stack``: -1)."""
        return cls.from_dict(columns)

    @classmethod
    def from_dict(cls, columns: Mapping[str, npt.ArrayLike]) -> OpBatch:
        """From a mapping name -> column; ``op`` is required, a missing column is zeros (``stack``: -1)."""
        unknown = set(columns) - set(cls.COLUMNS)
        if unknown:
            raise ValueError(f"OpBatch: unknown columns {sorted(unknown)}")
        if "op" not in columns:
            raise ValueError("OpBatch: the op column is required")
        n = np.asarray(columns["op"]).shape[0]
        cols: dict[str, Any] = {}
        for name, dt in OP_COLUMNS:
            if name in columns:
                cols[name] = columns[name]
            else:
                cols[name] = np.full(n, -1 if name == "stack" else 0, dt)
        return cls(**cols)

    @classmethod
    def concat(cls, *batches: OpBatch) -> OpBatch:
        """The batches one after the other (they must already be in time order)."""
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(**{name: np.concatenate([getattr(b, name) for b in batches]) for name in cls.COLUMNS})

    def __getitem__(self, sl: slice) -> OpBatch:
        """A row range (for splitting a batch)."""
        return OpBatch(**{name: getattr(self, name)[sl] for name in self.COLUMNS})
