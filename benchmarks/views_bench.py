"""The report's views at scale: HTML size and load time of the 10M and 30M pairs and of a 10-run trend.

    python benchmarks/views_bench.py [--pairs 10M,30M] [--trend-size 1M] [--runs 10] [--cache DIR] [--repeat 3]

For each pair (written by gen.py, cached) the main job runs once (``heapdiff before after -o X.html -q``); for the
trend, ``runs`` traces of one simulated program are written (gen.py's runs 0..N-1: two call stacks keep
leaking, one fills a cache by run 3 and stops, two stay flat) and ``heapdiff trend`` runs over them. Each HTML is
loaded in headless Chromium (run.py's DevTools measurement: navigation start to the load event, the median of
``repeat`` loads). Writes benchmarks/VIEWS.md; the figures are also kept in ``<cache>/views.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_util import bench_env, machine, run_child
from gen import _write_one, default_cache, ensure, params, parse_size
from run import browser_load, heapdiff_cmd

OUT = Path(__file__).resolve().parent / "VIEWS.md"


def trend_runs(size: str, runs: int, cache: Path) -> list[str]:
    """The trend's traces, written once (a stamp beside them says with which parameters)."""
    n = parse_size(size)
    paths = [str(cache / f"trend-{size}-run{k}.etl") for k in range(runs)]
    stamp = cache / f"trend-{size}.json"
    want = {**params(n, False), "runs": runs}
    if stamp.exists() and json.loads(stamp.read_text()) == want and all(Path(p).exists() for p in paths):
        return paths
    print(f"views_bench: writing {runs} runs of {n:,} heap events to {cache}", file=sys.stderr, flush=True)
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_write_one, [(p, n, k, False) for k, p in enumerate(paths)]))
    stamp.write_text(json.dumps(want))
    return paths


def measure(argv: list[str], html: Path, js: Path, numba_cache: Path, repeat: int) -> dict[str, Any]:
    r = run_child([*heapdiff_cmd(), *argv, "-o", str(html), "--json", str(js), "-q"], env=bench_env(numba_cache))
    out: dict[str, Any] = {"returncode": r.returncode, "wall_s": round(r.wall_s, 2),
                           "anon_peak_mb": round(r.anon_peak_mb), "tree_hwm_mb": round(r.tree_hwm_mb)}
    if r.returncode not in (0, 1):
        out["error"] = r.stderr.strip().splitlines()[-1:] if r.stderr.strip() else "no output"
        return out
    doc = json.loads(js.read_text())
    out["groups"] = len(doc["groups"])
    out["html_bytes"] = html.stat().st_size
    out["json_bytes"] = js.stat().st_size
    if doc["mode"] == "trend":
        classes: dict[str, int] = {}
        for g in doc["groups"]:
            classes[g["trend"]["class"]] = classes.get(g["trend"]["class"], 0) + 1
        out["classes"] = classes
    out["browser"] = browser_load(html, repeat=repeat)
    return out


def render(res: dict[str, Any]) -> str:
    lines = ["# The report's views at scale", "",
             f"Measured {res['when']} by `benchmarks/views_bench.py` on {res['machine']}.", "",
             "| input | heap events per trace | job wall s | peak anon MB | groups | HTML KB | JSON KB | "
             "navigation to load ms (median) | every load ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in res["rows"].items():
        if "error" in r:
            lines.append(f"| {name} | | error: {r['error']} | | | | | | |")
            continue
        b = r.get("browser", {})
        loads = ", ".join(f"{x['navigation_to_load_ms']:.0f}" for x in b.get("loads", []))
        nav = f"{b['navigation_to_load_ms']:.0f}" if "navigation_to_load_ms" in b else b.get("note", "")
        lines.append(f"| {name} | {r['events']:,} | {r['wall_s']} | {r['anon_peak_mb']:,} | {r['groups']:,} | "
                     f"{r['html_bytes'] / 1024:,.0f} | {r['json_bytes'] / 1024:,.0f} | {nav} | {loads} |")
    trend = next((r for n, r in res["rows"].items() if n.startswith("trend") and "classes" in r), None)
    if trend is not None:
        lines += ["", "Trend classes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(trend["classes"].items()))]
    lines += ["", "Targets (issue: the report shows time and shape): every page under 5 MB and from navigation to "
              "its load event under one second in headless Chromium, however large the trace.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="10M,30M")
    ap.add_argument("--trend-size", default="1M")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--cache", type=Path, default=default_cache())
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    out = a.cache / "outputs"
    out.mkdir(parents=True, exist_ok=True)
    numba_cache = a.cache / "numba"
    rows: dict[str, Any] = {}
    # the kernels compiled (a first run after a change compiles them: seconds and hundreds of MB not measured)
    example = Path(__file__).resolve().parents[1] / "fixtures" / "example"
    run_child([*heapdiff_cmd(), str(example / "before.etl"), str(example / "after.etl"), "-o", str(out / "warm.html"),
               "-q"], env=bench_env(numba_cache))
    for size in [s for s in a.pairs.split(",") if s]:
        stamp = ensure(size, a.cache)
        before, after = (stamp["traces"][k]["path"] for k in ("0", "1"))
        r = measure([before, after], out / f"views-{size}.html", out / f"views-{size}.json", numba_cache, a.repeat)
        r["events"] = parse_size(size)
        rows[f"{size} pair"] = r
        print(f"views_bench: {size} pair: {r}", file=sys.stderr, flush=True)
    if a.runs >= 3:
        paths = trend_runs(a.trend_size, a.runs, a.cache)
        r = measure(["trend", *paths], out / "views-trend.html", out / "views-trend.json", numba_cache, a.repeat)
        r["events"] = parse_size(a.trend_size)
        rows[f"trend of {a.runs} runs ({a.trend_size} each)"] = r
        print(f"views_bench: trend: {r}", file=sys.stderr, flush=True)
    m = machine()
    where = ", ".join(f"{k} {m[k]}" for k in ("cpu", "cores", "memory", "heapdiff_revision") if k in m)
    res = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": where, "rows": rows}
    (a.cache / "views.json").write_text(json.dumps(res, indent=1))
    OUT.write_text(render(res))
    print(OUT.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
