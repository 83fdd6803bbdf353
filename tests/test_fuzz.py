"""The fuzz contract, held: a bounded run of the structure-aware harness (``fuzz/``) on every test run.

The harness itself lives in the top-level ``fuzz`` package (``python -m fuzz --seconds 3600 --jobs 2 --out DIR`` runs
it as long as asked); this module checks its parts -- the seeds read clean, each mutation operator does what it says,
each rule of the contract catches what it names -- and runs it on a fixed set of inputs: written seeds always, real
samples from ../shared/etl-samples when they are there. A failure of a class not in :data:`KNOWN` fails the run;
each known class has a strict-xfail reproducer in ``test_fuzz_regressions.py`` that turns red the day it is fixed,
and then its line here goes too.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:   # the harness is a top-level package beside heapdiff, like benchmarks/
    sys.path.insert(0, str(ROOT))

from fuzz.contract import Failure, Outcome, check  # noqa: E402
from fuzz.mutate import apply, describe  # noqa: E402
from fuzz.runner import Options, run, summary  # noqa: E402
from fuzz.seeds import SAMPLES, Seed, make_seed, sample_seeds, written_seeds  # noqa: E402
from fuzz.worker import commands, run_cli  # noqa: E402

#: inputs of the bounded run: about 20 s on two workers, start-up included
CI_INPUTS = 2400
CI_SAMPLE_INPUTS = 400
MEMORY_MB = 1536

@dataclass(frozen=True)
class Known:
    """A failure class the harness found and a regression test pins (``test_fuzz_regressions.py``): a failing input
    belongs to it when its symptom matches and it holds one of the causes (an operator, or ``operator:field``)."""

    symptom: str
    causes: frozenset[str] | None   # None: whatever made it (the symptom alone names the bug)
    regression: str


#: what ``python -m fuzz`` found (benchmarks/RESULTS.md, "Fuzzing"); each goes with its fix
KNOWN: tuple[Known, ...] = ()  # every class found so far is fixed; its reproducer stays in test_fuzz_regressions


def _tokens(mutations: list[list[Any]]) -> set[str]:
    out = {m[0] for m in mutations}
    out |= {f"{m[0]}:{m[2]}" for m in mutations if m[0] == "buffer_field"}
    out |= {f"{m[0]}:{m[1]}" for m in mutations if m[0] == "logfile_field"}
    return out


def _known(symptom: str, mutations: list[list[Any]]) -> bool:
    tokens = _tokens(mutations)
    return any(re.fullmatch(k.symptom, symptom) and (k.causes is None or tokens & k.causes) for k in KNOWN)


@pytest.fixture(scope="module")
def seeds() -> list[Seed]:
    return written_seeds()


def test_written_seeds_read_clean(seeds: list[Seed], tmp_path: Path) -> None:
    """Both commands read every written seed with exit 0 and no warning: otherwise the silent-loss rule would be
    vacuous for it (a seed that warns already hides every loss)."""
    assert {s.name for s in seeds} == {"w64", "w64z", "w32", "w32z", "example", "examplez"}
    for s in seeds:
        assert s.clean and len(s.buffers) >= 3
        assert any(b.compressed for b in s.buffers) == s.name.endswith("z")
        p, twin = tmp_path / f"{s.name}.etl", tmp_path / f"{s.name}.twin.etl"
        p.write_bytes(s.data)
        twin.write_bytes(s.data)
        for command, argv in commands(str(p), str(twin), True):
            o = run_cli(command, argv)
            assert o.code == 0 and o.error is None, (s.name, command, o.stderr, o.error)
            assert "heapdiff: warning:" not in o.stderr, (s.name, command, o.stderr)


def _u32(data: bytes, off: int) -> int:
    return int(struct.unpack_from("<I", data, off)[0])


def test_mutations_do_what_they_say(seeds: list[Seed]) -> None:
    """Each operator changes what it names and nothing else (a cheap check of the harness itself)."""
    s = seeds[0]
    b = s.buffers
    assert apply(s, []).data == s.data
    assert apply(s, [["truncate_boundary", 3, 0]]).data == s.data[:b[3].offset]
    assert apply(s, [["truncate_boundary", 3, 8]]).data == s.data[:b[3].offset + 8]
    assert apply(s, [["drop", 2]]).data == s.data[:b[2].offset] + s.data[b[3].offset:]
    assert apply(s, [["blank", 2, 0xFF]]).data == s.data[:b[2].offset] + b"\xff" * b[2].size + s.data[b[3].offset:]
    assert apply(s, [["swap", 1, 2]]).data == (s.data[:b[1].offset] + s.data[b[2].offset:b[3].offset]
                                               + s.data[b[1].offset:b[2].offset] + s.data[b[3].offset:])
    assert len(apply(s, [["duplicate", 1, 0]]).data) == len(s.data) + b[1].size
    assert len(apply(s, [["insert_blank", 1, 0, 0x1000]]).data) == len(s.data) + 0x1000
    m = apply(s, [["buffer_field", 2, "SavedOffset", 0xFFFFFFFF]]).data
    assert _u32(m, b[2].offset + 4) == 0xFFFFFFFF and m[:b[2].offset + 4] == s.data[:b[2].offset + 4]
    m = apply(s, [["logfile_field", "PointerSize", 16]]).data
    assert _u32(m, 0x48 + 0x20 + 0x2C) == 16
    # a heap payload field: the first alloc of buffer 1 gets the huge size, read back at its declared offset
    allocs = [r for r in b[1].records if r.hook == 0x1021 and r.header_type == 2]
    m = apply(s, [["heap_field", 1, 0, 1, 0xFFFFFFFFFFFF0041]]).data
    assert struct.unpack_from("<Q", m, b[1].offset + allocs[0].offset + 0x20 + 8)[0] == 0xFFFFFFFFFFFF0041
    # a record-header field says the silent-loss rule cannot apply to what it made
    assert apply(s, [["record_field", 1, 0, "hook", 0x1024]]).exempt == "a record's hook"
    assert apply(s, [["record_field", 1, 0, "thread", 7]]).exempt is None
    # inside a compressed buffer: decompress, overwrite, compress again; the buffer map still walks
    z = seeds[1]
    k = next(i for i, bb in enumerate(z.buffers) if bb.compressed)
    allocs = [r for r in z.buffers[k].records if r.hook == 0x1021 and r.header_type == 2]
    again = make_seed("again", apply(z, [["heap_field", k, 0, 1, 0xFFFFFFFFFFFF0041]]).data)
    assert len(again.buffers) == len(z.buffers) and again.buffers[k].compressed
    from fuzz.seeds import buffer_body
    body = buffer_body(again.data, again.buffers[k].offset)
    assert body is not None
    assert struct.unpack_from("<Q", body[0], allocs[0].offset + 0x20 + 8)[0] == 0xFFFFFFFFFFFF0041
    assert describe([["drop", 1], ["blank", 2, 0], ["drop", 3]]) == "blank+drop"


def _doc(**totals: int) -> str:
    return json.dumps({"totals": {"blocks": totals.get("blocks", 1), "bytes": totals.get("bytes", 16)},
                       "traces": [{"events": {"heap_alloc": totals.get("allocs", 5)}}]})


@pytest.mark.parametrize(("outcome", "seed_events", "exempt", "symptom"), [
    (Outcome("job", 0, _doc(), ""), 5, None, None),
    (Outcome("job", 0, _doc(bytes=-1), ""), 5, None, "negative:totals.bytes"),
    (Outcome("job", 0, _doc(allocs=4), ""), 5, None, "silent-loss"),
    (Outcome("job", 0, _doc(allocs=4), "heapdiff: warning: x: 1 anomalies counted"), 5, None, None),
    (Outcome("job", 0, _doc(allocs=4), ""), 5, "a record's hook", None),
    (Outcome("job", 0, _doc(allocs=4), ""), None, None, None),
    (Outcome("job", 0, "{not json", ""), 5, None, "exit0-invalid-json"),
    (Outcome("info", 0, json.dumps({"records": 1, "events": {}}), "oops\n"), 5, None, "info-stderr-not-a-warning"),
    (Outcome("info", 3, "", "heapdiff: error: F: bad (at byte offset 0x48)\n"), 5, None, None),
    (Outcome("info", 3, "", "heapdiff: error: F: bad\n"), 5, None, "exit3-not-one-line-with-offset"),
    (Outcome("info", 3, "", "heapdiff: error: F: a (at byte offset 0x0)\nheapdiff: error: F: b (at byte offset "
                            "0x8)\n"), 5, None, "exit3-not-one-line-with-offset"),
    (Outcome("info", 3, "", "heapdiff: error: out of memory: ...\n"), 5, None, "memory"),
    (Outcome("info", 2, "", "Usage: ..."), 5, None, "exit-code:2"),
    (Outcome("info", None, "", "", 'Traceback (most recent call last):\n  File "/x/heapdiff/etl/walk.py", line 3, '
                                   "in frame\nIndexError: index 9 out of bounds"), 5, None,
     "traceback:IndexError@heapdiff.etl.walk:frame"),
])
def test_contract_names_what_broke(outcome: Outcome, seed_events: int | None, exempt: str | None,
                                   symptom: str | None) -> None:
    """Every rule of the contract, once kept and once broken (each rule can fail)."""
    got: Failure | None = check(outcome, "F", seed_events, exempt)
    assert (got.symptom if got else None) == symptom


def _bounded_run(tmp_path: Path, inputs: int, samples: bool, seeds: list[str]) -> None:
    res = run(Options(out=tmp_path / "fuzz", jobs=2, inputs=inputs, run_seed=7, limit=10.0,
                      memory_mb=MEMORY_MB, samples=samples, seeds=seeds, keep=2, known=_known))
    print(summary(res))
    assert res.fatal is None, res.fatal
    assert res.inputs == inputs
    assert res.outcomes["ok"] > inputs // 2, "most inputs must read: else the mutator breaks everything at once"
    assert not res.unknown_count, (
        f"{res.unknown_count} failing inputs of no known class (reproducers in {tmp_path / 'fuzz'}; "
        "python -m fuzz --replay FILE.json):\n"
        + "\n".join(f"{u['symptom']} [{u['command']}] seed={u['seed']} mutations={u['mutations']}: "
                    f"{u['detail'][:300]}" for u in res.unknown))
    assert res.peak_kb.get("VmHWM", 0) < MEMORY_MB * 1024, res.peak_kb


def test_fuzz_contract_on_written_traces(tmp_path: Path) -> None:
    _bounded_run(tmp_path, CI_INPUTS, False, [])


@pytest.mark.samples
def test_fuzz_contract_on_real_samples(tmp_path: Path) -> None:
    found = sample_seeds()
    if not found:
        pytest.skip(f"real samples not found at {SAMPLES}")
    _bounded_run(tmp_path, CI_SAMPLE_INPUTS, True, [s.name for s in found])


def test_runner_reports_a_hang_and_goes_on(tmp_path: Path) -> None:
    """The watchdog: a command that runs past the limit (here every command first sleeps past it) is a ``timeout``
    failure kept with its reproducer, and a new worker takes over (the harness's own guard, made to fail once)."""
    res = run(Options(out=tmp_path / "fuzz", jobs=1, inputs=2, run_seed=3, limit=0.2, stall=1.0, seeds=["w64"],
                      keep=1))
    assert res.fatal is None and res.inputs == 2
    assert res.outcomes["timeout"] == 2 and res.restarts == 2
    (kept,) = [p for p in (tmp_path / "fuzz").iterdir() if p.name.startswith("timeout")]
    repro = json.loads(next(kept.glob("*.json")).read_text(encoding="utf-8"))
    assert repro["seed"] == "w64" and repro["mutations"] and next(kept.glob("*.etl")).stat().st_size > 0
    every = (tmp_path / "fuzz" / "failures.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["symptom"] for x in every] == ["timeout", "timeout"]
