"""The rendered report in a real browser: headless Chromium driven through the Chrome DevTools Protocol.

No new dependency: Chromium's ``--remote-debugging-pipe`` speaks CDP as NUL-terminated JSON messages on
file descriptors 3 (commands in) and 4 (replies and events out): a pipe pair and :mod:`json` are the client.

Checked on the page opened from ``file://``: the load event fires; no console error, uncaught exception or
browser log error (a Content-Security-Policy violation would be one); no network request but the file itself;
a click (a real mouse event) on a column title reorders the rows; a click on a stack's summary shows its
frames.
The navigation-to-load-event time of the report of a 100,000-group document (top 50) is measured and printed.

The views the page's script draws, on a diff, a trend view (made by hand) and hostile frame texts: the flame
graph (a click on a frame zooms so that it spans the full width, a click again zooms out, hovering shows its
figures), the top-down and bottom-up trees (expand and collapse), the frame search (filters the rows), "Copy
stack" (the exact frames on the clipboard, through the Clipboard API and through its fallback), the timeline
chart and the rows' sparklines; the load time of a 100,000-group page whose call trees are at their cap.

Chromium is the system's (Debian package ``chromium``; ``HEAPDIFF_CHROMIUM`` names another binary). Without
it the tests skip with the reason, except under ``CI=true`` where they fail: CI installs it, so a missing
browser there is a broken setup, not a skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult
from view_docs import big_tree_doc, timeline, trend_view

from heapdiff.document import decode_value
from heapdiff.report.html import render_html
from heapdiff.report.view import ReportView
from heapdiff.report.view_build import build_view

GOLDEN = Path(__file__).parent / "golden"
EXAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "example"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")


def _chromium() -> str | None:
    override = os.environ.get("HEAPDIFF_CHROMIUM")  # another binary, or a missing one to see the skip
    for name in (override,) if override else CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _require_chromium() -> str:
    path = _chromium()
    if path is None:
        reason = "headless Chromium not found (/usr/bin/chromium: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must have it")
        pytest.skip(reason)
    return path


class CDPError(RuntimeError):
    pass


class Browser:
    """A headless Chromium and a minimal CDP client over ``--remote-debugging-pipe``."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # move the child's ends above 100 so that the dup2 onto 3 and 4 below cannot overwrite one another;
        # close_fds=False keeps the two (inheritable after dup2) across exec, everything else is close-on-exec
        child_in = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 100)
        child_out = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(to_child_r)
        os.close(from_child_w)

        def wire() -> None:  # in the child, before exec: CDP in on fd 3, out on fd 4
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        args = [
            executable, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
            "--mute-audio", "--disable-features=Translate,MediaRouter,OptimizationHints",
            f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank",
        ]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=wire, close_fds=False)
        os.close(child_in)
        os.close(child_out)
        self._w = to_child_w
        self._r = from_child_r
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._w)
        os.close(self._r)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode("utf-8") + b"\0")
        return self._next_id

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from Chromium in time")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise CDPError(f"Chromium closed the pipe (exit code {self.proc.poll()})")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read(deadline)
            if msg.get("id") == wanted:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, session: str | None = None, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev["method"] == method and (session is None or ev.get("sessionId") == session):
                return self.events.pop(i)
        while True:
            msg = self._read(deadline)
            if "method" in msg:
                if msg["method"] == method and (session is None or msg.get("sessionId") == session):
                    return msg
                self.events.append(msg)


