"""The report's views in the page, without a browser: the JSON data block (complete, inert whatever a frame
holds), the inline blocks and their hashes, the charts' geometry and escaping (SVG text included), trend rows,
and the size of the page of a 100,000-group document whose call trees reach their cap. The browser side is in
test_browser.py."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import time
from html import unescape
from typing import Any

import pytest
from view_docs import GOLDEN, big_tree_doc, timeline, trend_view

from heapdiff.document import decode_value
from heapdiff.report.charts import histogram_chart, sparkline, timeline_chart
from heapdiff.report.flame import MAX_KEPT
from heapdiff.report.html import render_html
from heapdiff.report.page_data import page_data, script_json
from heapdiff.report.view import ReportView
from heapdiff.report.view_build import build_view

HOSTILE = ("</script><script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "<!--", "a\u2028b\u2029c",
           "&amp;<b>")


def small_diff() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GOLDEN / "small_diff.json").read_text(encoding="utf-8"))
    return doc


def hostile_doc() -> dict[str, Any]:
    """The small diff with hostile user frames in its first stack, right inside its label frame, so that they are
    in the trees, the rows' stacks and the group table; and a hostile size bin."""
    doc = small_diff()
    g = doc["groups"][0]
    frames = [f"{h}+0x1" for h in HOSTILE]
    at = g["stack"].index("app.exe+0x4410")
    g["stack"][at:at] = frames
    at = g["stack_display"].index("app.exe+0x4410")
    g["stack_display"][at:at] = frames
    g["size_histogram"] = {HOSTILE[0]: 5, HOSTILE[1]: 7}
    return doc


def data_block(html: str) -> str:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.DOTALL)
    assert m is not None
    return m.group(1)


def blocks(html: str, tag: str) -> list[tuple[str, str]]:
    """(attributes, text) of every ``tag`` element."""
    return re.findall(rf"<{tag}\b([^>]*)>(.*?)</{tag}>", html, re.DOTALL | re.IGNORECASE)


# ------------------------------------------------------------------------------------------ the data block


def test_script_json_leaves_nothing_that_can_end_the_block() -> None:
    value = {"names": [*HOSTILE, "\ud800 lone surrogate", "</SCRIPT >", "<!-- <script>"], "n": [1, -2, 2**60]}
    text = script_json(value)
    assert not set(text) & set("<>&\u2028\u2029")
    assert text.isascii()
    assert json.loads(text) == value


