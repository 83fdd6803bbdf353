"""The domain rules about frames and groups, each stated once: which frames are allocator plumbing, which frames
are the kernel's, and what names a group (its module and its label).

Every other part of heapdiff reads these decisions from the grouping's result, never decides them again. The
allocator rule is a table: a frame is allocator plumbing when its module is a heap or C runtime module, or (once
symbols name it) when its function is a known allocation entry point in any module (``operator new`` is usually
linked into the program itself). Sources: the symbols notes, section 5 (real ETW heap stacks, ASan's allocator
interception list, the C runtime's exports).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Protocol

#: modules whose frames are heap or C runtime plumbing, by file name without its extension
ALLOCATOR_MODULE_STEMS: Final = frozenset({
    "ntdll", "kernelbase", "kernel32", "ucrtbase", "ucrtbased", "msvcrt",
})
#: module file-name prefixes of the same kind: msvcr120, msvcp140, msvcp140d, vcruntime140, vcruntime140_1d, ...
ALLOCATOR_MODULE_PREFIXES: Final = ("vcruntime", "msvcp", "msvcr")
#: functions that allocate on behalf of their caller, in any module (undecorated names, no argument lists)
ALLOCATOR_FUNCTIONS: Final = frozenset({
    "NtTraceEvent", "HeapAlloc", "HeapReAlloc", "HeapFree", "LocalAlloc", "LocalReAlloc", "GlobalAlloc",
    "GlobalReAlloc", "malloc", "_malloc_base", "_malloc_crt", "_malloc_dbg", "calloc", "_calloc_base", "_calloc_crt",
    "_calloc_dbg", "realloc", "_realloc_base", "_realloc_crt", "_realloc_dbg", "_recalloc", "_recalloc_base",
    "_expand", "heap_alloc_dbg", "heap_alloc_dbg_internal", "_aligned_malloc", "_aligned_realloc",
    "_aligned_offset_malloc", "operator new", "operator new[]", "std::_Allocate", "CoTaskMemAlloc",
    "CoTaskMemRealloc", "SysAllocString", "SysAllocStringLen", "SysAllocStringByteLen", "SysReAllocString",
})
#: ntdll's heap internals by pattern (RtlAllocateHeap, RtlpAllocateHeapInternal, RtlpHpAllocWithExceptionProtection,
#: RtlpLogHeapAllocateEvent, ...), and std::allocator<T>::allocate for any T
ALLOCATOR_FUNCTION_PATTERN: Final = re.compile(
    r"(?:Rtlp?[A-Za-z]*Heap[A-Za-z]*|RtlpHp[A-Za-z]*|std::allocator<.*>::allocate|std::_Allocate(?:<.*>)?"
    r"|operator new(?:\[\])?(?:<.*>)?)$")

#: the words the report uses where a group has no frame to name it
NO_STACK: Final = "(no stack)"
UNKNOWN_MODULE: Final = "(unknown)"
ALLOCATOR_ONLY: Final = "(allocator only)"


def module_of_frame(text: str) -> str | None:
    """``mod.dll+0x12`` and ``mod.dll!f+0x3`` -> ``mod.dll``; an address in no known image (``0x...``) -> None."""
    if text.startswith("0x"):
        return None
    for sep in ("!", "+0x"):
        i = text.find(sep)
        if i > 0:
            return text[:i]
    return None


@lru_cache(maxsize=4096)
def is_allocator_module(module: str) -> bool:
    stem = module.rsplit(".", 1)[0] if "." in module else module
    return stem in ALLOCATOR_MODULE_STEMS or stem.startswith(ALLOCATOR_MODULE_PREFIXES)


def is_allocator_function(function: str) -> bool:
    return function in ALLOCATOR_FUNCTIONS or ALLOCATOR_FUNCTION_PATTERN.match(function) is not None


def is_allocator_frame(module: str | None, function: str | None) -> bool:
    """Allocator plumbing: a heap/CRT module's frame, or a known allocation function in any module."""
    if module is not None and is_allocator_module(module):
        return True
    return function is not None and is_allocator_function(function)


class FrameLike(Protocol):
    """What the rules need to know of one displayed frame."""

    @property
    def text(self) -> str: ...

    @property
    def module(self) -> str | None: ...

    @property
    def kernel(self) -> bool: ...

    @property
    def allocator(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class FrameKind:
    """A frame as the rules see it (what tests and documents without symbol fields build)."""

    text: str
    #: None for an address in no known image
    module: str | None
    kernel: bool
    allocator: bool


@dataclass(frozen=True, slots=True)
class GroupName:
    """What names a group in every report: its module and its label (a frame's text), and which frame that is."""

    module: str
    label: str
    #: the frame ``label`` names, as an index into the displayed frames; -1 when there is none
    label_index: int


def name_group(frames: Sequence[FrameLike]) -> GroupName:
    """The innermost frame that is neither the kernel's nor allocator plumbing names the group.

    A stack of allocator and kernel frames only is ``(allocator only)``, labelled by its innermost user frame; an
    address in no known image gives the module ``(unknown)`` and its address as the label."""
    if not frames:
        return GroupName(NO_STACK, NO_STACK, -1)
    for i, f in enumerate(frames):
        if not f.kernel and not f.allocator:
            return GroupName(f.module if f.module is not None else UNKNOWN_MODULE, f.text, i)
    user = next((i for i, f in enumerate(frames) if not f.kernel), 0)
    return GroupName(ALLOCATOR_ONLY, frames[user].text, user)


#: counted misfits that are normal, not data loss: tracing starts while the program runs, so frees and reallocs of
#: blocks older than the trace are expected, and a process that ends frees everything it held
INFORMATIONAL_ANOMALIES: Final = frozenset({"unmatched_frees", "unmatched_realloc", "freed_by_process_end"})