class Page:
    """One tab, attached with a flat session; console, log, exception and network events recorded."""

    def __init__(self, browser: Browser) -> None:
        self.b = browser
        self.target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.call("Target.attachToTarget",
                                    {"targetId": self.target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        return self.b.call(method, params, self.session, timeout)

    def navigate(self, url: str, timeout: float = 60) -> float:
        """Open ``url`` and wait for its load event: the seconds from the navigate command to the event."""
        self.b.events.clear()
        start = time.perf_counter()
        result = self.call("Page.navigate", {"url": url}, timeout)
        assert "errorText" not in result, result
        self.b.wait_event("Page.loadEventFired", self.session, timeout)
        return time.perf_counter() - start

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed + released) at the centre of the first element matching ``selector``"""
        x, y = self.center(selector)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            params: dict[str, Any] = {"type": kind, "x": x, "y": y}
            if kind != "mouseMoved":
                params.update(button="left", clickCount=1)
            self.call("Input.dispatchMouseEvent", params)

    def center(self, selector: str) -> tuple[float, float]:
        x, y = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        return x, y

    def hover(self, selector: str) -> None:
        """The mouse moved onto the centre of the first element matching ``selector``."""
        x, y = self.center(selector)
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    def type_into(self, selector: str, text: str) -> None:
        """Replace the text of an input as a person would: focus, select all, type (or delete)."""
        self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus(); e.select(); }})()")
        if text:
            self.call("Input.insertText", {"text": text})
        else:
            for kind in ("keyDown", "keyUp"):
                self.call("Input.dispatchKeyEvent", {"type": kind, "key": "Backspace", "code": "Backspace",
                                                     "windowsVirtualKeyCode": 8})

    def wait_for(self, expression: str, timeout: float = 10) -> Any:
        """Poll ``expression`` until it is truthy (a clipboard write settles asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.05)

    def settle(self) -> None:
        """Collect the events already sent (a round trip flushes them into ``events``)."""
        self.eval("1")

    def problems(self) -> list[str]:
        out = []
        for ev in self.b.events:
            if ev.get("sessionId") != self.session:
                continue
            p = ev.get("params", {})
            if ev["method"] == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails']}")
            elif ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert",
                                                                                    "warning"):
                out.append(f"console.{p['type']}: {p.get('args')}")
            elif ev["method"] == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def requests(self) -> list[str]:
        return [ev["params"]["request"]["url"] for ev in self.b.events
                if ev["method"] == "Network.requestWillBeSent" and ev.get("sessionId") == self.session]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    exe = _require_chromium()
    b = Browser(exe, tmp_path_factory.mktemp("chromium-profile"))
    try:
        b.call("Browser.getVersion", timeout=60)
        yield b
    finally:
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    p = Page(browser)
    yield p
    browser.call("Target.closeTarget", {"targetId": p.target})


def _report(tmp_path: Path, doc: dict[str, Any], top: int = 50, name: str = "report.html") -> str:
    path = tmp_path / name
    path.write_text(render_html(build_view(decode_value(doc), top=top)), encoding="utf-8")
    return path.as_uri()


def _small_diff() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GOLDEN / "small_diff.json").read_text(encoding="utf-8"))
    return doc


def _assert_clean(page: Page, url: str) -> None:
    page.settle()
    assert page.problems() == []
    requests = page.requests()
    assert requests and all(r == url for r in requests), requests


def _without_clipboard_api(page: Page) -> None:
    """As in a browser that has no Clipboard API for a page opened from disk: the copy button's fallback runs."""
    page.eval("Object.defineProperty(navigator, 'clipboard', {value: undefined, configurable: true})")


def _copy_stack(page: Page, rank: int) -> str:
    """Click group ``rank``'s copy button; how it copied (``clipboard`` or ``fallback``), as the button says."""
    page.click(f"#g{rank} button.copy-stack")
    got: str = page.wait_for(f"document.querySelector('#g{rank} button.copy-stack').getAttribute('data-copied')")
    return got


def _column(page: Page, table: str, col: int) -> list[str]:
    value: list[str] = page.eval(
        f"Array.from(document.querySelectorAll('#{table} > tbody > tr'))"
        f".map(r => r.cells[{col}].getAttribute('data-v') ?? r.cells[{col}].textContent.trim())"
    )
    return value


def test_page_loads_offline_without_errors(page: Page, tmp_path: Path) -> None:
    url = _report(tmp_path, _small_diff(), top=4)
    page.navigate(url)
    assert page.eval("document.readyState") == "complete"
    assert page.eval("performance.getEntriesByType('navigation')[0].loadEventEnd") > 0
    assert page.eval("document.title") == "Heap growth: before.etl → after.etl"
    _assert_clean(page, url)
    # the script ran (it reveals its own buttons), so the CSP hash of the inline script matched
    assert page.eval("document.querySelector('.js-only').hidden") is False


