"""Xpress decoding: a numba kernel over numpy ``uint8`` arrays, and a pure-Python decoder over ``bytes``.

Both implement the same checks in the same order, so they give the same results, error codes and offsets included (the
tests hold them to it). They are written twice on purpose: the kernel decodes a match's length inline (a shared helper,
inlined or not, cost it throughput: benchmarks/profile.md, etl.xpress), and the Python decoder copies literal runs and
matches as slices. Damage is reported as a :class:`~heapdiff.errors.TraceError` with the offset *within the compressed
data* of the item that could not be decoded (the flag DWORD, literal byte or match token); callers add the buffer's file
offset. """

from __future__ import annotations

from collections.abc import Callable
from typing import Final, cast

import numpy as np
import numpy.typing as npt

from heapdiff._jit import njit
from heapdiff.errors import TraceError

# Kernel status codes (negative = error); the detail value's meaning depends on the code.
_OK: Final = 0
_E_TRUNC_FLAGS: Final = -1
_E_TRUNC_LITERAL: Final = -2
_E_TRUNC_MATCH: Final = -3
_E_BAD_LENGTH: Final = -4
_E_BAD_OFFSET: Final = -5
_E_OVERFLOW: Final = -6

_MESSAGES: Final = {
    _E_TRUNC_FLAGS: "Xpress: compressed data ends inside a flag DWORD ({} byte(s) left)",
    _E_TRUNC_LITERAL: "Xpress: compressed data ends where a literal byte was announced",
    _E_TRUNC_MATCH: "Xpress: compressed data ends inside a match token ({} byte(s) left)",
    _E_BAD_LENGTH: "Xpress: match length field {} is below the 22 its encoding requires",
    _E_BAD_OFFSET: "Xpress: match reaches {} byte(s) back, before the start of the output",
    _E_OVERFLOW: "Xpress: match of {} bytes runs past the expected decompressed size",
}

Input = bytes | bytearray | memoryview | npt.NDArray[np.generic]


def _fail(code: int, pos: int, detail: int, out_len: int, out_size: int) -> TraceError:
    msg = _MESSAGES[code].format(detail)
    return TraceError(f"{msg} (output at {out_len} of {out_size} bytes)", pos)


# Byte reads widen through np.int64: numba's int(uint8) stays unsigned, and unsigned mixed with int64 gives
# float64. Typed as returning int for mypy (which is what the values are).
_i64 = cast("Callable[[object], int]", np.int64)


@njit(inline="always")
def _le16(src: npt.NDArray[np.uint8], p: int) -> int:
    return _i64(src[p]) | (_i64(src[p + 1]) << 8)


@njit(inline="always")
def _le32(src: npt.NDArray[np.uint8], p: int) -> int:
    return _le16(src, p) | (_le16(src, p + 2) << 16)


@njit
def decompress_kernel(src: npt.NDArray[np.uint8], dst: npt.NDArray[np.uint8]) -> tuple[int, int, int, int]:
    """Decode ``src`` into ``dst`` (capacity = expected size). Returns ``(status, out_len, pos, detail)``.

    Long because every item kind is decoded inline in the one loop (see the module docstring for the cost of a
    helper).

    ``status`` is ``_OK`` (``pos`` = input consumed) or a negative ``_E_*`` code (``pos`` = offset of the item
    that failed, ``detail`` = the value quoted in its message).
    """
    n = src.shape[0]
    cap = dst.shape[0]
    ip = 0
    op = 0
    flags = 0
    nflags = 0
    half = -1  # input offset of the half-used length byte, or -1
    while op < cap:
        if nflags == 0:
            if ip == n:
                break
            if n - ip < 4:
                return _E_TRUNC_FLAGS, op, ip, n - ip
            flags = _le32(src, ip)
            ip += 4
            nflags = 32
        nflags -= 1
        if (flags >> nflags) & 1 == 0:
            if ip == n:
                return _E_TRUNC_LITERAL, op, ip, 0
            dst[op] = src[ip]
            op += 1
            ip += 1
            continue
        if ip == n:
            break  # end-of-stream marker
        tok = ip
        if n - ip < 2:
            return _E_TRUNC_MATCH, op, tok, n - ip
        token = _le16(src, ip)
        ip += 2
        offset = (token >> 3) + 1
        length = token & 7
        if length == 7:  # the length continues (see the package docstring)
            if half < 0:
                if ip == n:
                    return _E_TRUNC_MATCH, op, tok, n - tok
                half = ip
                length = _i64(src[ip]) & 15
                ip += 1
            else:
                length = _i64(src[half]) >> 4
                half = -1
            if length == 15:
                if ip == n:
                    return _E_TRUNC_MATCH, op, tok, n - tok
                length = _i64(src[ip])
                ip += 1
                if length == 255:
                    if n - ip < 2:
                        return _E_TRUNC_MATCH, op, tok, n - tok
                    length = _le16(src, ip)
                    ip += 2
                    if length == 0:
                        if n - ip < 4:
                            return _E_TRUNC_MATCH, op, tok, n - tok
                        length = _le32(src, ip)
                        ip += 4
                    if length < 22:
                        return _E_BAD_LENGTH, op, tok, length
                    length -= 22
                length += 15
            length += 7
        length += 3
        if offset > op:
            return _E_BAD_OFFSET, op, tok, offset
        if length > cap - op:
            return _E_OVERFLOW, op, tok, length
        s = op - offset
        # Byte by byte, front to back (right for matches overlapping their own output). A slice copy for
        # disjoint matches is a little faster but costs seconds of cold compile: not worth it.
        for i in range(length):
            dst[op + i] = dst[s + i]
        op += length
    return _OK, op, ip, 0


