"""MS-XCA plain LZ77 Xpress: hand-built streams, round trips, a second decoder, damage.

Every decoder test runs against both internal decoders (the numba kernel and the pure-Python path) and every
encoder test against both encoders; with numba missing or HEAPDIFF_NO_JIT=1 the "jit" variants run the same
kernel source interpreted, so they still test its logic.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heapdiff import _jit
from heapdiff.errors import TraceError
from heapdiff.etl import xpress
from heapdiff.etl.xpress import decode as XD
from heapdiff.etl.xpress import encode as XE

try:
    from dissect.util.compression import lzxpress as dissect_lzxpress
except ImportError:  # test-only dependency
    dissect_lzxpress = None

needs_dissect = pytest.mark.skipif(dissect_lzxpress is None, reason="dissect.util not installed")

Decoder = Callable[[bytes | bytearray | memoryview | np.ndarray, int], bytes]
Encoder = Callable[[bytes | bytearray | memoryview], bytes]
DECODERS: dict[str, Decoder] = {"jit": XD.decompress_jit, "py": XD.decompress_py}
ENCODERS: dict[str, Encoder] = {"jit": XE.compress_jit, "py": XE.compress_py}
each_decoder = pytest.mark.parametrize("dec", list(DECODERS), ids=[f"dec-{k}" for k in DECODERS])
each_encoder = pytest.mark.parametrize("enc", list(ENCODERS), ids=[f"enc-{k}" for k in ENCODERS])


def fw(bits: str) -> bytes:
    """A flag DWORD for the items ``bits`` (MSB first, "0" literal, "1" match), padded with 1 bits."""
    assert len(bits) <= 32
    return int(bits.ljust(32, "1"), 2).to_bytes(4, "little")


def tok(offset: int, length_field: int) -> bytes:
    return (((offset - 1) << 3) | length_field).to_bytes(2, "little")


def u16(v: int) -> bytes:
    return v.to_bytes(2, "little")


def u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


def test_flag_helper_is_msb_first() -> None:
    assert fw("000") == b"\xff\xff\xff\x1f"
    assert fw("01") == b"\xff\xff\xff\x7f"
    assert fw("0" * 32) == b"\0\0\0\0"


_ALPHABET = bytes(range(256)) * 32  # 8192 distinct-enough literals

# (name, compressed, out_size, expected)
VECTORS: list[tuple[str, bytes, int, bytes]] = [
    ("literals", fw("000") + b"abc", 3, b"abc"),
    ("literals-then-end-marker", fw("000") + b"abc", 100, b"abc"),
    (
        "two-flag-dwords",
        fw("0" * 32) + bytes(range(32)) + fw("0" * 8) + bytes(range(32, 40)),
        40,
        bytes(range(40)),
    ),
    ("simple-match", fw("0001") + b"abc" + tok(3, 0), 6, b"abcabc"),
    ("match-then-literal", fw("00010") + b"abc" + tok(3, 0) + b"d", 7, b"abcabcd"),
    ("match-longer-than-offset-rle", fw("01") + b"a" + tok(1, 6), 10, b"a" * 10),
    ("match-overlap-period-3", fw("0001") + b"xyz" + tok(3, 5), 11, b"xyzxyzxyzxy"),
    ("nibble", fw("01") + b"a" + tok(1, 7) + b"\x03", 14, b"a" * 14),
    # Two extended matches share one length byte: low half first, high half second (no new byte).
    (
        "shared-half-byte",
        fw("01010") + b"a" + tok(1, 7) + b"\xa3" + b"b" + tok(1, 7) + b"c",
        36,
        b"a" * 14 + b"b" * 21 + b"c",
    ),
    # The third extended match opens a fresh half-byte after the pair is used up.
    (
        "third-nibble-new-byte",
        fw("0101010") + b"a" + tok(1, 7) + b"\x21" + b"b" + tok(1, 7) + b"c" + tok(1, 7) + b"\x04" + b"d",
        1 + 11 + 1 + 12 + 1 + 14 + 1,
        b"a" * 12 + b"b" * 13 + b"c" * 15 + b"d",
    ),
    ("byte-extension", fw("01") + b"a" + tok(1, 7) + b"\x0f\x05", 31, b"a" * 31),
    ("byte-extension-offset-2", fw("001") + b"ab" + tok(2, 7) + b"\x0f\x00", 27, (b"ab" * 14)[:27]),
    # High half-byte 15, then the extension byte comes from the current input position.
    (
        "shared-half-byte-then-byte",
        fw("0101") + b"a" + tok(1, 7) + b"\xf3" + b"b" + tok(1, 7) + b"\x05",
        45,
        b"a" * 14 + b"b" * 31,
    ),
    ("u16-extension", fw("01") + b"a" + tok(1, 7) + b"\x0f\xff" + u16(997), 1001, b"a" * 1001),
    ("u16-extension-minimum", fw("01") + b"a" + tok(1, 7) + b"\x0f\xff" + u16(22), 26, b"a" * 26),
    ("u32-extension", fw("01") + b"a" + tok(1, 7) + b"\x0f\xff\x00\x00" + u32(69997), 70001, b"a" * 70001),
    (
        "max-offset-8192",
        b"".join(fw("0" * 32) + _ALPHABET[i : i + 32] for i in range(0, 8192, 32)) + fw("1") + tok(8192, 0),
        8195,
        _ALPHABET + _ALPHABET[:3],
    ),
]
VECTOR_IDS = [v[0] for v in VECTORS]


@each_decoder
@pytest.mark.parametrize(("name", "data", "out_size", "expected"), VECTORS, ids=VECTOR_IDS)
def test_vectors(dec: str, name: str, data: bytes, out_size: int, expected: bytes) -> None:
    assert DECODERS[dec](data, out_size) == expected


@needs_dissect
@pytest.mark.parametrize(("name", "data", "out_size", "expected"), VECTORS, ids=VECTOR_IDS)
def test_vectors_agree_with_dissect(name: str, data: bytes, out_size: int, expected: bytes) -> None:
    """The hand-built streams are valid MS-XCA: an independent decoder reads them the same way."""
    assert dissect_lzxpress is not None
    assert dissect_lzxpress.decompress(data) == expected


@each_decoder
def test_stops_at_out_size_before_reading_further(dec: str) -> None:
    data = fw("0001") + b"abc" + tok(3, 0)
    assert DECODERS[dec](data, 3) == b"abc"
    assert DECODERS[dec](data, 2) == b"ab"
    assert DECODERS[dec](b"\x01garbage", 0) == b""


@each_decoder
def test_input_ending_on_flag_boundary_returns_short_output(dec: str) -> None:
    data = fw("0" * 32) + bytes(range(32))
    assert DECODERS[dec](data, 100) == bytes(range(32))
    assert DECODERS[dec](b"", 100) == b""


@each_decoder
def test_input_types(dec: str) -> None:
    data = fw("0001") + b"abc" + tok(3, 0)
    padded = b"\xee" * 5 + data + b"\xee" * 3
    arrays = (np.frombuffer(data, np.uint8), np.frombuffer(padded, np.uint8)[5:-3].copy())
    for value in (data, bytearray(data), memoryview(data), memoryview(padded)[5:-3], *arrays):
        assert DECODERS[dec](value, 6) == b"abcabc"


# ------------------------------------------------------------------------------------------ damage


def _raises(dec: str, data: bytes, out_size: int, offset: int, words: str) -> TraceError:
    with pytest.raises(TraceError) as info:
        DECODERS[dec](data, out_size)
    assert info.value.offset == offset, str(info.value)
    assert words in info.value.message, info.value.message
    return info.value


CORRUPT: list[tuple[str, bytes, int, int, str]] = [
    # (name, data, out_size, offset of the failing item, words in the message)
    ("flags-cut", b"\xff\xff", 10, 0, "flag DWORD"),
    ("second-flags-cut", fw("0" * 32) + bytes(32) + b"\0\0\0", 100, 36, "flag DWORD"),
    ("literal-missing", fw("000") + b"ab", 10, 6, "literal"),
    ("token-cut", fw("01") + b"a" + b"\x07", 10, 5, "match token"),
    ("nibble-missing", fw("01") + b"a" + tok(1, 7), 100, 5, "match token"),
    ("byte-missing", fw("01") + b"a" + tok(1, 7) + b"\x0f", 100, 5, "match token"),
    ("u16-cut", fw("01") + b"a" + tok(1, 7) + b"\x0f\xff\x01", 2000, 5, "match token"),
    ("u32-cut", fw("01") + b"a" + tok(1, 7) + b"\x0f\xff\x00\x00\x01\x00\x00", 10**6, 5, "match token"),
    ("u16-length-below-22", fw("01") + b"a" + tok(1, 7) + b"\x0f\xff" + u16(21), 100, 5, "below the 22"),
    ("u32-length-below-22", fw("01") + b"a" + tok(1, 7) + b"\x0f\xff\0\0" + u32(5), 100, 5, "below the 22"),
    ("offset-before-start", fw("01") + b"a" + tok(2, 0), 10, 5, "before the start"),
    ("match-first", fw("1") + tok(1, 0), 10, 4, "before the start"),
    (
        "offset-8192-at-8191",
        b"".join(fw("0" * 32) + _ALPHABET[i : i + 32] for i in range(0, 8160, 32))
        + fw("0" * 31 + "1")
        + _ALPHABET[8160:8191]
        + tok(8192, 0),
        9000,
        4 * 256 + 8191,
        "before the start",
    ),
    ("out-size-too-small", fw("01") + b"a" + tok(1, 6), 9, 5, "past the expected"),
    (
        "huge-u32-length",
        fw("01") + b"a" + tok(1, 7) + b"\x0f\xff\0\0\xff\xff\xff\xff",
        1 << 20,
        5,
        "past the expected",
    ),
]

CORRUPT_IDS = [c[0] for c in CORRUPT]


@each_decoder
@pytest.mark.parametrize(("name", "data", "out_size", "offset", "words"), CORRUPT, ids=CORRUPT_IDS)
def test_corrupt(dec: str, name: str, data: bytes, out_size: int, offset: int, words: str) -> None:
    _raises(dec, data, out_size, offset, words)


@each_decoder
def test_out_size_exact_fits(dec: str) -> None:
    """The boundary of out-size-too-small: one more byte of room and the same stream decodes."""
    assert DECODERS[dec](fw("01") + b"a" + tok(1, 6), 10) == b"a" * 10


def test_negative_out_size() -> None:
    with pytest.raises(ValueError):
        xpress.decompress(b"", -1)


def test_error_names_offset_in_str() -> None:
    err = _raises("py", fw("01") + b"a" + tok(2, 0), 10, 5, "before the start")
    assert "0x5" in str(err) and "output at 1 of 10" in str(err)


# ------------------------------------------------------------------------------------------ round trips


def etl_like(n_records: int, seed: int) -> bytes:
    rng = random.Random(seed)
    ts = 0x01D9_0000_0000_0000
    out = bytearray()
    for _ in range(n_records):
        ts += rng.randrange(50, 4000)
        out += struct.pack(
            "<HHIQQQQQQQ",
            0xC002,
            rng.choice((0x1021, 0x1022, 0x1024)),
            0x40,
            ts,
            0x1F34,
            0x1D45A3E0000,
            0x1D45A3E0000 + rng.randrange(1 << 16) * 16,
            rng.randrange(4096),
            0x7FF612340000 + rng.randrange(512) * 8,
            0,
        )
    return bytes(out)


FIXED_INPUTS = {
    "empty": b"",
    "one": b"x",
    "two": b"xy",
    "three-same": b"aaa",
    "31": bytes(range(31)),
    "32": bytes(range(32)),
    "33": bytes(range(33)),
    "zeros-8191": bytes(8191),
    "zeros-8192": bytes(8192),
    "zeros-70000-u32": bytes(70000),
    "zeros-300-u16": bytes(300),
    "random-9000": random.Random(1).randbytes(9000),
    "period-8192": random.Random(2).randbytes(8192) * 3,
    "period-8193": random.Random(3).randbytes(8193) * 3,
    "etl-like-64k": etl_like(1024, 7),
    "text": b"the quick brown fox jumps over the lazy dog; " * 200,
}


def _check_round_trip(enc: str, data: bytes) -> bytes:
    packed = ENCODERS[enc](data)
    for name, dec in DECODERS.items():
        assert dec(packed, len(data)) == data, name
        assert dec(packed, len(data) + 17) == data, name  # the end marker stops it
    if dissect_lzxpress is not None:
        assert dissect_lzxpress.decompress(packed) == data, "dissect"
    return packed


@each_encoder
@pytest.mark.parametrize("key", list(FIXED_INPUTS))
def test_round_trip_fixed(enc: str, key: str) -> None:
    data = FIXED_INPUTS[key]
    packed = _check_round_trip(enc, data)
    assert len(packed) <= XE.compress_bound(len(data))


@each_encoder
def test_compresses_what_repeats(enc: str) -> None:
    assert len(ENCODERS[enc](bytes(70000))) < 20
    assert len(ENCODERS[enc](FIXED_INPUTS["etl-like-64k"])) < 0.4 * len(FIXED_INPUTS["etl-like-64k"])


@each_encoder
def test_public_compress_matches_an_encoder(enc: str) -> None:
    data = FIXED_INPUTS["text"]
    expected = ENCODERS["jit" if _jit.JIT_ENABLED else "py"](data)
    assert xpress.compress(data) == expected
    assert xpress.decompress(expected, len(data)) == data


@each_encoder
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=5000))
def test_round_trip_random(enc: str, data: bytes) -> None:
    _check_round_trip(enc, data)


repetitive = st.builds(
    lambda chunks, reps: b"".join(c * r for c, r in zip(chunks, reps, strict=False)),
    st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=8),
    st.lists(st.integers(1, 400), min_size=8, max_size=8),
)


@each_encoder
@settings(max_examples=150, deadline=None)
@given(data=repetitive)
def test_round_trip_repetitive(enc: str, data: bytes) -> None:
    _check_round_trip(enc, data)


# ------------------------------------------------------------------------------------------ decoders agree


def _outcome(dec: str, data: bytes, out_size: int) -> tuple[str, bytes | str, int]:
    try:
        out = DECODERS[dec](data, out_size)
    except TraceError as e:
        return ("error", e.message, e.offset)
    assert len(out) <= out_size
    return ("ok", out, len(out))


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=300), out_size=st.integers(0, 3000))
def test_decoders_agree_on_garbage(data: bytes, out_size: int) -> None:
    """Arbitrary input: same bytes or the same error at the same offset, never anything else (or a hang)."""
    assert _outcome("jit", data, out_size) == _outcome("py", data, out_size)


@settings(max_examples=200, deadline=None)
@given(
    data=repetitive,
    cut=st.integers(0, 1 << 16),
    flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), max_size=3),
)
def test_decoders_agree_on_damaged_streams(data: bytes, cut: int, flips: list[tuple[int, int]]) -> None:
    packed = bytearray(XE.compress_py(data))
    for pos, x in flips:
        packed[pos % len(packed)] ^= x
    damaged = bytes(packed[: cut % (len(packed) + 1)])
    assert _outcome("jit", damaged, len(data)) == _outcome("py", damaged, len(data))


@each_decoder
@settings(max_examples=100, deadline=None)
@given(data=repetitive, cut=st.integers(0, 1 << 16))
def test_truncation_gives_prefix_or_trace_error(dec: str, data: bytes, cut: int) -> None:
    packed = XE.compress_py(data)
    cut %= len(packed)  # always removes at least the last byte
    try:
        out = DECODERS[dec](packed[:cut], len(data))
    except TraceError as e:
        assert 0 <= e.offset <= cut
    else:
        assert data.startswith(out)


# ------------------------------------------------------------------------------------------ JIT switch


def test_decompress_and_compress_dispatch_on_jit_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def spy(name: str) -> Callable[..., bytes]:
        def called(*args: object) -> bytes:
            calls.append(name)
            return b""

        return called

    for name in ("decompress_jit", "decompress_py", "compress_jit", "compress_py"):
        monkeypatch.setattr(xpress, name, spy(name))
    for flag in (True, False):
        monkeypatch.setattr(xpress, "JIT_ENABLED", flag)
        xpress.decompress(b"", 0)
        xpress.compress(b"")
    assert calls == ["decompress_jit", "compress_jit", "decompress_py", "compress_py"]


def test_kernels_are_compiled_when_jit_enabled() -> None:
    if not _jit.JIT_ENABLED:
        pytest.skip("numba missing or HEAPDIFF_NO_JIT set")
    xpress.decompress(xpress.compress(b"abcabc"), 6)
    assert getattr(
        XD.decompress_kernel, "signatures", None
    )  # a numba dispatcher, not the plain function
    assert getattr(XE.compress_kernel, "signatures", None)


@pytest.mark.parametrize(("value", "enabled"), [("1", False), ("0", True), ("", True)])
def test_heapdiff_no_jit_env(value: str, enabled: bool) -> None:
    pytest.importorskip("numba")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HEAPDIFF_NO_JIT": value, "PYTHONPATH": str(root)}
    code = (
        "import sys, heapdiff._jit as j, heapdiff.etl.xpress as x, heapdiff.etl.xpress.decode as d;"
        "print(j.JIT_ENABLED, x.JIT_ENABLED, 'numba' in sys.modules,"
        " hasattr(d.decompress_kernel, 'signatures'))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(enabled)] * 4
