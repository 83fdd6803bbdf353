"""``python -m fuzz``: run the fuzz harness for a time or a number of inputs, or replay one reproducer.

    python -m fuzz --seconds 3600 --jobs 2 --out DIR        fuzz for an hour; failing inputs kept in DIR
    python -m fuzz --inputs 100000 --jobs 2 --out DIR       a fixed number of inputs
    python -m fuzz --replay DIR/<class>/<n>.json            rebuild that input and show what each command did
    python -m fuzz --replay DIR/failures.jsonl:N            the same for line N of the list of every failure

Exit status: 0 when no input broke the contract, 1 when some did (the summary names the classes), 2 when the
harness itself could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from fuzz.runner import Options, run, summary


def _replay(path: Path) -> int:
    from fuzz.contract import check, heap_events
    from fuzz.mutate import apply
    from fuzz.seeds import sample_seeds, written_seeds
    from fuzz.worker import commands, run_cli

    name, _, line = str(path).rpartition(":") if str(path).rpartition(":")[2].isdigit() else (str(path), "", "")
    text = Path(name).read_text(encoding="utf-8")
    repro = json.loads(text.splitlines()[int(line) - 1] if line else text)
    seeds = {s.name: s for s in written_seeds() + sample_seeds()}
    seed = seeds[repro["seed"]]
    mutated = apply(seed, repro["mutations"])
    broken = 0
    with tempfile.TemporaryDirectory() as tmp:
        clean, bad = Path(tmp) / "seed.etl", Path(tmp) / "input.etl"
        clean.write_bytes(seed.data)
        bad.write_bytes(mutated.data)
        for command, argv in commands(str(bad), str(clean), True):
            base = run_cli(command, [str(clean) if a == str(bad) else a for a in argv])
            before = heap_events(json.loads(base.stdout), command) if base.code == 0 and seed.clean else None
            o = run_cli(command, argv)
            f = check(o, str(bad), before, mutated.exempt)
            broken += f is not None
            print(f"== {command}: exit {o.code}; {'OK' if f is None else f.symptom + ': ' + f.detail[:400]}")
            print("   stderr: " + (o.stderr.strip().replace("\n", "\n           ") or "(none)"))
            if o.error:
                print(o.error)
    return 1 if broken else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, help="stop after this long")
    ap.add_argument("--inputs", type=int, help="stop after this many inputs")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--out", type=Path, help="folder for failing inputs, reproducers and worker logs")
    ap.add_argument("--run-seed", type=int, default=1, help="input i of run seed S is always the same input")
    ap.add_argument("--limit", type=float, default=10.0, help="seconds one command may take (default 10)")
    ap.add_argument("--memory-mb", type=int, default=1536, help="RLIMIT_AS of a worker (default 1536 MiB)")
    ap.add_argument("--samples", action="store_true", help="also mutate the real samples of ../shared/etl-samples")
    ap.add_argument("--seed", action="append", default=[], help="only this seed (repeatable)")
    ap.add_argument("--diff-share", type=float, default=0.1, help="share of inputs also run as a diff")
    ap.add_argument("--keep", type=int, default=20, help="failing inputs kept per class (default 20)")
    ap.add_argument("--nice", type=int, default=0, help="niceness of the workers")
    ap.add_argument("--replay", type=Path, help="a reproducer .json (or failures.jsonl:LINE) of an earlier run")
    a = ap.parse_args(argv)
    if a.replay:
        return _replay(a.replay)
    if a.seconds is None and a.inputs is None:
        ap.error("give --seconds, --inputs or both")
    if a.out is None:
        ap.error("give --out DIR")
    res = run(Options(out=a.out, jobs=a.jobs, inputs=a.inputs, seconds=a.seconds, run_seed=a.run_seed,
                      limit=a.limit, memory_mb=a.memory_mb, samples=a.samples, seeds=a.seed,
                      diff_share=a.diff_share, keep=a.keep, nice=a.nice, progress=True))
    text = summary(res)
    print(text)
    (a.out / "summary.txt").write_text(text + "\n", encoding="utf-8")
    if res.fatal:
        return 2
    return 1 if res.failures else 0


if __name__ == "__main__":
    sys.exit(main())
