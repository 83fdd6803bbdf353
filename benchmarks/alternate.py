"""Time several commands alternated, round by round: wall time and CPU time (user + sys of the child) per run.

    python benchmarks/alternate.py --rounds 7 --run 'base=CMD ...' --run 'new=CMD ...' [--warmup 1] [--json OUT]

Each ``--run`` is ``NAME=COMMAND`` (split as a shell would, run without one; ``env VAR=value cmd`` sets the
environment of one command). Every round runs each command once, the order rotated from round to round, so that no
command always follows the same one; warm-up rounds come first and are not counted. On a shared machine one run's
wall time swings with what else runs: the medians, every run, the CPU time (steadier under load) and the load
average before each run are printed, and the per-round differences to the first command. A command that exits with
a code other than 0 or 1 (1: a gate failed) stops the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_util import machine, run_child


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", action="append", required=True, metavar="NAME=COMMAND")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write every run's figures here")
    args = ap.parse_args()
    cmds: dict[str, list[str]] = {}
    for spec in args.run:
        name, eq, cmd = spec.partition("=")
        if not eq or not name or not cmd:
            ap.error(f"--run {spec!r}: give NAME=COMMAND")
        cmds[name] = shlex.split(cmd)
    names = list(cmds)
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for rnd in range(args.warmup + args.rounds):
        k = rnd % len(names)
        for name in names[k:] + names[:k]:
            load = os.getloadavg()[0]
            r = run_child(cmds[name])
            if r.returncode not in (0, 1):
                print(f"{name}: exit {r.returncode}\n{r.stderr}", file=sys.stderr)
                return 2
            if rnd >= args.warmup:
                runs[name].append({"wall_s": r.wall_s, "cpu_s": r.user_s + r.sys_s, "user_s": r.user_s,
                                   "sys_s": r.sys_s, "load1": load, "maxrss_mb": r.maxrss_mb})
        label = "warm-up" if rnd < args.warmup else f"round {rnd - args.warmup + 1}"
        if rnd >= args.warmup:
            print(f"{label}: " + ", ".join(f"{n} {runs[n][-1]['wall_s']:.2f} s (CPU {runs[n][-1]['cpu_s']:.2f})"
                                           for n in names), flush=True)
        else:
            print(f"{label} done", flush=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    def each(name: str, key: str) -> str:
        return ", ".join(f"{r[key]:.2f}" for r in runs[name])

    m = machine()
    print(f"\n{m['date']}, {m['cpu']}, {m['cores']}; load average before each run: median "
          f"{statistics.median(r['load1'] for n in names for r in runs[n]):.1f}, "
          f"range {min(r['load1'] for n in names for r in runs[n]):.1f}-"
          f"{max(r['load1'] for n in names for r in runs[n]):.1f}\n")
    print("| command | wall s (median) | runs | CPU s (median) | runs | largest peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for n in names:
        print(f"| {n} | {med(n, 'wall_s'):.2f} | {each(n, 'wall_s')} | {med(n, 'cpu_s'):.2f} | {each(n, 'cpu_s')} | "
              f"{max(r['maxrss_mb'] for r in runs[n]):.0f} |")
    first = names[0]
    for n in names[1:]:
        dw = [b["wall_s"] - a["wall_s"] for a, b in zip(runs[first], runs[n], strict=True)]
        dc = [b["cpu_s"] - a["cpu_s"] for a, b in zip(runs[first], runs[n], strict=True)]
        print(f"\n{n} - {first} per round: wall {', '.join(f'{d:+.2f}' for d in dw)} (median "
              f"{statistics.median(dw):+.2f}); CPU {', '.join(f'{d:+.2f}' for d in dc)} (median "
              f"{statistics.median(dc):+.2f})")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": m, "commands": cmds, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
