"""Optional numba JIT: one switch for the whole package.

``JIT_ENABLED`` is true when numba imports and the environment variable ``HEAPDIFF_NO_JIT`` is unset, empty or
``"0"``; with ``HEAPDIFF_NO_JIT=1`` numba is not even imported. :func:`njit` is ``numba.njit(cache=True,
nogil=True, ...)`` when enabled and the identity decorator otherwise, so a kernel stays callable (slowly, as
plain Python) either way. Modules that have a faster pure-Python path should test ``JIT_ENABLED`` and use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A")

_numba: Any = None
if os.environ.get("HEAPDIFF_NO_JIT", "") in ("", "0"):
    try:
        import numba as _numba
    except ImportError:  # pragma: no cover - numba is a runtime dependency, but optional in practice
        _numba = None

JIT_ENABLED: bool = _numba is not None


@overload
def njit(func: F, /) -> F: ...
@overload
def njit(*args: Any, **kwargs: Any) -> Callable[[F], F]: ...
def njit(*args: Any, **kwargs: Any) -> Any:
    """``@njit`` or ``@njit(signature, fastmath=...)``: numba.njit(cache=True, nogil=True) or nothing."""
    bare = len(args) == 1 and not kwargs and callable(args[0])
    if not JIT_ENABLED:
        return args[0] if bare else (lambda f: f)
    options: dict[str, Any] = {"cache": True, "nogil": True, **kwargs}
    if bare:
        return _lean_cache_load(_numba.njit(**options)(args[0]))
    decorate = _numba.njit(*args, **options)
    return lambda f: _lean_cache_load(decorate(f))


def _lean_cache_load(dispatcher: Any) -> Any:
    """Load this kernel's cached machine code without numba's context refresh (see :data:`_LeanCache`).

    Only lazily compiled kernels (no signature: every kernel of the package) benefit: numba compiles or loads a
    kernel declared with a signature as it is decorated, before this swap, through its own load."""
    if _LeanCache is not None and type(getattr(dispatcher, "_cache", None)) is _LeanCache.__base__:
        dispatcher._cache.__class__ = _LeanCache
    return dispatcher


def cache_is_cold(kernel: Any) -> bool:
    """Whether ``kernel`` has no machine code in numba's on-disk cache yet: its first call compiles (the first run
    after an install, tens of seconds). False when the JIT is off or this numba's cache cannot be asked."""
    if not JIT_ENABLED:
        return False
    try:
        index = kernel._cache._cache_file._index_path
    except AttributeError:
        return False
    return not os.path.exists(index)


def _prefetch_py(arr: Any, index: int) -> None:
    """Without the JIT a prefetch has nothing to hide: a no-op (``arr``: an array or a tuple of arrays)."""


def _borrow_py(arr: A) -> A:
    """Without the JIT there are no reference counts to save: the array (or tuple of arrays) itself."""
    return arr


_M64 = (1 << 64) - 1


def _wrapping_mul_py(a: Any, b: Any) -> Any:
    """Uncompiled: the same product mod 2**64, made from Python ints (a numpy scalar product would warn of the
    overflow, and silencing that warning around a whole kernel would hide the overflows that are mistakes)."""
    return type(a)((int(a) * int(b)) & _M64)


def _wrapping_mul(a: Any, b: Any) -> Any:
    return a * b


