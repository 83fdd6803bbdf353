"""Writer of faithful Windows ETW ``.etl`` files carrying user-mode heap events.

Why it exists: no public trace holds heap events, so every heap scenario of the project (tests, bundled
fixtures, benchmarks) is written by this module. A reader that only ever sees these files is only as right
as they are, so the writer follows the format notes (``etl-format.md``, cited by section) byte for byte and
copies field values from the real Windows 10 samples (``../shared/etl-samples``) wherever the notes leave a
choice:

* buffers (sections 1, 9.2: :mod:`heapdiff.tracegen.buffers`): buffer 0 is the header buffer; every CPU then
  fills its own buffer, flushed to the file in flush order, optionally Xpress-compressed (section 7);
* records (:mod:`heapdiff.tracegen.records`): the header record (section 2) with a ``TRACE_LOGFILE_HEADER`` of the
  trace's pointer size and the 0x0005 / 0x0050 header extensions real files carry; heap events (section 4) with a
  full ``SYSTEM_TRACE_HEADER`` (type 2, or 1 for a WOW64 process) and packed payloads; stack walks (section 5.1)
  whose ``EventTimeStamp`` is the heap event's raw timestamp; process and image rundown/start/end events
  (section 6) so that frames can be mapped to modules.

Every header and payload is packed through the declarations in :mod:`heapdiff.etl.structs` and
:mod:`heapdiff.etl.payloads`; nothing here knows an offset of its own. The hot methods (:meth:`TraceWriter.heap_alloc`,
:meth:`~TraceWriter.heap_free`, :meth:`~TraceWriter.heap_realloc`, :meth:`~TraceWriter.stack`) pack one
precompiled :class:`struct.Struct` per record kind straight into a preallocated per-CPU ``bytearray``, so that
writing millions of events takes seconds.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from typing import BinaryIO, Final

from heapdiff.etl import payloads as P
from heapdiff.etl import structs as S
from heapdiff.events import kinds as K
from heapdiff.tracegen.buffers import BufferFile, WrittenBuffer, WrittenRecord
from heapdiff.tracegen.records import (
    PERFINFO_TYPES,
    SYSTEM_TYPES,
    TRACE_FLAGS,
    TS_OFFSETS,
    V_HEAP,
    V_IMAGE,
    V_MARK,
    V_PROCESS,
    V_STACK,
    HotStructs,
    Session,
    classic_record,
    filetime_of,
    header_records,
    heap_payload_version,
    image_id_records,
    image_payload,
    process_payload,
    stack_key_def_payload,
    utf16z,
)

__all__ = [
    "DEFAULT_START_FILETIME",
    "DEFAULT_T0",
    "TraceWriter",
    "WrittenBuffer",
    "WrittenRecord",
    "filetime_of",
]

#: 2026-01-01T00:00:00Z as a FILETIME (100 ns ticks since 1601-01-01 UTC)
DEFAULT_START_FILETIME: Final = S.FILETIME_UNIX_EPOCH + 1_767_225_600 * 10_000_000
#: raw QPC value at session start: 100 s after boot at 10 MHz (real samples: 0.6 s to 3 days)
DEFAULT_T0: Final = 1_000_000_000

_PROCESS_HOOKS: Final = {"start": K.HOOK_PROCESS_START, "end": K.HOOK_PROCESS_END,
                         "dcstart": K.HOOK_PROCESS_DCSTART, "dcend": K.HOOK_PROCESS_DCEND}
_IMAGE_HOOKS: Final = {"load": K.HOOK_PROCESS_LOAD_IMAGE, "unload": K.HOOK_IMAGE_UNLOAD,
                       "dcstart": K.HOOK_IMAGE_DCSTART, "dcend": K.HOOK_IMAGE_DCEND}
_STACK_KEY_DEFS: Final = (K.HOOK_STACK_KEY_CREATE, K.HOOK_STACK_KEY_DELETE, K.HOOK_STACK_KEY_RUNDOWN)
_T_STACK: Final = K.HOOK_STACK_WALK & 0xFF  # opcode (Type) byte of a stack walk
assert K.HOOK_STACK_WALK >> 8 == K.GROUP_STACKWALK and K.HOOK_HEAP_ALLOC >> 8 == K.GROUP_HEAP


class TraceWriter:
    """Write a heap trace as Windows would log it; see the module docstring for why and how.

    ``ptr=None`` on an event means the trace's pointer size; ``ptr=4`` in a 64-bit trace writes the event of a
    WOW64 (32-bit) process: SYSTEM32 / PERFINFO32 header (marker 0xC001xxxx / 0xC010xxxx) and 4-byte pointers.
    Records go to the buffer of ``cpu`` and must come in non-decreasing ``ts`` order per CPU, none before
    ``t0`` (:class:`ValueError` otherwise), as one CPU's buffer is in time order in real files (1.3).

    ``keep_log=True`` records every buffer and record written (:attr:`log`, file order) for tests.
    ``close()`` closes ``out`` only if the writer opened it (a path); a caller's file object stays open.
    """

    def __init__(self, out: str | os.PathLike[str] | BinaryIO, *, pointer_size: int = 8, cpus: int = 4,
                 buffer_size: int = 0x10000, compress: bool = False,
                 start_filetime: int = DEFAULT_START_FILETIME, perf_freq: int = 10_000_000,
                 t0: int = DEFAULT_T0, clock_type: int = S.CLOCK_QPC,
                 logger_name: str = "heapdiff writer", log_file_name: str = "C:\\traces\\heap.etl",
                 events_lost: int = 0, buffers_lost: int = 0, header_extensions: bool = True,
                 keep_log: bool = False) -> None:
        if pointer_size not in (4, 8):
            raise ValueError(f"pointer_size must be 4 or 8, not {pointer_size}")
        if not 1 <= cpus <= S.PROCESSOR_INDEX_MASK + 1:
            raise ValueError(f"cpus must be 1..{S.PROCESSOR_INDEX_MASK + 1}, not {cpus}")
        if buffer_size % 8 or not 0x400 <= buffer_size <= 0xFFFFFFF8:
            raise ValueError(f"buffer_size must be a multiple of 8 in 0x400..0xFFFFFFF8, "
                             f"not {buffer_size:#x}")
        if perf_freq <= 0 or t0 <= 0:
            raise ValueError("perf_freq and t0 must be positive "
                             "(readers divide by PerfFreq, TraceEvent asserts T0 != 0)")
        filetime_of(t0, t0=t0, start_filetime=start_filetime, clock_type=clock_type, perf_freq=perf_freq)
        self.session = Session(pointer_size, cpus, buffer_size, compress, start_filetime, perf_freq, t0, clock_type,
                               logger_name, log_file_name, events_lost, buffers_lost, header_extensions)
        self.pointer_size = pointer_size
        self.cpus = cpus
        self.buffer_size = buffer_size
        self.t0 = t0
        self._ptrs = (4,) if pointer_size == 4 else (4, 8)
        self._hot = HotStructs(self._ptrs)
        self._file = BufferFile(out, cpus=cpus, buffer_size=buffer_size, t0=t0, compress=compress,
                                keep_log=keep_log)
        self.log: list[WrittenBuffer] | None = self._file.log
        # validates that the header record fits before touching the output
        self._file.open(self._header_buffer())

    def _ptr(self, ptr: int | None) -> int:
        p = self.pointer_size if ptr is None else ptr
        if p not in self._ptrs:
            raise ValueError(f"pointer size {p} is not possible in a {self.pointer_size * 8}-bit trace")
        return p

    def filetime(self, ts: int) -> int:
        """FILETIME of a raw timestamp of this trace (notes 2.3)."""
        return self.session.filetime(ts)

    def _header_buffer(self) -> bytearray:
        """Buffer 0 with the counts so far (at open; again by :meth:`close` with the final ones)."""
        return self._file.header_buffer(header_records(self.session, self._file.last_ts, self.buffers_written))

    def _emit(self, cpu: int, ts: int, hook: int, version: int, kind: str, ptr: int, pid: int, tid: int,
              payload: bytes) -> None:
        """Frame and append one record (the general path: rare kinds, variable payloads)."""
        record, htype, head = classic_record(hook, version, kind, ptr, pid, tid, ts, payload)
        system = kind == "system"
        self._file.put(cpu, ts, record, hook, version, htype, pid if system else None, tid if system else None, head)

    # -------------------------------------------------------------------------------- process / image

    def process(self, ts: int, cpu: int, pid: int, parent_pid: int, image_name: str, command_line: str = "",
                kind: str = "dcstart", *, tid: int | None = None) -> None:
        """A Process event, version 4 (6.2), with the LocalSystem SID.

        ``kind``: "start" 0x0301 / "end" 0x0302 (SYSTEM header: the creating context -- the parent for a
        start, the process itself for an end -- with ``tid`` or a made-up thread id) or "dcstart" 0x0303 /
        "dcend" 0x0304 (PERFINFO header, as the rundowns of the real samples).
        """
        try:
            hook = _PROCESS_HOOKS[kind]
        except KeyError:
            raise ValueError(f"process kind {kind!r} is not one of {sorted(_PROCESS_HOOKS)}") from None
        p = self.pointer_size
        payload = process_payload(p, pid, parent_pid, image_name, command_line, live=kind != "end")
        if kind in ("start", "end"):
            owner = parent_pid if kind == "start" else pid
            self._emit(cpu, ts, hook, V_PROCESS, "system", p, owner, self._made_up_tid(owner, tid), payload)
        else:
            self._emit(cpu, ts, hook, V_PROCESS, "perfinfo", p, 0, 0, payload)

    def image(self, ts: int, cpu: int, pid: int, base: int, size: int, file_name: str, kind: str = "dcstart",
              ptr: int | None = None, *, tid: int | None = None, time_date_stamp: int | None = None) -> None:
        """An Image event, version 3 (6.1); FileName should be an NT path as in real files.

        ``kind``: "load" 0x030A and "unload" 0x1402 (SYSTEM header with ``pid`` and ``tid`` -- or a made-up
        thread -- of the loading process), "dcstart" 0x1403 / "dcend" 0x1404 (PERFINFO header). Real kernels
        log WOW64 modules with the 64-bit layout, so leave ``ptr`` at None unless testing a 32-bit layout.
        """
        try:
            hook = _IMAGE_HOOKS[kind]
        except KeyError:
            raise ValueError(f"image kind {kind!r} is not one of {sorted(_IMAGE_HOOKS)}") from None
        p = self._ptr(ptr)
        payload = image_payload(p, pid, base, size, file_name, time_date_stamp)
        if kind in ("load", "unload"):
            self._emit(cpu, ts, hook, V_IMAGE, "system", p, pid, self._made_up_tid(pid, tid), payload)
        else:
            self._emit(cpu, ts, hook, V_IMAGE, "perfinfo", p, 0, 0, payload)

    def image_identity(self, ts: int, cpu: int, pid: int, base: int, size: int, time_date_stamp: int,
                       file_name: str, pdb_name: str, pdb_guid: str, pdb_age: int) -> None:
        """The ImageID and DbgID_RSDS events a merged trace carries for an image (6.3): written just before the
        image event with the same timestamp and base, as ``xperf -merge`` writes them. ``pdb_guid`` is the
        dashed text of the GUID as Windows tools print it."""
        for record in image_id_records(self.pointer_size, ts, pid, base, size, time_date_stamp, file_name, pdb_name,
                                       pdb_guid, pdb_age):
            self.raw(cpu, record)

    @staticmethod
    def _made_up_tid(pid: int, tid: int | None) -> int:
        """A plausible thread id (a multiple of 4, like Windows ids) when the caller has none."""
        return tid if tid is not None else (pid + 4) & 0xFFFFFFFC

    def mark(self, ts: int, cpu: int, name: str, layout: str = "utf16") -> None:
        """A mark as ``xperf -m NAME`` writes it: PerfInfo 0x0F22 under a PERFINFO header. Its payload is inferred
        (events.marks): ``layout`` "utf16" (the name's WCHARs and a NUL, as Windows XP's kernel copied them),
        "flag+utf16" (``ETW_SET_MARK_INFORMATION``: a ULONG flag of 0, then the WCHARs) or "ansi" (a NUL-ended
        byte string, as ``PERFINFO_MARK_INFORMATION`` declares it)."""
        if layout == "utf16":
            payload = utf16z(name)
        elif layout == "flag+utf16":
            payload = b"\0\0\0\0" + utf16z(name)
        elif layout == "ansi":
            payload = name.encode("utf-8") + b"\0"
        else:
            raise ValueError(f"mark layout {layout!r} is not 'utf16', 'flag+utf16' or 'ansi'")
        self._emit(cpu, ts, K.HOOK_PERFINFO_MARK, V_MARK, "perfinfo", self.pointer_size, 0, 0, payload)

    # -------------------------------------------------------------------------------- heap events

    def heap_create(self, ts: int, cpu: int, pid: int, tid: int, heap: int, flags: int = 0x2,
                    ptr: int | None = None) -> None:
        """Heap Create 0x1020, version 2: HeapHandle, HeapFlags (4.3)."""
        self._heap(K.HOOK_HEAP_CREATE, ptr, ts, cpu, pid, tid, heap, flags)

    def heap_alloc(self, ts: int, cpu: int, pid: int, tid: int, heap: int, size: int, addr: int,
                   source: int = 3, ptr: int | None = None) -> None:
        """Heap Alloc 0x1021, version 2: HeapHandle, AllocSize, AllocAddress, SourceId (4.3). Hot path."""
        self._heap(K.HOOK_HEAP_ALLOC, ptr, ts, cpu, pid, tid, heap, size, addr, source)

    def heap_realloc(self, ts: int, cpu: int, pid: int, tid: int, heap: int, new_addr: int, old_addr: int,
                     new_size: int, old_size: int, source: int = 3, ptr: int | None = None) -> None:
        """Heap ReAlloc 0x1022, version 2: HeapHandle, New/Old address, New/Old size, SourceId (4.3). Hot path."""
        self._heap(K.HOOK_HEAP_REALLOC, ptr, ts, cpu, pid, tid, heap, new_addr, old_addr, new_size, old_size, source)

    def heap_free(self, ts: int, cpu: int, pid: int, tid: int, heap: int, addr: int, source: int = 3,
                  ptr: int | None = None) -> None:
        """Heap Free 0x1024, version 2: HeapHandle, FreeAddress, SourceId (4.3). Hot path."""
        self._heap(K.HOOK_HEAP_FREE, ptr, ts, cpu, pid, tid, heap, addr, source)

    def heap_destroy(self, ts: int, cpu: int, pid: int, tid: int, heap: int, ptr: int | None = None) -> None:
        """Heap Destroy 0x1023, version 2: HeapHandle (4.3)."""
        self._heap(K.HOOK_HEAP_DESTROY, ptr, ts, cpu, pid, tid, heap)

    def _heap(self, hook: int, ptr: int | None, ts: int, cpu: int, pid: int, tid: int, *payload: int) -> None:
        """A fixed-size heap event: SYSTEM header (tid/pid of the allocating thread) + packed payload."""
        p = self.pointer_size if ptr is None else ptr
        try:
            st, n = self._hot.heap[hook, p]
        except KeyError:
            self._ptr(p)
            raise
        c = self._file.reserve(cpu, ts, n)
        pos = c.pos
        try:
            st.pack_into(c.buf, pos, V_HEAP, SYSTEM_TYPES[p], TRACE_FLAGS, n, hook & 0xFF, hook >> 8, tid, pid, ts,
                         0, 0, *payload)
        except struct.error as e:
            raise ValueError(f"heap event {hook:#06x}: a value does not fit its field: {e}") from None
        c.pos = pos + st.size
        c.last_ts = ts
        if self.log is not None:
            c.log(pos, n, S.SYSTEM_HEADER.size, hook, V_HEAP, SYSTEM_TYPES[p], pid, tid, ts)

    def heap_other(self, ts: int, cpu: int, pid: int, tid: int, hook: int, payload: bytes,
                   ptr: int | None = None) -> None:
        """Any other heap-group event (0x10xx) with a caller-built payload, e.g. Expand/SnapShot/Contract.

        For hooks whose layout the notes give (4.3), the payload must have the version-2 or version-3 size of
        the event's pointer size; the header Version follows from that size. Other heap hooks get Version 2.
        """
        if hook >> 8 != K.GROUP_HEAP:
            raise ValueError(f"hook {hook:#06x} is not in the heap group 0x10")
        p = self._ptr(ptr)
        self._emit(cpu, ts, hook, heap_payload_version(hook, p, payload), "system", p, pid, tid, bytes(payload))

    # -------------------------------------------------------------------------------- stacks

    def stack(self, ts: int, cpu: int, event_ts: int, pid: int, tid: int, frames: Sequence[int],
              ptr: int | None = None, header: str = "perfinfo") -> None:
        """StackWalk 0x1820, version 2 (5.1): EventTimeStamp = ``event_ts`` (the heap event's raw timestamp),
        StackProcess, StackThread, frames innermost first. Hot path.

        ``header``: "perfinfo" (PERFINFO, no TID/PID -- the consumers' -1, most likely what the kernel writes)
        or "system" (SYSTEM header carrying ``tid``/``pid``).
        """
        p = self.pointer_size if ptr is None else ptr
        if p not in self._ptrs:
            self._ptr(p)
        st, n = self._hot.stack(p, header, len(frames))
        c = self._file.reserve(cpu, ts, n)
        pos = c.pos
        perfinfo = header == "perfinfo"
        htype = (PERFINFO_TYPES if perfinfo else SYSTEM_TYPES)[p]
        try:
            if perfinfo:
                st.pack_into(c.buf, pos, V_STACK, htype, TRACE_FLAGS, n, _T_STACK, K.GROUP_STACKWALK, ts, event_ts,
                             pid, tid, *frames)
            else:
                st.pack_into(c.buf, pos, V_STACK, htype, TRACE_FLAGS, n, _T_STACK, K.GROUP_STACKWALK, tid, pid, ts,
                             0, 0, event_ts, pid, tid, *frames)
        except struct.error as e:
            raise ValueError(f"stack: a value does not fit its field: {e}") from None
        c.pos = pos + st.size
        c.last_ts = ts
        if self.log is not None:
            head = (S.PERFINFO_HEADER if perfinfo else S.SYSTEM_HEADER).size
            c.log(pos, n, head, K.HOOK_STACK_WALK, V_STACK, htype, None if perfinfo else pid,
                  None if perfinfo else tid, ts)

    def stack_key_create(self, ts: int, cpu: int, key: int, frames: Sequence[int],
                         hook: int = K.HOOK_STACK_KEY_CREATE, ptr: int | None = None) -> None:
        """A stack-cache key definition (5.3): 0x1822 KeyCreate, 0x1823 KeyDelete or 0x1824 KeyRundown;
        payload StackKey then frames; PERFINFO header like the other kernel stack events."""
        if hook not in _STACK_KEY_DEFS:
            raise ValueError(f"hook {hook:#06x} is not a stack key definition (0x1822..0x1824)")
        p = self._ptr(ptr)
        try:
            payload = stack_key_def_payload(p, key, tuple(frames))
        except struct.error as e:
            raise ValueError(f"stack_key_create: a value does not fit its field: {e}") from None
        self._emit(cpu, ts, hook, V_STACK, "perfinfo", p, 0, 0, payload)

    def stack_key_ref(self, ts: int, cpu: int, event_ts: int, pid: int, tid: int, key: int, user: bool = True,
                      ptr: int | None = None) -> None:
        """A stack-cache reference (5.3): 0x1826 StackKeyUser or 0x1825 StackKeyKernel; EventTimeStamp,
        StackProcess, StackThread, StackKey; PERFINFO header."""
        p = self._ptr(ptr)
        hook = K.HOOK_STACK_KEY_USER if user else K.HOOK_STACK_KEY_KERNEL
        payload = P.STACK_KEY_REF[p].pack({"EventTimeStamp": event_ts, "StackProcess": pid,
                                           "StackThread": tid, "StackKey": key})
        self._emit(cpu, ts, hook, V_STACK, "perfinfo", p, 0, 0, payload)

    # -------------------------------------------------------------------------------- misc

    def raw(self, cpu: int, record: bytes) -> None:
        """Append an already framed record (tests of other header kinds); padded to 8 bytes with zeros.

        Its timestamp, read from the header type's field (3.2-3.6), keeps the per-CPU order check and the
        buffer TimeStamp honest; a header without one (WPP message) counts as the CPU's previous time.
        """
        record = bytes(record)
        if len(record) < 8:
            raise ValueError("a record is at least 8 bytes (marker and size)")
        marker = int.from_bytes(record[:4], "little")
        htype = (marker >> S.MARKER_TYPE_SHIFT) & S.MARKER_TYPE_MASK
        typed = (marker >> S.MARKER_FLAGS_SHIFT) & S.MARKER_TYPED == S.MARKER_TYPED
        off = TS_OFFSETS.get(htype) if typed else None
        ts = self._file.buffer_of(cpu).last_ts
        if off is not None and len(record) >= off + 8:
            ts = int.from_bytes(record[off:off + 8], "little", signed=True)
        self._file.put(cpu, ts, record, None, None, htype, None, None, 0)

    def mark_events_lost(self, cpu: int) -> None:
        """Flag the CPU's current buffer EVENTS_LOST (0x0002), as the kernel does when it dropped events."""
        self._file.buffer_of(cpu).flags |= S.BUFFER_FLAG_EVENTS_LOST

    @property
    def buffers_written(self) -> int:
        """Buffers in the file so far, buffer 0 included (the header's BuffersWritten after close)."""
        return 1 + self._file.flushed

    def close(self) -> None:
        """Flush every CPU's buffer (CPU order; empty ones only if flagged), rewrite buffer 0 with the final
        BuffersWritten/EndTime, and close the output if the writer opened it. Idempotent."""
        if self._file.closed:
            return
        self._file.flush_all()
        self._file.close(self._header_buffer())

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
