"""Generic checkers for the fields of a JSON document being decoded.

Each takes a parsed value and the JSON path it came from (``groups[3].after.bytes``) and either returns it typed
or raises :class:`~heapdiff.errors.DocumentError` naming that path: the record decoders of
:mod:`heapdiff.document.decode` are built from these, so every error says where it is, never a silent 0. An object's
fields are read through :class:`Obj`, which composes each field's path from the object's, so a record decoder
names each field once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from heapdiff.document.model import Counts
from heapdiff.errors import DocumentError

T = TypeVar("T")


def fail(where: str, what: str, value: Any) -> DocumentError:
    shown = repr(value)
    return DocumentError(f"{where}: expected {what}, got {shown[:60] + '…' if len(shown) > 60 else shown}")


def as_obj(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise fail(where, "an object", v)
    return v


class Obj:
    """A JSON object being decoded and its path; each read names the field once and checks it with a converter.

    A field is required (:meth:`req`), required but nullable (:meth:`nullable`), optional (:meth:`opt`: absent or
    null is None) or ``absent`` when absent (:meth:`get`: documents written before the field existed)."""

    __slots__ = ("_prefix", "raw", "where")

    def __init__(self, v: Any, where: str, *, root: bool = False) -> None:
        """``root``: the document itself, whose fields' paths are bare (``mode``, not ``document.mode``)."""
        self.raw = as_obj(v, where)
        self.where = where
        self._prefix = "" if root else f"{where}."

    def where_of(self, key: str) -> str:
        return self._prefix + key

    def __contains__(self, key: str) -> bool:
        return key in self.raw

    def _missing(self, key: str) -> DocumentError:
        return DocumentError(f"{self.where}.{key}: missing")

    def req(self, key: str, conv: Callable[[Any, str], T]) -> T:
        if key not in self.raw:
            raise self._missing(key)
        return conv(self.raw[key], self._prefix + key)

    def nullable(self, key: str, conv: Callable[[Any, str], T]) -> T | None:
        if key not in self.raw:
            raise self._missing(key)
        v = self.raw[key]
        return None if v is None else conv(v, self._prefix + key)

    def opt(self, key: str, conv: Callable[[Any, str], T]) -> T | None:
        v = self.raw.get(key)
        return None if v is None else conv(v, self._prefix + key)

    def get(self, key: str, conv: Callable[[Any, str], T], absent: T) -> T:
        return conv(self.raw[key], self._prefix + key) if key in self.raw else absent


def list_of(conv: Callable[[Any, str], T]) -> Callable[[Any, str], tuple[T, ...]]:
    """A converter of lists whose items ``conv`` reads, each with its own path (``groups[3]``)."""
    def items(v: Any, where: str) -> tuple[T, ...]:
        return tuple(conv(x, f"{where}[{i}]") for i, x in enumerate(as_list(v, where)))

    return items


def as_int(v: Any, where: str) -> int:
    if type(v) is not int:
        raise fail(where, "an integer", v)
    return v


def as_str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise fail(where, "a string", v)
    return v


def as_number(v: Any, where: str) -> float:
    if type(v) not in (int, float):
        raise fail(where, "a number", v)
    return float(v)


def as_bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise fail(where, "true or false", v)
    return v


def as_list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise fail(where, "a list", v)
    return v


def as_hex(v: Any, where: str) -> int:
    try:
        if not isinstance(v, str) or not v.startswith("0x"):
            raise ValueError
        return int(v, 16)
    except ValueError:
        raise fail(where, "a hex string (0x...)", v) from None


def check_delta(o: Obj, before: Counts, after: Counts) -> None:
    """A diff's delta is after minus before; a document that says otherwise is refused, not trusted."""
    d = o.req("delta", as_counts)
    if d != after - before:
        raise DocumentError(f"{o.where_of('delta')}: {d.blocks} blocks, {d.bytes} bytes is not after minus before "
                            f"({after.blocks - before.blocks} blocks, {after.bytes - before.bytes} bytes)")


def as_counts(v: Any, where: str) -> Counts:
    o = Obj(v, where)
    return Counts(o.req("blocks", as_int), o.req("bytes", as_int))


def int_map(v: Any, where: str) -> dict[str, int]:
    o = as_obj(v, where)
    if all(type(x) is int for x in o.values()):
        return dict(o)
    return {k: as_int(x, f"{where}.{k}") for k, x in o.items()}


def naturals(v: Any, where: str) -> tuple[int, ...]:
    """A list of non-negative integers (the path of a bad item is made only when there is one)."""
    items = as_list(v, where)
    if all(type(x) is int and x >= 0 for x in items):
        return tuple(items)
    i = next(i for i, x in enumerate(items) if not (type(x) is int and x >= 0))
    raise fail(f"{where}[{i}]", "a non-negative integer", items[i])


def hexes(v: Any, where: str) -> tuple[int, ...]:
    items = as_list(v, where)
    try:
        if all(type(x) is str and x.startswith("0x") for x in items):
            return tuple(int(x, 16) for x in items)
    except ValueError:
        pass
    for i, x in enumerate(items):  # name the first bad one
        as_hex(x, f"{where}[{i}]")
    raise AssertionError("unreachable: a bad item was found above")


def strs(v: Any, where: str) -> list[str]:
    """A list of strings, checked in one pass (the path of a bad item is made only when there is one)."""
    items = as_list(v, where)
    if not all(type(x) is str for x in items):
        i = next(i for i, x in enumerate(items) if type(x) is not str)
        raise fail(f"{where}[{i}]", "a string", items[i])
    return items


def series(v: Any, where: str) -> tuple[int, ...] | None:
    """A group's bytes by allocation time: non-negative and never falling (they are sums up to each point)."""
    if v is None:
        return None
    out = naturals(v, where)
    for i in range(1, len(out)):
        if out[i] < out[i - 1]:
            raise DocumentError(f"{where}[{i}]: {out[i]} is less than the point before ({out[i - 1]}): "
                                "bytes allocated by a time never fall")
    return out
