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
        return _numba.njit(**options)(args[0])
    return _numba.njit(*args, **options)
