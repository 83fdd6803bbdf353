"""Main-job benchmark: wall time, heap events/s, MB/s, peak RSS and report sizes per trace pair; RESULTS.md.

    python benchmarks/run.py [--sizes 1M,10M,30M] [--cache DIR] [--no-browser] [--no-startup] [--no-reader]

For each pair (gen.py, cached): the main job ``heapdiff before.etl after.etl -o out.html --json out.json -q``
as a child process (wall time; summed peak RSS = ``VmHWM`` of each of its processes, polled, added up, since
the job may fork a worker per trace; ``ru_maxrss`` of the largest), the same job on the pair's no-live-blocks
twin (the RSS baseline), the reader alone on the "before" trace (reader_bench's child), the machine's limit
(read both files and touch every byte with numpy) and a peer (dissect.etl framing the first 200,000 records of
each file). Then start-up on its own, and the navigation-to-load-event time of the largest pair's HTML in
headless Chromium (DevTools protocol over a small websocket client of our own). Figures are merged into
``<cache>/results.json`` (so sizes can be run one at a time) and RESULTS.md is written from all of them."""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen
import reader_bench
from bench_util import FIXTURE, REPO, bench_env, fmt_rate, machine, python, run_child

HEAP_KINDS = ("heap_alloc", "heap_free", "heap_realloc", "heap_create", "heap_destroy", "heap_other")
DISSECT_RECORDS = 200_000
JOB_TIMEOUT_NOTE = "the job did not finish"


def heapdiff_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "heapdiff"
    return [str(exe)] if exe.exists() else [python(), "-m", "heapdiff.cli"]


# ------------------------------------------------------------------------------------------------------------
# the machine's limit and a peer
# ------------------------------------------------------------------------------------------------------------
def numpy_scan(paths: list[str], chunk: int = 64 << 20) -> dict[str, float]:
    """Read the files into one reused buffer and reduce every byte (XOR over a uint64 view): GB/s.

    An untimed pass first, so that this and the job both see the page cache warm.
    """
    buf = np.empty(chunk, np.uint8)

    def one() -> tuple[int, float]:
        acc = np.uint64(0)
        total = 0
        t0 = time.perf_counter()
        for p in paths:
            with open(p, "rb", buffering=0) as f:
                while True:
                    n = f.readinto(buf.data)
                    if not n:
                        break
                    acc ^= np.bitwise_xor.reduce(buf[: n - n % 8].view(np.uint64))
                    total += n
        return total, time.perf_counter() - t0

    total, first = one()
    total, dt = one()
    return {
        "bytes": total,
        "first_s": first,
        "s": dt,
        "gb_per_s": total / dt / 1e9,
        "mb_per_s": total / dt / 1e6,
    }


def dissect_frame(paths: list[str], limit: int = DISSECT_RECORDS) -> dict[str, Any]:
    """dissect.etl (test-only dependency) framing the first ``limit`` records of each file: records/s."""
    try:
        from dissect.etl import ETL
    except ImportError:
        return {"records_per_s": None, "note": "dissect.etl not installed"}
    n_all = 0
    t_all = 0.0
    for p in paths:
        with open(p, "rb") as f:
            t0 = time.perf_counter()
            etl = ETL(f)
            n = 0
            for b in etl.buffers():
                for rec in b:
                    h = rec.header
                    _ = (h.size, h.version)
                    n += 1
                    if n >= limit:
                        break
                if n >= limit:
                    break
            t_all += time.perf_counter() - t0
            n_all += n
    return {"records": n_all, "s": t_all, "records_per_s": n_all / t_all}