def test_sort_header_click_reorders_rows(page: Page, tmp_path: Path) -> None:
    url = _report(tmp_path, _small_diff(), top=5)  # the sixth group, gone, is the "other" row
    page.navigate(url)
    ranks = [int(v) for v in _column(page, "group-table", 0)]
    assert ranks == [1, 2, 3, 4, 5]
    # columns: # Status Δbytes Δblocks Before After Module Stack
    page.click("#group-table thead th:nth-child(5) button")  # Before: numbers, descending first
    before = [int(v) for v in _column(page, "group-table", 4)]
    assert before == sorted(before, reverse=True) and before[0] == 40960
    assert [int(v) for v in _column(page, "group-table", 0)] != ranks
    sort_state = "document.querySelector('#group-table thead th:nth-child(5)').getAttribute('aria-sort')"
    assert page.eval(sort_state) == "descending"
    page.click("#group-table thead th:nth-child(5) button")  # again: ascending
    assert [int(v) for v in _column(page, "group-table", 4)] == sorted(before)
    page.click("#group-table thead th:nth-child(7) button")  # Module: text, ascending first
    modules = _column(page, "group-table", 6)
    assert modules == sorted(modules, key=str.lower)
    page.click("#group-table thead th:nth-child(3) button")  # Δ bytes was the initial order: now descending
    page.click("#group-table thead th:nth-child(3) button")  # ... and ascending: the unchanged group first
    assert [int(v) for v in _column(page, "group-table", 2)] == [0, 96, 4000, 163840, 1966080]
    # the "other" row stays in the footer, below the sorted rows
    assert page.eval("document.querySelector('#group-table tfoot tr.other') !== null")
    # the breakdown tables sort too
    page.click("#by-module thead th:nth-child(1) button")
    assert _column(page, "by-module", 0) == sorted(_column(page, "by-module", 0), key=str.lower)
    _assert_clean(page, url)


def test_expanding_a_row_shows_its_stack(page: Page, tmp_path: Path) -> None:
    url = _report(tmp_path, _small_diff())
    page.navigate(url)
    first = "#group-table tbody tr:first-child td.stack"
    visible = f"document.querySelector('{first} ol.frames').checkVisibility()"
    height = f"document.querySelector('{first} details').getBoundingClientRect().height"
    assert page.eval(visible) is False  # collapsed
    closed_height = page.eval(height)
    page.click(f"{first} summary")
    assert page.eval(f"document.querySelector('{first} details').open") is True
    assert page.eval(visible) is True
    assert page.eval(height) > closed_height + 100
    frames = page.eval(f"Array.from(document.querySelectorAll('{first} ol.frames li'))"
                       ".map(li => [li.querySelector('code').textContent, li.classList.contains('kernel'),"
                       " li.checkVisibility() && li.getBoundingClientRect().height > 0])")
    assert [f[0] for f in frames][:5] == ["ntoskrnl.exe+0x2f8ab1", "ntoskrnl.exe+0x40c2e",
                                          "ntdll.dll+0x3a1b0", "ucrtbase.dll+0x10e2a", "app.exe+0x1a2b"]
    assert [f[1] for f in frames][:3] == [True, True, False]  # kernel frames marked
    assert all(f[2] for f in frames)  # and visible
    style = f"getComputedStyle(document.querySelector('{first} li.kernel code')).fontStyle"
    assert page.eval(style) == "italic"
    page.click(f"{first} summary")
    assert page.eval(f"document.querySelector('{first} details').open") is False
    assert page.eval(visible) is False
    page.click("#expand-all")
    assert page.eval("Array.from(document.querySelectorAll('#group-table details')).every(d => d.open)")
    _assert_clean(page, url)


def _big_doc(n: int) -> dict[str, Any]:
    base = _small_diff()
    groups: list[dict[str, Any]] = []
    tb, ta = [0, 0], [0, 0]
    for i in range(n):
        stack = ["ntdll.dll+0x3a1b0", "ucrtbase.dll+0x10e2a"] + [f"mod{i % 300}.dll+0x{(i + k) & 0xffff:x}"
                                                                  for k in range(14)]
        before = (i % 4, 64 * (i % 50))
        after = (1 + i % 5, 64 * (1 + i % 70) + (n - i))
        tb = [tb[0] + before[0], tb[1] + before[1]]
        ta = [ta[0] + after[0], ta[1] + after[1]]
        groups.append({
            "stack": stack, "stack_display": ["ntoskrnl.exe+0x2f8ab1", *stack], "module": f"mod{i % 300}.dll",
            "heaps": [f"0x{(i % 50 + 1) << 16:x}"], "sources": {"main path": 1 + i % 3},
            "size_histogram": {"<=64": 1, "<=1024": i % 7}, "first_alloc_utc": "2026-01-01T01:00:00.000000Z",
            "last_alloc_utc": "2026-01-01T01:00:01.000000Z", "sample_addresses": [f"0x{0x1f0000 + 16 * i:x}"],
            "before": {"blocks": before[0], "bytes": before[1]},
            "after": {"blocks": after[0], "bytes": after[1]},
            "delta": {"blocks": after[0] - before[0], "bytes": after[1] - before[1]},
            "status": "common" if before[0] else "new",
        })
    groups.sort(key=lambda g: -g["delta"]["bytes"])
    return {**base, "groups": groups,
            "totals": {"before": {"blocks": tb[0], "bytes": tb[1]},
                       "after": {"blocks": ta[0], "bytes": ta[1]},
                       "delta": {"blocks": ta[0] - tb[0], "bytes": ta[1] - tb[1]}}}


