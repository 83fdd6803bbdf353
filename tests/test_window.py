"""Leak windows: times parsed, marks decoded, the clock inverted, and --from/--to/--at checked against a plain
filter of the written events (a replay of the op log up to ``at``, then the allocation times in ``[from, to)``)."""

from __future__ import annotations

import json
import pathlib
import random
from collections import defaultdict
from typing import Any

import pytest

from heapdiff.cli import main
from heapdiff.document import decode_value
from heapdiff.etl import structs as S
from heapdiff.etl.logfile import LogfileHeader, iso_utc
from heapdiff.etl.trace import open_trace
from heapdiff.events.decode import PayloadError
from heapdiff.events.marks import decode_mark
from heapdiff.report.view_build import build_view
from heapdiff.tracegen.scenario import Module, Process, Scenario
from heapdiff.tracegen.writer import TraceWriter
from heapdiff.window import (
    TraceClock,
    WindowError,
    WindowRequest,
    parse_time,
    resolve_window,
)

# ------------------------------------------------------------------------------------------------ parsing T

EPOCH_2026 = 134_116_992_000_000_000  # 2026-01-01T00:00:00Z in FILETIME units


@pytest.mark.parametrize(("text", "seconds", "filetime", "mark", "from_end"), [
    ("12.5", 12.5, None, None, False),
    ("0", 0.0, None, None, False),
    ("+3", 3.0, None, None, False),
    ("1e1", 10.0, None, None, False),
    (".5", 0.5, None, None, False),
    ("-2", -2.0, None, None, True),
    ("-0", -0.0, None, None, True),          # the end itself
    (" 7 ", 7.0, None, None, False),
    ("2026-01-01T00:00:05Z", None, EPOCH_2026 + 50_000_000, None, False),
    ("2026-01-01T01:00:05+01:00", None, EPOCH_2026 + 50_000_000, None, False),
    ("2026-01-01 00:00:05", None, EPOCH_2026 + 50_000_000, None, False),  # no zone: UTC
    ("2026-01-01T00:00:00.000001Z", None, EPOCH_2026 + 10, None, False),
    ("mark:warm", None, None, "warm", False),
    ("MARK:Shut Down", None, None, "Shut Down", False),
])
def test_times_parse(text: str, seconds: float | None, filetime: int | None, mark: str | None,
                     from_end: bool) -> None:
    t = parse_time(text)
    assert (t.seconds, t.utc_filetime, t.mark, t.from_end, t.text) == (seconds, filetime, mark, from_end, text)
    assert t.needs_pass == (from_end or mark is not None)


@pytest.mark.parametrize(("text", "says"), [
    ("", "is not seconds"), ("abc", "is not seconds"), ("mark:", "needs a name"), ("nan", "is not seconds"),
    ("inf", "is not seconds"), ("1e999", "not a finite"), ("12s", "is not seconds"),
    ("1600-12-31T00:00:00Z", "before 1601"),
])
def test_bad_times_say_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_time(text)


def test_a_window_that_holds_nothing_is_an_error() -> None:
    clock = TraceClock(start=1000 * 10**7, end=1010 * 10**7, marks=(("warm", 1002 * 10**7),))
    with pytest.raises(WindowError, match="is not before --to"):
        resolve_window(WindowRequest(parse_time("5"), parse_time("-6")), clock, "t.etl")
    with pytest.raises(WindowError, match="is before --from"):
        resolve_window(WindowRequest(parse_time("mark:warm"), None, parse_time("1")), clock, "t.etl")
    with pytest.raises(WindowError, match=r"no mark of that name \(its marks: warm\)"):
        resolve_window(WindowRequest(parse_time("mark:cold")), clock, "t.etl")
    w = resolve_window(WindowRequest(parse_time("mark:warm"), parse_time("-1"), parse_time("-0")), clock, "t.etl")
    assert (w.start, w.stop, w.at) == (1002 * 10**7, 1009 * 10**7, 1010 * 10**7)


# ------------------------------------------------------------------------------------------------ the clock


