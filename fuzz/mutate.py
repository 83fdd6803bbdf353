"""Structure-aware mutations of a seed trace, deterministic from a seed number.

A mutation is a small JSON-able list, ``[operator, *arguments]``, whose arguments are plain numbers (a buffer index,
a record index, a field, a value) resolved against the file when it is applied; :func:`draw` picks 1-3 of them from a
``random.Random`` seeded with ``(run seed, input number)`` and :func:`apply` is a pure function of (seed trace,
mutations), so every input replays from those two alone.

Operators know the layout that :mod:`heapdiff.etl.structs` declares. They are applied in four phases whatever their
order in the list, so that each addresses the file it was meant for:

1. content of one buffer: a buffer-header field, the compression flag, a logfile-header field (the pointer size
   too), a record-header field or size, a heap payload field (sizes like 0xFFFFFFFFFFFF0041, addresses, heap
   handles), a stack field, a bit of a buffer's uncompressed bytes, a byte of a compressed stream. Inside a
   compressed buffer the record operators decompress, mutate and compress again (:mod:`heapdiff.etl.xpress`);
2. the buffer sequence: drop, swap, duplicate, blank (all-zero or all-0xFF, same size), insert a blank buffer;
3. bytes anywhere: flip, set, insert, delete, a 32-bit value;
4. truncation: at a buffer boundary plus a delta (exactly at it, a few bytes after, inside the next header), or
   anywhere.

:func:`apply` also says when the silent-loss rule cannot apply: a mutation that rewrites a record's marker, header
type, hook or size (or a byte of a compressed stream, which may do the same unseen) turns a heap record into a valid
record of another kind or frames it away, which no reader can tell from an undamaged file; and a cut exactly between
two buffers, under a logfile header whose BuffersWritten vouches for none of the buffers cut (0, as a logger that
never closed its file leaves it, or no more than the buffers kept), leaves a file that is whole by everything it
says.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from fuzz.seeds import Record, Seed, buffer_body, walk_records
from heapdiff.etl import payloads as P
from heapdiff.etl import structs as S
from heapdiff.etl.xpress import compress
from heapdiff.events import kinds as K

Mutation = list[Any]

U32_EXTREMES: Final = (0, 1, 7, 8, 0x3F, 0x47, 0x48, 0x49, 0x50, 0x400, 0xFFF8, 0xFFFF, 0x10000, 0x10001,
                       0x7FFFFFFF, 0x80000000, 0xFFFFFFF8, 0xFFFFFFFF, 64 << 20, (64 << 20) + 8, 1 << 31 | 0x48)
U64_EXTREMES: Final = (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 0xFFFFFFFF, 1 << 32, 0xFFFF_C000_0000_0000)
#: values for heap payload fields: huge sizes (negative as signed), kernel-space and null addresses, 32-bit edges
HEAP_VALUES: Final = (0xFFFFFFFFFFFF0041, 1 << 63, (1 << 63) - 1, (1 << 64) - 1, 0xFFFFFFFF, 0x80000041, 0x80000000,
                      0, 1, 1 << 32, 1 << 47, 0xFFFF_8000_0000_0000, 0x7FFF_FFFF_0000, 0x1F0000, 0x0200_0000)
#: record-header fields every header kind has (notes 3.1-3.3): name -> (offset, struct code)
RECORD_FIELDS: Final = {"marker": (0, "I"), "version": (0, "H"), "header_type": (2, "B"), "flags": (3, "B"),
                        "size": (4, "H"), "hook": (6, "H"), "thread": (8, "I"), "process": (0xC, "I"),
                        "timestamp": (0x10, "Q"), "perfinfo_timestamp": (8, "Q")}
#: rewriting these makes a record another valid record, or frames it away: no reader can see a loss
RELABELS: Final = frozenset({"marker", "version", "header_type", "flags", "size", "hook"})
_CODES: Final = {"u16": "H", "u32": "I", "u64": "Q", "i32": "i", "i64": "q"}
_HEAP_PAYLOADS: Final = {K.HOOK_HEAP_ALLOC: P.HEAP_ALLOC, K.HOOK_HEAP_FREE: P.HEAP_FREE,
                         K.HOOK_HEAP_REALLOC: P.HEAP_REALLOC}
_STACK_HOOKS: Final = frozenset({K.HOOK_STACK_WALK, K.HOOK_STACK_KEY_USER, K.HOOK_STACK_KEY_KERNEL,
                                 K.HOOK_STACK_KEY_CREATE, K.HOOK_STACK_KEY_RUNDOWN})
_HEADER_SIZES: Final = {S.HT_SYSTEM32: 0x20, S.HT_SYSTEM64: 0x20, S.HT_COMPACT32: 0x18, S.HT_COMPACT64: 0x18,
                        S.HT_PERFINFO32: 0x10, S.HT_PERFINFO64: 0x10}
_PTR_OF: Final = {S.HT_SYSTEM32: 4, S.HT_COMPACT32: 4, S.HT_PERFINFO32: 4}
BUFFER_FIELDS: Final = tuple(f[1] for f in S.BUFFER_HEADER.fields if f[1] != "ReferenceTime")
LOGFILE_FIELDS: Final = ("BufferSize", "Version", "NumberOfProcessors", "LogFileMode", "BuffersWritten",
                         "PointerSize", "EventsLost", "PerfFreq", "StartTime", "EndTime", "ReservedFlags",
                         "BuffersLost", "CpuSpeedInMHz")

PHASE: Final = {
    "buffer_field": 1, "compress_flag": 1, "logfile_field": 1, "record_field": 1, "record_size": 1,
    "heap_field": 1, "stack_field": 1, "body_flip": 1, "stream_byte": 1,
    "drop": 2, "swap": 2, "duplicate": 2, "blank": 2, "insert_blank": 2,
    "flip": 3, "byte": 3, "insert": 3, "delete": 3, "u32": 3,
    "truncate_boundary": 4, "truncate": 4,
}


@dataclass
class Mutated:
    data: bytes
    #: why the silent-loss rule does not apply to this input (None: it does)
    exempt: str | None = None


# --- drawing ------------------------------------------------------------------------------------------------
def _value(rng: random.Random, width: int) -> int:
    pool = U32_EXTREMES if width <= 4 or rng.random() < 0.3 else U64_EXTREMES
    v = rng.choice(pool) if rng.random() < 0.85 else rng.getrandbits(8 * width)
    return v & ((1 << (8 * width)) - 1)


def _middle(rng: random.Random, n: int) -> int:
    """A buffer index, mostly one in the middle (not the header buffer, not the last)."""
    if n > 2 and rng.random() < 0.8:
        return rng.randrange(1, n - 1)
    return rng.randrange(max(n, 1))


def draw_one(rng: random.Random, seed: Seed) -> Mutation:
    """One mutation: an operator drawn by weight, its arguments drawn from the seed's layout."""
    n = len(seed.buffers)
    size = len(seed.data)
    op = rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()))[0]
    if op == "buffer_field":
        f = rng.choice(BUFFER_FIELDS)
        width = struct.calcsize(_CODES.get(S.BUFFER_HEADER.types[f], "Q"))
        return [op, _middle(rng, n), f, _value(rng, width)]
    if op == "compress_flag":
        return [op, _middle(rng, n)]
    if op == "logfile_field":
        f = rng.choice(LOGFILE_FIELDS)
        if f == "PointerSize" and rng.random() < 0.7:
            return [op, f, rng.choice((0, 1, 2, 4, 8, 16, 0xFFFFFFFF))]
        lfh = S.LOGFILE_HEADER64 if seed.pointer_size == 8 else S.LOGFILE_HEADER32
        return [op, f, _value(rng, struct.calcsize(_CODES[lfh.types[f]]))]
    if op == "record_field":
        f = rng.choice(list(RECORD_FIELDS))
        return [op, _middle(rng, n), rng.randrange(1 << 16), f,
                _value(rng, struct.calcsize(RECORD_FIELDS[f][1]))]
    if op == "record_size":
        return [op, _middle(rng, n), rng.randrange(1 << 16), rng.choice((-9, -8, -1, 1, 7, 8, 16, 0x100, -0x20))]
    if op == "heap_field":
        return [op, _middle(rng, n), rng.randrange(1 << 16), rng.randrange(8), rng.choice(HEAP_VALUES)]
    if op == "stack_field":
        return [op, _middle(rng, n), rng.randrange(1 << 16), rng.randrange(6), rng.choice(HEAP_VALUES)]
    if op == "body_flip":
        return [op, _middle(rng, n), rng.randrange(1 << 16), rng.randrange(8)]
    if op == "stream_byte":
        return [op, _middle(rng, n), rng.randrange(1 << 16), rng.randrange(256)]
    if op in ("drop", "blank"):
        return [op, _middle(rng, n)] + ([rng.choice((0x00, 0xFF))] if op == "blank" else [])
    if op == "swap":
        return [op, _middle(rng, n), _middle(rng, n)]
    if op == "duplicate":
        return [op, _middle(rng, n), rng.randrange(n + 1)]
    if op == "insert_blank":
        return [op, _middle(rng, n), rng.choice((0x00, 0xFF)), rng.choice((0x1000, 0x48, 0x400, 0x10000))]
    if op == "flip":
        return [op, rng.randrange(size), rng.randrange(8)]
    if op == "byte":
        return [op, rng.randrange(size), rng.randrange(256)]
    if op == "insert":
        return [op, rng.randrange(size + 1), rng.randbytes(rng.choice((1, 4, 8, 48))).hex()]
    if op == "delete":
        return [op, rng.randrange(size), rng.choice((1, 4, 8, 0x48, 0x200))]
    if op == "u32":
        return [op, rng.randrange(size) & ~3, _value(rng, 4)]
    if op == "truncate_boundary":
        delta = rng.choice((0, 0, 0, 1, 4, 7, 8, 0x10, 0x47, 0x48, 0x49, 0x50, -1, -8))
        return [op, rng.randrange(1, n + 1) if n > 1 else 1, delta]
    return ["truncate", rng.randrange(size)]