def test_large_report_load_time(page: Page, tmp_path: Path) -> None:
    doc = _big_doc(100_000)
    t0 = time.perf_counter()
    url = _report(tmp_path, doc, top=50, name="big.html")
    build_and_render = time.perf_counter() - t0
    size = (tmp_path / "big.html").stat().st_size
    wall = page.navigate(url)
    nav = page.eval("(() => { const n = performance.getEntriesByType('navigation')[0];"
                    " return [n.domContentLoadedEventEnd, n.loadEventStart, n.loadEventEnd]; })()")
    print(f"\n100,000-group diff document, top 50: HTML {size:,} bytes (view + render "
          f"{build_and_render:.2f} s); navigation to load event {nav[1]:.1f} ms (DOMContentLoaded "
          f"{nav[0]:.1f} ms, load end {nav[2]:.1f} ms, wall {wall * 1000:.0f} ms)")
    assert size < 5 * 1024 * 1024
    assert page.eval("document.querySelectorAll('#group-table tbody tr').length") == 50
    assert nav[1] < 1000, "the report of a 100,000-group document should load in under 1 s"
    page.click("#group-table thead th:nth-child(4) button")
    blocks = [int(v) for v in _column(page, "group-table", 3)]
    assert blocks == sorted(blocks, reverse=True)
    _assert_clean(page, url)


# ------------------------------------------------------------------------------- flame graph, trees, search


def _view_page(tmp_path: Path, view: ReportView, name: str = "view.html") -> str:
    path = tmp_path / name
    path.write_text(render_html(view), encoding="utf-8")
    return path.as_uri()


SMALL_STACK_1 = ["ntoskrnl.exe+0x2f8ab1", "ntoskrnl.exe+0x40c2e", "ntdll.dll+0x3a1b0", "ucrtbase.dll+0x10e2a",
                 "app.exe+0x1a2b", "app.exe+0x4410", "kernel32.dll+0x17614", "ntdll.dll+0x526f1"]


def _flame_node(page: Page, label: str) -> str:
    """The selector of the flame graph's element for the frame of this text (the first one drawn)."""
    i = page.eval(f"(() => {{ const n = Array.from(document.querySelectorAll('#flame .fn'))"
                  f".find(e => e.textContent === {json.dumps(label)});"
                  " return n ? n.getAttribute('data-i') : null; })()")
    assert i is not None, f"no flame node {label!r}"
    return f'#flame .fn[data-i="{i}"]'


def _width(page: Page, selector: str) -> float:
    value: float = page.eval(f"document.querySelector({json.dumps(selector)}).getBoundingClientRect().width")
    return value


def test_flame_graph_draws_zooms_and_explains(page: Page, tmp_path: Path) -> None:
    url = _report(tmp_path, _small_diff(), top=4)
    page.navigate(url)
    full = page.eval("document.getElementById('flame').clientWidth")
    assert full > 500
    assert page.eval("document.querySelectorAll('#flame .fn').length") >= 8
    root = '#flame .fn[data-i="0"]'
    assert page.eval(f"document.querySelector('{root}').textContent") == "all call stacks"
    assert abs(_width(page, root) - full) <= 1
    # the frames of a diff: growth and shrink apart; this caller grew 4,000 bytes and shrank 61,440
    mixed = page.eval("(() => { const n = Array.from(document.querySelectorAll('#flame .fn'))"
                      ".filter(e => e.textContent === 'app.exe+0x4410'); return n.map(e =>"
                      " [e.querySelector('.gp').getBoundingClientRect().width"
                      " / e.getBoundingClientRect().width]); })()")
    assert sorted(r[0] for r in mixed) == [pytest.approx(4000 / 65440, abs=0.01), pytest.approx(1.0, abs=0.01)]
    small = _flame_node(page, "app.exe+0x2210")
    assert _width(page, small) < full / 5
    assert page.eval("document.getElementById('flame-reset').disabled") is True
    page.click(small)
    small = _flame_node(page, "app.exe+0x2210")
    assert abs(_width(page, small) - full) <= 1  # zoomed: the frame spans the full width
    assert page.eval(f"document.querySelector('{small}').classList.contains('zoomed')")
    # its callers stay above it, full width, and the frames beside it are gone
    callers = page.eval("Array.from(document.querySelectorAll('#flame .fn.anc')).map(e => e.textContent)")
    assert callers == ["app.exe+0x4410", "kernel32.dll+0x17614", "ntdll.dll+0x526f1", "all call stacks"]
    assert page.eval("Array.from(document.querySelectorAll('#flame .fn')).some(e => e.textContent === "
                     "'app.exe+0x1a2b')") is False
    assert "app.exe+0x2210" in page.eval("document.getElementById('flame-zoom').textContent")
    # hover: bytes, blocks, before and after
    page.hover(small)
    tip = page.eval("(() => { const t = document.getElementById('views-tip'); return t.hidden ? null :"
                    " Array.from(t.children).map(c => c.textContent); })()")
    assert tip is not None
    assert tip[:2] == ["app.exe+0x2210", "+160 KiB, +40 blocks"]
    assert "before 40.0 KiB (10 blocks) → after 200 KiB (50 blocks)" in tip
    # a click on the zoomed frame zooms out to its caller; reset goes back to the whole
    page.click(small)
    assert abs(_width(page, _flame_node(page, "app.exe+0x4410")) - full) <= 1
    assert _width(page, _flame_node(page, "app.exe+0x2210")) < full
    page.click("#flame-reset")
    assert abs(_width(page, root) - full) <= 1
    assert page.eval("document.querySelectorAll('#flame .fn.anc').length") == 0
    _assert_clean(page, url)