@pytest.mark.parametrize(("clock_type", "perf_freq", "mhz"), [
    (S.CLOCK_QPC, 3_579_545, 0), (S.CLOCK_QPC, 10_000_000, 0), (S.CLOCK_QPC, 24_000_000, 0), (S.CLOCK_QPC, 0, 0),
    (S.CLOCK_SYSTEM_TIME, 0, 0), (S.CLOCK_CPU_CYCLES, 0, 2999), (S.CLOCK_CPU_CYCLES, 10_000_000, 0),
])
def test_last_raw_at_inverts_the_clock(clock_type: int, perf_freq: int, mhz: int) -> None:
    h = LogfileHeader(pointer_size=8, buffer_size=0x10000, version=0, provider_version=0, number_of_processors=1,
                      end_filetime=0, maximum_file_size=0, log_file_mode=0, buffers_written=0, events_lost=0,
                      buffers_lost=0, cpu_speed_mhz=mhz, boot_filetime=0, perf_freq=perf_freq,
                      start_filetime=133_000_000_000_000_000, clock_type=clock_type, timezone_bias_minutes=0,
                      logger_name="", log_file_name="", t0=123_456_789, thread_id=0, process_id=0)
    rng = random.Random(clock_type * 31 + perf_freq + mhz)
    for _ in range(5000):
        ft = h.start_filetime + rng.randint(-10**9, 10**11)
        r = h.last_raw_at(ft)
        assert h.raw_to_filetime(r) <= ft < h.raw_to_filetime(r + 1)
    # many times at once say what one at a time says (the groups' first and last allocation times)
    raws = [h.t0 + rng.randint(-10**9, 10**12) for _ in range(2000)] + [0, h.t0, 2**63 - 1]
    assert h.raw_to_iso_many(raws) == [iso_utc(h.raw_to_utc(r)) for r in raws]


# ------------------------------------------------------------------------------------------------ marks


@pytest.mark.parametrize(("payload", "name"), [
    ("warm".encode("utf-16-le") + b"\0\0", "warm"),                       # WCHARs and a NUL
    (b"\0\0\0\0" + "warm".encode("utf-16-le") + b"\0\0", "warm"),         # a flag of 0 first
    (b"\1\0\0\0" + "warm".encode("utf-16-le") + b"\0\0", "warm"),         # WMI_SET_MARK_WITH_FLUSH
    (b"warm\0", "warm"),                                                 # ANSI
    (b"warm", "warm"),                                                   # ANSI without its NUL
    ("A".encode("utf-16-le") + b"\0\0", "A"),                             # a one-letter name
    ("Größe".encode("utf-16-le") + b"\0\0", "Größe"),                     # printable, not ASCII
    ("warm".encode("utf-16-le") + b"\0\0" + b"\xaa" * 6, "warm"),         # padding after the NUL
])
def test_mark_payloads(payload: bytes, name: str) -> None:
    assert decode_mark(payload) == name