#: operator -> weight; structure-aware ones dominate, the blind byte operators keep the rest honest
_WEIGHTS: Final = {
    "buffer_field": 12, "compress_flag": 3, "logfile_field": 8, "record_field": 10, "record_size": 4,
    "heap_field": 14, "stack_field": 5, "body_flip": 5, "stream_byte": 4,
    "drop": 4, "swap": 3, "duplicate": 3, "blank": 6, "insert_blank": 3,
    "flip": 4, "byte": 2, "insert": 2, "delete": 2, "u32": 2,
    "truncate_boundary": 8, "truncate": 3,
}
assert set(_WEIGHTS) == set(PHASE)


def draw(rng: random.Random, seed: Seed) -> list[Mutation]:
    """1-3 mutations, one most of the time (each failure then names its cause alone)."""
    k = rng.choices((1, 2, 3), weights=(70, 20, 10))[0]
    return [draw_one(rng, seed) for _ in range(k)]


# --- applying -----------------------------------------------------------------------------------------------
def _put(b: bytearray, off: int, code: str, value: int) -> None:
    code = code.upper()   # the bits of the value, whatever the field's sign
    n = struct.calcsize(code)
    if off >= 0 and off + n <= len(b):
        struct.pack_into("<" + code, b, off, value & ((1 << (8 * n)) - 1))


