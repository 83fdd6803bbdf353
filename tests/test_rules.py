"""The domain rules, stated once in heapdiff.rules: allocator frames, and what names a group."""

from __future__ import annotations

import pytest

from heapdiff.rules import (
    ALLOCATOR_ONLY,
    NO_STACK,
    UNKNOWN_MODULE,
    FrameKind,
    GroupName,
    is_allocator_frame,
    module_of_frame,
    name_group,
)


@pytest.mark.parametrize(("text", "module"), [
    ("app.exe+0x1a2b", "app.exe"),
    ("app.exe!cache_insert+0x12", "app.exe"),
    ("ntoskrnl.exe+0x40c2e", "ntoskrnl.exe"),
    ("0x7ff712340000", None),
    ("weird name.dll+0x1", "weird name.dll"),
])
def test_module_of_frame(text: str, module: str | None) -> None:
    assert module_of_frame(text) == module


@pytest.mark.parametrize(("module", "function", "allocator"), [
    ("ntdll.dll", None, True),
    ("kernelbase.dll", None, True),
    ("kernel32.dll", None, True),
    ("ucrtbase.dll", None, True),
    ("ucrtbased.dll", None, True),       # the debug CRT: the grouping and the report once disagreed on it
    ("msvcrt.dll", None, True),
    ("msvcr120.dll", None, True),
    ("msvcp140.dll", None, True),        # the C++ runtime: the report once disagreed on it
    ("msvcp140d.dll", None, True),
    ("vcruntime140.dll", None, True),
    ("vcruntime140_1d.dll", None, True),
    ("app.exe", None, False),
    ("msvcrtx.dll", None, True),         # a prefix rule: msvcr*
    ("ntdllx.dll", None, False),
    (None, None, False),
    # by function, in any module (operator new is linked into the program itself)
    ("app.exe", "operator new", True),
    ("app.exe", "operator new[]", True),
    ("app.exe", "malloc", True),
    ("app.exe", "std::allocator<Widget>::allocate", True),
    ("app.exe", "std::_Allocate<16,std::_Default_allocate_traits,0>", True),
    ("ntdll.dll", "RtlpAllocateHeapInternal", True),
    ("app.exe", "RtlAllocateHeap", True),
    ("app.exe", "RtlpHpAllocWithExceptionProtection", True),
    ("combase.dll", "CoTaskMemAlloc", True),
    ("combase.dll", "CoCreateInstance", False),
    ("app.exe", "cache_insert", False),
    ("app.exe", "new_widget", False),
    ("app.exe", "Heap", False),
])
def test_allocator_frames(module: str | None, function: str | None, allocator: bool) -> None:
    assert is_allocator_frame(module, function) is allocator


def _f(text: str, kernel: bool = False) -> FrameKind:
    module = module_of_frame(text)
    return FrameKind(text, module, kernel, not kernel and is_allocator_frame(module, None))


@pytest.mark.parametrize(("frames", "name"), [
    ((), GroupName(NO_STACK, NO_STACK, -1)),
    ((_f("ntdll.dll+0x1"), _f("ucrtbase.dll+0x2"), _f("app.exe+0x3")), GroupName("app.exe", "app.exe+0x3", 2)),
    ((_f("ntdll.dll+0x1"), _f("msvcp140.dll+0x9"), _f("ucrtbased.dll+0x2"), _f("app.exe+0x20")),
     GroupName("app.exe", "app.exe+0x20", 3)),
    ((_f("ntoskrnl.exe+0x5", True), _f("ntdll.dll+0x1"), _f("app.exe+0x3")), GroupName("app.exe", "app.exe+0x3", 2)),
    ((_f("ntdll.dll+0x1"), _f("0x1234"), _f("app.exe+0x3")), GroupName(UNKNOWN_MODULE, "0x1234", 1)),
    ((_f("ntdll.dll+0x1"),), GroupName(ALLOCATOR_ONLY, "ntdll.dll+0x1", 0)),
    ((_f("ntoskrnl.exe+0x5", True), _f("ntdll.dll+0x1")), GroupName(ALLOCATOR_ONLY, "ntdll.dll+0x1", 1)),
    ((_f("ntoskrnl.exe+0x5", True),), GroupName(ALLOCATOR_ONLY, "ntoskrnl.exe+0x5", 0)),
])
def test_what_names_a_group(frames: tuple[FrameKind, ...], name: GroupName) -> None:
    assert name_group(frames) == name