@pytest.mark.parametrize("payload", [b"", b"\0\0\0\0", b"\x01\x00\x02\x00\x07\x00", b"\x1b\0\0\0", b"\0" * 5000])
def test_mark_payloads_that_read_as_no_name(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        decode_mark(payload)


def test_a_mark_name_never_carries_a_control_character() -> None:
    # a terminal escape as ANSI text is no name; the same bytes as UTF-16 are two printable characters
    assert decode_mark(b"\x1b[2J\0").isprintable()


# ------------------------------------------------------------------------------------------------ the job

MODS = {"app.exe": Module("app.exe", "C:\\x\\app.exe", 0x7FF6_0100_0000, 0x80000)}
SITES = [[("app.exe", 0x100 + 0x10 * k)] for k in range(5)]


def _write(path: pathlib.Path, seed: int) -> list[tuple[int, str, tuple[int, int, int], int, str]]:
    """A random program: allocs, frees and reallocs over time, marks on the way. Returns its op log: (raw ts,
    "alloc" | "free" | "mark", key, size, signature or mark name)."""
    rng = random.Random(seed)
    w = TraceWriter(str(path), cpus=2, buffer_size=0x2000)
    sc = Scenario(w, cpus=2)
    p = Process(4242, "app.exe", MODS, heaps=[0x10000, 0x20000], threads=[8, 12])
    sc.start_process(p)
    log: list[tuple[int, str, tuple[int, int, int], int, str]] = []
    live: list[tuple[int, int]] = []
    for step in range(300):
        r = rng.random()
        if step in (60, 150, 240):
            t = sc.tick()
            w.mark(t, 0, f"m{step}")
            log.append((t, "mark", (0, 0, 0), 0, f"m{step}"))
        elif r < 0.55 or not live:
            site = rng.randrange(len(SITES))
            heap = rng.choice(p.heaps)
            size = rng.randrange(1, 5000)
            t = sc.ts + 2500  # Scenario.alloc ticks once for the event (and once more for its stack)
            a = sc.alloc(p, SITES[site], size, heap=heap)
            log.append((t, "alloc", (p.pid, heap, a), size, f"app.exe+0x{0x100 + 0x10 * site:x}"))
            live.append((heap, a))
        elif r < 0.85:
            heap, a = live.pop(rng.randrange(len(live)))
            t = sc.ts + 2500
            sc.free(p, a, heap=heap)
            log.append((t, "free", (p.pid, heap, a), 0, ""))
        else:
            k = rng.randrange(len(live))
            heap, a = live[k]
            site = rng.randrange(len(SITES))
            t = sc.ts + 2500
            new = sc.realloc(p, SITES[site], a, rng.randrange(1, 9000), heap=heap, move=rng.random() < 0.5)
            size = sc.live[(p.pid, heap, new)][0]
            log.append((t, "free", (p.pid, heap, a), 0, ""))
            log.append((t, "alloc", (p.pid, heap, new), size, f"app.exe+0x{0x100 + 0x10 * site:x}"))
            live[k] = (heap, new)
        sc.tick(rng.choice([1, 10, 5000, 40_000]))  # uneven gaps
    sc.close()
    return log


def _expected(log: list[tuple[int, str, tuple[int, int, int], int, str]], header: LogfileHeader, last_ts: int,
              start: str | None, stop: str | None, at: str | None) -> dict[str, tuple[int, int]]:
    """A plain replay: the op log up to ``at``, the blocks allocated in ``[from, to)``, by signature."""
    marks = {name: ts for ts, kind, _, _, name in log if kind == "mark"}
    end_ft = header.raw_to_filetime(last_ts)

    def ft(text: str) -> int:
        if text.startswith("mark:"):
            return header.raw_to_filetime(marks[text[5:]])
        secs = float(text)
        base = end_ft if text.startswith("-") else header.start_filetime
        return base + round(secs * 10**7)

    at_ft = ft(at) if at is not None else None
    live: dict[tuple[int, int, int], tuple[int, str, int]] = {}
    for ts, kind, key, size, sig in log:
        if at_ft is not None and header.raw_to_filetime(ts) > at_ft:
            break
        if kind == "alloc":
            live[key] = (size, sig, header.raw_to_filetime(ts))
        elif kind == "free":
            live.pop(key, None)
    lo = ft(start) if start is not None else None
    hi = ft(stop) if stop is not None else None
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for size, sig, when in live.values():
        if (lo is None or when >= lo) and (hi is None or when < hi):
            out[sig][0] += 1
            out[sig][1] += size
    return {k: (v[0], v[1]) for k, v in out.items()}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    try:
        main([*args, "--json", "-", "-q", "--no-symbols", "-o", "/dev/null"])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else {}), err


WINDOWS = [
    (None, None, None), ("0.01", None, None), (None, "0.03", None), ("0.01", "0.03", None), (None, None, "0.02"),
    (None, None, "-0.01"), ("0.005", None, "-0.005"), ("mark:m60", "mark:m240", None), ("mark:m60", None, "mark:m150"),
    ("-0.02", "-0.001", "-0"), ("0", None, "0.0000001"),
]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("start", "stop", "at"), WINDOWS, ids=[str(w) for w in WINDOWS])
def test_windows_against_a_plain_filter(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, seed: int,
                                        start: str | None, stop: str | None, at: str | None) -> None:
    path = tmp_path / "t.etl"
    log = _write(path, seed)
    trace = open_trace(path.read_bytes())
    args = [str(path)] + [a for opt, v in (("--from", start), ("--to", stop), ("--at", at)) if v is not None
                          for a in (opt, v)]
    code, d, err = _run(capsys, *args)
    assert code == 0, err
    last_ts = max(ts for ts, *_ in log)
    want = _expected(log, trace.header, last_ts, start, stop, at)
    got = {g["stack"][-1]: (g["blocks"], g["bytes"]) for g in d["groups"]}
    assert got == want
    assert d["totals"]["bytes"] == sum(b for _, b in want.values())
    fw = d["filters"]["window"]
    assert (fw["from"], fw["to"], fw["at"]) == (start, stop, at)
    tw = d["traces"][0]["window"]
    assert (tw is None) == (start is None and stop is None and at is None)


