"""Runs fuzz workers in parallel for a number of inputs or a time budget, and sorts what they found.

Each worker (:mod:`fuzz.worker`) is a child process under RLIMIT_AS; input numbers are handed out one at a time, so
a slow input never holds back the others. A worker that stops answering -- its watchdog ended it, or it crashed,
or it went past the memory bound and died -- is replaced; the input it was on is recorded as a ``timeout`` or
``crash:<signal>`` failure from the ``start`` line it wrote before running it.

Every failing input's reproducer (seed name and mutation list, from which :func:`fuzz.mutate.apply` rebuilds the
bytes) and symptom is a line of ``failures.jsonl`` in the output folder; the first ``keep`` of each class are also
kept whole: ``<class>/<n>.etl`` beside ``<n>.json``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Options:
    out: Path
    jobs: int = 2
    inputs: int | None = None          # stop after this many inputs ...
    seconds: float | None = None       # ... or after this long (the first reached)
    run_seed: int = 1
    limit: float = 10.0                # seconds per command
    memory_mb: int = 1536              # RLIMIT_AS of a worker
    samples: bool = False
    seeds: list[str] = field(default_factory=list)
    diff_share: float = 0.1
    keep: int = 20                     # failing inputs kept per class
    nice: int = 0
    progress: bool = False
    stall: float = 0.0                 # seconds every command sleeps first: the harness's own test of the watchdog
    #: (symptom, mutations) -> whether that failure is of a known class; the others are listed in Result.unknown
    known: Callable[[str, list[list[Any]]], bool] | None = None


@dataclass
class Result:
    inputs: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)     # "ok" or symptom -> inputs
    classes: Counter[str] = field(default_factory=Counter)      # "symptom [command] ops" -> inputs
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)   # class -> first reproducer
    peak_kb: dict[str, int] = field(default_factory=dict)
    restarts: int = 0
    fatal: str | None = None
    unknown: list[dict[str, Any]] = field(default_factory=list)   # failures not ``known`` (the first 20)
    unknown_count: int = 0

    @property
    def failures(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k != "ok")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)[:120]


class _Worker:
    def __init__(self, opts: Options, work: Path, k: int) -> None:
        self.work = work
        self.log = (work / f"worker{k}.stderr").open("ab")
        env = dict(os.environ)
        env.pop("HEAPDIFF_NO_JIT", None)   # the JIT path, always
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        limit = opts.memory_mb << 20

        def child() -> None:   # runs in the child before exec
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            if opts.nice:
                os.nice(opts.nice)

        self.proc = subprocess.Popen([sys.executable, "-m", "fuzz.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=str(ROOT),
                                     preexec_fn=child)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[str] = self.proc.stdin
        self.stdout: IO[str] = self.proc.stdout
        config = {"work": str(work), "run_seed": opts.run_seed, "limit": opts.limit, "samples": opts.samples,
                  "seeds": opts.seeds, "diff_share": opts.diff_share, "stall": opts.stall}
        self.stdin.write(json.dumps(config) + "\n")
        self.stdin.flush()
        self.ready: dict[str, Any] = self._read() or {}

    def _read(self) -> dict[str, Any] | None:
        while True:
            line = self.stdout.readline()
            if not line:
                return None
            if line.startswith("{"):
                got: dict[str, Any] = json.loads(line)
                return got

    def run(self, i: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(answer, start line); answer is None when the process died on the input."""
        self.stdin.write(json.dumps({"i": i}) + "\n")
        self.stdin.flush()
        start: dict[str, Any] | None = None
        while True:
            msg = self._read()
            if msg is None:
                return None, start
            if "start" in msg:
                start = msg
            elif "timeout" in msg:
                return {"i": i, "failures": [["timeout", msg.get("command", "?"), "watchdog"]]}, start
            elif "i" in msg:
                return msg, start

    def stop(self) -> dict[str, Any]:
        bye: dict[str, Any] = {}
        try:
            self.stdin.write("{}\n")
            self.stdin.flush()
            bye = self._read() or {}
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
        self.log.close()
        return bye

    def died(self) -> str:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        if code is not None and code < 0:
            return f"crash:{signal.Signals(-code).name}"
        return "timeout" if code == 124 else f"crash:exit-{code}"