class _Chunk:
    """One buffer of the file being mutated; a compressed one is decoded on first touch and encoded at the end."""

    def __init__(self, raw: bytes) -> None:
        self.raw = bytearray(raw)
        self.body: bytearray | None = None   # uncompressed bytes (header included), when edited
        self.compressed = False

    def records(self) -> list[Record]:
        return list(walk_records(bytes(self.plain())))

    def plain(self) -> bytearray:
        if self.body is not None:
            return self.body
        got = buffer_body(bytes(self.raw), 0, whole_stream=True)
        if got is None or not got[1]:
            return self.raw
        self.body = bytearray(got[0])
        self.compressed = True
        return self.body

    def bytes(self) -> bytes:
        if self.body is None or not self.compressed:
            return bytes(self.raw)
        comp = compress(bytes(self.body[S.BUFFER_HEADER_SIZE:]))
        head = bytearray(self.raw[:S.BUFFER_HEADER_SIZE])
        struct.pack_into("<I", head, 0, S.BUFFER_HEADER_SIZE + len(comp))   # BufferSize = on-disk size (notes 7)
        return bytes(head) + comp


def _chunks(seed: Seed) -> tuple[list[_Chunk], bytes]:
    chunks = [_Chunk(seed.data[b.offset:b.offset + b.size]) for b in seed.buffers]
    end = seed.buffers[-1].offset + seed.buffers[-1].size if seed.buffers else 0
    return chunks, seed.data[end:]


def _pick(recs: Sequence[Record], k: int, want: frozenset[int] | None = None) -> Record | None:
    pool = [r for r in recs if want is None or (r.hook in want and r.header_type in _HEADER_SIZES)]
    return pool[k % len(pool)] if pool else None