def as_u8(data: Input) -> npt.NDArray[np.uint8]:
    """A read-only 1-D uint8 view (no copy for contiguous input), so the kernels compile for one type only."""
    if isinstance(data, np.ndarray):
        arr = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    else:
        arr = np.frombuffer(data, dtype=np.uint8)
    arr = arr.view()
    arr.flags.writeable = False
    return arr


def decompress_jit(data: Input, out_size: int) -> bytes:
    return decompress_jit_consumed(data, out_size)[0]


def decompress_jit_consumed(data: Input, out_size: int) -> tuple[bytes, int]:
    """The output and how many bytes of ``data`` its items took (the rest was not needed for ``out_size``)."""
    src = as_u8(data)
    dst = np.empty(out_size, dtype=np.uint8)
    status, out_len, pos, detail = decompress_kernel(src, dst)
    if status != _OK:
        raise _fail(int(status), int(pos), int(detail), int(out_len), out_size)
    return dst[:out_len].tobytes(), int(pos)


def decompress_py(data: Input, out_size: int) -> bytes:
    return decompress_py_consumed(data, out_size)[0]


def decompress_py_consumed(data: Input, out_size: int) -> tuple[bytes, int]:
    """The pure-Python decoder: literal runs and matches copied as slices; returns what
    :func:`decompress_jit_consumed` returns.

    Long because it is the kernel's loop, check for check, so that the two can be read side by side."""
    src = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    n = len(src)
    out = bytearray()
    ip = 0
    flags = 0
    nflags = 0
    half = -1
    while len(out) < out_size:
        if nflags == 0:
            if ip == n:
                break
            if n - ip < 4:
                raise _fail(_E_TRUNC_FLAGS, ip, n - ip, len(out), out_size)
            flags = int.from_bytes(src[ip : ip + 4], "little")
            ip += 4
            nflags = 32
        # A run of literals: the zero bits below the current position, copied as one slice.
        pending = flags & ((1 << nflags) - 1)
        run = nflags - pending.bit_length()
        if run:
            take = min(run, out_size - len(out))
            if n - ip < take:
                out += src[ip:n]
                raise _fail(_E_TRUNC_LITERAL, n, 0, len(out), out_size)
            out += src[ip : ip + take]
            ip += take
            nflags -= take
            continue
        nflags -= 1
        if ip == n:
            break  # end-of-stream marker
        tok = ip
        if n - ip < 2:
            raise _fail(_E_TRUNC_MATCH, tok, n - ip, len(out), out_size)
        token = src[ip] | (src[ip + 1] << 8)
        ip += 2
        offset = (token >> 3) + 1
        length = token & 7
        if length == 7:
            if half < 0:
                if ip == n:
                    raise _fail(_E_TRUNC_MATCH, tok, n - tok, len(out), out_size)
                half = ip
                length = src[ip] & 15
                ip += 1
            else:
                length = src[half] >> 4
                half = -1
            if length == 15:
                if ip == n:
                    raise _fail(_E_TRUNC_MATCH, tok, n - tok, len(out), out_size)
                length = src[ip]
                ip += 1
                if length == 255:
                    if n - ip < 2:
                        raise _fail(_E_TRUNC_MATCH, tok, n - tok, len(out), out_size)
                    length = src[ip] | (src[ip + 1] << 8)
                    ip += 2
                    if length == 0:
                        if n - ip < 4:
                            raise _fail(_E_TRUNC_MATCH, tok, n - tok, len(out), out_size)
                        length = int.from_bytes(src[ip : ip + 4], "little")
                        ip += 4
                    if length < 22:
                        raise _fail(_E_BAD_LENGTH, tok, length, len(out), out_size)
                    length -= 22
                length += 15
            length += 7
        length += 3
        op = len(out)
        if offset > op:
            raise _fail(_E_BAD_OFFSET, tok, offset, op, out_size)
        if length > out_size - op:
            raise _fail(_E_OVERFLOW, tok, length, op, out_size)
        start = op - offset
        if length <= offset:
            out += out[start : start + length]
        else:  # the match overlaps its own output: it repeats the last `offset` bytes
            period = out[start:]
            reps, rest = divmod(length, offset)
            out += period * reps
            out += period[:rest]
    return bytes(out), ip