def run(opts: Options) -> Result:
    """Fuzz until ``opts.inputs`` inputs or ``opts.seconds`` have passed; see the module docstring."""
    if opts.inputs is None and opts.seconds is None:
        raise ValueError("give a number of inputs, a time budget, or both")
    opts.out.mkdir(parents=True, exist_ok=True)
    work = opts.out / "work"
    work.mkdir(exist_ok=True)
    res = Result()
    log = (opts.out / "failures.jsonl").open("a", encoding="utf-8")   # every failing input's reproducer
    lock = threading.Lock()
    counter = iter(range(10**12))
    t0 = time.monotonic()
    deadline = t0 + opts.seconds if opts.seconds is not None else None

    def next_input() -> int | None:
        with lock:
            i = next(counter)
            if opts.inputs is not None and i >= opts.inputs:
                return None
            if deadline is not None and time.monotonic() > deadline:
                return None
            return i

    def record(i: int, answer: dict[str, Any], start: dict[str, Any] | None) -> None:
        fails = answer.get("failures", [])
        with lock:
            res.inputs += 1
            if "peak_kb" in answer:
                for k, v in answer["peak_kb"].items():
                    res.peak_kb[k] = max(res.peak_kb.get(k, 0), v)
            if not fails:
                res.outcomes["ok"] += 1
                return
            for symptom in {f[0] for f in fails}:
                res.outcomes[symptom] += 1
            muts = start["mutations"] if start else []
            ops = "+".join(sorted({m[0] for m in muts}))
            for symptom, command, detail in fails:
                cls = f"{symptom} [{command}] {ops}"
                res.classes[cls] += 1
                n = res.classes[cls]
                repro = {"run_seed": opts.run_seed, "i": i, "seed": start["seed"] if start else None,
                         "mutations": muts, "exempt": answer.get("exempt"), "symptom": symptom,
                         "command": command, "detail": detail}
                res.examples.setdefault(cls, repro)
                log.write(json.dumps(repro) + "\n")
                if opts.known is not None and not opts.known(symptom, muts):
                    res.unknown_count += 1
                    if len(res.unknown) < 20:
                        res.unknown.append(repro)
                if n <= opts.keep and start is not None and os.path.exists(start["path"]):
                    d = opts.out / _slug(f"{symptom}__{command}__{ops}")
                    d.mkdir(exist_ok=True)
                    shutil.copyfile(start["path"], d / f"{i}.etl")
                    (d / f"{i}.json").write_text(json.dumps(repro, indent=1), encoding="utf-8")

    def loop(k: int) -> None:
        w = _Worker(opts, work, k)
        if "ready" not in w.ready:
            res.fatal = w.ready.get("fatal") or "a worker did not start; see " + str(work / f"worker{k}.stderr")
            w.stop()
            return
        while (i := next_input()) is not None:
            answer, start = w.run(i)
            if answer is None or "timeout" in {f[0] for f in answer.get("failures", [])}:
                why = w.died()
                if answer is None:
                    answer = {"i": i, "failures": [[why, start.get("command", "?") if start else "?",
                                                    "the worker process died"]]}
                record(i, answer, start)
                with lock:
                    res.restarts += 1
                w = _Worker(opts, work, k)
                if "ready" not in w.ready:
                    res.fatal = "a worker did not restart"
                    return
                continue
            record(i, answer, start)
            if opts.progress:
                with lock:
                    line = (f"fuzz: {res.inputs:,} inputs, {time.monotonic() - t0:,.0f} s, "
                            f"{res.failures:,} failing") if res.inputs % 5000 == 0 else None
                if line:
                    print(line, file=sys.stderr, flush=True)
        bye = w.stop()
        with lock:
            for key, v in bye.get("peak_kb", {}).items():
                res.peak_kb[key] = max(res.peak_kb.get(key, 0), v)

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(opts.jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    res.seconds = time.monotonic() - t0
    return res


def summary(res: Result) -> str:
    rate = res.inputs / res.seconds if res.seconds else 0.0
    lines = [f"{res.inputs:,} inputs in {res.seconds:,.0f} s ({rate:,.1f} inputs/s), {res.failures:,} failing, "
             f"{res.restarts} worker restarts, peak {res.peak_kb.get('VmHWM', 0) // 1024} MiB resident / "
             f"{res.peak_kb.get('VmPeak', 0) // 1024} MiB address space per worker"]
    if res.fatal:
        lines.append(f"FATAL: {res.fatal}")
    lines.append("outcomes (inputs):")
    lines += [f"  {n:>9,}  {k}" for k, n in res.outcomes.most_common()]
    if res.classes:
        lines.append("failure classes (symptom [command] operators: inputs; first reproducer):")
        for cls, n in res.classes.most_common():
            ex = res.examples[cls]
            lines.append(f"  {n:>9,}  {cls}")
            lines.append(f"             seed={ex['seed']} mutations={json.dumps(ex['mutations'])}")
    return "\n".join(lines)
