"""How a binary structure is declared: a C layout with hex offsets, its size asserted, packed and unpacked.

:class:`Struct` is one little-endian layout; :class:`Payload` is an event payload whose pointer-sized fields give it
one layout per pointer size. The declarations themselves are in :mod:`heapdiff.etl.structs` (file, buffer and
record headers) and :mod:`heapdiff.etl.payloads` (event payloads).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from heapdiff.errors import TraceError

#: field type -> (struct code, size, numpy code); "bytesN" fields are N raw bytes
_TYPES: Final = {"u8": ("B", 1, "<u1"), "u16": ("H", 2, "<u2"), "u32": ("I", 4, "<u4"), "u64": ("Q", 8, "<u8"),
                 "i32": ("i", 4, "<i4"), "i64": ("q", 8, "<i8"), "guid": ("16s", 16, "V16")}


def _raw_bytes(ftype: str) -> int | None:
    """N for a "bytesN" field type, else None."""
    return int(ftype[5:]) if ftype.startswith("bytes") else None


class Struct:
    """A little-endian structure: named fields at declared offsets, unnamed bytes in between are padding.

    Declared as ``(offset, name, type)`` triples so that the declaration reads like the C comment above it; the
    constructor checks that offsets are increasing, that fields do not overlap and that they end inside ``size``.
    """

    def __init__(self, name: str, size: int, fields: Sequence[tuple[int, str, str]]) -> None:
        self.name = name
        self.size = size
        self.fields = list(fields)
        self.offsets: dict[str, int] = {}
        self.types: dict[str, str] = {}
        fmt = "<"
        pos = 0
        for off, fname, ftype in fields:
            if off < pos:
                raise AssertionError(f"{name}.{fname} at {off:#x} overlaps the previous field")
            if off > pos:
                fmt += f"{off - pos}x"
            n = _raw_bytes(ftype)
            fmt += f"{n}s" if n is not None else _TYPES[ftype][0]
            pos = off + (n if n is not None else _TYPES[ftype][1])
            self.offsets[fname] = off
            self.types[fname] = ftype
        if pos > size:
            raise AssertionError(f"{name} fields end at {pos:#x}, past its size {size:#x}")
        if pos < size:
            fmt += f"{size - pos}x"
        self._st = struct.Struct(fmt)
        if self._st.size != size:
            raise AssertionError(f"{name}: declared size {size:#x}, layout gives {self._st.size:#x}")
        self._names = [f[1] for f in fields]

    def off(self, field: str) -> int:
        return self.offsets[field]

    def width(self, field: str) -> int:
        """Bytes of a field."""
        ftype = self.types[field]
        n = _raw_bytes(ftype)
        return n if n is not None else _TYPES[ftype][1]

    def unpack(self, data: bytes | bytearray | memoryview, offset: int = 0, base: int = 0) -> dict[str, Any]:
        """Decode at ``offset``; a short read raises :class:`TraceError` naming ``base + offset``."""
        if offset < 0 or offset + self.size > len(data):
            raise TraceError(f"{self.name} needs {self.size:#x} bytes, only {max(0, len(data) - offset):#x} left",
                             base + offset)
        return dict(zip(self._names, self._st.unpack_from(data, offset), strict=True))

    def pack(self, values: Mapping[str, int | bytes]) -> bytes:
        """Encode; fields not given are zero."""
        args: list[int | bytes] = []
        for n in self._names:
            t = self.types[n]
            default: int | bytes = b"" if t.startswith("bytes") or t == "guid" else 0
            args.append(values.get(n, default))
        return self._st.pack(*args)

    @property
    def format(self) -> str:
        """The :mod:`struct` format ("<", one code per field in declaration order, padding as "x").

        Lets a hot writer glue a header and a payload into one precompiled :class:`struct.Struct` (formats
        with "<" have no implicit alignment, so concatenation keeps every declared offset).
        """
        return self._st.format

    def numpy_dtype(self) -> np.dtype[Any]:
        """The same layout as a numpy structured dtype, to read many instances at once (a strided view)."""
        names = list(self._names)
        formats = [f"V{n}" if (n := _raw_bytes(self.types[k])) is not None else _TYPES[self.types[k]][2]
                   for k in names]
        return np.dtype({"names": names, "formats": formats, "offsets": [self.offsets[k] for k in names],
                         "itemsize": self.size})


class Payload:
    """A packed event payload whose fields are u32/u64 or pointer-sized ("ptr"): offsets follow the pointer size.

    TraceEvent's HostOffset rule: each pointer before a field moves it by (P - 4). The two concrete layouts are
    computed once per pointer size and the size is asserted against the notes' table in the declaration.
    """

    def __init__(self, name: str, fields: Sequence[tuple[str, str]], size32: int, size64: int) -> None:
        self.name = name
        self.fields = list(fields)
        self.layouts: dict[int, Struct] = {}
        for ptr, expect in ((4, size32), (8, size64)):
            pos = 0
            decl: list[tuple[int, str, str]] = []
            for fname, ftype in fields:
                t = ("u32" if ptr == 4 else "u64") if ftype == "ptr" else ftype
                decl.append((pos, fname, t))
                pos += _TYPES[t][1]
            if pos != expect:
                raise AssertionError(f"{name}: {ptr * 8}-bit layout is {pos:#x} bytes, notes say {expect:#x}")
            self.layouts[ptr] = Struct(f"{name}{ptr * 8}", pos, decl)

    def __getitem__(self, ptr: int) -> Struct:
        return self.layouts[ptr]
