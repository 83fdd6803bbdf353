"""A read-only sequence whose items are made when they are read, from columns the subclass holds.

Why: a trace's buffers and groups live as numpy columns (an object each, held at once, would cost memory and
time), yet their readers want a :class:`~collections.abc.Sequence` of records. Indexing and slicing are written
once here; a subclass says how many items it has and how to make one.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import TypeVar, overload

T = TypeVar("T")


class MadeOnRead(Sequence[T]):
    """Items made by :meth:`_item` at a position ``0 <= k < len(self)``; negative indices count from the end."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _item(self, k: int, /) -> T: ...

    @overload
    def __getitem__(self, k: int) -> T: ...

    @overload
    def __getitem__(self, k: slice) -> list[T]: ...

    def __getitem__(self, k: int | slice) -> T | list[T]:
        if isinstance(k, slice):
            return [self._item(j) for j in range(*k.indices(len(self)))]
        n = len(self)
        if not -n <= k < n:
            raise IndexError(k)
        return self._item(k % n)

    def __iter__(self) -> Iterator[T]:
        return (self._item(k) for k in range(len(self)))
