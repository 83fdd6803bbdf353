"""One error family for everything heapdiff cannot read, and the counted anomalies for what it reads around.

pefile's split: a file that cannot be read at all raises :class:`TraceError` (the CLI turns it into exit 3 and one
line); damage the reader can step over becomes a count in an :class:`Anomalies` table, reported with the result.
"""

from __future__ import annotations

from collections import Counter


class HeapdiffError(Exception):
    """Base of every error heapdiff raises on purpose."""


class TraceError(HeapdiffError):
    """A trace that cannot be read at all. Always names the file offset where reading failed."""

    def __init__(self, message: str, offset: int, path: str | None = None) -> None:
        self.message = message
        self.offset = offset
        self.path = path
        super().__init__(self.__str__())

    def with_path(self, path: str) -> TraceError:
        return TraceError(self.message, self.offset, path)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.message} (at byte offset {self.offset:#x})"


class Anomalies(Counter[str]):
    """Kind -> count of things that did not fit and were counted rather than guessed or dropped."""

    def add(self, kind: str, n: int = 1) -> None:
        if n:
            self[kind] += n

    def as_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in sorted(self.items()) if v}


class DocumentError(HeapdiffError):
    """A JSON document that is not a ``heapdiff/1`` document heapdiff can use: names the field that does not fit."""


class SelectionError(HeapdiffError):
    """A --process or --pid that matches no process of a trace: a usage error that names what the trace holds."""
