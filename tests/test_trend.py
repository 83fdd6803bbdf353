"""Trends over N runs: the classes and slopes on constructed series, and ``heapdiff trend`` on written traces (a
leak that keeps leaking, a cache that fills and stops, memory given back, a constant) and on documents."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from cli_run import run
from trend_runs import write_run

from heapdiff.document import decode, decode_value
from heapdiff.document.trend import classify, slope
from heapdiff.errors import DocumentError

# ------------------------------------------------------------------------------------------------ the classes

CLASSES = [
    # series (bytes per run)           class         why
    ([10, 20, 30, 40], "growing"),     # grows in every step
    ([1000, 1010, 1020, 1030], "growing"),  # a slow leak on a large base is still a leak, not a plateau
    ([10, 20, 20, 30], "growing"),     # one pause allowed
    ([0, 0, 10, 20, 30], "growing"),   # a leak that starts in run 3 is judged from there
    ([0, 0, 0, 5, 10], "growing"),
    ([10, 20, 20, 20, 30], "flat"),    # two pauses: not growing; the last half is not within 5 %
    ([1, 5, 9, 10, 10, 10], "plateau"),  # a cache that filled
    ([0, 5, 5], "plateau"),            # appeared, then stayed: grew once only
    ([10, 100, 102, 101, 100], "plateau"),  # within 5 % over the last half, one step down included
    ([40, 30, 20], "shrinking"),
    ([40, 50, 60, 30], "shrinking"),   # grew, but holds less in the end than at first
    ([10, 10, 10], "flat"),
    ([10, 5, 10], "flat"),
    ([0, 0, 0], "flat"),
    ([0, 0, 0, 0, 5], "flat"),         # new in the last run: one step is no trend
    ([5, 0, 5], "flat"),
    ([7], "flat"),
]


@pytest.mark.parametrize(("series", "klass"), CLASSES, ids=[str(s) for s, _ in CLASSES])
def test_classes_on_constructed_series(series: list[int], klass: str) -> None:
    assert classify(series) == klass


@pytest.mark.parametrize(("series", "expected"), [
    ([10, 20, 30, 40], 10.0),
    ([40, 30, 20], -10.0),
    ([5, 5, 5, 5], 0.0),
    ([0, 0, 0, 3], 0.9),          # sum((x - 1.5)(y - 0.75)) = 4.5 over sum((x - 1.5)^2) = 5
    ([1, 3, 2], 0.5),
    ([7], 0.0),
    ([], 0.0),
])
def test_slope_is_the_least_squares_slope(series: list[int], expected: float) -> None:
    assert slope(series) == pytest.approx(expected)


def test_slope_matches_a_plain_fit() -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    for _ in range(50):
        ys = rng.integers(0, 1 << 40, size=int(rng.integers(3, 12))).tolist()
        assert slope(ys) == pytest.approx(float(np.polyfit(np.arange(len(ys)), ys, 1)[0]), rel=1e-9, abs=1e-3)


# ------------------------------------------------------------------------------------------------ the command

@pytest.fixture
def runs(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    names = []
    for k in range(5):
        write_run(tmp_path / f"run{k}.etl", k)
        names.append(f"run{k}.etl")
    return names


def _by_label(d: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["label"]: g for g in d["groups"]}


def test_trend_over_written_traces(capsys: pytest.CaptureFixture[str], runs: list[str]) -> None:
    code, out, _ = run(capsys, "trend", *runs, "--json", "-", "-q", "--no-symbols")
    assert code == 0
    d = json.loads(out)
    assert d["mode"] == "trend" and [t["role"] for t in d["traces"]] == ["run"] * 5
    assert d["totals"]["runs"] == [{"blocks": 1 + 1 + 5 + 1, "bytes": 1000 + 3000 + 20000 + 500},
                                   {"blocks": 2 + 2 + 4 + 1, "bytes": 2000 + 6000 + 16000 + 500},
                                   {"blocks": 3 + 3 + 3 + 1, "bytes": 3000 + 9000 + 12000 + 500},
                                   {"blocks": 4 + 3 + 2 + 1, "bytes": 4000 + 9000 + 8000 + 500},
                                   {"blocks": 5 + 3 + 1 + 1, "bytes": 5000 + 9000 + 4000 + 500}]
    g = _by_label(d)
    assert [(g[k]["series"], g[k]["trend"]) for k in ("app.exe+0x100", "app.exe+0x200", "app.exe+0x300",
                                                       "app.exe+0x400")] == [
        ([1000, 2000, 3000, 4000, 5000], {"slope_bytes": 1000.0, "class": "growing"}),
        ([3000, 6000, 9000, 9000, 9000], {"slope_bytes": 1500.0, "class": "plateau"}),
        ([20000, 16000, 12000, 8000, 4000], {"slope_bytes": -4000.0, "class": "shrinking"}),
        ([500] * 5, {"slope_bytes": 0.0, "class": "flat"})]
    # steepest growth first; each run's counts beside the series
    assert [x["label"] for x in d["groups"]][:2] == ["app.exe+0x200", "app.exe+0x100"]
    assert [r["bytes"] for r in g["app.exe+0x100"]["runs"]] == [1000, 2000, 3000, 4000, 5000]
    # the document reads back
    doc = decode(out.encode())
    assert doc.is_trend and [x.series for x in doc.groups][1] == (1000, 2000, 3000, 4000, 5000)
    d["groups"][0]["runs"] = d["groups"][0]["runs"][:2]  # a group's runs are one per trace
    with pytest.raises(DocumentError, match=r"^groups\[0\]\.runs: 2 runs for 5 traces$"):
        decode_value(d)


def test_trend_summary_markdown_and_html(capsys: pytest.CaptureFixture[str], runs: list[str]) -> None:
    code, out, _ = run(capsys, "trend", *runs, "--no-symbols", "--markdown", "t.md", "-o", "t.html")
    assert code == 0
    assert out.splitlines()[:2] == ["Heap trend over 5 runs: run0.etl … run4.etl",
                                    "Over 5 runs: 1 call stack growing, 1 plateau, 1 shrinking, 1 flat"]
    assert "+1000 B" in out and "growing" in out
    md = pathlib.Path("t.md").read_text(encoding="utf-8")
    assert "| 2 | +1000 B | 4.9 KiB | growing | app.exe | app.exe+0x100 |" in md
    html = pathlib.Path("t.html").read_text(encoding="utf-8")
    assert html.count('<svg class="spark"') == 4 and '<span class="badge trend-growing">growing</span>' in html
    assert '<span class="badge role">run 5</span>' in html and "First run" in html


def test_fail_on_trend(capsys: pytest.CaptureFixture[str], runs: list[str]) -> None:
    code, out, err = run(capsys, "trend", *runs, "--no-symbols", "--fail-on-trend", "999", "--json", "-", "-q")
    (gate,) = json.loads(out)["gates"]
    # only the growing group counts: the plateau's steeper slope does not trip it
    assert code == 1 and gate["name"] == "trend" and gate["value"] == 1000 and gate["failed"]
    assert "--fail-on-trend 999 B/run: FAILED: steepest slope per run of a growing call stack 1000 B/run" in err
    code, _, _ = run(capsys, "trend", *runs, "--no-symbols", "--fail-on-trend", "1000", "-q")
    assert code == 0
    # a suppressed leak trips nothing
    pathlib.Path("known.txt").write_text("app.exe+0x100\n", encoding="utf-8")
    code, _, _ = run(capsys, "trend", *runs, "--no-symbols", "--fail-on-trend", "0", "--suppress", "known.txt", "-q")
    assert code == 0


def test_runs_may_be_documents(capsys: pytest.CaptureFixture[str], runs: list[str]) -> None:
    for k, r in enumerate(runs[:3]):
        assert run(capsys, r, "--no-symbols", "--json", f"run{k}.json", "-q", "-o", "/dev/null")[0] == 0
    _, from_traces, _ = run(capsys, "trend", *runs, "--no-symbols", "--json", "-", "-q")
    code, mixed, _ = run(capsys, "trend", "run0.json", "run1.json", "run2.json", *runs[3:], "--no-symbols",
                         "--json", "-", "-q")
    assert code == 0
    a, b = json.loads(from_traces), json.loads(mixed)
    assert [(g["label"], g["series"], g["trend"]) for g in a["groups"]] == \
        [(g["label"], g["series"], g["trend"]) for g in b["groups"]]


@pytest.mark.parametrize(("make", "message"), [
    (lambda r: ["trend", r[0], r[1]], "a trend needs at least 3 runs"),
    (lambda r: ["trend", r[0], "diff.json", r[2]], "diff.json is a diff document; a run of a trend is a trace"),
    (lambda r: ["trend", r[0], r[1], r[2], "--symbols", "x", "--no-symbols"], "--symbols and --no-symbols"),
    (lambda r: ["trend", r[0], r[1], r[2], "-o", r[0]], "it would be overwritten"),
    (lambda r: ["trend", r[0], r[1], r[2], "--fail-on-trend", "lots"], "lots"),
])
def test_usage_errors(capsys: pytest.CaptureFixture[str], runs: list[str], make: Any, message: str) -> None:
    run(capsys, runs[0], runs[1], "--no-symbols", "--json", "diff.json", "-q", "-o", "/dev/null")
    code, _, err = run(capsys, *make(runs))
    assert code == 2 and message in err
    assert not pathlib.Path("heapdiff-trend.html").exists()


def test_a_run_given_twice_warns(capsys: pytest.CaptureFixture[str], runs: list[str]) -> None:
    code, _, err = run(capsys, "trend", runs[0], runs[1], runs[1], "--no-symbols", "-q")
    assert code == 0 and "run1.etl is given twice" in err


def test_an_unreadable_run_is_exit_3(capsys: pytest.CaptureFixture[str], runs: list[str]) -> None:
    pathlib.Path("junk.etl").write_bytes(b"\x00" * 100)
    code, _, err = run(capsys, "trend", runs[0], runs[1], "junk.etl", "--no-symbols", "-q")
    assert code == 3 and "junk.etl" in err