def _tree_names(page: Page, tree: str, path: str = ":scope > li > ul > li") -> list[str]:
    value: list[str] = page.eval(
        f"Array.from(document.getElementById('tree-{tree}').querySelectorAll('{path}'))"
        ".filter(li => li.checkVisibility()).map(li => li.querySelector(':scope > .node > .name').textContent)")
    return value


def test_call_trees_expand_and_collapse(page: Page, tmp_path: Path) -> None:
    url = _report(tmp_path, _small_diff(), top=4)
    page.navigate(url)
    assert page.eval("document.getElementById('panel-top_down').checkVisibility()") is False
    page.click("#tab-top_down")
    assert page.eval("document.getElementById('panel-top_down').checkVisibility()") is True
    assert page.eval("document.getElementById('panel-flame').checkVisibility()") is False
    # the root is open: its children, largest first, the "other" node last
    assert _tree_names(page, "top_down") == ["ntdll.dll+0x526f1", "app.exe+0x4410", "(2 smaller frames merged)"]
    first = "#tree-top_down > li > ul > li:first-child"
    assert page.eval(f"document.querySelector('{first} > ul')") is None  # children are built on demand
    page.click(f"{first} > .node > button.tog")
    assert page.eval(f"document.querySelector('{first}').getAttribute('aria-expanded')") == "true"
    assert _tree_names(page, "top_down", ":scope > li > ul > li > ul > li") == ["kernel32.dll+0x17614"]
    figures = page.eval(f"document.querySelector('{first} > .node > .fig').textContent")
    assert figures == "+2.0 MiB, +160 blocks"
    page.click(f"{first} > .node > button.tog")
    assert _tree_names(page, "top_down", ":scope > li > ul > li > ul > li") == []
    # bottom-up: rooted at the allocating functions
    page.click("#tab-bottom_up")
    assert _tree_names(page, "bottom_up") == ["app.exe+0x1a2b", "app.exe+0x2210", "plugin.dll+0x1200",
                                              "plugin.dll+0x9f00", "(2 smaller frames merged)"]
    page.click("#tree-bottom_up > li > ul > li:nth-child(3) > .node > button.tog")
    assert _tree_names(page, "bottom_up", ":scope > li > ul > li > ul > li") == ["app.exe+0x4410"]
    # back to the flame graph: drawn again at the full width
    page.click("#tab-flame")
    assert abs(_width(page, '#flame .fn[data-i="0"]') - page.eval("document.getElementById('flame').clientWidth")) <= 1
    _assert_clean(page, url)


def _visible_ranks(page: Page) -> list[int]:
    value: list[int] = page.eval("Array.from(document.querySelectorAll('#group-table > tbody > tr'))"
                                 ".filter(r => r.checkVisibility()).map(r => +r.getAttribute('data-rank'))")
    return value


