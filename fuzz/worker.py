"""One fuzz worker process: builds the seeds, then mutates, runs and checks inputs until told to stop.

Many inputs per process, so that start-up and the JIT kernels' loading are paid once. ``heapdiff.cli.main`` runs
in-process -- the CLI's own code path, JIT kernels included -- on ``info --json FILE``, on the main job
``FILE --json - -o /dev/null`` and now and then on a diff ``SEED FILE --json - -o /dev/null``.

Protocol (JSON lines): the first line on stdin is the configuration; the worker answers ``{"ready": ...}`` with the
seeds' baseline heap counts, then for each ``{"i": N}`` it writes ``{"start": N, ...}`` (the input's seed and
mutations, and the path of the file about to run) before running it and ``{"i": N, ...}`` with its failures
after. A watchdog thread writes ``{"timeout": N}`` and ends the process when one command runs past the time
limit; the runner reads the last ``start`` to know which input hung or crashed the process. The answers go to a
private copy of the original stdout: file descriptor 1 itself points at /dev/null, so nothing a library prints
can garble them. The memory bound is the runner's RLIMIT_AS on this process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any

from fuzz.contract import Failure, Outcome, check, heap_events
from fuzz.mutate import apply, draw
from fuzz.seeds import Seed, sample_seeds, written_seeds


def run_cli(command: str, argv: list[str]) -> Outcome:
    """``heapdiff.cli.main(argv)`` with stdout and stderr captured; an escaping exception is kept as its text."""
    from heapdiff.cli import main

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    err = io.StringIO()
    code: int | None = None
    error = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            error = traceback.format_exc()
    out.flush()
    raw = out.buffer
    assert isinstance(raw, io.BytesIO)
    stdout = raw.getvalue().decode("utf-8", errors="replace")
    return Outcome(command, code, stdout, err.getvalue(), error)


def commands(path: str, seed_path: str, diff: bool) -> list[tuple[str, list[str]]]:
    cmds = [("info", ["info", "--json", path]), ("job", [path, "--json", "-", "-o", "/dev/null"])]
    if diff:
        cmds.append(("diff", [seed_path, path, "--json", "-", "-o", "/dev/null"]))
    return cmds


def input_spec(run_seed: int, i: int, seeds: list[Seed]) -> tuple[Seed, list[list[Any]], random.Random]:
    """Input ``i`` of run ``run_seed``: which seed, which mutations (the whole of its reproducer)."""
    rng = random.Random(f"{run_seed}:{i}")
    seed = seeds[rng.randrange(len(seeds))]
    return seed, draw(rng, seed), rng


def _peak_kb() -> dict[str, int]:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, v in (ln.split(":", 1) for ln in status.splitlines())
            if k in ("VmPeak", "VmHWM")}


class Watchdog:
    """Ends the process when one command runs longer than ``limit`` seconds (a hang is a failure)."""

    def __init__(self, proto: IO[str], limit: float) -> None:
        self.proto = proto
        self.limit = limit
        self.current: tuple[int, str, float] | None = None
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(0.05)
            cur = self.current
            if cur is not None and time.monotonic() - cur[2] > self.limit:
                self.proto.write(json.dumps({"timeout": cur[0], "command": cur[1]}) + "\n")
                self.proto.flush()
                os._exit(124)


def _patch_template_cache() -> None:
    """The main job resets its template environment on every call (a fresh process needs it once); in a
    process that runs thousands of jobs that was nine tenths of the time, spent on jinja2, not on reading."""
    import heapdiff.cli.report_command as rc
    from heapdiff.cli.outputs import install_template_cache

    install_template_cache()
    setattr(rc, "install_template_cache", lambda: None)  # noqa: B010 - the name the job calls it by


def serve(proto: IO[str], requests: IO[str]) -> None:
    """The request loop (see the module docstring)."""
    config: dict[str, Any] = json.loads(requests.readline())
    work = Path(config["work"])
    seeds = written_seeds() + (sample_seeds() if config.get("samples") else [])
    names = config.get("seeds")
    if names:
        seeds = [s for s in seeds if s.name in names]
    paths: dict[str, str] = {}
    baselines: dict[tuple[str, str], int | None] = {}
    _patch_template_cache()
    for s in seeds:   # warm up on the intact seeds (JIT kernels load or compile here, outside the time limit)
        p = work / f"seed_{s.name}.etl"
        if not p.exists():
            p.write_bytes(s.data)
        paths[s.name] = str(p)
        twin = work / f"seed_{s.name}.twin.etl"   # a diff of a file with itself only warns that it is one
        if not twin.exists():
            twin.write_bytes(s.data)
        for command, argv in commands(str(twin), str(p), True):
            o = run_cli(command, argv)
            warned = any(ln.startswith("heapdiff: warning:") for ln in o.stderr.splitlines())
            if s.clean and (o.code != 0 or warned):
                proto.write(json.dumps({"fatal": f"seed {s.name} does not read clean with {command}: "
                                                 f"exit {o.code}, {o.stderr[-500:]} {o.error or ''}"}) + "\n")
                proto.flush()
                return
            try:
                doc = json.loads(o.stdout) if o.code == 0 else None
            except ValueError:
                doc = None
            baselines[(s.name, command)] = heap_events(doc, command) if doc and s.clean else None
    dog = Watchdog(proto, float(config["limit"]))
    stall = float(config.get("stall", 0.0))   # the harness's own test: a command that hangs
    mine = str(work / f"input_{os.getpid()}.etl")
    proto.write(json.dumps({"ready": len(seeds), "pid": os.getpid(),
                            "baselines": {f"{k[0]}/{k[1]}": v for k, v in baselines.items()}}) + "\n")
    proto.flush()
    for line in requests:
        req = json.loads(line)
        if "i" not in req:
            break
        i = int(req["i"])
        seed, muts, rng = input_spec(int(config["run_seed"]), i, seeds)
        proto.write(json.dumps({"start": i, "seed": seed.name, "mutations": muts, "path": mine}) + "\n")
        proto.flush()
        try:
            mutated = apply(seed, muts)
        except Exception:
            proto.write(json.dumps({"i": i, "failures": [["harness-error", "mutate", traceback.format_exc()]]})
                        + "\n")
            proto.flush()
            continue
        Path(mine).write_bytes(mutated.data)
        diff = rng.random() < float(config.get("diff_share", 0.1))
        failures: list[Failure] = []
        t0 = time.monotonic()
        for command, argv in commands(mine, paths[seed.name], diff):
            dog.current = (i, command, time.monotonic())
            if stall:
                time.sleep(stall)
            o = run_cli(command, argv)
            dog.current = None
            try:
                f = check(o, mine, baselines.get((seed.name, command)), mutated.exempt)
            except (KeyError, TypeError, IndexError, AttributeError) as e:
                f = Failure(f"malformed-document:{type(e).__name__}", command, repr(e))
            if f is not None:
                failures.append(f)
        answer: dict[str, Any] = {"i": i, "dt": round(time.monotonic() - t0, 4), "diff": diff,
                                  "exempt": mutated.exempt,
                                  "failures": [[f.symptom, f.command, f.detail] for f in failures]}
        if i % 200 == 0:
            answer["peak_kb"] = _peak_kb()
        proto.write(json.dumps(answer) + "\n")
        proto.flush()
    proto.write(json.dumps({"bye": True, "peak_kb": _peak_kb()}) + "\n")
    proto.flush()


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
    serve(proto, sys.stdin)


if __name__ == "__main__":
    main()
