"""A test module's function run in a child process without the JIT (``HEAPDIFF_NO_JIT=1``): what the compiled and
the interpreted kernels are compared by."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def interpreted(module: str, expression: str) -> Any:
    """``expression`` (over the test module ``module``, imported as ``t``) evaluated without the JIT, its value
    passed back as JSON."""
    script = (f"import json, sys; sys.path[:0] = sys.argv[1:3]; import {module} as t; "
              f"print(json.dumps({expression}))")
    out = subprocess.run([sys.executable, "-c", script, str(HERE), str(HERE.parent)],
                         env=dict(os.environ, HEAPDIFF_NO_JIT="1"), capture_output=True, text=True, check=True,
                         timeout=900)
    return json.loads(out.stdout)
