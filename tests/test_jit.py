"""The JIT switch's cache loading: kernels load their cached machine code without numba's context refresh."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from heapdiff import _jit
from heapdiff.etl import batch, walk
from heapdiff.events import heap_ops, stacks
from heapdiff.reduce import fold

needs_lean = pytest.mark.skipif(not _jit.JIT_ENABLED or _jit._LeanCache is None,
                                reason="numba absent, disabled, or without the cache internals the lean load uses")

KERNEL = '''
from heapdiff._jit import njit


@njit
def total(a):
    s = 0
    for x in a:
        s += x
    return s
'''

RUN = '''
import json, sys
sys.path.insert(0, {folder!r})
import numpy as np
import lean_kernel
from heapdiff import _jit
if sys.argv[1] == "numba":
    lean_kernel.total._cache.__class__ = _jit._LeanCache.__base__
r = lean_kernel.total(np.arange(10))
print(json.dumps({{"r": int(r), "hits": sum(lean_kernel.total.stats.cache_hits.values()),
                  "refreshed": "numba.np.linalg" in sys.modules}}))
'''


@needs_lean
def test_the_package_kernels_load_lean() -> None:
    kernels: tuple[Any, ...] = (walk.frame_kernel, batch.hold_kernel, heap_ops.ops_kernel, stacks.match_kernel,
                                fold.fold_kernel)
    for kernel in kernels:
        assert type(kernel._cache) is _jit._LeanCache


@needs_lean
def test_a_cached_kernel_loads_without_the_context_refresh(tmp_path: Path) -> None:
    """In a fresh interpreter, as the CLI starts: the cached kernel is used, gives its result, and numba's
    lowering modules (which its refresh imports) stay unimported; numba's own load does import them."""
    (tmp_path / "lean_kernel.py").write_text(textwrap.dedent(KERNEL))
    script = tmp_path / "run.py"
    script.write_text(RUN.format(folder=str(tmp_path)))

    def run(mode: str) -> dict[str, object]:
        p = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        out: dict[str, object] = json.loads(p.stdout.strip().splitlines()[-1])
        return out

    first = run("lean")  # compiles and writes the cache
    assert first["r"] == 45 and first["hits"] == 0
    lean = run("lean")
    assert lean == {"r": 45, "hits": 1, "refreshed": False}
    own = run("numba")
    assert own == {"r": 45, "hits": 1, "refreshed": True}