_LeanCache: Any = None  # the kernels' cache class, when this numba has the internals it relies on
prefetch: Callable[[Any, int], None] = _prefetch_py
borrow: Callable[[A], A] = _borrow_py
#: ``a * b`` of two uint64 scalars mod 2**64: for arithmetic that overflows on purpose (hashing), and says so.
#: Compiled, uint64 products wrap as they are; uncompiled, see :func:`_wrapping_mul_py`.
wrapping_mul: Callable[[Any, Any], Any] = njit(inline="always")(_wrapping_mul) if JIT_ENABLED else _wrapping_mul_py
if JIT_ENABLED:
    import importlib

    # numba's and llvmlite's internals, untyped on purpose: mypy knows nothing useful about them
    _ir: Any = importlib.import_module("llvmlite.ir")
    _cgutils: Any = importlib.import_module("numba.core.cgutils")
    _types: Any = importlib.import_module("numba.core.types")
    _intrinsic: Any = importlib.import_module("numba.extending").intrinsic
    _caching: Any = importlib.import_module("numba.core.caching")
    _rtsys: Any = importlib.import_module("numba.core.runtime").rtsys

    if all(hasattr(_caching.FunctionCache, a) for a in ("load_overload", "_load_overload",
                                                         "_guard_against_spurious_io_errors")):
        class _LeanCacheImpl(_caching.FunctionCache):  # type: ignore[misc]
            """numba's on-disk cache of one kernel, loaded without refreshing the target context first.

            Why: numba's ``load_overload`` starts with ``target_context.refresh()``, which imports some 75
            modules of numba's typing and lowering (linalg, random, typed containers, ...) and installs their
            registries: most of the cache loading, spent by the first kernel call of a run, on the critical
            path of the start-up (benchmarks/profile.md, _jit). Cached machine code needs none of it, only the
            runtime (NRT) whose symbols it links against. A cache miss still compiles, and numba's compiler
            refreshes the context itself. Anything unexpected in the lean load falls back to numba's own.
            """

            def load_overload(self, sig: Any, target_context: Any) -> Any:
                try:
                    _rtsys.initialize(target_context)
                    with self._guard_against_spurious_io_errors():
                        return self._load_overload(sig, target_context)
                    return None  # pragma: no cover - the guard swallowed an I/O error: compile instead
                except Exception:  # pragma: no cover - a numba whose cached code needs more: its own path
                    return super().load_overload(sig, target_context)

        _LeanCache = _LeanCacheImpl

    def _members(context: Any, builder: Any, ty: Any, value: Any) -> list[tuple[Any, Any]]:
        """(type, value) of an array argument, or of each array of a tuple argument."""
        if isinstance(ty, _types.BaseTuple):
            return [(t, builder.extract_value(value, i)) for i, t in enumerate(ty.types)]
        return [(ty, value)]

    def _prefetch_jit(typingctx: Any, arr: Any, index: Any) -> Any:
        """``llvm.prefetch`` of ``arr[index]`` (of row ``index`` of a 2-D array: its first element; read, keep in
        all cache levels), or of row ``index`` of each array of a tuple ``arr``.

        Why: a hash-table probe whose slot is not in cache stalls the loop for a memory round trip, and an
        op's probe cannot start before the previous op's branches resolve. Asking for the slot of an op some
        ops ahead overlaps those round trips (the reducer's fold). The events kernels read the reader's
        columns in time order, which jumps between a chunk's buffers: the same.
        """
        sig = _types.void(arr, index)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            i8pt = _ir.IntType(8).as_pointer()
            i32 = _ir.IntType(32)
            fnty = _ir.FunctionType(_ir.VoidType(), [i8pt, i32, i32, i32])
            # the intrinsic's name carries the pointer type: "ptr" (opaque, LLVM 15+) or "i8*" (older)
            name = "llvm.prefetch.p0" if str(i8pt) == "ptr" else "llvm.prefetch.p0i8"
            fn = _cgutils.get_or_insert_function(builder.module, fnty, name)
            for aryty, value in _members(context, builder, signature.args[0], args[0]):
                ary = context.make_array(aryty)(context, builder, value)
                idx = [args[1]] + [context.get_constant(signature.args[1], 0)] * (aryty.ndim - 1)
                ptr = _cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
                builder.call(fn, [builder.bitcast(ptr, i8pt), i32(0), i32(3), i32(1)])
            return context.get_dummy_value()

        return sig, codegen

    prefetch = _intrinsic(_prefetch_jit)

    def _borrow_jit(typingctx: Any, arr: Any) -> Any:
        """The same array without its owner (meminfo and parent null): a view the kernel does not count; of a
        tuple of arrays, the tuple of their borrowed views.

        Why: numba counts references to an array each time it binds it to a variable, and every call of an
        ``inline="always"`` helper binds its array arguments anew. In a kernel with many branches the
        reference-count pruning pass leaves most of those pairs in place, and each is an atomic
        read-modify-write of the owner's count: a full memory barrier that also stalls the loop's
        prefetched loads (a third of the reducer kernel's time, benchmarks/profile.md). With a null meminfo
        NRT_incref / NRT_decref return at once. A borrowed view must not outlive the kernel call that made it
        (never returned or stored): its memory belongs to the caller's array, which the call keeps alive.
        """
        sig = arr(arr)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            views = []
            for aryty, value in _members(context, builder, signature.args[0], args[0]):
                src = context.make_array(aryty)(context, builder, value)
                out = context.make_array(aryty)(context, builder)
                for name in ("nitems", "itemsize", "data", "shape", "strides"):
                    setattr(out, name, getattr(src, name))
                out.meminfo = _cgutils.get_null_value(out.meminfo.type)
                out.parent = _cgutils.get_null_value(out.parent.type)
                views.append(out._getvalue())
            if isinstance(signature.args[0], _types.BaseTuple):
                return context.make_tuple(builder, signature.return_type, views)
            return views[0]

        return sig, codegen

    borrow = _intrinsic(_borrow_jit)