def test_data_block_is_inert_and_complete() -> None:
    view = build_view(decode_value(hostile_doc()), top=4)
    html = render_html(view)
    block = data_block(html)
    # the block ends where we ended it: no "<" inside, nor a raw line separator
    assert not set(block) & set("<>&\u2028\u2029")
    data = json.loads(block)
    assert data == json.loads(json.dumps(page_data(view)))  # exactly what page_data gave, through the escaping
    names = data["names"]
    cleaned = {f"{h}+0x1".replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") for h in HOSTILE}
    assert cleaned <= set(names)
    # the first row's stack, frame by frame, innermost first, kernel frames included
    assert [names[k] for k in data["stacks"]["g1"]["frames"]] == [f.text for f in view.rows[0].frames]
    # both trees, column by column as the view has them
    for spec, tree in zip(data["trees"], view.call_trees, strict=True):
        assert spec["direction"] == tree.direction and spec["delta"] is True
        cols = spec["cols"]
        assert [names[k] for k in cols["name"]] == [n.frame for n in tree.nodes]
        assert cols["parent"] == [n.parent for n in tree.nodes]
        assert cols["growth"] == [n.growth for n in tree.nodes]
        assert cols["before_bytes"] == [n.figures.before.bytes for n in tree.nodes if n.figures.before]
    assert any(n in cleaned for n in (names[k] for k in data["trees"][1]["cols"]["name"]))
    # no raw hostile string anywhere in the page
    for h in HOSTILE:
        assert h not in html
    assert "<img" not in html and "\u2028" not in html


def test_data_block_check_can_fail() -> None:
    """The check above would see a block that a frame ended early."""
    html = '<script type="application/json" id="report-data">{"a":"</script><script>alert(1)</script>"}'
    assert data_block(html) == '{"a":"'
    with pytest.raises(json.JSONDecodeError):
        json.loads(data_block(html))


def _csp_sources(html: str, directive: str) -> set[str]:
    m = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert m is not None
    for part in unescape(m.group(1)).split(";"):
        words = part.split()
        if words and words[0] == directive:
            return set(words[1:])
    raise AssertionError(f"no {directive}")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def test_only_our_blocks_and_each_allowed_by_its_hash() -> None:
    html = render_html(build_view(decode_value(hostile_doc()), top=4))
    scripts = blocks(html, "script")
    styles = blocks(html, "style")
    code = [text for attrs, text in scripts if "type=" not in attrs]
    data = [text for attrs, text in scripts if 'type="application/json"' in attrs]
    assert len(code) == 2 and len(data) == 1 and len(scripts) == 3 and len(styles) == 2
    assert len(re.findall(r"<script\b", html, re.IGNORECASE)) == 3
    assert _csp_sources(html, "script-src") == {_hash(t) for t in code}
    assert _csp_sources(html, "style-src") == {_hash(t) for _, t in styles}
    # the data block is never run, so it is not allowed to be
    assert _hash(data[0]) not in _csp_sources(html, "script-src")


# ------------------------------------------------------------------------------------------------ charts


def test_timeline_geometry() -> None:
    tl = timeline()
    c = timeline_chart(tl)
    x0, y0, x1, y1 = c.box
    pts = [tuple(map(float, p.split(","))) for p in c.total.points.split()]
    assert len(pts) == len(tl.time_s) == c.points
    assert pts[0] == (x0, y1) and pts[-1] == (x1, y0)  # from zero at the start to the top at the end
    assert all(a[0] < b[0] for a, b in itertools.pairwise(pts))
    assert [line.label for line in c.lines] == [s.label for s in tl.groups]
    assert [line.colour for line in c.lines] == ["c0", "c1"]
    assert c.lines[0].last == tl.groups[0].bytes[-1]
    assert c.window is not None
    assert c.window[0] == pytest.approx(x0 + 60 / 300 * (x1 - x0), abs=0.01)
    assert c.window[1] == pytest.approx(180 / 300 * (x1 - x0), abs=0.01)
    assert c.at_x == pytest.approx(x0 + 200 / 300 * (x1 - x0), abs=0.01)
    assert [t.label for t in c.x_ticks] == ["0 s", "75 s", "150 s", "225 s", "300 s"]
    assert c.y_ticks[0].label == "0 B" and c.y_ticks[-1].at == y0


def test_timeline_edge_cases() -> None:
    one = timeline(points=2)
    c = timeline_chart(one.__class__(one.role, (0.0,), (5,), (1,), ()))
    assert c.points == 1 and c.window is None and c.at_x is None
    empty = timeline_chart(one.__class__("after", (), (), (), ()))
    assert empty.total.points == "" and empty.total.last == 0


def test_sparkline_and_histogram() -> None:
    pts = [tuple(map(float, p.split(","))) for p in sparkline([0, 10, 20, 40]).split()]
    assert [x for x, _ in pts] == [0.0, 26.7, 53.3, 80.0]
    assert [y for _, y in pts] == sorted((y for _, y in pts), reverse=True)  # growing: up, in SVG y
    assert {y for _, y in (tuple(map(float, p.split(","))) for p in sparkline([7, 7, 7]).split())} == {10.0}
    assert len(sparkline([5]).split()) == 2 and sparkline([]) == ""
    chart = histogram_chart([("<=64", 10), ("<=1024", 5), ("<=4096", 0), ("big", 1)])
    heights = [b.height for b in chart.bars]
    assert heights[0] == chart.height and heights[1] == chart.height / 2 and heights[2] == 0
    assert heights[3] >= 1  # a bin of any blocks never vanishes
    assert [b.x for b in chart.bars] == sorted(b.x for b in chart.bars)
    assert all(b.y + b.height == chart.height for b in chart.bars)


def test_timeline_section_renders_escaped() -> None:
    view = build_view(decode_value(small_diff()), top=4)
    nasty = HOSTILE[0] + HOSTILE[1]
    html = render_html(trend_view(view, [timeline(label=nasty), timeline(role="before")]))
    assert html.count('<figure class="card timeline"') == 2
    section = html[html.index('<section id="timelines"'):html.index('<section id="groups"')]
    assert section.count("<polyline") == 2 * 3  # total + two call stacks, per chart
    assert section.count('class="window"') == 2 and section.count('class="at"') == 2
    escaped = "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert f"<title>{escaped}</title>" in section  # in the SVG
    assert f"<code>{escaped}</code>" in section  # in the legend
    assert nasty not in html


def test_size_histogram_chart_is_escaped() -> None:
    html = render_html(build_view(decode_value(hostile_doc()), top=4))
    assert '<svg class="hist-chart"' in html
    assert "<title>&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;: 5 blocks</title>" in html


def test_trend_rows_get_sparklines() -> None:
    view = trend_view(build_view(decode_value(small_diff()), top=4))
    html = render_html(view)
    table = html[html.index('<table class="sortable groups" id="group-table">'):]
    table = table[:table.index("</table>")]
    assert ">Trend</button></th>" in table
    assert table.count('<svg class="spark"') == 3  # the fourth row has no series
    assert f'<polyline points="{sparkline(view.rows[0].series)}"/>' in table
    assert '<td class="trend" data-v="650000.0">' in table and '<span class="badge trend-growing">' in table
    assert "+635 KiB/run" in table
    assert '<td colspan="3">Other' in table  # the "other" row spans the extra column
    # the diff and single pages have no trend column
    assert ">Trend</button>" not in render_html(build_view(decode_value(small_diff()), top=4))


def test_copy_buttons_and_search_box() -> None:
    view = build_view(decode_value(small_diff()), top=4)
    html = render_html(view)
    # every row with frames has a copy button keyed to its stack in the data block; a row without none
    keys = re.findall(r'<button type="button" class="copy-stack" data-stack="([^"]+)">', html)
    assert keys == ["g1", "g2", "g3"]
    assert set(keys) <= set(json.loads(data_block(html))["stacks"])
    assert '<input type="search" id="stack-search"' in html


# ------------------------------------------------------------------------------------------------ bounds


@pytest.fixture(scope="module")
def view_100k() -> ReportView:
    doc = big_tree_doc(100_000, 30, traces=True)
    return build_view(doc, top=50)


def test_100k_group_page_is_bounded(view_100k: ReportView) -> None:
    assert all(t.capped and len(t.nodes) <= 2 * MAX_KEPT + 1 for t in view_100k.call_trees)
    t0 = time.perf_counter()
    html = render_html(view_100k)
    took = time.perf_counter() - t0
    size = len(html.encode("utf-8"))
    block = len(data_block(html).encode("utf-8"))
    print(f"\n100,000-group diff, trees at their cap ({[len(t.nodes) for t in view_100k.call_trees]} nodes): "
          f"page {size:,} bytes, data block {block:,} bytes, render {took:.2f} s")
    assert size < 5 * 1024 * 1024
    assert block < 2 * 1024 * 1024
