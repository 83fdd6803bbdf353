"""MS-XCA plain LZ77 "Xpress" (COMPRESSION_FORMAT_XPRESS = 3), the codec of compressed .etl buffers.

Format notes: ``etl-format.md`` section 7; algorithm: [MS-XCA] 2.3 (decompression) and 2.4 (compression).
Not LZNT1, not Xpress-Huffman.

The stream is a sequence of items announced by flag DWORDs (little-endian u32). Each flag DWORD announces the
next 32 items, most significant bit first: 0 = one literal byte, 1 = a match. A match is a little-endian u16
``(offset - 1) << 3 | min(length - 3, 7)``; when the low 3 bits are all set the length continues:

* a 4-bit value: the low half of a fresh byte, or the high half of the byte an earlier match left half-used
  (the "last length half-byte"; the two halves are shared by consecutive extended matches);
* if that nibble is 15, a byte; if that byte is 255, a u16 holding ``length - 3`` directly; if that u16 is 0,
  a u32 holding ``length - 3``.

A match flag with no input left ends the stream (the encoder pads the last flag DWORD with 1 bits).

:func:`decompress` stops when the output reaches ``out_size`` or the input runs out between items; it may
therefore return fewer than ``out_size`` bytes (callers that know the exact size must compare). Damage
raises :class:`~heapdiff.errors.TraceError` with the offset *within the compressed data* of the item that
could not be decoded (the flag DWORD, literal byte or match token); callers add the buffer's file offset.

Two decoders, same results (the tests hold them to it, error codes and offsets included):

* ``_decompress_jit``: a numba kernel over numpy ``uint8`` arrays (used when
  :data:`heapdiff._jit.JIT_ENABLED`);
* ``_decompress_py``: pure Python over ``bytes``, copying literal runs and matches as slices (used otherwise).

:func:`compress` (for the trace writer) is a small greedy hash-chain encoder, likewise a numba kernel
(``_compress_jit``) with a pure-Python fallback (``_compress_py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, cast

import numpy as np
import numpy.typing as npt

from heapdiff._jit import JIT_ENABLED, njit
from heapdiff.errors import TraceError

__all__ = ["compress", "decompress"]

WINDOW: Final = 8192  # 13 offset bits: offsets 1..8192
MIN_MATCH: Final = 3

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


def _fail(code: int, pos: int, detail: int, out_len: int, out_size: int) -> TraceError:
    msg = _MESSAGES[code].format(detail)
    return TraceError(f"{msg} (output at {out_len} of {out_size} bytes)", pos)


# ------------------------------------------------------------------------------------------ decoders
# The JIT kernel and the pure-Python decoder implement the same checks, in the same order.


# Byte reads in the kernel widen through np.int64: numba's int(uint8) stays unsigned, and unsigned mixed with
# int64 gives float64. Typed as returning int for mypy (which is what the values are).
_i64 = cast("Callable[[object], int]", np.int64)


@njit
def _decompress_kernel(src: npt.NDArray[np.uint8], dst: npt.NDArray[np.uint8]) -> tuple[int, int, int, int]:
    """Decode ``src`` into ``dst`` (capacity = expected size). Returns ``(status, out_len, pos, detail)``.

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
            flags = (
                _i64(src[ip])
                | (_i64(src[ip + 1]) << 8)
                | (_i64(src[ip + 2]) << 16)
                | (_i64(src[ip + 3]) << 24)
            )
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
        token = _i64(src[ip]) | (_i64(src[ip + 1]) << 8)
        ip += 2
        offset = (token >> 3) + 1
        length = token & 7
        if length == 7:
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
                    length = _i64(src[ip]) | (_i64(src[ip + 1]) << 8)
                    ip += 2
                    if length == 0:
                        if n - ip < 4:
                            return _E_TRUNC_MATCH, op, tok, n - tok
                        length = (
                            _i64(src[ip])
                            | (_i64(src[ip + 1]) << 8)
                            | (_i64(src[ip + 2]) << 16)
                            | (_i64(src[ip + 3]) << 24)
                        )
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
        # disjoint matches gained 8% on ETL-like data but cost 3 s of cold compile: not worth it.
        for i in range(length):
            dst[op + i] = dst[s + i]
        op += length
    return _OK, op, ip, 0


