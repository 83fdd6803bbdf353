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

Decoding (:mod:`heapdiff.etl.xpress.decode`) is the reader's; encoding (:mod:`heapdiff.etl.xpress.encode`) the
trace writer's. Each has a numba kernel and a pure-Python twin; :func:`decompress` and :func:`compress` take the
kernel when :data:`heapdiff._jit.JIT_ENABLED`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from heapdiff._jit import JIT_ENABLED
from heapdiff.etl.xpress.decode import decompress_jit, decompress_jit_consumed, decompress_py, decompress_py_consumed
from heapdiff.etl.xpress.encode import compress_jit, compress_py

__all__ = ["compress", "decompress", "decompress_consumed"]


def decompress(data: bytes | bytearray | memoryview | npt.NDArray[np.generic], out_size: int) -> bytes:
    """Decode plain-LZ77 Xpress ``data`` into at most ``out_size`` bytes.

    Stops when the output reaches ``out_size`` or the input ends between items (so the result may be
    shorter than ``out_size``: callers that know the exact size must compare). Raises :class:`TraceError`
    (offset within ``data``) for input that ends inside an item, a match reaching before the start of the
    output, a match running past ``out_size``, or an invalid length.
    """
    if out_size < 0:
        raise ValueError(f"out_size must be >= 0, not {out_size}")
    if JIT_ENABLED:
        return decompress_jit(data, out_size)
    return decompress_py(data, out_size)


def decompress_consumed(data: bytes | bytearray | memoryview | npt.NDArray[np.generic],
                        out_size: int) -> tuple[bytes, int]:
    """:func:`decompress`, and how many bytes of ``data`` it decoded: what is left was not needed to reach
    ``out_size`` (a stream holding more than its caller expected), or is padding after the stream's end."""
    if out_size < 0:
        raise ValueError(f"out_size must be >= 0, not {out_size}")
    if JIT_ENABLED:
        return decompress_jit_consumed(data, out_size)
    return decompress_py_consumed(data, out_size)


def compress(data: bytes | bytearray | memoryview) -> bytes:
    """Encode ``data`` as plain-LZ77 Xpress ([MS-XCA] 2.4 framing; greedy hash-chain matcher, 8 KiB window).

    Correct rather than optimal (its ratio on ETL-like records: benchmarks/profile.md). The output always ends with the
    1-bit padding that marks the end of the stream, so MS-XCA decoders that do not know the decompressed size
    (dissect.util's) stop cleanly.
    """
    if JIT_ENABLED:
        return compress_jit(data)
    return compress_py(data)
