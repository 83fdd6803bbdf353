"""Inputs are never destroyed and outputs are never half-written; what cannot be read or written is one line.

Each case runs the CLI in-process on the bundled example: outputs checked before any work (exit 2, nothing
written), an output that is an input by file identity refused, '-' as standard output, atomic replacement, and
pipes, devices, folders, a full disk and an exhausted memory as exit 3 with one line."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import socket
import threading
import time

import pytest
from cli_run import run

from heapdiff import __version__
from heapdiff.cli.outputs import OutOfSpace, Output, write_output

ROOT = pathlib.Path(__file__).resolve().parents[1]
AFTER = ROOT / "fixtures" / "example" / "after.etl"
BEFORE = ROOT / "fixtures" / "example" / "before.etl"


@pytest.fixture
def cwd(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.chdir(tmp_path)
    shutil.copy(AFTER, tmp_path / "t.etl")
    shutil.copy(BEFORE, tmp_path / "b.etl")
    return tmp_path


def _files(folder: pathlib.Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# ------------------------------------------------------------------------------------------------ inputs kept


@pytest.mark.parametrize("make", ["hardlink", "symlink"])
@pytest.mark.parametrize("option", ["-o", "--json", "--markdown"])
def test_an_output_that_is_an_input_by_identity_is_refused(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path,
                                                            make: str, option: str) -> None:
    link = cwd / "report.html"
    if make == "hardlink":
        os.link(cwd / "t.etl", link)
    else:
        link.symlink_to(cwd / "t.etl")
    before = (cwd / "t.etl").read_bytes()
    code, _, err = run(capsys, "t.etl", option, str(link))
    assert code == 2 and "is the input t.etl: it would be overwritten" in err
    assert (cwd / "t.etl").read_bytes() == before
    # the same for the trend's and the second trace's inputs
    code, _, _ = run(capsys, "b.etl", "t.etl", option, str(link))
    assert code == 2 and (cwd / "t.etl").read_bytes() == before


@pytest.mark.parametrize(("args", "says"), [
    (["-o", "nowhere/r.html"], "does not exist"),
    (["--json", "nowhere/r.json"], "does not exist"),
    (["-o", "."], "is a directory"),
    (["-o", "sub"], "is a directory"),
    (["-o", "r.html", "--json", "r.html"], "name the same file"),
    (["-o", "r.html", "--json", "./r.html"], "name the same file"),
    (["--json", "r.json", "--markdown", "sub/../r.json"], "name the same file"),
    (["-o", "-", "--json", "-"], "only one output can go to standard output"),
    (["-o", ""], "an empty path"),
])
def test_outputs_are_checked_before_any_work(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path,
                                             args: list[str], says: str) -> None:
    (cwd / "sub").mkdir()
    present = _files(cwd)
    code, out, err = run(capsys, "t.etl", *args)
    assert code == 2 and says in err and out == ""
    assert _files(cwd) == present  # nothing written, no temporary file left


def test_dash_is_standard_output_never_a_file(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    code, out, err = run(capsys, "t.etl", "-o", "-")
    assert code == 0 and out.startswith("<!DOCTYPE html>") and not (cwd / "-").exists()
    assert "Outstanding heap: t.etl" in err  # the summary moves to stderr when stdout carries a report
    code, out, _ = run(capsys, "t.etl", "--markdown", "-", "-q", "-o", "r.html")
    assert code == 0 and out.startswith("### Outstanding heap") and not (cwd / "-").exists()
    for cmd in (["trend", "t.etl", "b.etl", "t.etl"], ["symbolize", "r.json"]):
        if cmd[0] == "symbolize":
            run(capsys, "t.etl", "--json", "r.json", "-q", "-o", "r.html")
        code, out, _ = run(capsys, *cmd, "--json", "-", "-q", "-o", "x.html")
        assert code == 0 and out.startswith('{"schema":"heapdiff/1"') and not (cwd / "-").exists(), cmd


def test_a_report_replaces_the_old_one_whole_or_not_at_all(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "r.json"
    target.write_bytes(b"old report")

    def fails_halfway(write: object) -> None:
        assert callable(write)
        write(b"half of a new")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_output(Output("--json", str(target)), fails_halfway)
    assert target.read_bytes() == b"old report" and _files(tmp_path) == {"r.json"}

    def disk_full(write: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutOfSpace, match=r"cannot write --json .*: No space left on device"):
        write_output(Output("--json", str(target)), disk_full)
    assert target.read_bytes() == b"old report" and _files(tmp_path) == {"r.json"}
    write_output(Output("--json", str(target)), b"new report")
    assert target.read_bytes() == b"new report" and _files(tmp_path) == {"r.json"}
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


# ------------------------------------------------------------------------------------------------ exit 3


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("command", [[], ["info"], ["trend", "t.etl", "b.etl"]])
def test_a_pipe_a_device_or_a_folder_is_exit_3_and_one_line(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path,
                                                            command: list[str]) -> None:
    os.mkfifo(cwd / "pipe.etl")
    (cwd / "folder.etl").mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("sock.etl")
    # a writer that never comes: opening the FIFO would block forever; the check must not open it
    done = threading.Event()
    timer = threading.Timer(20, lambda: None if done.is_set() else os._exit(97))
    timer.start()
    try:
        for bad, says in (("pipe.etl", "is a pipe (FIFO)"), ("/dev/zero", "is a device"),
                          ("folder.etl", "is a directory"), ("sock.etl", "is a socket")):
            t0 = time.monotonic()
            code, _, err = run(capsys, *command, bad)
            assert code == 3 and says in _one_line(err) and bad in err, (bad, err)
            assert time.monotonic() - t0 < 10
    finally:
        done.set()
        timer.cancel()
        listener.close()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--version", "-V"):
        code, out, _ = run(capsys, flag)
        assert code == 0 and out == f"heapdiff {__version__}\n"


def test_running_out_of_memory_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import heapdiff.commands.report as report

    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(report, "run_report", no_memory)
    code, _, err = run(capsys, "t.etl", "-q")
    assert code == 3 and _one_line(err).startswith("heapdiff: error: out of memory")
    assert not (cwd / "heapdiff-report.html").exists()


def test_a_full_disk_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import heapdiff.cli.outputs as outputs

    real = outputs._replace_atomically

    def full(path: str, produce: outputs.Producer) -> None:
        def write_until_full(write: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        real(path, write_until_full)

    monkeypatch.setattr(outputs, "_replace_atomically", full)
    code, _, err = run(capsys, "t.etl", "-q")
    assert code == 3 and "No space left on device" in _one_line(err)
    assert not (cwd / "heapdiff-report.html").exists() and _files(cwd) == {"t.etl", "b.etl"}


# ------------------------------------------------------------------------------------------------ first run


def test_the_first_run_says_it_compiles(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import heapdiff._jit as jit

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(jit, "cache_is_cold", lambda kernel: True)
    code, _, err = run(capsys, "t.etl", "-q", "--no-symbols")
    assert code == 0 and "heapdiff: compiling its kernels for this machine (once after an install: 20 s or more)" in err
    monkeypatch.setattr(jit, "cache_is_cold", lambda kernel: False)
    code, _, err = run(capsys, "t.etl", "-q", "--no-symbols")
    assert code == 0 and "compiling" not in err


def test_cache_is_cold_asks_numbas_own_cache(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    import subprocess
    import sys

    from heapdiff._jit import JIT_ENABLED, cache_is_cold
    from heapdiff.reduce.fold import fold_kernel

    if not JIT_ENABLED:
        pytest.skip("numba is off here")
    probe = ("from heapdiff._jit import cache_is_cold\n"
             "from heapdiff.reduce.fold import fold_kernel\n"
             "print(cache_is_cold(fold_kernel))\n")
    # NUMBA_CACHE_DIR comes first among numba's cache locations: an empty one is a fresh install's cache
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cwd / "empty-cache")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
    assert run(capsys, "t.etl", "-q", "--no-symbols", "-o", "r.html")[0] == 0  # the kernel ran: now it is cached
    assert cache_is_cold(fold_kernel) is False


def _closed_pipe_run(args: list[str], cwd: pathlib.Path) -> int:
    """heapdiff as a program whose stdout and stderr are a pipe nobody reads any more (``2>&1 | head -1`` once
    head has its line): every write to them fails with EPIPE."""
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-m", "heapdiff.cli", *args], stdout=w, stderr=w, cwd=cwd,
                              timeout=300).returncode
    finally:
        os.close(w)


@pytest.mark.parametrize(("args", "code", "writes"), [
    # a damaged trace: its warnings are dropped; the report is written and the exit code stays the job's
    (["before.etl", "cut.etl", "-o", "r.html"], 0, True),
    (["before.etl", "cut.etl", "-o", "r.html", "--fail-on-growth", "1"], 1, True),
    # stdout was the output itself: 141, as a program ended by SIGPIPE (not 1, a failed gate)
    (["before.etl", "-o", "r.html", "--json", "-", "-q"], 141, True),
    # the outputs to files after the one to stdout are still written
    (["before.etl", "-o", "-", "--json", "r.json", "--markdown", "r.md", "-q"], 141, False),
    (["info", "before.etl"], 141, False),
])
def test_a_console_nobody_reads_does_not_stop_the_job(tmp_path: pathlib.Path, args: list[str], code: int,
                                                       writes: bool) -> None:
    shutil.copy(BEFORE, tmp_path / "before.etl")
    (tmp_path / "cut.etl").write_bytes(AFTER.read_bytes()[:30000])
    assert _closed_pipe_run(args, tmp_path) == code
    if writes:
        assert (tmp_path / "r.html").stat().st_size > 1000
    if "r.json" in args:
        assert json.loads((tmp_path / "r.json").read_text())["schema"] == "heapdiff/1"
        assert (tmp_path / "r.md").read_text().startswith("#")
