"""The leak answer through the CLI: a headline that tells the truth, gates that cannot pass on nothing,
baselines, suppressions, the Markdown summary, and a diff that says which run each fact is from."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from cli_run import run

from heapdiff.cli.params import parse_size
from heapdiff.tracegen.scenario import Module, Process, Scenario
from heapdiff.tracegen.writer import TraceWriter

ROOT = pathlib.Path(__file__).resolve().parents[1]
BEFORE = str(ROOT / "fixtures" / "example" / "before.etl")
AFTER = str(ROOT / "fixtures" / "example" / "after.etl")
#: the example's two leaks, named by its PDBs (the plugin's through an inlined helper)
TEXTURE = "plugin.dll!gfx::Texture::load+0x56 (plugin.cpp:25)"
PARSER = "app.exe!parse_line+0x1e (app.c:22)"


def doc_of(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = run(capsys, *args, "--json", "-", "-q")
    d: dict[str, Any] = json.loads(out)
    return code, d, err


# ------------------------------------------------------------------------------------------------ headline


def test_the_example_headline_is_the_growth_and_a_zero_gate_fails(capsys: pytest.CaptureFixture[str],
                                                                   cwd: pathlib.Path) -> None:
    code, out, err = run(capsys, BEFORE, AFTER)
    assert code == 0
    lines = out.splitlines()
    # the net is negative (memory freed elsewhere), yet two call stacks leak: the headline says so first
    assert lines[1] == "Growth: +33.5 KiB in +55 blocks (3 call stacks grew)"
    assert lines[2] == "Shrink: -40.0 KiB in -10 blocks (1 call stack shrank)"
    assert lines[3].startswith("Net: -6.5 KiB in +45 blocks")
    code, _, err = run(capsys, BEFORE, AFTER, "--fail-on-growth", "0", "-q")
    assert code == 1 and "--fail-on-growth 0 B: FAILED: total growth 33.5 KiB > 0 B" in err


def test_totals_growth_shrink_and_net_agree(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    _, d, _ = doc_of(capsys, BEFORE, AFTER)
    t = d["totals"]
    deltas = [g["delta"] for g in d["groups"]]
    assert t["growth"] == {"blocks": sum(max(x["blocks"], 0) for x in deltas),
                           "bytes": sum(max(x["bytes"], 0) for x in deltas)}
    assert t["shrink"] == {"blocks": sum(min(x["blocks"], 0) for x in deltas),
                           "bytes": sum(min(x["bytes"], 0) for x in deltas)}
    assert t["delta"] == {"blocks": t["growth"]["blocks"] + t["shrink"]["blocks"],
                          "bytes": t["growth"]["bytes"] + t["shrink"]["bytes"]}
    assert t["suppressed"] == {"blocks": 0, "bytes": 0}
    assert t["growth"]["bytes"] == 25900 + 8160 + 200 and t["shrink"]["bytes"] == -40960
    run(capsys, BEFORE, AFTER, "-q", "-o", "r.html")
    html = (cwd / "r.html").read_text(encoding="utf-8")
    assert '<div class="label">Growth</div><div class="value" title="+34,260 bytes">+33.5 KiB</div>' in html
    assert '<div class="label">Net</div><div class="value" title="-6,700 bytes">-6.5 KiB</div>' in html


# --------------------------------------------------------------------------------------------------- gates


@pytest.mark.parametrize(("text", "size"), [
    ("0", 0), ("4096", 4096), ("10k", 10240), ("10K", 10240), ("10KiB", 10240), ("10kb", 10240),
    ("5M", 5 << 20), ("5MiB", 5 << 20), ("1G", 1 << 30), ("1GiB", 1 << 30), ("1.5M", 3 << 19), (" 7 b ", 7),
])
def test_sizes_take_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "10x", "k", "1.5.2M", "10 KiBs", "0x10"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_a_bad_size_is_a_usage_error(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    code, _, err = run(capsys, BEFORE, AFTER, "--fail-on-growth", "10 parsecs")
    assert code == 2 and "is not a size" in err


def test_each_gate_its_value_and_the_groups_that_tripped_it(capsys: pytest.CaptureFixture[str],
                                                            cwd: pathlib.Path) -> None:
    code, d, err = doc_of(capsys, BEFORE, AFTER, "--fail-on-growth", "40k", "--fail-on-stack-growth", "8k",
                          "--fail-on-new", "25KiB")
    gates = {g["name"]: g for g in d["gates"]}
    labels = [g["label"] for g in d["groups"]]
    assert gates["growth"] == {"name": "growth", "threshold": 40960, "value": 34260, "failed": False, "groups": [],
                               "reason": None}
    sg = gates["stack_growth"]
    assert (sg["value"], sg["failed"]) == (25900, True)
    assert [labels[i] for i in sg["groups"]] == [TEXTURE]  # 8,160 bytes does not trip it
    new = gates["new"]
    assert (new["value"], new["failed"], [labels[i] for i in new["groups"]]) == (25900, True, [TEXTURE])
    assert code == 1 and err.count("FAILED") == 2
    code, d, _ = doc_of(capsys, BEFORE, AFTER, "--fail-on-stack-growth", "26k", "--fail-on-new", "26k")
    assert code == 0 and not any(g["failed"] for g in d["gates"])


def test_fail_on_new_needs_two_inputs(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    code, _, err = run(capsys, AFTER, "--fail-on-new", "1k")
    assert code == 2 and "--fail-on-new needs two inputs" in err


def test_single_trace_gates_measure_what_is_outstanding(capsys: pytest.CaptureFixture[str],
                                                        cwd: pathlib.Path) -> None:
    _, d, _ = doc_of(capsys, AFTER)
    total, largest = d["totals"]["bytes"], d["groups"][0]["bytes"]
    code, d, _ = doc_of(capsys, AFTER, "--fail-on-growth", str(total), "--fail-on-stack-growth", str(largest - 1))
    assert code == 1
    assert [(g["name"], g["value"], g["failed"]) for g in d["gates"]] == [
        ("growth", total, False), ("stack_growth", largest, True)]


def _no_heap_trace(path: pathlib.Path) -> None:
    """A trace recorded without heap tracing: a process and its images, no heap event."""
    w = TraceWriter(str(path), cpus=1, buffer_size=0x2000)
    sc = Scenario(w, cpus=1)
    mods = {"app.exe": Module("app.exe", "C:\\x\\app.exe", 0x7FF6_0100_0000, 0x80000)}
    sc.start_process(Process(4242, "app.exe", mods, heaps=[0x10000], threads=[8]))
    sc.close()


def test_a_gate_never_passes_on_nothing(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    _no_heap_trace(cwd / "noheap.etl")
    code, _out, err = run(capsys, "noheap.etl", "-o", "r.html")
    assert code == 0  # without a gate, a result with a warning
    assert "noheap.etl holds no heap events" in err and "xperf -on PROC_THREAD+LOADER" in err
    html = (cwd / "r.html").read_text(encoding="utf-8")
    assert "No heap events: this report cannot show a leak" in html and "wpr -start Heap" in html
    code, d, err = doc_of(capsys, "noheap.etl", "--fail-on-growth", "1G")
    (g,) = d["gates"]
    assert code == 1 and g["failed"] and "holds no heap events" in g["reason"]
    assert "nothing to measure" in err
    code, _, _ = run(capsys, BEFORE, "noheap.etl", "--fail-on-stack-growth", "1G", "-q")
    assert code == 1


def test_a_filter_that_matches_no_process_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                                           cwd: pathlib.Path) -> None:
    code, _out, err = run(capsys, AFTER, "--process", "notepad.exe", "--fail-on-growth", "0")
    assert code == 2 and "--process notepad.exe: no such process" in err and "app.exe (" in err
    code, _, err = run(capsys, AFTER, "--pid", "99999")
    assert code == 2 and "--pid 99999: no such process" in err and "app.exe (" in err
    assert not (cwd / "heapdiff-report.html").exists()


def test_the_same_file_twice_warns(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    (cwd / "link.etl").symlink_to(AFTER)
    code, _, err = run(capsys, AFTER, "link.etl", "-q")
    assert code == 0 and "are the same file" in err


def test_frees_older_than_the_trace_are_information_not_a_warning(capsys: pytest.CaptureFixture[str],
                                                                  cwd: pathlib.Path) -> None:
    w = TraceWriter(str(cwd / "old.etl"), cpus=1, buffer_size=0x2000)
    sc = Scenario(w, cpus=1)
    mods = {"app.exe": Module("app.exe", "C:\\x\\app.exe", 0x7FF6_0100_0000, 0x80000)}
    p = Process(4242, "app.exe", mods, heaps=[0x10000], threads=[8])
    sc.start_process(p)
    sc.alloc(p, [("app.exe", 0x20)], 64, heap=0x10000)
    for k in range(3):  # blocks allocated before tracing began
        w.heap_free(sc.tick(), 0, 4242, 8, 0x10000, 0x990000 + 16 * k)
    sc.close()
    _, d, _ = doc_of(capsys, "old.etl")
    assert d["traces"][0]["unmatched_frees"] == 3
    run(capsys, "old.etl", "-q", "-o", "r.html")
    html = (cwd / "r.html").read_text(encoding="utf-8")
    assert "Read this report with care" not in html
    assert "3 frees of blocks allocated before the trace started (normal: tracing starts while the program runs)" \
        in html


# ------------------------------------------------------------------------------------------------ baselines


def test_a_baseline_document_stands_where_the_before_trace_stands(capsys: pytest.CaptureFixture[str],
                                                                  cwd: pathlib.Path) -> None:
    run(capsys, BEFORE, "--json", "main.json", "-q")
    _, with_trace, _ = doc_of(capsys, BEFORE, AFTER)
    code, with_json, _ = doc_of(capsys, "main.json", AFTER, "--fail-on-growth", "30k")
    assert code == 1
    assert [t["role"] for t in with_json["traces"]] == ["baseline", "after"]
    assert with_json["traces"][0]["path"] == BEFORE

    def rows(d: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(g["stack"], g["status"], g["delta"]["bytes"], g["before"], g["after"]) for g in d["groups"]]

    assert rows(with_json) == rows(with_trace)
    assert with_json["totals"] == with_trace["totals"]


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: dict(d, schema="heapdiff/2"), "not a heapdiff/1 document"),
    (lambda d: dict(d, groups=[dict(d["groups"][0], bytes="many")]), r"groups[0].bytes: expected an integer"),
    (lambda d: {k: v for k, v in d.items() if k != "traces"}, "traces: missing"),
])
def test_a_baseline_that_does_not_fit_is_a_usage_error(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path,
                                                       make: Any, message: str) -> None:
    _, d, _ = doc_of(capsys, BEFORE)
    (cwd / "bad.json").write_text(json.dumps(make(d)), encoding="utf-8")
    code, _, err = run(capsys, "bad.json", AFTER)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_diff_document_is_not_a_baseline(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    run(capsys, BEFORE, AFTER, "--json", "diff.json", "-q")
    code, _, err = run(capsys, "diff.json", AFTER)
    assert code == 2 and "diff.json is a diff document; a baseline is the JSON of one trace" in err
    code, _, err = run(capsys, BEFORE, "diff.json")
    assert code == 2 and "a baseline document stands first" in err
    run(capsys, BEFORE, "--json", "k.json", "-q", "--kernel-frames")
    code, _, err = run(capsys, "k.json", AFTER)
    assert code == 2 and "made with --kernel-frames" in err


# --------------------------------------------------------------------------------------------- suppressions


def test_suppressed_groups_leave_totals_and_gates_and_are_listed(capsys: pytest.CaptureFixture[str],
                                                                 cwd: pathlib.Path) -> None:
    (cwd / "known.supp").write_text("# accepted: the plugin's texture cache\nPLUGIN.DLL+0x10?9\n"
                                    "nosuch.dll!*   # never matches\n", encoding="utf-8")
    code, d, err = doc_of(capsys, BEFORE, AFTER, "--suppress", "known.supp", "--fail-on-stack-growth", "8k")
    by = {g["label"]: g["suppressed_by"] for g in d["groups"]}
    assert by[TEXTURE] == "PLUGIN.DLL+0x10?9" and by[PARSER] is None
    assert d["totals"]["suppressed"] == {"blocks": 25, "bytes": 25900}
    assert d["totals"]["growth"] == {"blocks": 30, "bytes": 8160 + 200}
    assert code == 0 and not d["gates"][0]["failed"]  # only the suppressed group was over 8 KiB
    assert d["suppressions"] == [
        {"pattern": "PLUGIN.DLL+0x10?9", "source": "known.supp", "line": 2, "groups": 1},
        {"pattern": "nosuch.dll!*", "source": "known.supp", "line": 3, "groups": 0}]
    assert "suppression pattern matched nothing: known.supp:3: nosuch.dll!*" in err
    code, out, _ = run(capsys, BEFORE, AFTER, "--suppress", "known.supp", "-o", "r.html")
    assert "Suppressed: 1 call stack, +25.3 KiB in +25 blocks (not counted above)" in out
    assert TEXTURE not in out.split("innermost frame")[1]  # not among the rows
    html = (cwd / "r.html").read_text(encoding="utf-8")
    assert "Suppressed: 1 call stack, not counted above" in html and "known.supp:3: nosuch.dll!*" in html


@pytest.mark.parametrize(("line", "message"), [
    ("app.exe", "is not module!function or module+0xRVA"),
    ("app.exe+0xZZ", "the RVA after +0x must be hex digits"),
    ("!malloc", "needs both a module and a function or RVA"),
])
def test_a_bad_suppression_names_its_file_and_line(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path,
                                                   line: str, message: str) -> None:
    (cwd / "s.supp").write_text(f"# ok\n\n{line}\n", encoding="utf-8")
    code, _, err = run(capsys, AFTER, "--suppress", "s.supp")
    assert code == 2 and f"s.supp:3: {line!r}" in err and message in err
    code, _, err = run(capsys, AFTER, "--suppress", "missing.supp")
    assert code == 2 and "--suppress missing.supp: cannot read" in err


# ---------------------------------------------------------------------------------------- markdown, per run


def test_markdown_summary(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    code, out, err = run(capsys, BEFORE, AFTER, "--markdown", "-", "--fail-on-new", "1k", "-o", "r.html")
    assert code == 1
    assert out.startswith("### Heap growth: before.etl → after.etl\n\n**Growth: +33.5 KiB in +55 blocks")
    assert "| --fail-on-new | **FAILED**: largest call stack new in after 25.3 KiB &gt; 1.0 KiB" in out
    assert f"| 1 | new | +25.3 KiB | +25 | plugin.dll | {TEXTURE} |" in out
    assert f"<details><summary>#1 {TEXTURE}</summary>" in out and "```\nntdll.dll+0x3a2f0\n" in out
    assert "Growth:" in err  # stdout held the Markdown, so the summary went to stderr
    run(capsys, BEFORE, AFTER, "--markdown", "s.md", "-q")
    assert (cwd / "s.md").read_text(encoding="utf-8").startswith("### Heap growth")


def test_markdown_wording_is_right_in_the_singular_and_escapes_trace_strings() -> None:
    from heapdiff.report.markdown import md
    from heapdiff.report.sentences import blocks

    assert blocks(1) == "1 block" and blocks(-1, True) == "-1 block" and blocks(2) == "2 blocks"
    assert md("evil|`x`*<b>[a](http://e)&") == "evil\\|\\`x\\`\\*&lt;b&gt;\\[a\\](http://e)&amp;"


def test_a_diff_says_which_run_each_fact_is_from(capsys: pytest.CaptureFixture[str], cwd: pathlib.Path) -> None:
    _, d, _ = doc_of(capsys, BEFORE, AFTER)
    common = next(g for g in d["groups"] if g["status"] == "common")
    runs = common["runs"]
    assert set(runs) == {"before", "after"}
    assert runs["before"]["heaps"] != runs["after"]["heaps"]  # other heap handles in another run
    assert sum(runs["before"]["sources"].values()) == common["before"]["blocks"]
    assert sum(runs["after"]["sources"].values()) == common["after"]["blocks"]
    run(capsys, BEFORE, AFTER, "-q", "-o", "r.html")
    html = (cwd / "r.html").read_text(encoding="utf-8")
    assert '<h4 class="run"><span class="badge role">before</span>' in html
    assert "By heap (before)" in html and "By heap (after)" in html
    assert "By heap Source (before)" in html and "By heap Source (after)" in html
