"""The layout table: which payload fields the record walk copies into columns, per (hook, pointer size).

Offsets come from the payload declarations in ``etl.structs`` (notes 4.3, 5.1, 5.3), so the hot path and the
Python decoders cannot disagree. Column meanings, per kind (``f[:, k]``):

=============  =========  =========  =========  =========  =========  =========
kind           0          1          2          3          4          5
=============  =========  =========  =========  =========  =========  =========
heap alloc     heap       size       address    source
heap free      heap       address    source
heap realloc   heap       new addr   old addr   new size   old size   source
heap create    heap       flags
heap destroy   heap
heap other     heap
stack walk     event ts   pid        tid        (tail = frames)
key ref        event ts   pid        tid        key
key def        key        (tail = frames)
=============  =========  =========  =========  =========  =========  =========
"""

from __future__ import annotations

from typing import Final

from heapdiff.etl import payloads as P
from heapdiff.etl.cstruct import Struct
from heapdiff.etl.layout_table import FieldSpec, Layout, LayoutRow
from heapdiff.events import kinds as K
from heapdiff.events.images import kernel_floor

#: pseudo group for KernelTraceControl's ImageID provider (records with a GUID only, never classic)
GROUP_IMAGE_ID: Final = 0x100
HOOK_IMAGE_ID: Final = GROUP_IMAGE_ID << 8 | 0x00
HOOK_DBGID_RSDS: Final = GROUP_IMAGE_ID << 8 | 0x24

COL_HEAP: Final = 0
COL_ALLOC_SIZE, COL_ALLOC_ADDR, COL_ALLOC_SOURCE = 1, 2, 3
COL_FREE_ADDR, COL_FREE_SOURCE = 1, 2
COL_RA_NEW_ADDR, COL_RA_OLD_ADDR, COL_RA_NEW_SIZE, COL_RA_OLD_SIZE, COL_RA_SOURCE = 1, 2, 3, 4, 5
COL_STACK_TS, COL_STACK_PID, COL_STACK_TID, COL_KEY_REF = 0, 1, 2, 3
COL_KEY_DEF = 0

IMAGE_HOOKS: Final = frozenset({K.HOOK_PROCESS_LOAD_IMAGE, K.HOOK_IMAGE_UNLOAD, K.HOOK_IMAGE_DCSTART,
                                K.HOOK_IMAGE_DCEND, K.HOOK_IMAGE_LOAD})
PROCESS_HOOKS: Final = frozenset({K.HOOK_PROCESS_START, K.HOOK_PROCESS_END, K.HOOK_PROCESS_DCSTART,
                                  K.HOOK_PROCESS_DCEND, K.HOOK_PROCESS_DEFUNCT})
STACK_REF_HOOKS: Final = frozenset({K.HOOK_STACK_WALK, K.HOOK_STACK_KEY_KERNEL, K.HOOK_STACK_KEY_USER})
KEY_DEF_HOOKS: Final = frozenset({K.HOOK_STACK_KEY_CREATE, K.HOOK_STACK_KEY_DELETE, K.HOOK_STACK_KEY_RUNDOWN})


def _fields(decl: Struct, names: list[str]) -> list[FieldSpec]:
    return [FieldSpec(decl.off(n), decl.width(n)) for n in names]


def build_rows() -> list[LayoutRow]:
    rows: list[LayoutRow] = []
    for ptr in (4, 8):
        a = P.HEAP_ALLOC[ptr]
        rows.append(LayoutRow(K.HOOK_HEAP_ALLOC, ptr, a.size, a.size,
                              _fields(a, ["HeapHandle", "AllocSize", "AllocAddress", "SourceId"]), link_target=True))
        fr = P.HEAP_FREE[ptr]
        rows.append(LayoutRow(K.HOOK_HEAP_FREE, ptr, fr.size, fr.size,
                              _fields(fr, ["HeapHandle", "FreeAddress", "SourceId"])))
        ra = P.HEAP_REALLOC[ptr]
        rows.append(LayoutRow(K.HOOK_HEAP_REALLOC, ptr, ra.size, ra.size,
                              _fields(ra, ["HeapHandle", "NewAllocAddress", "OldAllocAddress", "NewAllocSize",
                                           "OldAllocSize", "SourceId"]), link_target=True))
        cr = P.HEAP_CREATE[ptr]
        rows.append(LayoutRow(K.HOOK_HEAP_CREATE, ptr, cr.size, P.HEAP_CREATE_V3[ptr].size,
                              _fields(cr, ["HeapHandle", "HeapFlags"])))
        cm = P.HEAP_COMMON[ptr]
        rows.append(LayoutRow(K.HOOK_HEAP_DESTROY, ptr, cm.size, cm.size, _fields(cm, ["HeapHandle"])))
        ex = P.HEAP_EXPANSION[ptr]
        for hook in (K.HOOK_HEAP_EXPAND, K.HOOK_HEAP_CONTRACT):
            rows.append(LayoutRow(hook, ptr, ex.size, P.HEAP_EXPANSION_V3[ptr].size, _fields(ex, ["HeapHandle"])))
        sw = P.STACK_WALK
        # a walk's frames are needed only if its block stays live: the reader may defer them, and put them on
        # the Alloc/ReAlloc row the walk follows in its buffer (etl.walk: linked records); the events layer
        # then finds the stack on the op's own row (events.heap_ops)
        rows.append(LayoutRow(K.HOOK_STACK_WALK, ptr, sw.size, -1,
                              _fields(sw, ["EventTimeStamp", "StackProcess", "StackThread"]), tail_offset=sw.size,
                              defer_tail=True, link=(COL_STACK_TS, COL_STACK_TID)))
        kr = P.STACK_KEY_REF[ptr]
        for hook in (K.HOOK_STACK_KEY_KERNEL, K.HOOK_STACK_KEY_USER):
            rows.append(LayoutRow(hook, ptr, kr.size, kr.size,
                                  _fields(kr, ["EventTimeStamp", "StackProcess", "StackThread", "StackKey"])))
        kd = P.STACK_KEY_DEF[ptr]
        for hook in KEY_DEF_HOOKS:
            rows.append(LayoutRow(hook, ptr, kd.size, -1, _fields(kd, ["StackKey"]), tail_offset=kd.size))
        for hook in sorted(IMAGE_HOOKS | PROCESS_HOOKS | {HOOK_IMAGE_ID, HOOK_DBGID_RSDS, K.HOOK_PERFINFO_MARK}):
            rows.append(LayoutRow(hook, ptr, 0, -1, keep_raw=True))
    return rows


#: GUID -> (group for the hook, provider index or -1 to count the record under its own GUID)
KERNEL_GUIDS: Final[dict[str, tuple[int, int]]] = {
    **{g: (grp, grp) for grp, g in K.GROUP_GUIDS.items()},
    K.IMAGE_ID_GUID: (GROUP_IMAGE_ID, -1),
}

_LAYOUT: Layout | None = None


def layout() -> Layout:
    global _LAYOUT
    if _LAYOUT is None:
        # a deferred walk's flag: its outermost frame is a kernel address (a kernel-only fragment, notes 5.2)
        _LAYOUT = Layout(build_rows(), tail_marks=(kernel_floor(4), kernel_floor(8)))
    return _LAYOUT
