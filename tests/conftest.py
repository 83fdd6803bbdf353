"""Shared test fixtures: where the real samples are, and the CLI run in-process."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """heapdiff's cache (downloaded symbols, parsed symbols) in a folder of the test run's own, never the user's:
    a test must not see what an earlier run cached."""
    old = os.environ.get("HEAPDIFF_CACHE_DIR")
    os.environ["HEAPDIFF_CACHE_DIR"] = str(tmp_path_factory.mktemp("heapdiff-cache"))
    yield
    if old is None:
        del os.environ["HEAPDIFF_CACHE_DIR"]
    else:
        os.environ["HEAPDIFF_CACHE_DIR"] = old


#: ../shared/etl-samples beside the repository (repo <root>/main, samples <root>/shared/etl-samples)
SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "etl-samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real-sample folder; the test is skipped when it is absent (never copied into the repo)."""
    if not (SAMPLES / "expected.json").is_file():
        pytest.skip(f"real samples not found at {SAMPLES}")
    return SAMPLES


@pytest.fixture(scope="session")
def expected(samples_dir: Path) -> dict[str, Any]:
    """expected.json: what two independent readers agree each sample holds."""
    data: dict[str, Any] = json.loads((samples_dir / "expected.json").read_text(encoding="utf-8"))
    return data


CliResult = tuple[int, str, str]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """``heapdiff.cli.main(argv)`` in-process: (exit code, stdout, stderr); click ends in SystemExit."""
    from heapdiff.cli import main

    def run(*argv: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(argv))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run