def test_search_filters_rows_by_any_frame(page: Page, tmp_path: Path) -> None:
    url = _report(tmp_path, _small_diff(), top=4)
    page.navigate(url)
    assert _visible_ranks(page) == [1, 2, 3, 4]
    page.type_into("#stack-search", "PLUGIN.dll")  # any case
    assert _visible_ranks(page) == [3]
    assert page.eval("document.getElementById('search-count').textContent") == "1 of 4 call stacks match"
    page.type_into("#stack-search", "0x4410")  # a caller's frame, not a label
    assert _visible_ranks(page) == [1, 2, 3]
    # the flame graph marks the frames that match
    assert page.eval("Array.from(document.querySelectorAll('#flame .fn.match')).map(e => e.textContent)") == [
        "app.exe+0x4410", "app.exe+0x4410"]
    page.type_into("#stack-search", "ntoskrnl.exe+0x40c2e")  # kernel frames are frames too
    assert _visible_ranks(page) == [1]
    page.type_into("#stack-search", "no such frame")
    assert _visible_ranks(page) == []
    page.type_into("#stack-search", "")
    assert _visible_ranks(page) == [1, 2, 3, 4]
    assert page.eval("document.getElementById('search-count').textContent") == ""
    _assert_clean(page, url)


def test_copy_stack_puts_the_exact_frames_on_the_clipboard(browser: Browser, page: Page, tmp_path: Path) -> None:
    url = _report(tmp_path, _small_diff(), top=4)
    browser.call("Browser.grantPermissions", {"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    page.navigate(url)

    def clipboard() -> str:
        r = page.call("Runtime.evaluate", {"expression": "window.clip.readText()", "awaitPromise": True,
                                           "returnByValue": True, "userGesture": True})
        text: str = r["result"]["value"]
        return text

    page.eval("window.clip = navigator.clipboard")
    page.call("Runtime.evaluate", {"expression": "window.clip.writeText('before')", "awaitPromise": True,
                                   "userGesture": True})
    assert clipboard() == "before"
    page.click("#g1 td.stack summary")
    assert _copy_stack(page, 1) == "clipboard"
    assert clipboard() == "\n".join(SMALL_STACK_1)
    assert page.eval("document.querySelector('#g1 .copy-status').textContent") == "Copied."
    # where the Clipboard API is missing (some browsers on a page opened from disk): the selection fallback
    _without_clipboard_api(page)
    page.click("#g3 td.stack summary")
    assert _copy_stack(page, 3) == "fallback"
    assert clipboard() == "\n".join(["ntdll.dll+0x3a1b0", "plugin.dll+0x9f00", "0x7ff6deadbeef", "app.exe+0x4410"])
    assert page.eval("document.querySelectorAll('textarea').length") == 0  # the helper is gone again
    _assert_clean(page, url)


def test_hostile_frames_stay_text_in_the_dom(page: Page, tmp_path: Path) -> None:
    from test_views import HOSTILE, hostile_doc

    url = _report(tmp_path, hostile_doc(), top=4)
    page.navigate(url)
    _assert_clean(page, url)  # no script ran that should not, no image was requested
    assert page.eval("document.scripts.length") == 3
    assert page.eval("document.querySelectorAll('img, #flame script, .calltree script').length") == 0
    cleaned = [f"{h}+0x1".replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") for h in HOSTILE]
    page.click("#tab-bottom_up")
    page.click("#tree-bottom_up > li > ul > li:first-child > .node > button.tog")
    assert _tree_names(page, "bottom_up", ":scope > li > ul > li > ul > li") == [cleaned[0]]  # the caller
    page.click("#tab-flame")
    drawn = page.eval("Array.from(document.querySelectorAll('#flame .fn')).map(e => e.textContent)")
    assert set(cleaned) <= set(drawn)
    page.type_into("#stack-search", '"><img')
    assert _visible_ranks(page) == [1]
    page.click("#g1 td.stack summary")
    _without_clipboard_api(page)
    assert _copy_stack(page, 1) == "fallback"
    _assert_clean(page, url)


# ------------------------------------------------------------------------------------- trend and timeline


def test_trend_view_timeline_and_sparklines(page: Page, tmp_path: Path) -> None:
    view = trend_view(build_view(decode_value(_small_diff()), top=4), [timeline(), timeline(role="before")])
    url = _view_page(tmp_path, view, "trend.html")
    page.navigate(url)
    charts = page.eval("Array.from(document.querySelectorAll('#timelines svg.timeline-chart')).map(s => {"
                       " const r = s.getBoundingClientRect(); return [r.width, r.height,"
                       " Array.from(s.querySelectorAll('polyline')).map(p => [p.getAttribute('class'),"
                       " p.points.numberOfItems, p.getBBox().width, p.getBBox().height]),"
                       " s.querySelectorAll('rect.window').length, s.querySelectorAll('line.at').length]; })")
    assert len(charts) == 2
    for width, height, lines, windows, ats in charts:
        assert width > 500 and height > 100
        assert [c for c, *_ in lines] == ["series c0", "series c1", "series total"]
        assert all(n == 121 and w > 0.9 * width * 0.9 and h > 10 for _, n, w, h in lines)
        assert windows == 1 and ats == 1
    legend = page.eval("Array.from(document.querySelectorAll('#timeline-1 ul.legend li')).map(li => li.textContent)")
    assert legend[1].startswith(" app.exe+0x1a2b")
    sparks = page.eval("Array.from(document.querySelectorAll('#group-table svg.spark')).map(s =>"
                       " [s.closest('tr').getAttribute('data-rank'), s.getBoundingClientRect().width,"
                       " s.querySelector('polyline').points.numberOfItems])")
    assert sparks == [["1", 80, 4], ["2", 80, 4], ["3", 80, 4]]
    # the trend column (after rank, delta bytes and blocks, first and last run) is the table's order; sorted by
    # another column and back, the steepest slope comes first again
    assert page.eval("document.querySelector('#group-table thead th:nth-child(6)').textContent") == "Trend"
    page.click("#group-table thead th:nth-child(5) button")
    page.click("#group-table thead th:nth-child(6) button")
    assert _column(page, "group-table", 0) == ["1", "2", "3", "4"]
    page.click("#group-table thead th:nth-child(6) button")
    assert _column(page, "group-table", 0) == ["4", "3", "2", "1"]
    # the call trees are there too, and the copy button works in this mode
    assert page.eval("document.querySelectorAll('#flame .fn').length") >= 8
    page.click("#g2 td.stack summary")
    _without_clipboard_api(page)
    assert _copy_stack(page, 2) == "fallback"
    _assert_clean(page, url)


def test_a_real_trend_page(page: Page, tmp_path: Path) -> None:
    """``heapdiff trend`` over five written runs (a leak, a cache that fills, memory given back, a constant): the
    page's rows, sparklines, sort, flame graph zoom, search and copy button, on the tool's own output."""
    from trend_runs import write_run

    from heapdiff.cli import main

    runs = []
    for k in range(5):
        write_run(tmp_path / f"run{k}.etl", k)
        runs.append(str(tmp_path / f"run{k}.etl"))
    html, js = tmp_path / "trend.html", tmp_path / "trend.json"
    with pytest.raises(SystemExit) as done:
        main(["trend", *runs, "--no-symbols", "-q", "-o", str(html), "--json", str(js)])
    assert done.value.code == 0
    url = html.as_uri()
    page.navigate(url)
    # one timeline a run, its total line one point per point of the run's timeline, the leak's line among the lines
    charts = page.eval("Array.from(document.querySelectorAll('#timelines figure.timeline')).map(f => ["
                       " f.querySelector('.badge').textContent,"
                       " f.querySelector('polyline.total, polyline[class$=total]').points.numberOfItems,"
                       " Array.from(f.querySelectorAll('ul.legend li code')).map(c => c.textContent)])")
    timelines = [t["timeline"] for t in json.loads(js.read_text(encoding="utf-8"))["traces"]]
    assert [c[0] for c in charts] == [f"run {k}" for k in range(1, 6)]
    assert [c[1] for c in charts] == [len(t["time_us"]) for t in timelines]
    assert all("app.exe+0x100" in c[2] for c in charts)
    rows = page.eval("Array.from(document.querySelectorAll('#group-table > tbody > tr')).map(r =>"
                     " [r.querySelector('td.stack .label').textContent, r.querySelector('.badge[class*=trend-]')"
                     ".textContent, r.querySelector('svg.spark polyline').points.numberOfItems])")
    # steepest slope first: the cache (+1,500 B a run until it fills), the leak, the constant, what is given back
    assert rows == [["app.exe+0x200", "plateau", 5], ["app.exe+0x100", "growing", 5], ["app.exe+0x400", "flat", 5],
                    ["app.exe+0x300", "shrinking", 5]]
    assert page.eval("document.querySelector('.stat.headline .value').textContent") == "1"  # growing call stacks
    page.click("#group-table thead th:nth-child(2) button")  # by the change from the first run to the last
    assert _column(page, "group-table", 0) == ["1", "2", "3", "4"]
    page.click("#group-table thead th:nth-child(6) button")  # by slope: largest first, then smallest first
    assert _column(page, "group-table", 0) == ["1", "2", "3", "4"]
    page.click("#group-table thead th:nth-child(6) button")
    assert _column(page, "group-table", 0) == ["4", "3", "2", "1"]
    leak = _flame_node(page, "app.exe+0x100")
    page.click(leak)
    assert abs(_width(page, _flame_node(page, "app.exe+0x100")) - page.eval(
        "document.getElementById('flame').clientWidth")) <= 1
    page.type_into("#stack-search", "0x300")
    assert _visible_ranks(page) == [4]
    page.type_into("#stack-search", "")
    page.click("#g2 td.stack summary")
    _without_clipboard_api(page)
    assert _copy_stack(page, 2) == "fallback"


def test_timeline_of_a_real_diff(page: Page, tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    """The page of a real diff (the bundled example traces) draws each trace's timeline from the document: one
    point per point of the trace's timeline, x by time and y by bytes on the chart's scale, the lines of the
    report's first call stacks under the total, labelled in the legend."""
    html, out = tmp_path / "real.html", tmp_path / "real.json"
    code, _, err = run_cli(str(EXAMPLE / "before.etl"), str(EXAMPLE / "after.etl"), "-o", str(html), "--json",
                           str(out), "-q")
    assert code == 0, err
    doc = json.loads(out.read_text(encoding="utf-8"))
    url = html.as_uri()
    page.navigate(url)
    charts = page.eval("Array.from(document.querySelectorAll('#timelines figure.timeline')).map(f => ["
                       " f.querySelector('.badge').textContent,"
                       " Array.from(f.querySelectorAll('polyline')).map(p => [p.getAttribute('class'),"
                       "  Array.from({length: p.points.numberOfItems}, (_, k) => [p.points.getItem(k).x,"
                       "  p.points.getItem(k).y])]),"
                       " Array.from(f.querySelectorAll('ul.legend li code')).map(c => c.textContent),"
                       " f.querySelector('svg').getBoundingClientRect().width])")
    assert [c[0] for c in charts] == ["before", "after"]
    for (_, lines, legend, width), trace in zip(charts, doc["traces"], strict=True):
        tl = trace["timeline"]
        assert width > 500
        total = dict(lines)["series total"]
        assert len(total) == len(tl["time_us"]) > 500
        xs, ys = [p[0] for p in total], [p[1] for p in total]
        span, top = tl["time_us"][-1], max(tl["bytes"])
        base = ys[0]  # the first point holds nothing yet: the zero line
        assert tl["bytes"][0] == 0 and min(ys) < base - 100
        for x, y, t, b in zip(xs, ys, tl["time_us"], tl["bytes"], strict=True):
            assert abs((x - xs[0]) / (xs[-1] - xs[0]) - t / span) < 2e-3
            assert abs((base - y) / (base - min(ys)) - b / top) < 2e-3
        role = trace["role"]
        firsts = [g for g in doc["groups"] if g["runs"][role] and "timeline_bytes" in g["runs"][role]][:5]
        assert legend == [g["label"] for g in firsts] and legend
        assert [c for c, _ in lines] == [f"series c{k}" for k in range(len(firsts))] + ["series total"]
        for (_, pts), g in zip(lines, firsts, strict=False):
            assert len(pts) == len(total)
            assert all(yy >= y - 0.05 for (_, yy), (_, y) in zip(pts, total, strict=True))  # under the total
            assert abs((base - pts[-1][1]) / (base - min(ys)) - g[role]["bytes"] / top) < 2e-3
    _assert_clean(page, url)


def test_large_tree_page_load_time(page: Page, tmp_path: Path) -> None:
    """A 100,000-group diff whose call trees are at their cap: the worst case for the page's own drawing."""
    t0 = time.perf_counter()
    view = build_view(big_tree_doc(100_000, 30, traces=True), top=50)
    url = _view_page(tmp_path, view, "big-trees.html")
    build_and_render = time.perf_counter() - t0
    size = (tmp_path / "big-trees.html").stat().st_size
    wall = page.navigate(url)
    nav = page.eval("(() => { const n = performance.getEntriesByType('navigation')[0];"
                    " return [n.domContentLoadedEventEnd, n.loadEventStart]; })()")
    drawn = page.eval("document.querySelectorAll('#flame .fn').length")
    print(f"\n100,000-group diff, call trees at their cap ({[len(t.nodes) for t in view.call_trees]} nodes): "
          f"HTML {size:,} bytes (document + view + render {build_and_render:.1f} s); navigation to load event "
          f"{nav[1]:.1f} ms (DOMContentLoaded {nav[0]:.1f} ms, wall {wall * 1000:.0f} ms); {drawn} frames drawn")
    assert size < 5 * 1024 * 1024
    assert drawn > 100
    assert nav[1] < 1000, "the report of a 100,000-group document should load in under 1 s"
    page.click("#tab-bottom_up")
    assert len(_tree_names(page, "bottom_up")) > 10
    _assert_clean(page, url)