def _content(m: Mutation, chunks: list[_Chunk], seed: Seed) -> str | None:
    """Phase 1; returns why the silent-loss rule no longer applies, if it does not."""
    op = m[0]
    if op == "logfile_field":
        _put(chunks[0].raw, *_logfile_field(seed, m[1]), m[2])
        return None
    c = chunks[m[1] % len(chunks)]
    if op == "buffer_field":
        code = _CODES.get(S.BUFFER_HEADER.types[m[2]], "Q")
        _put(c.raw, S.BUFFER_HEADER.off(m[2]), code, m[3])
        if c.body is not None:
            c.body[:S.BUFFER_HEADER_SIZE] = c.raw[:S.BUFFER_HEADER_SIZE]
        return None
    if op == "compress_flag":
        (flags,) = struct.unpack_from("<H", c.raw, S.BUFFER_HEADER.off("BufferFlag"))
        _put(c.raw, S.BUFFER_HEADER.off("BufferFlag"), "H", flags ^ S.BUFFER_FLAG_COMPRESSED)
        return None
    if op == "stream_byte":
        if len(c.raw) <= S.BUFFER_HEADER_SIZE:
            return None
        pos = S.BUFFER_HEADER_SIZE + m[2] % (len(c.raw) - S.BUFFER_HEADER_SIZE)
        heads = [] if c.body is not None else [r.offset for r in c.records()]   # a plain buffer's records
        c.raw[pos] = m[3]
        if c.plain() is not c.raw:
            return "a byte of a compressed stream"
        return "a record header byte" if any(h <= pos < h + 8 for h in heads) else None
    body = c.plain()
    if body is c.raw and len(c.raw) >= S.BUFFER_HEADER_SIZE and \
            struct.unpack_from("<H", c.raw, S.BUFFER_HEADER.off("BufferFlag"))[0] & S.BUFFER_FLAG_COMPRESSED:
        return None   # a compressed buffer that an earlier mutation made undecodable: nothing to edit inside
    recs = c.records()
    if op == "body_flip":
        if len(body) <= S.BUFFER_HEADER_SIZE:
            return None
        pos = S.BUFFER_HEADER_SIZE + m[2] % (len(body) - S.BUFFER_HEADER_SIZE)
        body[pos] ^= 1 << m[3]
        return "a record header byte" if any(r.offset <= pos < r.offset + 8 for r in recs) else None
    if op in ("record_field", "record_size"):
        r = _pick(recs, m[2])
        if r is None:
            return None
        if op == "record_size":
            off, code = RECORD_FIELDS["size"]
            size = struct.unpack_from("<H", body, r.offset + off)[0] if r.header_type in _HEADER_SIZES else r.size
            _put(body, r.offset + (off if r.header_type in _HEADER_SIZES else 0), "H", size + m[3])
            return "a record's size"
        off, code = RECORD_FIELDS[m[3]]
        if off + struct.calcsize(code) > r.size:
            return None   # not in this record: past its end would be the next record's marker
        _put(body, r.offset + off, code, m[4])
        return f"a record's {m[3]}" if m[3] in RELABELS else None
    if op == "heap_field":
        r = _pick(recs, m[2], frozenset(_HEAP_PAYLOADS))
        if r is None:
            return None
        layout = _HEAP_PAYLOADS[r.hook][_PTR_OF.get(r.header_type, 8)]
        names = [f[1] for f in layout.fields]
        name = names[m[3] % len(names)]
        _put(body, r.offset + _HEADER_SIZES[r.header_type] + layout.off(name),
             _CODES[layout.types[name]], m[4])
        return None
    if op == "stack_field":
        r = _pick(recs, m[2], _STACK_HOOKS)
        if r is None:
            return None
        ptr = _PTR_OF.get(r.header_type, 8)
        at = r.offset + _HEADER_SIZES[r.header_type]
        spots = [(0, "Q"), (8, "I"), (0xC, "I"), (0x10, "Q" if ptr == 8 else "I"), (0, "Q" if ptr == 8 else "I"),
                 (r.size - _HEADER_SIZES[r.header_type] - ptr, "Q" if ptr == 8 else "I")]
        spots = [(o, c) for o, c in spots if o >= 0 and at + o + struct.calcsize(c) <= r.offset + r.size]
        if spots:   # only inside the record: past its end would be the next record's marker
            off, code = spots[m[3] % len(spots)]
            _put(body, at + off, code, m[4])
        return None
    raise ValueError(f"unknown mutation {m!r}")


