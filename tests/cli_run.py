"""The CLI run in-process, for the tests of every command: ``main(argv)`` ends in SystemExit (click's way)."""

from __future__ import annotations

import pytest

from heapdiff.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``heapdiff ARGS``."""
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0) if not isinstance(e.code, str) else 1
    out, err = capsys.readouterr()
    return code, out, err
