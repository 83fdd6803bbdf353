"""The report: view model (thinning, totals, breakdowns, warnings), HTML rendering (golden file, escaping
of untrusted trace strings, no URL, bounded size), the terminal summary, and templates from a real install.

``HEAPDIFF_UPDATE_GOLDEN=1 pytest tests/test_report.py`` rewrites ``tests/golden/small_diff.html``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from heapdiff.document import Counts, decode_value
from heapdiff.errors import DocumentError
from heapdiff.report.html import render_html, template_root
from heapdiff.report.terminal import terminal_summary
from heapdiff.report.text import format_bytes
from heapdiff.report.view import Figures, ReportView
from heapdiff.report.view_build import BREAKDOWN_CAP
from heapdiff.report.view_build import build_view as _build_view


def build_view(doc: dict[str, Any], **kw: Any) -> ReportView:
    """The view of a JSON document, read through the document module as any document is."""
    return _build_view(decode_value(doc), **kw)


GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "<script>alert(1)</script>"
ATTR = '"><img src=x onerror=alert(1)>'
SCRIPT_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ATTR_ESCAPED = "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"


def small_diff() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GOLDEN / "small_diff.json").read_text(encoding="utf-8"))
    return doc


def _counts(blocks: int, nbytes: int) -> dict[str, int]:
    return {"blocks": blocks, "bytes": nbytes}


def make_doc(n_groups: int, mode: str = "diff", *, n_modules: int = 200, n_heaps: int = 40,
             frames: int = 12) -> dict[str, Any]:
    """A consistent document of ``n_groups`` groups (totals are the groups' sums), sorted like the tool's."""
    groups: list[dict[str, Any]] = []
    tb, ta = [0, 0], [0, 0]
    statuses = ("common", "new", "gone")
    for i in range(n_groups):
        module = f"mod{i % n_modules}.dll"
        stack = ["ntdll.dll+0x3a1b0", "ucrtbase.dll+0x10e2a"] + [f"{module}+0x{(i * 7 + k) & 0xffff:x}"
                                                                  for k in range(frames - 2)]
        g: dict[str, Any] = {
            "stack": stack,
            "stack_display": ["ntoskrnl.exe+0x2f8ab1", *stack],
            "module": module,
            "heaps": [f"0x{(i % n_heaps + 1) << 16:x}"] if i % 97 else ["0x10000", "0x20000"],
            "sources": {"main path": 1 + i % 3, "low-fragmentation heap": i % 2},
            "size_histogram": {"<=64": 1 + i % 5},
            "first_alloc_utc": "2026-01-01T01:00:00.000000Z",
            "last_alloc_utc": "2026-01-01T01:00:01.000000Z",
            "sample_addresses": [f"0x{0x1f0000 + i * 16:x}"],
        }
        if mode == "diff":
            status = statuses[i % 3]
            before = (0, 0) if status == "new" else (1 + i % 4, 64 * (1 + i % 50))
            after = (0, 0) if status == "gone" else (1 + i % 5, 64 * (1 + i % 70) + (n_groups - i))
            g.update(before=_counts(*before), after=_counts(*after),
                     delta=_counts(after[0] - before[0], after[1] - before[1]), status=status)
            facts = {k: g[k] for k in ("heaps", "sources", "size_histogram", "first_alloc_utc", "last_alloc_utc",
                                       "sample_addresses")}
            g["runs"] = {"before": dict(facts, heaps=[f"0x{(i % (n_heaps - 1) + 2) << 20:x}"]) if before[0] else None,
                         "after": facts if after[0] else None}
            tb[0] += before[0]
            tb[1] += before[1]
        else:
            after = (1 + i % 5, 64 * (1 + i % 70) + (n_groups - i))
            g.update(blocks=after[0], bytes=after[1])
        ta[0] += after[0]
        ta[1] += after[1]
        groups.append(g)

    def growth(g: dict[str, Any]) -> int:
        return int(g["delta"]["bytes"] if mode == "diff" else g["bytes"])

    groups.sort(key=lambda g: -growth(g))
    base = small_diff()
    if mode == "diff":
        totals: dict[str, Any] = {"before": _counts(*tb), "after": _counts(*ta),
                                  "delta": _counts(ta[0] - tb[0], ta[1] - tb[1])}
        traces = base["traces"]
    else:
        totals = _counts(*ta)
        traces = [dict(base["traces"][1], role="trace")]
    return {"schema": "heapdiff/1", "mode": mode, "generator": "heapdiff 0.1.0", "totals": totals,
            "filters": base["filters"], "traces": traces, "groups": groups}


def _sum_groups(doc: dict[str, Any]) -> Figures:
    if doc["mode"] == "diff":
        def c(key: str) -> Counts:
            return Counts(sum(g[key]["blocks"] for g in doc["groups"]),
                          sum(g[key]["bytes"] for g in doc["groups"]))
        return Figures(c("after"), c("before"), c("delta"))
    return Figures(Counts(sum(g["blocks"] for g in doc["groups"]), sum(g["bytes"] for g in doc["groups"])))


def _shown_plus_other(view: ReportView) -> Figures:
    acc = view.other.figures if view.other else (Figures(Counts(0, 0), Counts(0, 0), Counts(0, 0))
                                                 if view.is_diff else Figures(Counts(0, 0)))
    for r in view.rows:
        acc = acc + r.figures
    return acc


# ------------------------------------------------------------------------------------------------- golden


def test_golden_small_diff() -> None:
    html = render_html(build_view(small_diff(), top=4))
    golden = GOLDEN / "small_diff.html"
    if os.environ.get("HEAPDIFF_UPDATE_GOLDEN") == "1":
        golden.write_bytes(html.encode("utf-8"))
    assert golden.is_file(), "no golden file: run with HEAPDIFF_UPDATE_GOLDEN=1 once"
    expected = golden.read_bytes().decode("utf-8")
    if html != expected:  # a readable first difference rather than two 30 kB strings
        for n, (a, b) in enumerate(zip(html.splitlines(), expected.splitlines(), strict=False), 1):
            assert a == b, f"first difference at line {n} (HEAPDIFF_UPDATE_GOLDEN=1 regenerates)"
        assert html == expected, "rendered HTML differs from golden (HEAPDIFF_UPDATE_GOLDEN=1 regenerates)"


def test_compiled_template_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled template is kept beside the templates and loaded by the next process (here: a fresh
    environment); the page is the same either way; nothing is written where Python writes no bytecode."""
    from heapdiff.cli.outputs import TemplateCache
    from heapdiff.report import html as H

    cache = tmp_path / "__pycache__"
    H.set_bytecode_cache(TemplateCache(str(cache), "%s.jinja-cache"))
    view = build_view(small_diff(), top=4)
    try:
        monkeypatch.setattr(sys, "dont_write_bytecode", True)
        H._environment.cache_clear()
        first = render_html(view)
        assert not cache.exists()
        monkeypatch.setattr(sys, "dont_write_bytecode", False)
        H._environment.cache_clear()
        assert render_html(view) == first
        written = list(cache.glob("*.jinja-cache"))
        assert len(written) == 1
        H._environment.cache_clear()
        env = H._environment()
        bucket = env.bytecode_cache.get_bucket(env, H.TEMPLATE, None, H._read(H.TEMPLATE))  # type: ignore[union-attr]
        assert bucket.code is not None  # a fresh environment finds the compiled template
        assert render_html(view) == first
    finally:
        H.set_bytecode_cache(None)


def test_rendering_is_deterministic() -> None:
    doc = small_diff()
    assert render_html(build_view(doc, top=4)) == render_html(build_view(copy.deepcopy(doc), top=4))


def test_small_diff_view_facts() -> None:
    view = build_view(small_diff(), top=4)
    assert view.mode == "diff" and view.title == "Heap growth: before.etl → after.etl"
    assert [r.rank for r in view.rows] == [1, 2, 3, 4]
    first = view.rows[0]
    assert first.label == "app.exe+0x1a2b"  # innermost frame past ntdll and ucrtbase
    assert [f.kernel for f in first.frames][:3] == [True, True, False]
    assert first.frames[first.label_index].text == "app.exe+0x1a2b"
    assert view.rows[1].label == "app.exe+0x2210"  # past vcruntime140.dll
    assert view.rows[3].label == "(no stack)" and view.rows[3].module == "(unknown)"
    assert view.other is not None and view.other.groups == 2
    assert dict(view.other.statuses) == {"common": 1, "gone": 1}
    assert view.other.figures.delta == Counts(-30, -61440)
    # warnings: lost events, anomalies, 8 % unresolved frames -- all of the after trace; before is clean
    assert [w.role for w in view.warnings] == ["after", "after", "after"]
    assert "12 events were lost" in view.warnings[0].message
    assert "free_unknown_heap" in view.warnings[1].message
    assert "8.0%" in view.warnings[2].message
    before = view.traces[0]
    assert before.duration_s == 42.5 and before.heap_events == 6100 + 6050 + 12
    assert before.processes[0].outstanding == Counts(47, 107464)


def test_no_warning_banner_for_a_clean_trace() -> None:
    doc = small_diff()
    after = doc["traces"][1]
    after.update(events_lost=0, anomalies={}, unresolved_frames={"frames": 1000, "unresolved": 50})  # 5.0 %
    view = build_view(doc)
    assert view.warnings == ()
    assert 'role="alert"' not in render_html(view)
    after["buffers_lost"] = 1
    assert [w.message.split(" lost")[0] for w in build_view(doc).warnings] == ["1 buffer was"]


def test_pointer_size_mismatch_warns() -> None:
    doc = small_diff()
    doc["traces"][0]["pointer_size"] = 4
    assert any("32-bit and 64-bit" in w.message for w in build_view(doc).warnings)


# ----------------------------------------------------------------------------------------------- escaping


def _hostile_doc() -> dict[str, Any]:
    doc = small_diff()
    nasty = f"{SCRIPT}{ATTR}"
    for t in doc["traces"]:
        t["path"] = f"C:\\{nasty}\\trace.etl"
        t["processes"] = [{"pid": 1, "image_name": nasty, "command_line": f"app.exe {nasty} --x"}]
        t["anomalies"] = {nasty: 1}
    g = doc["groups"][0]
    g["stack"] = [f"{nasty}+0x10", *g["stack"]]
    g["stack_display"] = [f"{nasty}+0x10", *g["stack_display"]]
    g["module"] = nasty
    g["sources"] = {nasty: 3}
    g["size_histogram"] = {nasty: 1}
    g["first_alloc_utc"] = nasty
    doc["generator"] = nasty
    doc["filters"]["process"] = nasty
    return doc


def test_untrusted_strings_are_escaped() -> None:
    html = render_html(build_view(_hostile_doc()))
    assert SCRIPT not in html
    assert ATTR not in html
    assert "<img" not in html and "onerror=alert(1)>" not in html
    assert SCRIPT_ESCAPED in html
    assert ATTR_ESCAPED in html
    # exactly our own script and style elements (the two scripts, the JSON data block, the two stylesheets),
    # nothing injected
    assert len(re.findall(r"<script\b", html, re.IGNORECASE)) == 3
    assert len(re.findall(r'<script type="application/json" id="report-data">', html)) == 1
    assert len(re.findall(r"<style\b", html, re.IGNORECASE)) == 2
    # every place that shows a trace string shows it escaped: path, image name, command line, frame, module
    assert html.count(SCRIPT_ESCAPED) >= 10


def test_control_and_bidi_characters_are_made_visible() -> None:
    doc = small_diff()
    doc["traces"][0]["processes"][0]["image_name"] = "evil\u202eexe.txt\u2028\x1b[31m"
    doc["groups"][0]["stack"][2] = doc["groups"][0]["stack_display"][4] = "app\u2029.exe+0x1a2b\x00"
    view = build_view(doc)
    html = render_html(view)
    for ch in ("\u202e", "\u2028", "\u2029", "\x1b", "\x00"):
        assert ch not in html
    assert "evil\\u202eexe.txt\\u2028\\x1b[31m" in html
    assert view.rows[0].label == "app\\u2029.exe+0x1a2b\\x00"
    assert "\x1b" not in terminal_summary(view)


def test_long_strings_and_stacks_are_capped() -> None:
    doc = small_diff()
    g = doc["groups"][0]
    g["stack"] = g["stack_display"] = [f"app.exe+0x{i:x}" + "A" * 5000 for i in range(1000)]
    doc["traces"][0]["processes"] = [{"pid": i, "image_name": "x.exe", "command_line": "y" * 100_000}
                                     for i in range(500)]
    view = build_view(doc)
    row = view.rows[0]
    assert len(row.frames) == 256 and row.frames_omitted == 744
    assert all(len(f.text) < 600 for f in row.frames)
    assert len(view.traces[0].processes) == 50 and view.traces[0].processes_omitted == 450
    assert len(render_html(view)) < 1_000_000


# ------------------------------------------------------------------------------------------------- no URL

_URL = re.compile(r"\b(?:https?|ftp|wss?|file|javascript):|//[A-Za-z0-9.-]+\.[A-Za-z]{2,}|\burl\(|@import",
                  re.IGNORECASE)
_REF = re.compile(r"""\b(src|href|action|srcset|poster|data|formaction)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""",
                  re.IGNORECASE)


def _assert_no_url(html: str) -> None:
    m = _URL.search(html)
    assert m is None, f"URL-like text at {m.start()}: {html[max(0, m.start() - 60):m.end() + 60]!r}"
    for m in _REF.finditer(html):
        target = m.group(2).strip("\"'")
        assert target in ("", "#") or target.startswith("#"), f"{m.group(0)!r} points outside the page"


@pytest.mark.parametrize("mode", ["diff", "single"])
def test_no_external_url(mode: str) -> None:
    doc = small_diff() if mode == "diff" else make_doc(200, "single")
    html = render_html(build_view(doc, top=4))
    _assert_no_url(html)
    # the inline blocks are locked down by a Content-Security-Policy that allows only them, by hash
    m = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert m is not None
    csp = unescape(m.group(1))
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp
    assert "script-src 'sha256-" in csp and "style-src 'sha256-" in csp


def test_no_url_check_catches_urls() -> None:
    for bad in ('<a href="https://x.example/">', "<img src=x>", "@import 'a.css'", "//cdn.example.com/x.js",
                "background: url(a.png)", '<link href="style.css">'):
        with pytest.raises(AssertionError):
            _assert_no_url(bad)
    _assert_no_url('<a href="#groups">x</a>')


# ------------------------------------------------------------------------------------ size, thinning, totals


@pytest.fixture(scope="module")
def big_doc() -> dict[str, Any]:
    return make_doc(100_000, "diff")


def test_100k_groups_render_bounded(big_doc: dict[str, Any]) -> None:
    view = build_view(big_doc, top=50)
    html = render_html(view)
    size = len(html.encode("utf-8"))
    print(f"\n100,000-group diff document, top 50: {size:,} bytes of HTML")
    assert size < 5 * 1024 * 1024
    assert len(view.rows) == 50
    assert view.other is not None and view.other.groups == 100_000 - 50
    rest = big_doc["groups"][50:]
    assert view.other.figures.delta == Counts(sum(g["delta"]["blocks"] for g in rest),
                                              sum(g["delta"]["bytes"] for g in rest))
    assert view.other.figures.before == Counts(sum(g["before"]["blocks"] for g in rest),
                                               sum(g["before"]["bytes"] for g in rest))
    assert "Other 99,950 call stacks <span class=\"muted\">(not in the top 50)</span>" in html
    assert html.count('<tr data-rank="') == 50
    assert view.by_module.other is not None and len(view.by_module.rows) == BREAKDOWN_CAP
    assert view.by_module.other_keys == 200 - BREAKDOWN_CAP


@pytest.fixture(scope="module")
def mid_doc() -> tuple[dict[str, Any], ReportView]:
    doc = make_doc(3000, "diff")
    return doc, build_view(doc, top=10**9)


@pytest.mark.parametrize(("top", "min_bytes"),
                         [(0, 0), (1, 0), (50, 0), (50, 4000), (10**6, 0), (10**6, 10**9)])
def test_thinning_never_changes_totals(mid_doc: tuple[dict[str, Any], ReportView], top: int,
                                       min_bytes: int) -> None:
    doc, full = mid_doc
    view = build_view(doc, top=top, min_bytes=min_bytes)
    assert view.totals == full.totals
    assert view.totals.delta == Counts(doc["totals"]["delta"]["blocks"], doc["totals"]["delta"]["bytes"])
    # rows + the other row always account for every group
    assert _shown_plus_other(view) == _sum_groups(doc) == full.totals
    assert len(view.rows) + (view.other.groups if view.other else 0) == 3000
    assert len(view.rows) <= top
    assert all(abs(r.figures.growth) >= min_bytes for r in view.rows)
    # breakdowns are over all groups whatever the thinning
    assert (view.by_module, view.by_heap, view.by_source) == (full.by_module, full.by_heap, full.by_source)


def test_min_bytes_uses_absolute_delta() -> None:
    view = build_view(small_diff(), top=50, min_bytes=50_000)
    # +1.9 MiB, +160 KiB and the gone group's -60 KiB pass; +4000, +96 and 0 do not
    assert [r.rank for r in view.rows] == [1, 2, 6]
    assert view.rows[-1].status == "gone"
    assert view.other is not None and view.other.groups == 3 and view.eligible_count == 3
    assert "Other 3 call stacks <span class=\"muted\">( under 48.8 KiB)" not in render_html(view)
    assert "Other 3 call stacks <span class=\"muted\">(under 48.8 KiB)</span>" in render_html(view)
    both = render_html(build_view(small_diff(), top=1, min_bytes=50_000))
    assert "Other 5 call stacks <span class=\"muted\">(2 not in the top 1, 3 under 48.8 KiB)</span>" in both


def test_rows_are_sorted_largest_growth_first_even_if_the_document_is_not() -> None:
    doc = small_diff()
    doc["groups"].reverse()
    view = build_view(doc)
    assert [r.label for r in view.rows][:2] == ["app.exe+0x1a2b", "app.exe+0x2210"]
    growths = [r.figures.growth for r in view.rows]
    assert growths == sorted(growths, reverse=True)


@pytest.mark.parametrize("inputs", [1, 2, 3])
def test_totals_sum_the_groups_as_a_plain_loop_does(inputs: int) -> None:
    """Totals.of against sums written out over plain tuples: per input, growth and shrink of blocks and bytes each
    on their own sign, suppressed groups apart (their delta), a group missing from an input counting zero there."""
    import random

    from heapdiff.document.model import GroupRecord, RunDetails, Totals

    rng = random.Random(inputs)
    groups, plain = [], []
    for n in range(400):
        counts = [None if rng.random() < 0.2 else (rng.randint(0, 50), rng.randint(0, 10**6)) for _ in range(inputs)]
        hidden = rng.random() < 0.1
        runs = tuple(None if c is None else RunDetails(Counts(*c), (), {}, {}, None, None, ()) for c in counts)
        groups.append(GroupRecord(stack=(f"app.exe+0x{n:x}",), frames=(), module="app.exe", label="", label_index=-1,
                                  status=None, runs=runs, suppressed_by="p" if hidden else None))
        plain.append(([c or (0, 0) for c in counts], hidden))
    want_runs, growth, shrink, hidden_sum = [[0, 0] for _ in range(inputs)], [0, 0], [0, 0], [0, 0]
    for cs, hidden in plain:
        delta = [cs[-1][j] - (cs[0][j] if inputs > 1 else 0) for j in (0, 1)]
        if hidden:
            hidden_sum = [hidden_sum[j] + delta[j] for j in (0, 1)]
            continue
        for k, c in enumerate(cs):
            want_runs[k] = [want_runs[k][j] + c[j] for j in (0, 1)]
        growth = [growth[j] + max(delta[j], 0) for j in (0, 1)]
        shrink = [shrink[j] + min(delta[j], 0) for j in (0, 1)]
    t = Totals.of(groups, inputs)
    assert t == Totals(tuple(Counts(*r) for r in want_runs), Counts(*growth), Counts(*shrink), Counts(*hidden_sum))
    assert shrink[1] < 0 < growth[1] if inputs > 1 else shrink == [0, 0]


# ------------------------------------------------------------------------------------------- breakdowns


@pytest.mark.parametrize("mode", ["diff", "single"])
def test_breakdowns_sum_to_totals(mode: str) -> None:
    doc = make_doc(5000, mode, n_modules=75, n_heaps=45)
    view = build_view(doc, top=20)
    runs = [view.totals.before, view.totals.after] if mode == "diff" else [view.totals.after]
    per_run = [(b, Figures(c)) for b, c in zip(view.by_heap, runs, strict=True) if c is not None]
    for b, want in [(view.by_module, view.totals), *per_run]:
        assert b.total.figures == want  # consistent document: groups sum to the totals
        assert b.other is not None  # more keys than the cap
        acc = b.other.figures
        for r in b.rows:
            acc = acc + r.figures
        assert acc == b.total.figures
        assert sum(r.groups for r in b.rows) + b.other.groups == b.total.groups
        assert len(b.rows) == BREAKDOWN_CAP
        growths = [r.figures.growth for r in b.rows]
        assert growths == sorted(growths, reverse=True)
    assert view.by_module.total.groups == 5000
    assert view.by_module.other_keys == 75 - BREAKDOWN_CAP
    # a heap breakdown per input: each counts the groups outstanding in that input
    assert [b.total.groups for b in view.by_heap] == (
        [sum(g["before"]["blocks"] > 0 for g in doc["groups"]), sum(g["after"]["blocks"] > 0 for g in doc["groups"])]
        if mode == "diff" else [5000])
    src = view.by_source[-1]
    assert src.total.count == sum(sum(g["sources"].values()) for g in doc["groups"]
                                  if mode == "single" or g["after"]["blocks"])
    assert sum(r.count for r in src.rows) + (src.other.count if src.other else 0) == src.total.count


def test_small_diff_breakdowns() -> None:
    view = build_view(small_diff(), top=1)
    mods = {r.key: r for r in view.by_module.rows}
    assert mods["plugin.dll"].groups == 2
    assert mods["plugin.dll"].figures.delta == Counts(4 - 30, 4000 - 61440)
    before, after = view.by_heap
    assert (before.title, after.title) == ("By heap (before)", "By heap (after)")
    assert before.one_run and after.one_run
    # each run's own handles, never one list that mixes the two runs
    assert {r.key for r in after.rows} == {"0x1f0000", "0x2a0000", "(several heaps)"}
    assert after.total.figures.after == view.totals.after
    srcs = {r.key: (r.groups, r.count) for r in view.by_source[1].rows}
    assert srcs == {"main path": (2, 107), "low-fragmentation heap": (3, 72), "lookaside": (1, 3),
                    "slow path": (1, 2)}
    assert view.by_source[1].total.count == 184 == view.totals.after.blocks  # this document counts after-blocks


# ------------------------------------------------------------------------------------------- single mode


def test_single_mode_renders() -> None:
    doc = make_doc(120, "single")
    view = build_view(doc, top=10)
    assert view.mode == "single" and view.totals.before is None and view.totals.delta is None
    assert view.title.startswith("Outstanding heap: ")
    assert all(r.status is None for r in view.rows)
    html = render_html(view)
    assert "Δ bytes" not in html and "badge status-" not in html
    assert ">Outstanding</div>" in html
    assert html.count('<tr data-rank="') == 10
    assert view.other is not None and view.other.groups == 110
    assert _shown_plus_other(view) == _sum_groups(doc) == view.totals
    assert view.by_module.total.figures == view.totals
    assert "Other 110 call stacks" in html
    summary = terminal_summary(view)
    assert "bytes" in summary and "Δ" not in summary


def test_empty_document_renders() -> None:
    doc = small_diff()
    doc["groups"] = []
    view = build_view(doc)
    assert view.rows == () and view.other is None
    html = render_html(view)
    assert "No call stack grew or shrank" in html


def test_rejects_other_schema() -> None:
    with pytest.raises(DocumentError, match="heapdiff/1"):
        build_view({"schema": "heapdiff/2", "mode": "diff"})
    with pytest.raises(DocumentError, match="mode"):
        build_view({"schema": "heapdiff/1", "mode": "triple"})


@pytest.mark.parametrize(("path", "value", "message"), [
    (("groups", 0, "heaps"), ["<script>"], r"groups\[0\]\.heaps\[0\]: expected a hex string"),
    (("groups", 0, "sample_addresses"), [12], r"groups\[0\]\.sample_addresses\[0\]: expected a hex string"),
    (("groups", 1, "status"), "<b>", r"groups\[1\]\.status: expected new or gone or common"),
    (("traces", 1, "role"), "x", r"traces\[1\]\.role: expected trace or before or after or baseline"),
    (("traces", 0, "records"), "12", r"traces\[0\]\.records: expected an integer"),
    (("groups", 2, "after", "bytes"), None, r"groups\[2\]\.after\.bytes: expected an integer"),
    (("totals", "delta"), {"blocks": 137, "bytes": 1}, r"totals\.delta: 137 blocks, 1 bytes is not after minus"),
    (("groups", 0, "delta"), {"blocks": 0, "bytes": 0}, r"groups\[0\]\.delta: 0 blocks, 0 bytes is not after"),
])
def test_a_field_that_does_not_fit_is_named_never_read_as_zero(path: tuple[Any, ...], value: Any,
                                                               message: str) -> None:
    doc = small_diff()
    where: Any = doc
    for k in path[:-1]:
        where = where[k]
    where[path[-1]] = value
    with pytest.raises(DocumentError, match=message):
        build_view(doc)
    del where[path[-1]]
    with pytest.raises(DocumentError, match="missing"):
        build_view(doc)


# -------------------------------------------------------------------------------------- terminal summary


def test_terminal_summary() -> None:
    view = build_view(small_diff(), top=4)
    text = terminal_summary(view, width=80)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[0] == "Heap growth: before.etl → after.etl"
    assert lines[1] == "Growth: +2.0 MiB in +167 blocks (4 call stacks grew)"
    assert lines[2] == "Shrink: -60.0 KiB in -30 blocks (1 call stack shrank)"
    assert lines[3].startswith("Net: +2.0 MiB in +137 blocks (before 105 KiB in 47 blocks, after 2.1 MiB in 184")
    assert sum(line.startswith("WARNING (after)") for line in lines) == 3
    table = lines[lines.index("") + 1:]
    assert table[0].split() == ["Δ", "bytes", "Δ", "blocks", "module", "innermost", "frame"]
    assert table[1].split() == ["+1.9", "MiB", "+120", "app.exe", "app.exe+0x1a2b"]
    assert table[-1].startswith("… 2 more call stacks (-60.0 KiB)")
    narrow = terminal_summary(view, width=40)
    assert all(len(line) <= 40 for line in narrow.splitlines())


def test_format_bytes() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(-1536, signed=True) == "-1.5 KiB"
    assert format_bytes(1536, signed=True) == "+1.5 KiB"
    assert format_bytes(1024 * 1024 - 1) == "1.0 MiB"
    assert format_bytes(200 * 1024) == "200 KiB"


# ---------------------------------------------------------------------------------- templates from a wheel


@pytest.fixture(scope="module")
def installed_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """heapdiff built into a wheel and installed (non-editable) into a fresh directory."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", src / "pyproject.toml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    shutil.copytree(ROOT / "heapdiff", src / "heapdiff", ignore=ignore)
    shutil.copytree(ROOT / "native", src / "native", ignore=shutil.ignore_patterns("target"))
    readme = ROOT / "README.md"
    if readme.is_file():
        shutil.copy2(readme, src / "README.md")
    else:  # pyproject names a readme; the source tree may not have written it yet
        (src / "README.md").write_text("heapdiff\n", encoding="utf-8")
    target = tmp / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--disable-pip-version-check",
         "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=600, cwd=tmp,
    )
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout}\n{proc.stderr}"
    yield target


def test_templates_load_from_a_non_editable_install(installed_copy: Path, tmp_path: Path) -> None:
    for name in ("report.html.j2", "report.css", "report.js", "views.css", "views.js"):
        assert (installed_copy / "heapdiff" / "report" / "templates" / name).is_file(), name
    out = tmp_path / "out.html"
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(installed_copy)!r})\n"
        "import heapdiff\n"
        f"assert heapdiff.__file__.startswith({str(installed_copy)!r}), heapdiff.__file__\n"
        "from heapdiff.report.html import render_html, template_root\n"
        "from heapdiff.document import decode_value\n"
        "from heapdiff.report.view_build import build_view\n"
        "print(template_root())\n"
        f"doc = json.load(open({str(GOLDEN / 'small_diff.json')!r}, encoding='utf-8'))\n"
        f"html = render_html(build_view(decode_value(doc), top=4))\n"
        f"open({str(out)!r}, 'w', encoding='utf-8', newline='').write(html)\n"
    )
    # -I: no PYTHONPATH, no current directory on sys.path: only the installed copy (and jinja2 from the venv)
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    root = proc.stdout.strip()
    assert root.startswith(str(installed_copy / "heapdiff" / "report" / "templates")), root
    assert out.read_bytes() == render_html(build_view(small_diff(), top=4)).encode("utf-8")


def test_template_root_in_this_checkout() -> None:
    assert template_root().joinpath("report.html.j2").is_file()
