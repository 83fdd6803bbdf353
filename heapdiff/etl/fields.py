"""Little-endian fields out of a byte array, inside the JIT kernels (plain Python without numba, same values).

The kernels get a buffer's bytes three times over: as ``uint8`` (``d``) and as the ``uint32`` and ``uint64`` views
of the same memory (``d32``, ``d64``, made by :func:`views`), so that an aligned field is one load.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heapdiff._jit import njit

#: a scalar inside a kernel: a numba int64/uint64 when compiled, a numpy scalar or int when not
Scalar = Any

_U1 = np.uint64(1)
_U32 = np.uint64(32)
_U63 = np.uint64(63)
_WMASK = np.array([0, 0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF, 0xFFFFFFFFFF, 0xFFFFFFFFFFFF, 0xFFFFFFFFFFFFFF,
                   0xFFFFFFFFFFFFFFFF], np.uint64)


def views(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The u32 and u64 views of a byte array that the kernels read aligned fields through."""
    n = int(data.shape[0])
    return data[: n - n % 4].view(np.uint32), data[: n - n % 8].view(np.uint64)


@njit(inline="always")
def u16(d: np.ndarray, p: int) -> Scalar:
    return np.int64(d[p]) | (np.int64(d[p + 1]) << 8)


@njit(inline="always")
def u32(d: np.ndarray, p: int) -> Scalar:
    return np.int64(d[p]) | (np.int64(d[p + 1]) << 8) | (np.int64(d[p + 2]) << 16) | (np.int64(d[p + 3]) << 24)


@njit(inline="always")
def a32(d: np.ndarray, d32: np.ndarray, p: int) -> Scalar:
    """u32 at byte ``p``: one load through the 4-byte view when aligned (the common case: records are 8-aligned)."""
    if (p & 3) == 0:
        return np.int64(d32[p >> 2])
    return u32(d, p)


@njit(inline="always")
def u64(d: np.ndarray, p: int) -> Scalar:
    return np.uint64(u32(d, p)) | (np.uint64(u32(d, p + 4)) << _U32)


@njit(inline="always")
def a64(d: np.ndarray, d64: np.ndarray, p: int) -> Scalar:
    """u64 at byte ``p``: one load through the 8-byte view when aligned."""
    if (p & 7) == 0:
        return d64[p >> 3]
    return u64(d, p)


@njit(inline="always")
def uint(d: np.ndarray, d32: np.ndarray, d64: np.ndarray, p: int, w: int) -> Scalar:
    """The ``w``-byte (1, 2, 4 or 8) unsigned field at byte ``p``, as uint64."""
    if w == 8:
        return a64(d, d64, p)
    if w == 4:
        return np.uint64(a32(d, d32, p))
    if w == 2:
        return np.uint64(u16(d, p))
    return np.uint64(d[p])


@njit(inline="always")
def uint_branchless(d64: np.ndarray, p: int, w: int) -> Scalar:
    """``w`` bytes at byte ``p`` without a data-dependent branch: two aligned loads, a funnel shift, a mask.

    Field widths and alignments change from record to record (allocs, frees, stacks interleave), so the
    branchy :func:`uint` mispredicts on most fields. Reads up to 15 bytes past ``p`` within the array.
    """
    q = p >> 3
    sh = np.uint64((p & 7) * 8)
    lo = d64[q]
    hi = d64[q + 1] if q + 1 < d64.shape[0] else np.uint64(0)
    return ((lo >> sh) | ((hi << _U1) << (_U63 - sh))) & _WMASK[w]