# ------------------------------------------------------------------------------------------------------------
# the main job
# ------------------------------------------------------------------------------------------------------------
def run_job(
    before: str,
    after: str,
    outdir: Path,
    tag: str,
    numba_cache: Path,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    outdir.mkdir(parents=True, exist_ok=True)
    html = outdir / f"{tag}.html"
    js = outdir / f"{tag}.json"
    for f in (html, js):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    env = bench_env(numba_cache)
    env.update(extra_env or {})
    r = run_child([*heapdiff_cmd(), before, after, "-o", str(html), "--json", str(js), "-q"], env=env)
    d: dict[str, Any] = {
        "returncode": r.returncode,
        "wall_s": r.wall_s,
        "maxrss_mb": r.maxrss_mb,
        "rss_mb": r.tree_hwm_mb,
        "tree_hwm_mb": r.tree_hwm_mb,
        "anon_peak_mb": r.anon_peak_mb,
        "processes": r.processes,
        "threads_peak": r.threads_peak,
        "user_s": r.user_s,
        "sys_s": r.sys_s,
        "stderr_tail": r.stderr[-2000:],
        "html": str(html),
        "json": str(js),
    }
    if r.returncode not in (0, 1) or not js.exists():
        d["error"] = f"exit {r.returncode}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}"
        return d
    doc = json.loads(js.read_text())
    d["html_bytes"] = html.stat().st_size
    d["json_bytes"] = js.stat().st_size
    d["groups"] = len(doc.get("groups", []))
    d["totals"] = doc.get("totals")
    d["traces"] = [
        {
            "records": t["records"],
            "events": t["events"],
            "outstanding": t["outstanding"],
            "unmatched_frees": t.get("unmatched_frees"),
            "anomalies": t.get("anomalies"),
            "stacks_matched": t.get("stacks_matched"),
            "stack_refs": t.get("stack_refs"),
        }
        for t in doc.get("traces", [])
    ]
    d["heap_events"] = sum(int(t["events"].get(k, 0)) for t in doc["traces"] for k in HEAP_KINDS)
    d["records"] = sum(int(t["records"]) for t in doc["traces"])
    tot = doc["totals"]
    d["live_blocks"] = int(tot["before"]["blocks"]) + int(tot["after"]["blocks"])
    return d


def run_job_repeated(before: str, after: str, outdir: Path, tag: str, numba_cache: Path,
                     repeat: int) -> dict[str, Any]:
    """``repeat`` runs of the job: the run of median wall time, with every run's wall time (``wall_runs``) and
    the largest peaks of all runs. Why: on this shared machine one run's wall time swings by +-40%."""
    runs = [run_job(before, after, outdir, tag, numba_cache) for _ in range(max(1, repeat))]
    ok = sorted((r for r in runs if "error" not in r), key=lambda r: float(r["wall_s"]))
    if not ok:
        return runs[0]
    med = dict(ok[(len(ok) - 1) // 2])
    med["wall_runs"] = [float(r["wall_s"]) for r in ok]
    for k in ("maxrss_mb", "rss_mb", "tree_hwm_mb", "anon_peak_mb"):
        med[k] = max(float(r[k]) for r in ok)
    return med


def measure_pair(size: str, cache: Path, outdir: Path, numba_cache: Path, reader: bool,
                 repeat: int = 3) -> dict[str, Any]:
    st = gen.ensure(size, cache)
    stn = gen.ensure(size, cache, nolive=True)
    files = [st["traces"]["0"]["path"], st["traces"]["1"]["path"]]
    nfiles = [stn["traces"]["0"]["path"], stn["traces"]["1"]["path"]]
    res: dict[str, Any] = {
        "size": size,
        "date": machine()["date"],
        "bytes": sum(os.path.getsize(f) for f in files),
        "generation_s": st["generation_s"],
        "generation_nolive_s": stn["generation_s"],
        "expected_live": [st["traces"][k]["live_blocks"] for k in ("0", "1")],
        "expected_live_bytes": [st["traces"][k]["live_bytes"] for k in ("0", "1")],
    }
    log(f"[{size}] numpy scan of {res['bytes'] / 1e9:.2f} GB")
    res["numpy"] = numpy_scan(files)
    log(f"[{size}] dissect.etl framing")
    res["dissect"] = dissect_frame(files)
    if reader:
        log(f"[{size}] reader alone on {Path(files[0]).name}")
        try:
            res["reader"] = reader_bench.measure(files[0], cache, repeat=1, warmup=False, numba_cache=numba_cache)
        except RuntimeError as e:
            res["reader"] = {"error": str(e)[-500:]}
    log(f"[{size}] main job")
    res["job"] = run_job_repeated(files[0], files[1], outdir, size, numba_cache, repeat)
    log(f"[{size}] main job: {res['job'].get('wall_s', 0):.1f} s, summed peak RSS {res['job'].get('rss_mb', 0):.0f} MB")
    log(f"[{size}] main job on the no-live-blocks pair")
    res["job_nolive"] = run_job_repeated(nfiles[0], nfiles[1], outdir, f"{size}-nolive", numba_cache, repeat)
    return res


# ------------------------------------------------------------------------------------------------------------
# start-up
# ------------------------------------------------------------------------------------------------------------
def startup(cache: Path, numba_cache: Path, outdir: Path, repeat: int = 5) -> dict[str, Any]:
    st = gen.ensure("tiny", cache)
    tb, ta = st["traces"]["0"]["path"], st["traces"]["1"]["path"]
    env = bench_env(numba_cache)

    rss: dict[str, float] = {}

    def med(argv: list[str], e: dict[str, str], key: str = "") -> float:
        times = []
        for _ in range(repeat):
            r = run_child(argv, env=e)
            if r.returncode != 0:
                raise RuntimeError(f"{argv} failed: {r.stderr[-1000:]}")
            times.append(r.wall_s)
            if key:
                rss[key] = r.maxrss_mb
        return statistics.median(times)

    out: dict[str, Any] = {}
    out["python_bare_s"] = med([python(), "-c", "pass"], env)
    out["help_s"] = med([*heapdiff_cmd(), "--help"], env)
    out["import_job_s"] = med([python(), "-c", "import heapdiff.commands.report"], env, "import_job")
    out["import_job_maxrss_mb"] = rss["import_job"]
    fixture_job = [*heapdiff_cmd(), "-q", "-o", "/dev/null", "--json", "/dev/null", str(FIXTURE)]
    out["fixture_single_maxrss_mb"] = run_child(fixture_job, env=env).maxrss_mb
    with tempfile.TemporaryDirectory(prefix="heapdiff-cold-numba-") as cold:
        t = run_job(tb, ta, outdir, "tiny-cold", Path(cold))
        out["tiny_cold_s"] = t["wall_s"]
        out["tiny_cold_maxrss_mb"] = t["maxrss_mb"]
    run_job(tb, ta, outdir, "tiny-prime", numba_cache)
    warm = [run_job(tb, ta, outdir, "tiny-warm", numba_cache) for _ in range(repeat)]
    out["tiny_warm_s"] = statistics.median(w["wall_s"] for w in warm)
    out["tiny_warm_maxrss_mb"] = statistics.median(w["maxrss_mb"] for w in warm)
    out["tiny_heap_events"] = warm[0].get("heap_events")
    fx = run_job(str(FIXTURE), str(FIXTURE.with_name("after.etl")), outdir, "fixture-warm", numba_cache)
    out["fixture_warm_s"] = fx["wall_s"]
    return out


# ------------------------------------------------------------------------------------------------------------
# headless Chromium: navigation to load event, over the DevTools protocol
# ------------------------------------------------------------------------------------------------------------
class _WS:
    """The smallest websocket client the DevTools protocol needs (RFC 6455: text frames, client masking)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        head, _, self.rest = head.partition(b"\r\n\r\n")
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if b" 101 " not in head.split(b"\r\n", 1)[0] or accept not in head:
            raise ConnectionError(f"websocket handshake refused: {head[:200]!r}")
        self.next_id = 0

    def _recv_exact(self, n: int) -> bytes:
        while len(self.rest) < n:
            chunk = self.sock.recv(max(65536, n - len(self.rest)))
            if not chunk:
                raise ConnectionError("websocket closed")
            self.rest += chunk
        out, self.rest = self.rest[:n], self.rest[n:]
        return out

    def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        self.next_id += 1
        data = json.dumps({"id": self.next_id, "method": method, "params": params or {}}).encode()
        n = len(data)
        head = bytes([0x81])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + body)
        return self.next_id

    def recv(self) -> dict[str, Any]:
        payload = b""
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            if b1 & 0x80:
                self._recv_exact(4)
            data = self._recv_exact(n)
            op = b0 & 0x0F
            if op in (0x1, 0x0):
                payload += data
                if b0 & 0x80:
                    return dict(json.loads(payload))
            elif op == 0x8:
                raise ConnectionError("websocket closed by the browser")

    def call(
        self, method: str, params: dict[str, Any] | None = None, events: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        i = self.send(method, params)
        while True:
            m = self.recv()
            if m.get("id") == i:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return dict(m.get("result", {}))
            if events is not None:
                events.append(m)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def browser_load(html: Path, repeat: int = 3) -> dict[str, Any]:
    """Navigation start to load event end of ``html`` in headless Chromium (median of ``repeat`` loads)."""
    exe = next(
        (
            p
            for p in (
                "/usr/bin/chromium",
                shutil.which("chromium") or "",
                shutil.which("chromium-browser") or "",
            )
            if p and os.path.exists(p)
        ),
        None,
    )
    if exe is None:
        return {"note": "no Chromium: skipped"}
    udd = tempfile.mkdtemp(prefix="heapdiff-bench-chromium-")
    argv = [
        exe,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={udd}",
        "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1",
        "about:blank",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(udd) / "DevToolsActivePort"
        deadline = time.time() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > deadline or proc.poll() is not None:
                return {"note": "Chromium did not open its DevTools port"}
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [t for t in json.loads(resp.read()) if t.get("type") == "page"]
        ws = _WS(pages[0]["webSocketDebuggerUrl"])
        try:
            ws.call("Page.enable")
            loads = []
            for _ in range(repeat):
                ws.call("Page.navigate", {"url": "about:blank"})
                t0 = time.perf_counter()
                ws.call("Page.navigate", {"url": html.resolve().as_uri()})
                while ws.recv().get("method") != "Page.loadEventFired":
                    pass
                wall = time.perf_counter() - t0
                r = ws.call(
                    "Runtime.evaluate",
                    {
                        "expression": (
                            "JSON.stringify((() => { const n = performance.getEntriesByType('navigation')[0];"
                            " return {load: n.loadEventEnd, dcl: n.domContentLoadedEventEnd,"
                            " rows: document.querySelectorAll('tr').length}; })())"
                        ),
                        "returnByValue": True,
                    },
                )
                nav = json.loads(r["result"]["value"])
                loads.append(
                    {
                        "navigation_to_load_ms": nav["load"],
                        "dom_content_loaded_ms": nav["dcl"],
                        "wall_ms": wall * 1000,
                        "table_rows": nav["rows"],
                    }
                )
        finally:
            ws.close()
        loads.sort(key=lambda x: x["navigation_to_load_ms"])
        med = loads[len(loads) // 2]["navigation_to_load_ms"]
        return {
            "method": "DevTools protocol: PerformanceNavigationTiming.loadEventEnd",
            "navigation_to_load_ms": med,
            "loads": loads,
            "html": str(html),
            "bytes": html.stat().st_size,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(udd, ignore_errors=True)


# ------------------------------------------------------------------------------------------------------------
# RESULTS.md
# ------------------------------------------------------------------------------------------------------------
def rss(j: dict[str, Any]) -> float:
    """Summed peak RSS of the job's processes (VmHWM of each, polled); ru_maxrss for older entries."""
    return float(j.get("rss_mb", j.get("maxrss_mb", float("nan"))))


def _pf(ok: bool | None, how: str = "") -> str:
    if ok is None:
        return "n/a"
    return ("PASS" if ok else "**FAIL**") + (f" ({how})" if how else "")


def render(allres: dict[str, Any]) -> str:
    m = allres.get("machine", {})
    pairs = allres.get("pairs", {})
    order = [s for s in ("1M", "10M", "30M") if s in pairs] + [s for s in pairs if s not in ("1M", "10M", "30M")]
    L: list[str] = []
    L.append("# heapdiff benchmark results\n")
    L.append(
        "Written by `python benchmarks/run.py` (see benchmarks/README.md for what each column means). "
        "Not part of the test command.\n"
    )
    L.append(f"- date: {allres.get('date', m.get('date'))}")
    L.append(f"- machine: {m.get('cpu')}, {m.get('cores')}, {m.get('memory')} RAM, {m.get('os')}")
    L.append(
        f"- heapdiff revision measured: `{m.get('heapdiff_revision')}` (`-dirty`: the code held uncommitted "
        "changes)"
    )
    L.append(
        f"- Python {m.get('python')}, numpy {m.get('numpy')}, numba {m.get('numba')}, "
        f"click {m.get('click')}, jinja2 {m.get('jinja2')}"
    )
    L.append(
        "- the machine is shared with other work: rates are noisy, the ratios to the numpy scan and to "
        "dissect.etl (measured in the same run) hold better\n"
    )

    L.append("## Main job per pair\n")
    L.append(
        "`heapdiff before.etl after.etl -o out.html --json out.json -q` run as a child command (one process; "
        "the two traces are read on two threads), wall time including start-up; heap events = heap "
        "events of both traces; warm page cache and warm JIT cache. Wall time: the median run of several "
        "(every run's time in brackets; rates are of the median run); peaks: the largest of the runs.\n"
    )
    cols = [
        "pair",
        "trace MB (both)",
        "heap events (both)",
        "records (both)",
        "wall s",
        "heap events/s",
        "MB/s",
        "summed peak RSS MB",
        "largest process peak MB (processes)",
        "peak anon RSS MB (summed)",
        "no-live summed peak RSS MB",
        "live blocks",
        "RSS/live block B",
        "anon RSS/live block B",
        "groups",
        "HTML KB",
        "JSON KB",
        "numpy scan GB/s",
        "job/numpy MB/s",
        "reader alone MB/s",
        "reader/numpy",
        "dissect records/s",
        "job/dissect records/s",
        "totals = generator's",
    ]
    L.append("| " + " | ".join(cols) + " |")
    L.append("|" + "---|" * len(cols))
    for s in order:
        r = pairs[s]
        j = r.get("job", {})
        jn = r.get("job_nolive", {})
        if "error" in j or "wall_s" not in j:
            L.append(f"| {s} | {r['bytes'] / 1e6:,.0f} | job failed: {j.get('error', '?')} |" + " |" * (len(cols) - 3))
            continue
        mbps = r["bytes"] / j["wall_s"] / 1e6
        live = j.get("live_blocks", 0)
        per_block = ((rss(j) - rss(jn)) * 1024 * 1024 / live) if live and jn else None
        anon_block = ((j["anon_peak_mb"] - jn["anon_peak_mb"]) * 1024 * 1024 / live) if live and jn else None
        rd = r.get("reader", {})
        rd_mbps = rd.get("mb_per_s")
        dis = r.get("dissect", {}).get("records_per_s")
        job_rps = j["records"] / j["wall_s"]
        exp = r.get("expected_live", [])
        got = [t["outstanding"]["blocks"] for t in j.get("traces", [])]
        L.append(
            "| "
            + " | ".join(
                [
                    s,
                    f"{r['bytes'] / 1e6:,.0f}",
                    f"{j['heap_events']:,}",
                    f"{j['records']:,}",
                    f"{j['wall_s']:.1f}"
                    + (f" ({', '.join(f'{w:.1f}' for w in j['wall_runs'])})" if len(j.get("wall_runs", [])) > 1
                       else ""),
                    fmt_rate(j["heap_events"] / j["wall_s"]),
                    f"{mbps:,.0f}",
                    f"{rss(j):,.0f}",
                    f"{j['maxrss_mb']:,.0f} ({j.get('processes', 1)})",
                    f"{j['anon_peak_mb']:,.0f}",
                    f"{rss(jn):,.0f}" if jn else "n/a",
                    f"{live:,}",
                    f"{per_block:,.0f}" if per_block is not None else "n/a",
                    f"{anon_block:,.0f}" if anon_block is not None else "n/a",
                    f"{j['groups']:,}",
                    f"{j['html_bytes'] / 1024:,.0f}",
                    f"{j['json_bytes'] / 1024:,.0f}",
                    f"{r['numpy']['gb_per_s']:.2f}",
                    f"{mbps / r['numpy']['mb_per_s']:.3f}",
                    f"{rd_mbps:,.0f}" if rd_mbps else "n/a",
                    f"{rd_mbps / r['numpy']['mb_per_s']:.3f}" if rd_mbps else "n/a",
                    fmt_rate(dis) if dis else "n/a",
                    f"{job_rps / dis:.0f}x" if dis else "n/a",
                    "yes" if got == exp else f"no: {got} vs {exp}",
                ]
            )
            + " |"
        )
    L.append("")

    su = allres.get("startup")
    if su:
        L.append("## Start-up\n")
        L.append("| what | seconds |")
        L.append("|---|---|")
        L.append(f"| `python -c pass` (interpreter alone) | {su['python_bare_s']:.3f} |")
        L.append(f"| `heapdiff --help` | {su['help_s']:.3f} |")
        L.append(f'| `python -c "import heapdiff.commands.report"` | {su["import_job_s"]:.3f} |')
        if "import_job_maxrss_mb" in su:
            L.append(
                f"| (peak RSS of `import heapdiff.commands.report`: {su['import_job_maxrss_mb']:.0f} MB; of the job on "
                f"one bundled fixture trace: {su['fixture_single_maxrss_mb']:.0f} MB) | |"
            )
        L.append(
            f"| tiny pair (2 x {su.get('tiny_heap_events', 0) // 2:,} heap events), warm JIT cache "
            f"(interpreter + imports + JIT cache load + run) | {su['tiny_warm_s']:.3f} |"
        )
        L.append(f"| bundled fixture pair, warm JIT cache | {su['fixture_warm_s']:.3f} |")
        L.append(
            f"| tiny pair, first run with an empty numba cache (compiles every kernel) | {su['tiny_cold_s']:.2f} |"
        )
        L.append("")

    rb = allres.get("reader_bench")
    if rb:
        L.append("## Reader alone (benchmarks/reader_bench.py)\n")
        L.append(
            "`heapdiff.events.scan.scan` on a mapped file with a heap sink that counts the ops: the main job's "
            "read path without the reducer (stack walks deferred); fresh child per input; best of the timed "
            "runs after a warm-up run. `info` path: one more scan without a sink, every stack interned, as "
            "`heapdiff info` reads.\n"
        )
        L.append(
            "| input | MB | records | best s | records/s | MB/s | CPU/wall | peak RSS MB | peak anon MB | "
            "start-up s | vs floor 5 M records/s | `info` path records/s |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for d in rb.get("results", []):
            q = d["records_per_s"] / reader_bench.FLOOR_RECORDS_PER_S
            L.append(
                f"| {d['label']} | {d['bytes'] / 1e6:,.0f} | {d['records']:,} | {d['best_s']:.3f} | "
                f"{fmt_rate(d['records_per_s'])} | {d['mb_per_s']:,.0f} | "
                f"{d['cpu_s_of_best'] / d['best_s']:.2f} | {d['wait4_maxrss_mb']:,.0f} | "
                f"{d['anon_peak_mb']:,.0f} | {d['startup_s']:.2f} | "
                f"{_pf(q >= 1, f'{q:.2f}x')} | "
                + (fmt_rate(d["info_records_per_s"]) if "info_records_per_s" in d else "n/a")
                + " |"
            )
        L.append("")

    br = allres.get("browser")
    if br:
        L.append("## HTML in headless Chromium\n")
        if "navigation_to_load_ms" in br:
            L.append(
                f"{br.get('size', '')} pair's report ({br['bytes'] / 1024:,.0f} KB): navigation start to "
                f"load event end **{br['navigation_to_load_ms']:.0f} ms** (median of {len(br['loads'])}; "
                f"{br['method']}; DOMContentLoaded of that load "
                f"{br['loads'][len(br['loads']) // 2]['dom_content_loaded_ms']:.0f} ms, "
                f"{br['loads'][0]['table_rows']} table rows).\n"
            )
        else:
            L.append(f"{br.get('note')}\n")

    if order:
        L.append("## Trace generation (gen.py, cached; two processes, one per trace of a pair)\n")
        L.append("| pair | seconds | its no-live twin, seconds | MB (both traces) |")
        L.append("|---|---|---|---|")
        for s in order:
            r = pairs[s]
            L.append(
                f"| {s} | {r.get('generation_s', 0):.0f} | {r.get('generation_nolive_s', 0):.0f} | "
                f"{r['bytes'] / 1e6:,.0f} |"
            )
        L.append("")
    L.append("## Targets (2 cores, 24 GB)\n")
    L.append("| target | measured | result |")
    L.append("|---|---|---|")
    for row in targets(allres):
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    prof = REPO / "benchmarks" / "profile.md"
    if prof.exists():
        L.append("Profile of the main job on the 10M pair: see [profile.md](profile.md).\n")
    return "\n".join(L)


def targets(allres: dict[str, Any]) -> list[list[str]]:
    pairs = allres.get("pairs", {})
    rows: list[list[str]] = []

    def job(s: str) -> dict[str, Any] | None:
        j = pairs.get(s, {}).get("job")
        return j if j and "wall_s" in j and "error" not in j else None

    j10 = job("10M")
    if j10:
        rate = j10["heap_events"] / j10["wall_s"]
        rows.append(
            [
                "floor: ≥ 5,000,000 heap events/s end to end on the 10M pair, start-up included",
                f"{rate / 1e6:.2f} M/s",
                _pf(rate >= 5e6, f"{rate / 5e6:.2f}x of the floor"),
            ]
        )
    for s in ("10M", "30M"):
        j = job(s)
        if j:
            rate = j["heap_events"] / j["wall_s"]
            rows.append(
                [
                    f"goal: 10,000,000 heap events/s on the {s} pair",
                    f"{rate / 1e6:.2f} M/s",
                    _pf(rate >= 1e7, f"{rate / 1e7:.2f}x of the goal"),
                ]
            )
        rd = pairs.get(s, {}).get("reader", {})
        npy = pairs.get(s, {}).get("numpy")
        if rd.get("mb_per_s") and npy:
            q = rd["mb_per_s"] / npy["mb_per_s"]
            rows.append(
                [
                    f"goal: reader alone ≥ half the numpy scan rate ({s}, before trace)",
                    f"{rd['mb_per_s']:,.0f} MB/s vs {npy['mb_per_s']:,.0f} MB/s = {q:.3f}",
                    _pf(q >= 0.5, f"{q / 0.5:.2f}x of the goal"),
                ]
            )
    for s in ("1M", "10M", "30M"):
        j = job(s)
        if not j:
            continue
        rd = pairs.get(s, {}).get("reader", {})
        stacks = int(rd.get("distinct_stacks", 0)) * 2
        # distinct stacks' needs: the frames (8 bytes each, 20 on average) and 64 bytes of tables per stack
        budget = 300 + (100 * j["live_blocks"] + stacks * (20 * 8 + 64)) / 2**20
        rows.append(
            [
                f"summed peak RSS ≤ 300 MB + 100 B/live block + stacks ({s}: {j['live_blocks']:,} blocks, "
                f"~{stacks:,} stacks)",
                f"{rss(j):,.0f} MB (anon {j['anon_peak_mb']:,.0f} MB) vs budget {budget:,.0f} MB",
                _pf(rss(j) <= budget, f"{rss(j) / budget:.2f}x of the budget"),
            ]
        )
    j1, j30 = job("1M"), job("30M")
    if j1 and j30:
        q = rss(j30) / rss(j1)
        rows.append(
            [
                "30M pair's peak RSS within 1.5x the 1M pair's",
                f"{rss(j30):,.0f} / {rss(j1):,.0f} MB = {q:.2f}x",
                _pf(q <= 1.5),
            ]
        )
    su = allres.get("startup")
    if su:
        rows.append(
            [
                "start-up ≤ 1.0 s with a warm JIT cache (tiny pair, whole job)",
                f"{su['tiny_warm_s']:.2f} s (first run, empty cache: {su['tiny_cold_s']:.1f} s)",
                _pf(su["tiny_warm_s"] <= 1.0, f"{su['tiny_warm_s']:.2f}x"),
            ]
        )
        rows.append(["`heapdiff --help` < 0.3 s", f"{su['help_s']:.3f} s", _pf(su["help_s"] < 0.3)])
    for s in ("1M", "10M", "30M"):
        j = job(s)
        if j:
            rows.append([f"HTML < 5 MB ({s})", f"{j['html_bytes'] / 2**20:.2f} MB", _pf(j["html_bytes"] < 5 * 2**20)])
    if j1 and j30:
        grow = j30["json_bytes"] / j1["json_bytes"]
        g = j30["groups"] / max(1, j1["groups"])
        ev = j30["heap_events"] / j1["heap_events"]
        rows.append(
            [
                "JSON grows with groups, not events (30M vs 1M)",
                f"JSON x{grow:.2f}, groups x{g:.2f}, events x{ev:.0f}",
                _pf(grow <= 1.5 * max(1.0, g)),
            ]
        )
    rb = allres.get("reader_bench")
    if rb:
        for d in rb.get("results", []):
            q = d["records_per_s"] / reader_bench.FLOOR_RECORDS_PER_S
            rows.append(
                [
                    f"reader floor ≥ 5,000,000 records/s on one core: {d['label']}",
                    f"{d['records_per_s'] / 1e6:.2f} M/s",
                    _pf(q >= 1, f"{q:.2f}x of the floor"),
                ]
            )
    return rows


# ------------------------------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} run: {msg}", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,10M,30M")
    ap.add_argument("--cache", type=Path, default=None, help="default $HEAPDIFF_BENCH_CACHE or ~/.cache/heapdiff-bench")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--no-startup", action="store_true")
    ap.add_argument("--no-reader", action="store_true", help="skip reader_bench and the reader-alone runs")
    ap.add_argument("--repeat", type=int, default=3, help="main-job runs per pair (median reported; default 3)")
    ap.add_argument("--render-only", action="store_true", help="rewrite RESULTS.md from <cache>/results.json")
    args = ap.parse_args()
    cache = args.cache or gen.default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    numba_cache = cache / "numba"
    outdir = cache / "outputs"
    store = cache / "results.json"
    allres: dict[str, Any] = json.loads(store.read_text()) if store.exists() else {}
    allres.setdefault("pairs", {})

    def save(measured: bool = True) -> None:
        if measured:  # --render-only keeps the date and machine of the measurements
            allres["machine"] = machine()
            allres["date"] = allres["machine"]["date"]
        store.write_text(json.dumps(allres, indent=1))
        keep = ""  # a hand-written "## Findings" section at the end of RESULTS.md is kept
        if args.out.exists():
            old = args.out.read_text()
            i = old.find("\n## Findings")
            keep = old[i:] if i >= 0 else ""
        args.out.write_text(render(allres) + keep)

    if args.render_only:
        save(measured=False)
        print(args.out.read_text())
        return 0
    sizes = [s for s in args.sizes.split(",") if s]
    # every trace first, so that no measurement shares the machine with the generator
    gen.ensure("tiny", cache)
    for s in sizes:
        gen.ensure(s, cache)
        gen.ensure(s, cache, nolive=True)
    reader_bench.prime(cache)
    if not args.no_startup:
        log("start-up")
        allres["startup"] = startup(cache, numba_cache, outdir)
        save()
    if not args.no_reader:
        log("reader_bench")
        r = run_child(
            [python(), str(Path(__file__).with_name("reader_bench.py")), "--cache", str(cache)],
            env=bench_env(numba_cache),
        )
        sys.stderr.write(r.stdout)
        if r.returncode == 0:
            allres["reader_bench"] = json.loads((cache / "reader.json").read_text())
        save()
    for s in sizes:
        allres["pairs"][s] = measure_pair(s, cache, outdir, numba_cache, reader=not args.no_reader,
                                               repeat=args.repeat)
        save()
    if not args.no_browser:
        biggest = max(
            (s for s in allres["pairs"] if "html_bytes" in allres["pairs"][s].get("job", {})),
            key=gen.parse_size,
            default=None,
        )
        if biggest is not None:
            log(f"Chromium on the {biggest} pair's HTML")
            br = browser_load(Path(allres["pairs"][biggest]["job"]["html"]))
            br["size"] = biggest
            allres["browser"] = br
            save()
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
