"""Every command of the CLI, including bad input: exit codes 0/1/2/3, one stderr line, no traceback."""

from __future__ import annotations

import gc
import io
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
from typing import Any

import pytest
from cli_run import run

from heapdiff.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
BEFORE = ROOT / "fixtures" / "example" / "before.etl"
AFTER = ROOT / "fixtures" / "example" / "after.etl"


# ----------------------------------------------------------------------------------------------------- info
def test_info_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "info", str(AFTER))
    assert code == 0
    assert "records" in out and "heap_alloc" in out and "app.exe" in out
    assert err == ""


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", "--json", str(AFTER))
    assert code == 0
    d = json.loads(out)
    for key in ("pointer_size", "buffers", "compressed_buffers", "records", "events_lost", "buffers_lost",
                "start_utc", "end_utc", "logger_name", "providers", "events", "stack_refs", "stacks_matched",
                "anomalies"):
        assert key in d, key
    assert d["pointer_size"] == 8
    assert d["start_utc"].endswith("Z") and "." in d["start_utc"]
    assert d["events"]["heap_alloc"] > 0 and d["stacks_matched"] == d["stack_refs"] > 0
    assert sum(d["events"].values()) == d["records"] == sum(d["providers"].values())


def test_info_of_a_file_named_info(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    shutil.copy(AFTER, cwd / "info")
    code, out, _ = run(capsys, "./info", "--json", "-", "-q")
    assert code == 0
    assert json.loads(out)["mode"] == "single"


# ----------------------------------------------------------------------------------------------------- main job
def test_diff_writes_html_json_and_summary(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    code, out, err = run(capsys, str(BEFORE), str(AFTER), "--json", "r.json")
    assert code == 0, err
    assert "heapdiff-report.html" in out  # the path is printed
    assert "plugin.dll" in out  # the summary names the top growth
    html = (cwd / "heapdiff-report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") or html.lower().startswith("<!doctype html>")
    doc = json.loads((cwd / "r.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "heapdiff/1" and doc["mode"] == "diff"
    assert [t["role"] for t in doc["traces"]] == ["before", "after"]
    by_module = {g["module"]: g for g in doc["groups"]}
    assert by_module["plugin.dll"]["status"] == "new"


def test_options_after_paths_and_json_on_stdout(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    code, out, err = run(capsys, str(BEFORE), "-o", "x.html", str(AFTER), "--json", "-")
    assert code == 0
    doc = json.loads(out)  # stdout holds only the JSON
    assert doc["mode"] == "diff"
    assert "x.html" in err  # the summary went to stderr
    assert (cwd / "x.html").exists()


def test_single_trace(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    code, out, _ = run(capsys, str(AFTER), "--json", "-", "-q")
    assert code == 0
    doc = json.loads(out)
    assert doc["mode"] == "single" and doc["totals"]["blocks"] > 0


def test_top_and_min_bytes_thin_the_html_never_the_json(capsys: pytest.CaptureFixture[str],
                                                        cwd: pathlib.Path) -> None:
    _, full, _ = run(capsys, str(BEFORE), str(AFTER), "--json", "-", "-q")
    _, thin, _ = run(capsys, str(BEFORE), str(AFTER), "--json", "-", "-q", "--top", "1", "--min-bytes", "100000")
    a, b = json.loads(full), json.loads(thin)
    assert a["groups"] == b["groups"] and len(a["groups"]) > 1


def test_fail_on_growth(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    _, out, _ = run(capsys, str(AFTER), "--json", "-", "-q")
    total = json.loads(out)["totals"]["bytes"]
    code, _, err = run(capsys, str(AFTER), "-q", "--fail-on-growth", str(total - 1), "-o", "g.html")
    assert code == 1 and "--fail-on-growth" in err and "FAILED" in err
    assert (cwd / "g.html").exists()  # the report is still written
    code, _, _ = run(capsys, str(AFTER), "-q", "--fail-on-growth", str(total))
    assert code == 0


def test_process_and_pid_filters(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    _, out, _ = run(capsys, str(BEFORE), str(AFTER), "--json", "-", "-q", "--process", "APP.EXE")
    full = json.loads(out)
    pids = [next(iter(t["outstanding_by_pid"])) for t in full["traces"]]
    _, out, _ = run(capsys, str(BEFORE), str(AFTER), "--json", "-", "-q", "--pid", ":".join(pids))
    assert json.loads(out)["totals"] == full["totals"]
    code, out, err = run(capsys, str(BEFORE), str(AFTER), "--json", "-", "-q", "--process", "other.exe", "-o",
                         "x.html")
    # a filter that matches nothing is a usage error naming what the trace holds, never an empty, clean report
    assert code == 2 and out == "" and "--process other.exe: no such process" in err and "app.exe (" in err
    assert not (cwd / "x.html").exists()


@pytest.mark.parametrize("args", [
    [],
    ["a.etl", "b.etl", "c.etl"],
    ["--pid", "1:2:3", "a.etl"],
    ["--pid", "12", "a.etl", "b.etl"],
    ["--pid", "x", "a.etl"],
    ["--top", "0", "a.etl"],
    ["--no-such-option", "a.etl"],
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert "Traceback" not in err


def test_an_input_is_never_overwritten(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    shutil.copy(AFTER, cwd / "t.etl")
    before = (cwd / "t.etl").read_bytes()
    code, _, _ = run(capsys, "t.etl", "-o", "t.etl")
    assert code == 2
    code, _, _ = run(capsys, "t.etl", "--json", "./t.etl")
    assert code == 2
    assert (cwd / "t.etl").read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, random.Random(5).randbytes(5000), b"{" * 70, b"\xff" * 70000])
@pytest.mark.parametrize("command", [["info"], []])
def test_unreadable_trace_exit_3_with_one_line(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path,
                                               content: bytes, command: list[str]) -> None:
    (cwd / "bad.etl").write_bytes(content)
    code, _, err = run(capsys, *command, "bad.etl")
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "bad.etl" in lines[0] and "byte offset" in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [["info"], []])
def test_missing_file_exit_3(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path, command: list[str]) -> None:
    code, _, err = run(capsys, *command, "nope.etl")
    assert code == 3
    assert len(err.strip().splitlines()) == 1 and "nope.etl" in err


@pytest.mark.parametrize("order", ["good-bad", "bad-good", "bad-missing"])
def test_the_first_unreadable_of_two_is_the_error(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path,
                                                  order: str) -> None:
    """The two traces are opened at once; the error is still about the first bad one in argument order."""
    shutil.copy(AFTER, cwd / "good.etl")
    (cwd / "bad.etl").write_bytes(b"\x00" * 10)
    args = {"good-bad": ["good.etl", "bad.etl"], "bad-good": ["bad.etl", "good.etl"],
            "bad-missing": ["bad.etl", "nope.etl"]}[order]
    code, _, err = run(capsys, *args)
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "bad.etl" in lines[0] and "nope.etl" not in lines[0], err


def test_truncated_trace_gives_a_result_with_a_warning(capsys: pytest.CaptureFixture[str],
                                                       cwd: pathlib.Path) -> None:
    data = AFTER.read_bytes()
    (cwd / "cut.etl").write_bytes(data[: len(data) - 5000])
    code, out, err = run(capsys, "cut.etl", "--json", "-", "-q")
    assert code == 0
    assert "warning" in err and "truncated_buffer" in err
    assert json.loads(out)["traces"][0]["anomalies"]["truncated_buffer"] == 1


def test_help_states_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--help"], ["info", "--help"]):
        code, out, _ = run(capsys, *args)
        assert code == 0
        assert "Exit codes" in out and "3" in out
    _, out, _ = run(capsys, "--help")
    assert "ntdll" in out and "vcruntime" in out  # the allocator list


def test_console_script_runs_as_a_process(tmp_path: pathlib.Path) -> None:
    """The installed entry point, as a user runs it (start-up, argument handling, exit code)."""
    exe = shutil.which("heapdiff", path=os.path.dirname(sys.executable)) or shutil.which("heapdiff")
    if exe is None:
        pytest.skip("the heapdiff console script is not installed in this environment")
    p = subprocess.run([exe, str(BEFORE), str(AFTER), "-o", str(tmp_path / "r.html"), "-q"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "r.html").stat().st_size > 1000


class _Ended(Exception):
    """The process's end, in a test."""


def test_as_the_program_the_process_ends_when_the_command_is_done(capsys: pytest.CaptureFixture[str],
                                                                  cwd: pathlib.Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as the program (no argv), the process ends at once with the command's exit code, the job's result kept
    referenced until then (never freed object by object: heapdiff.cli.exits); called with argv (in-process), the
    command ends in SystemExit and nothing is kept."""
    from heapdiff.cli import exits

    ended: list[int] = []

    def end(status: int) -> None:
        ended.append(status)
        raise _Ended

    monkeypatch.setattr(exits, "_end_process", end)
    monkeypatch.setattr(exits, "_enabled", False)
    monkeypatch.setattr(exits, "_kept", [])
    assert run(capsys, str(BEFORE), str(AFTER), "-o", "a.html", "-q")[0] == 0
    assert ended == [] and exits._kept == []
    try:
        for args, code in [([str(BEFORE), str(AFTER), "-o", "b.html", "-q"], 0),
                           ([str(BEFORE), str(AFTER), "-o", "c.html", "-q", "--fail-on-growth", "1"], 1),
                           ([str(BEFORE), "--no-such-option"], 2),
                           (["no-such.etl"], 3)]:
            monkeypatch.setattr(sys, "argv", ["heapdiff", *args])
            with pytest.raises(_Ended):
                main()
            assert ended[-1] == code, args
    finally:
        gc.unfreeze()  # (the stand-in end returns to main's freeze, which a real end never reaches)
    assert (cwd / "b.html").stat().st_size > 1000 and (cwd / "c.html").stat().st_size > 1000
    assert len(exits._kept) == 2  # the two jobs that made a result


def test_as_the_program_a_traceback_still_freezes_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that ends in an exception (a bug) leaves through the interpreter's exit: every object is frozen
    out of the cyclic collector first, so that the exit does not walk them."""
    from heapdiff import cli
    from heapdiff.cli import exits

    def broken(argv: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "_main", broken)
    monkeypatch.setattr(exits, "_enabled", False)
    gc.unfreeze()
    try:
        with pytest.raises(RuntimeError):
            main()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


class _GoneReader(io.TextIOWrapper):
    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize(("code", "status", "stderr"), [(None, 0, ""), (0, 0, ""), (3, 3, ""), ("why", 1, "why\n")])
def test_hard_exit_flushes_the_streams_and_keeps_the_code(monkeypatch: pytest.MonkeyPatch, code: object,
                                                          status: int, stderr: str) -> None:
    """The program's end: what is still buffered on stdout and stderr is written, and the status is SystemExit's
    (a text is printed and gives 1); a stream whose reader has gone is dropped, and the status stays."""
    from heapdiff.cli import exits

    ended: list[int] = []

    def end(s: int) -> None:
        ended.append(s)
        raise _Ended

    raw_out, raw_err = io.BytesIO(), io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw_out))
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(raw_err))
    monkeypatch.setattr(exits, "_end_process", end)
    sys.stdout.write("buffered\n")
    with pytest.raises(_Ended):
        exits.hard_exit(code)
    assert (ended, raw_out.getvalue(), raw_err.getvalue()) == ([status], b"buffered\n", stderr.encode())
    monkeypatch.setattr(sys, "stdout", _GoneReader(io.BytesIO()))
    with pytest.raises(_Ended):
        exits.hard_exit(code)
    assert ended[-1] == status


def test_the_program_flushes_what_it_wrote_before_it_ends(tmp_path: pathlib.Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """As a process (which ends without the interpreter's teardown): the JSON on stdout is whole, the summary and
    the gate's line are on their streams, and the exit code is the command's."""
    def program(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "heapdiff.cli", *args], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)

    p = program(str(BEFORE), str(AFTER), "--json", "-", "-o", "r.html")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["schema"] == "heapdiff/1" and "HTML report: r.html" in p.stderr
    p = program(str(BEFORE), str(AFTER), "-o", "r.html", "--fail-on-growth", "1")
    assert p.returncode == 1 and "heapdiff: gate" in p.stderr and "HTML report: r.html" in p.stdout
    p = program("info", str(AFTER))
    assert (p.returncode, p.stdout) == run(capsys, "info", str(AFTER))[:2]


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_as_the_program_openblas_gets_one_thread(tmp_path: pathlib.Path) -> None:
    """Run as the program, numpy's OpenBLAS starts no threads of its own (they spin on the cores the job needs);
    an OPENBLAS_NUM_THREADS the user set still wins."""
    script = tmp_path / "run.py"
    script.write_text(
        "import os, sys\n"
        "from heapdiff.cli import exits, main\n"
        "def end(status):\n"
        "    sys.stderr.write(f\"TASKS {len(os.listdir('/proc/self/task'))}\\n\")\n"
        "    sys.stderr.flush()\n"
        "    os._exit(status)\n"
        "exits._end_process = end\n"
        f"sys.argv = ['heapdiff', {str(BEFORE)!r}, {str(AFTER)!r}, '-o', {str(tmp_path / 'r.html')!r}, '-q']\n"
        "main()\n")

    def tasks(**env: str) -> int:
        base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                           env={**base, **env})
        assert p.returncode == 0, p.stderr
        return int(p.stderr.split("TASKS ")[1].split()[0])

    asked = tasks(OPENBLAS_NUM_THREADS="2")
    if asked == 1:
        pytest.skip("this numpy starts no OpenBLAS threads")
    assert asked == 2
    assert tasks() == 1


def test_json_bytes_is_compact_utf8_and_carries_what_orjson_refuses() -> None:
    from heapdiff.document import json_bytes

    doc = {"name": "caf\u00e9.exe", "n": [1, 2], "big": (1 << 63) - 1, "nested": {"a": None, "b": True}}
    data = json_bytes(doc)
    assert data == json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert "caf\u00e9".encode() in data and json.loads(data) == doc
    odd = {"path": "trace-\udcff.etl", "n": 1}  # a file name whose bytes are not UTF-8 (surrogateescape)
    data = json_bytes(odd)
    assert data == b'{"path":"trace-\\udcff.etl","n":1}' and json.loads(data) == odd


def _doc(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    _, out, _ = run(capsys, *args, "--json", "-", "-q")
    d: dict[str, Any] = json.loads(out)
    return d


def test_kernel_frames_flag(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    a = _doc(capsys, str(AFTER))
    b = _doc(capsys, str(AFTER), "--kernel-frames")
    assert b["filters"]["kernel_frames"] is True and a["filters"]["kernel_frames"] is False
    assert a["totals"] == b["totals"]


def test_interrupt_exits_130_not_the_growth_code(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import heapdiff.commands.info as info_mod

    def boom(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(info_mod, "scan", boom)
    code, _, err = run(capsys, "info", str(AFTER))
    assert code == 130
    assert err.strip() == "heapdiff: interrupted"


def test_the_pure_python_fallback_gives_the_same_report(tmp_path: pathlib.Path) -> None:
    """Without numba (HEAPDIFF_NO_JIT=1 takes the same path as a failed import) the main job's JSON is identical."""
    docs = []
    for env_value in ("0", "1"):
        out = tmp_path / f"r{env_value}.json"
        p = subprocess.run([sys.executable, "-m", "heapdiff.cli", str(BEFORE), str(AFTER), "--json", str(out),
                            "-o", str(tmp_path / "r.html"), "-q"], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "HEAPDIFF_NO_JIT": env_value})
        assert p.returncode == 0, p.stderr
        docs.append(json.loads(out.read_text(encoding="utf-8")))
    assert docs[0] == docs[1] and docs[0]["groups"]
