"""Xpress encoding for the trace writer: a small greedy hash-chain encoder, as a numba kernel and as pure Python.

Both are greedy, with a hash chain of 3-byte prefixes, every position indexed; both search a chain with
:func:`_longest_match` and write an item with :func:`_put_item`. They are not byte-identical (the kernel hashes into
2**_HASH_BITS buckets, the dict does not); each output decodes to the input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from heapdiff._jit import njit
from heapdiff.etl.xpress.decode import as_u8

WINDOW: Final = 8192  # 13 offset bits: offsets 1..8192
MIN_MATCH: Final = 3
_MAX_LENGTH: Final = 0xFFFFFFFF + 3  # the u32 length form holds length - 3
_MAX_CHAIN: Final = 16  # hash-chain candidates tried per position
_GOOD_ENOUGH: Final = 64  # stop searching once a match this long is found
_HASH_BITS: Final = 15

_i64 = cast("Callable[[object], int]", np.int64)


def compress_bound(n: int) -> int:
    """Largest possible output: every byte a literal, one flag DWORD per 32 items plus the final one."""
    return n + 4 * (n // 32) + 8


@njit(inline="always")
def _put_le(dst: Any, op: int, value: int, size: int) -> None:
    for b in range(size):
        dst[op + b] = (value >> (8 * b)) & 0xFF


@njit(inline="always")
def _put_item(dst: Any, op: int, half: int, flags: int, nflags: int, flag_pos: int, literal: int, offset: int,
              length: int) -> tuple[int, int, int, int, int]:
    """Write one item at ``dst[op]`` -- a literal byte (``length`` 0) or a match of ``length`` bytes ``offset``
    back -- and its flag bit; returns the new (op, half, flags, nflags, flag_pos).

    A match is the u16 token then the length's extension ([MS-XCA] 2.4): a nibble shared with the next extended
    match via ``half``, a byte, a u16 or a u32. The item's bytes precede its flag bit: the 32nd bit closes the flag
    DWORD at ``flag_pos`` and opens the next one. (No calls inside: the pure-Python encoder runs it uncompiled.)"""
    if length < MIN_MATCH:
        dst[op] = literal
        op += 1
    else:
        rest = length - MIN_MATCH
        token = ((offset - 1) << 3) | min(rest, 7)
        dst[op] = token & 0xFF
        dst[op + 1] = token >> 8
        op += 2
        if rest >= 7:
            rest -= 7
            nibble = min(rest, 15)
            if half < 0:
                half = op
                dst[op] = nibble
                op += 1
            else:
                dst[half] |= nibble << 4
                half = -1
            if rest >= 15:
                rest -= 15
                if rest < 255:
                    dst[op] = rest
                    op += 1
                else:
                    dst[op] = 255
                    op += 1
                    rest += 15 + 7  # the u16/u32 forms hold length - 3
                    wide = rest >= 1 << 16
                    if wide:  # a zero u16 announces the u32
                        dst[op] = 0
                        dst[op + 1] = 0
                        op += 2
                    for b in range(4 if wide else 2):
                        dst[op + b] = (rest >> (8 * b)) & 0xFF
                    op += 4 if wide else 2
    flags = (flags << 1) | (1 if length >= MIN_MATCH else 0)
    nflags += 1
    if nflags == 32:
        for b in range(4):
            dst[flag_pos + b] = (flags >> (8 * b)) & 0xFF
        flags = 0
        nflags = 0
        flag_pos = op
        op += 4
    return op, half, flags, nflags, flag_pos


@njit(inline="always")
def _longest_match(src: Any, n: int, i: int, cand: int, prev: Any) -> tuple[int, int]:
    """The longest match for ``src[i:n]`` along the hash chain from ``cand`` (``prev`` links each indexed position
    to the one before it with its hash): at most :data:`_MAX_CHAIN` candidates inside the window, the first long
    enough one taken. Returns (length, offset), (0, 0) for none. (No calls inside: the pure-Python encoder runs it
    uncompiled, on bytes and a list.)"""
    best_len = 0
    best_off = 0
    tries = _MAX_CHAIN
    limit = min(n - i, _MAX_LENGTH)
    while cand >= 0 and i - cand <= WINDOW and tries > 0:
        tries -= 1
        k = 0  # a candidate may share only the hash: its length is counted from 0
        while k < limit and src[cand + k] == src[i + k]:
            k += 1
        if k >= MIN_MATCH and k > best_len:
            best_len = k
            best_off = i - cand
            if k >= _GOOD_ENOUGH:
                break
        cand = prev[cand]
    return best_len, best_off


@njit
def compress_kernel(src: npt.NDArray[np.uint8], dst: npt.NDArray[np.uint8]) -> int:
    """Encode ``src`` into ``dst`` (``compress_bound(len(src))`` long or more); returns the output length."""
    n = src.shape[0]
    head = np.full(1 << _HASH_BITS, -1, dtype=np.int64)
    prev = np.full(n, -1, dtype=np.int64)
    op = 4
    flag_pos = 0
    flags = 0
    nflags = 0
    half = -1
    i = 0
    while i < n:
        best_len = best_off = 0
        if n - i >= MIN_MATCH:
            h = ((_i64(src[i]) << 16 | _i64(src[i + 1]) << 8 | _i64(src[i + 2])) * 2654435761) & 0xFFFFFFFF
            best_len, best_off = _longest_match(src, n, i, head[h >> (32 - _HASH_BITS)], prev)
        op, half, flags, nflags, flag_pos = _put_item(dst, op, half, flags, nflags, flag_pos, src[i], best_off,
                                                      best_len)
        step = max(best_len, 1)
        end = min(i + step, n - MIN_MATCH + 1)
        for j in range(i, end):
            h = ((_i64(src[j]) << 16 | _i64(src[j + 1]) << 8 | _i64(src[j + 2])) * 2654435761) & 0xFFFFFFFF
            h >>= 32 - _HASH_BITS
            prev[j] = head[h]
            head[h] = j
        i += step
    free = 32 - nflags
    _put_le(dst, flag_pos, (flags << free) | ((1 << free) - 1), 4)
    return op


def compress_jit(data: bytes | bytearray | memoryview) -> bytes:
    src = as_u8(data)
    dst = np.empty(compress_bound(src.shape[0]), dtype=np.uint8)
    return dst[: compress_kernel(src, dst)].tobytes()


#: the item writer and the match search as plain Python, for the pure-Python encoder whether or not the JIT is on
_put_item_py = cast("Callable[[bytearray, int, int, int, int, int, int, int, int], tuple[int, int, int, int, int]]",
                    getattr(_put_item, "py_func", _put_item))
_longest_match_py = cast("Callable[[bytes, int, int, int, list[int]], tuple[int, int]]",
                         getattr(_longest_match, "py_func", _longest_match))


def compress_py(data: bytes | bytearray | memoryview) -> bytes:
    """The pure-Python encoder: a dict of 3-byte prefixes (no hash collisions: the key is the 3 bytes themselves)."""
    src = bytes(data)
    n = len(src)
    out = bytearray(compress_bound(n))
    op = 4  # after the first flag DWORD
    flag_pos = 0
    flags = 0
    nflags = 0
    half = -1
    head: dict[bytes, int] = {}
    prev = [-1] * n
    i = 0
    while i < n:
        best_len = best_off = 0
        if i + MIN_MATCH <= n:
            best_len, best_off = _longest_match_py(src, n, i, head.get(src[i : i + MIN_MATCH], -1), prev)
        op, half, flags, nflags, flag_pos = _put_item_py(out, op, half, flags, nflags, flag_pos, src[i], best_off,
                                                         best_len)
        step = max(best_len, 1)
        # Index every position covered by this item.
        for j in range(i, min(i + step, n - MIN_MATCH + 1)):
            key = src[j : j + MIN_MATCH]
            prev[j] = head.get(key, -1)
            head[key] = j
        i += step
    free = 32 - nflags
    out[flag_pos : flag_pos + 4] = ((flags << free) | ((1 << free) - 1)).to_bytes(4, "little")
    return bytes(out[:op])