def test_window_in_the_reports_and_the_document(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "t.etl", 3)
    code, d, _ = _run(capsys, "t.etl", "--from", "0.01", "--at", "mark:m150")
    assert code == 0
    assert d["filters"]["window"] == {"from_us": 10000, "to_us": None, "at_us": None, "from": "0.01", "to": None,
                                      "at": "mark:m150"}
    tw = d["traces"][0]["window"]
    assert tw["from_us"] == 10000 and tw["to_us"] is None and tw["at_us"] > 10000
    main_args = ["t.etl", "--from", "0.01", "--at", "mark:m150", "--no-symbols", "-o", "r.html", "--markdown", "r.md"]
    try:
        main(main_args)
    except SystemExit as e:
        assert e.code == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[1].startswith("Leak window: blocks allocated from 0.010 s to the end, outstanding at ")
    assert "Leak window: blocks allocated from 0.010 s" in (tmp_path / "r.md").read_text(encoding="utf-8")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert '<p class="meta window">Leak window: blocks allocated from 0.010 s' in html
    # the timeline ends at --at, and its chart shades the window and marks the moment
    tl = d["traces"][0]["timeline"]
    assert abs(tl["time_us"][-1] - tw["at_us"]) <= 1
    (chart,) = build_view(decode_value(d)).timelines
    assert chart.window_from_s == 0.01 and chart.window_to_s is None and chart.at_s == tw["at_us"] / 1e6
    assert html.count('<rect class="window"') == 1 and html.count('<line class="at"') == 1
    # the total line is every block of the trace, not only the window's: without a window the last point is the
    # outstanding total; from a mark in the middle, more than the window's outstanding
    for args, same in ((("t.etl",), True), (("t.etl", "--from", "mark:m150"), False)):
        code, d, _ = _run(capsys, *args)
        assert code == 0
        end, outstanding = d["traces"][0]["timeline"]["bytes"][-1], d["traces"][0]["outstanding"]["bytes"]
        assert end == outstanding if same else end > outstanding > 0


def test_window_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.etl"
    _write(path, 4)
    for args, says in [(["--from", "0.03", "--to", "0.01"], "is not before --to"),
                       (["--at", "mark:nope"], "holds no mark of that name (its marks: m150, m240, m60)"),
                       (["--from", "soon"], "'soon' is not seconds"),
                       (["--from", "0.02", "--at", "0.01"], "is before --from")]:
        code, _, err = _run(capsys, str(path), *args)
        assert code == 2 and says in err, (args, err)
    code, _, err = _run(capsys, str(path), "--from", "100")
    assert code == 0 and "--from is after the trace's end" in err


def test_info_lists_the_marks(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.etl"
    _write(path, 5)
    with pytest.raises(SystemExit):
        main(["info", str(path)])
    out, _ = capsys.readouterr()
    assert "marks        m60 at " in out and "(use as --from/--to/--at mark:NAME)" in out
    with pytest.raises(SystemExit):
        main(["info", "--json", str(path)])
    d = json.loads(capsys.readouterr()[0])
    assert [m["name"] for m in d["marks"]] == ["m60", "m150", "m240"]


def test_window_edges_to_the_tick(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    """At 10 MHz one raw tick is one FILETIME unit (0.1 us): an op exactly at ``at`` counts, one a tick later does
    not; a block allocated exactly at ``from`` counts, one exactly at ``to`` does not."""
    path = tmp_path / "edge.etl"
    w = TraceWriter(str(path), cpus=1, buffer_size=0x2000, perf_freq=10_000_000)
    sc = Scenario(w, cpus=1)
    p = Process(4242, "app.exe", MODS, heaps=[0x10000], threads=[8])
    sc.start_process(p)
    t_a = sc.ts + 2500
    a = sc.alloc(p, SITES[0], 100)          # the block: allocated at t_a
    sc.ts = t_a + 10                          # its stack walk came at t_a + 1
    sc.free(p, a)                             # freed at t_a + 10 + 2500
    t_free = t_a + 10 + 2500
    sc.alloc(p, SITES[1], 7)                  # something live at the end
    sc.close()

    def secs(ts: int) -> str:
        return f"{(ts - w.t0) / 1e7:.7f}"

    for args, bytes_of_a in [(["--at", secs(t_a)], 100), (["--at", secs(t_free - 1)], 100),
                             (["--at", secs(t_free)], None), (["--at", secs(t_a - 1)], None),
                             (["--from", secs(t_a), "--at", secs(t_a)], 100),
                             (["--from", secs(t_a + 1), "--at", secs(t_a + 5)], None),
                             (["--to", secs(t_a), "--at", secs(t_a + 5)], None),
                             (["--to", secs(t_a + 1), "--at", secs(t_a + 5)], 100)]:
        code, d, err = _run(capsys, str(path), *args)
        assert code == 0, err
        got = {g["stack"][-1]: g["bytes"] for g in d["groups"]}.get("app.exe+0x100")
        assert got == bytes_of_a, args