def _as_u8(data: bytes | bytearray | memoryview | npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """A read-only 1-D uint8 view (no copy for contiguous input), so the kernel compiles for one type only."""
    if isinstance(data, np.ndarray):
        arr = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    else:
        arr = np.frombuffer(data, dtype=np.uint8)
    arr = arr.view()
    arr.flags.writeable = False
    return arr


def _decompress_jit(data: bytes | bytearray | memoryview | npt.NDArray[np.generic], out_size: int) -> bytes:
    src = _as_u8(data)
    dst = np.empty(out_size, dtype=np.uint8)
    status, out_len, pos, detail = _decompress_kernel(src, dst)
    if status != _OK:
        raise _fail(int(status), int(pos), int(detail), int(out_len), out_size)
    return dst[:out_len].tobytes()


def _decompress_py(data: bytes | bytearray | memoryview | npt.NDArray[np.generic], out_size: int) -> bytes:
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
    return bytes(out)


# ------------------------------------------------------------------------------------------ encoders
# Both: greedy, hash chain of 3-byte prefixes, at most _MAX_CHAIN candidates inside the 8 KiB window, every
# position indexed. Not byte-identical (the kernel hashes into 2**_HASH_BITS buckets, the dict does not).

_MAX_LENGTH: Final = 0xFFFFFFFF + 3  # the u32 length form holds length - 3
_MAX_CHAIN: Final = 16  # hash-chain candidates tried per position
_GOOD_ENOUGH: Final = 64  # stop searching once a match this long is found
_HASH_BITS: Final = 15


def _compress_bound(n: int) -> int:
    """Largest possible output: every byte a literal, one flag DWORD per 32 items plus the final one."""
    return n + 4 * (n // 32) + 8


@njit
def _compress_kernel(src: npt.NDArray[np.uint8], dst: npt.NDArray[np.uint8]) -> int:
    """Encode ``src`` into ``dst`` (``_compress_bound(len(src))`` long or more); returns the output length."""
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
        best_len = 0
        best_off = 0
        if n - i >= MIN_MATCH:
            h = ((_i64(src[i]) << 16 | _i64(src[i + 1]) << 8 | _i64(src[i + 2])) * 2654435761) & 0xFFFFFFFF
            cand = head[h >> (32 - _HASH_BITS)]
            tries = _MAX_CHAIN
            limit = min(n - i, _MAX_LENGTH)
            while cand >= 0 and i - cand <= WINDOW and tries > 0:
                tries -= 1
                k = 0
                while k < limit and src[cand + k] == src[i + k]:
                    k += 1
                if k >= MIN_MATCH and k > best_len:
                    best_len = k
                    best_off = i - cand
                    if k >= _GOOD_ENOUGH:
                        break
                cand = prev[cand]
        if best_len < MIN_MATCH:
            dst[op] = src[i]
            op += 1
            bit = 0
            step = 1
        else:
            rest = best_len - MIN_MATCH
            token = ((best_off - 1) << 3) | min(rest, 7)
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
                        if rest < 1 << 16:
                            dst[op] = rest & 0xFF
                            dst[op + 1] = rest >> 8
                            op += 2
                        else:
                            dst[op] = 0
                            dst[op + 1] = 0
                            for b in range(4):
                                dst[op + 2 + b] = (rest >> (8 * b)) & 0xFF
                            op += 6
            bit = 1
            step = best_len
        # The item's bytes precede its flag bit: the 32nd bit closes the DWORD and opens the next one.
        flags = (flags << 1) | bit
        nflags += 1
        if nflags == 32:
            for b in range(4):
                dst[flag_pos + b] = (flags >> (8 * b)) & 0xFF
            flags = 0
            nflags = 0
            flag_pos = op
            op += 4
        end = min(i + step, n - MIN_MATCH + 1)
        for j in range(i, end):
            h = ((_i64(src[j]) << 16 | _i64(src[j + 1]) << 8 | _i64(src[j + 2])) * 2654435761) & 0xFFFFFFFF
            h >>= 32 - _HASH_BITS
            prev[j] = head[h]
            head[h] = j
        i += step
    free = 32 - nflags
    flags = (flags << free) | ((1 << free) - 1)
    for b in range(4):
        dst[flag_pos + b] = (flags >> (8 * b)) & 0xFF
    return op


def _compress_jit(data: bytes | bytearray | memoryview) -> bytes:
    src = _as_u8(data)
    dst = np.empty(_compress_bound(src.shape[0]), dtype=np.uint8)
    return dst[: _compress_kernel(src, dst)].tobytes()


def _compress_py(data: bytes | bytearray | memoryview) -> bytes:
    src = bytes(data)
    n = len(src)
    out = bytearray(4)  # flag DWORD placeholder
    flag_pos = 0
    flags = 0
    nflags = 0
    half = -1
    head: dict[bytes, int] = {}
    prev = [-1] * n

    def emit_flag(bit: int) -> None:
        nonlocal flags, nflags, flag_pos
        flags = (flags << 1) | bit
        nflags += 1
        if nflags == 32:
            out[flag_pos : flag_pos + 4] = flags.to_bytes(4, "little")
            flags = 0
            nflags = 0
            flag_pos = len(out)
            out.extend(b"\0\0\0\0")

    i = 0
    while i < n:
        best_len = 0
        best_off = 0
        if i + MIN_MATCH <= n:
            key = src[i : i + MIN_MATCH]
            cand = head.get(key, -1)
            tries = _MAX_CHAIN
            limit = min(n - i, _MAX_LENGTH)
            while cand >= 0 and i - cand <= WINDOW and tries:
                tries -= 1
                # Extend 32 bytes at a time, then byte by byte (overlap with i is fine: we compare input).
                k = MIN_MATCH
                while k + 32 <= limit and src[cand + k : cand + k + 32] == src[i + k : i + k + 32]:
                    k += 32
                while k < limit and src[cand + k] == src[i + k]:
                    k += 1
                if k > best_len:
                    best_len = k
                    best_off = i - cand
                    if k >= _GOOD_ENOUGH:
                        break
                cand = prev[cand]
        # An item's bytes go before the flag bit: the 32nd bit closes the DWORD and opens the next one.
        if best_len < MIN_MATCH:  # (no hash collisions here: the dict key is the 3 bytes themselves)
            out.append(src[i])
            emit_flag(0)
            step = 1
        else:
            rest = best_len - MIN_MATCH
            out += (((best_off - 1) << 3) | min(rest, 7)).to_bytes(2, "little")
            if rest >= 7:
                rest -= 7
                nibble = min(rest, 15)
                if half < 0:
                    half = len(out)
                    out.append(nibble)
                else:
                    out[half] |= nibble << 4
                    half = -1
                if rest >= 15:
                    rest -= 15
                    if rest < 255:
                        out.append(rest)
                    else:
                        out.append(255)
                        rest += 15 + 7  # the u16/u32 forms hold length - 3
                        if rest < 1 << 16:
                            out += rest.to_bytes(2, "little")
                        else:
                            out += b"\0\0" + rest.to_bytes(4, "little")
            emit_flag(1)
            step = best_len
        # Index every position covered by this item.
        end = min(i + step, n - MIN_MATCH + 1)
        for j in range(i, end):
            key = src[j : j + MIN_MATCH]
            prev[j] = head.get(key, -1)
            head[key] = j
        i += step
    free = 32 - nflags
    flags = (flags << free) | ((1 << free) - 1)
    out[flag_pos : flag_pos + 4] = flags.to_bytes(4, "little")
    return bytes(out)


# ------------------------------------------------------------------------------------------ public API


def decompress(data: bytes | bytearray | memoryview | npt.NDArray[np.generic], out_size: int) -> bytes:
    """Decode plain-LZ77 Xpress ``data`` into at most ``out_size`` bytes.

    Stops when the output reaches ``out_size`` or the input ends between items (so the result may be
    shorter than ``out_size``). Raises :class:`TraceError` (offset within ``data``) for input that ends
    inside an item, a match reaching before the start of the output, a match running past ``out_size``, or
    an invalid length.
    """
    if out_size < 0:
        raise ValueError(f"out_size must be >= 0, not {out_size}")
    if JIT_ENABLED:
        return _decompress_jit(data, out_size)
    return _decompress_py(data, out_size)


def compress(data: bytes | bytearray | memoryview) -> bytes:
    """Encode ``data`` as plain-LZ77 Xpress ([MS-XCA] 2.4 framing; greedy hash-chain matcher, 8 KiB window).

    Correct rather than optimal (ETL-like records: about 22% of the input size). The output always ends
    with the 1-bit padding that marks the end of the stream, so MS-XCA decoders that do not know the
    decompressed size (dissect.util's) stop cleanly.
    """
    if JIT_ENABLED:
        return _compress_jit(data)
    return _compress_py(data)