def _structure(m: Mutation, chunks: list[_Chunk]) -> None:
    """Phase 2."""
    op, n = m[0], len(chunks)
    if not n:
        return
    b = m[1] % n
    if op == "drop" and n > 1:
        del chunks[b]
    elif op == "swap":
        o = m[2] % n
        chunks[b], chunks[o] = chunks[o], chunks[b]
    elif op == "duplicate":
        chunks.insert(m[2] % (n + 1), _Chunk(chunks[b].bytes()))
    elif op == "blank":
        chunks[b] = _Chunk(bytes([m[2]]) * len(chunks[b].bytes()))
    elif op == "insert_blank":
        chunks.insert(b, _Chunk(bytes([m[2]]) * m[3]))


def _record_heads(chunks: Sequence[_Chunk]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Spans of the first 8 bytes of every record of the plain buffers, and of every compressed stream, in the
    file the chunks make."""
    heads: list[tuple[int, int]] = []
    streams: list[tuple[int, int]] = []
    off = 0
    for c in chunks:
        raw = c.bytes()
        got = buffer_body(raw, 0)
        if got is not None and got[1]:
            streams.append((off + S.BUFFER_HEADER_SIZE, off + len(raw)))
        elif got is not None:
            heads += [(off + r.offset, off + r.offset + 8) for r in walk_records(got[0])]
        off += len(raw)
    return heads, streams


def apply(seed: Seed, mutations: Sequence[Mutation]) -> Mutated:
    """The seed's bytes with ``mutations`` applied, phase by phase (see the module docstring)."""
    chunks, tail = _chunks(seed)
    exempt: str | None = None
    ordered = sorted(mutations, key=lambda m: PHASE[m[0]])
    for m in ordered:
        if PHASE[m[0]] == 1 and chunks:
            exempt = _content(m, chunks, seed) or exempt
        elif PHASE[m[0]] == 2:
            _structure(m, chunks)
    parts = [c.bytes() for c in chunks]
    bounds = [0]
    for p in parts:
        bounds.append(bounds[-1] + len(p))
    data = bytearray(b"".join(parts) + tail)
    flat = [m for m in ordered if PHASE[m[0]] == 3]
    if flat:
        heads, streams = _record_heads(chunks)
        for m in flat:
            n = len(data)
            if not n and m[0] != "insert":
                continue
            pos = m[1] % (n + 1) if m[0] == "insert" else m[1] % n
            if any(a <= pos < b for a, b in streams):
                exempt = exempt or "a byte of a compressed stream"
            elif any(a <= pos + k < b for a, b in heads for k in range(4 if m[0] == "u32" else 1)):
                exempt = exempt or "a record header byte"
            elif m[0] in ("insert", "delete"):
                exempt = exempt or None   # shifts every later record: a reader sees that
            if m[0] == "flip":
                data[pos] ^= 1 << m[2]
            elif m[0] == "byte":
                data[pos] = m[2]
            elif m[0] == "insert":
                data[pos:pos] = bytes.fromhex(m[2])
            elif m[0] == "delete":
                del data[pos:pos + m[2]]
            elif m[0] == "u32":
                _put(data, pos, "I", m[2])
    for m in ordered:
        if m[0] == "truncate_boundary":
            kept = min(m[1], len(bounds) - 1)
            shifted = any(f[0] in ("insert", "delete") for f in flat)  # (then the cut is not at the boundary)
            if m[2] == 0 and kept < len(parts) and not shifted and _buffers_written(chunks, seed) <= kept:
                exempt = exempt or "a cut between two buffers under a header that vouches for none of those cut"
            at = bounds[kept] + m[2]
            del data[max(0, at):]
        elif m[0] == "truncate":
            del data[m[1] % (len(data) + 1):]
    return Mutated(bytes(data), exempt)


def _logfile_field(seed: Seed, name: str) -> tuple[int, str]:
    """Where a field of the logfile header is in buffer 0, and its struct code."""
    lfh = S.LOGFILE_HEADER64 if seed.pointer_size == 8 else S.LOGFILE_HEADER32
    return S.BUFFER_HEADER_SIZE + S.SYSTEM_HEADER.size + lfh.off(name), _CODES[lfh.types[name]]


def _buffers_written(chunks: list[_Chunk], seed: Seed) -> int:
    """The (mutated) logfile header's BuffersWritten; a header too short to hold it vouches for every buffer."""
    off, code = _logfile_field(seed, "BuffersWritten")
    try:
        (written,) = struct.unpack_from("<" + code, chunks[0].raw, off)
    except (struct.error, IndexError):
        return 1 << 62
    return int(written)


def describe(mutations: Sequence[Mutation]) -> str:
    """The operators of a mutation list, for naming a failure class: ``blank+truncate_boundary``."""
    return "+".join(sorted({m[0] for m in mutations}))
