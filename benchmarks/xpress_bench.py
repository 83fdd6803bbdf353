"""Throughput of the plain-LZ77 Xpress decoders on ETL-like buffers.

    /work/venv/bin/python benchmarks/xpress_bench.py [--buffers 64] [--seconds 1.0]

Input: 64 KiB buffers of 0x40-byte heap-event-like records (incrementing timestamps, a few varying u64
fields), compressed by heapdiff's own (numba) encoder. Figures are MB/s of *uncompressed* data (1 MB = 10**6
bytes), best of several timed rounds, after a warm-up call (so the numba figures exclude compilation).
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from heapdiff import _jit
from heapdiff.etl import xpress
from heapdiff.etl.xpress import decode as XD
from heapdiff.etl.xpress import encode as XE

BUFFER = 64 * 1024
RECORD = 0x40


def etl_like_buffer(rng: random.Random, ts: int) -> tuple[bytes, int]:
    """A 64 KiB buffer of 0x40-byte records shaped like SYSTEM_TRACE_HEADER heap events."""
    out = bytearray()
    heap = 0x000001D4_5A3E0000
    pid, tid = 0x1F34, 0x2A10 + rng.randrange(4)
    while len(out) + RECORD <= BUFFER:
        ts += rng.randrange(50, 4000)
        hook = rng.choice((0x1021, 0x1022, 0x1024))  # alloc / realloc / free
        addr = heap + rng.randrange(0x10000) * 16
        size = rng.choice((16, 24, 32, 48, 64, 128, rng.randrange(1, 4096)))
        out += struct.pack(
            "<HHIIIQQQQQQ",
            0xC002,  # version, header type
            hook,
            RECORD,  # marker-ish / size
            tid,
            pid,
            ts,
            0,  # kernel/user time
            heap,
            addr,
            size,
            0x00007FF6_12340000 + rng.randrange(0x200) * 8,  # caller-ish
        )
    out += bytes(BUFFER - len(out))
    return bytes(out), ts


def mbps(fn: Callable[[bytes, int], bytes], blobs: list[tuple[bytes, int]], seconds: float) -> float:
    total = sum(n for _, n in blobs)
    fn(*blobs[0])  # warm-up (JIT compile / cache load)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    rounds = 0
    while rounds < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for c, n in blobs:
            fn(c, n)
        best = min(best, time.perf_counter() - t0)
        rounds += 1
    return total / best / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buffers", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()

    rng = random.Random(1234)
    ts = 0x01D9_0000_0000_0000
    raw = []
    for _ in range(args.buffers):
        buf, ts = etl_like_buffer(rng, ts)
        raw.append(buf)
    total = sum(map(len, raw))
    XE.compress_jit(raw[0])  # warm-up
    encoded: dict[str, list[bytes]] = {}
    enc_seconds: dict[str, float] = {}
    for name, enc in (("jit", XE.compress_jit), ("py", XE.compress_py)):
        t0 = time.perf_counter()
        encoded[name] = [enc(b) for b in raw]
        enc_seconds[name] = time.perf_counter() - t0
    blobs = [(c, len(b)) for c, b in zip(encoded["jit"], raw, strict=True)]
    for (c, n), b in zip(blobs, raw, strict=True):
        assert xpress.decompress(c, n) == b
    ratio = sum(len(c) for c, _ in blobs) / total
    ratio_py = sum(map(len, encoded["py"])) / total
    print(f"{args.buffers} x 64 KiB ETL-like buffers, compressed to {ratio:.1%} (numba), {ratio_py:.1%} (py)")
    print("MB/s of uncompressed data (1 MB = 10**6 bytes)")
    for name in ("jit", "py"):
        label = f"heapdiff compress ({'numba' if name == 'jit' else 'pure Python'})"
        print(f"{label:42s} {total / enc_seconds[name] / 1e6:8.1f}")

    decoders: list[tuple[str, Callable[[bytes, int], bytes] | None]] = [
        ("heapdiff numba kernel" + ("" if _jit.JIT_ENABLED else " (NOT compiled)"), XD.decompress_jit),
        ("heapdiff pure Python", XD.decompress_py),
    ]
    try:
        from dissect.util.compression import lzxpress

        decoders.append(("dissect.util lzxpress (pure Python)", lambda c, n: lzxpress.decompress(c)))
    except ImportError:
        decoders.append(("dissect.util lzxpress (pure Python)", None))
    try:
        from dissect.util import _native

        native = getattr(_native.compression, "lzxpress", None)
    except ImportError:
        native = None
    decoders.append(
        ("dissect.util native lzxpress", None if native is None else (lambda c, n: native.decompress(c)))
    )

    for name, fn in decoders:
        if fn is None:
            print(f"{name:42s} {'n/a':>8s}")
            continue
        print(f"{name:42s} {mbps(fn, blobs, args.seconds):8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
