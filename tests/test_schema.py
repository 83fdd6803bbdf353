"""The JSON document `heapdiff/1` as the README documents it: every field, its type and its invariants.

Fields may be added, never removed or renamed: this test names each documented field, so removing one fails.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import pytest

from heapdiff.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
BEFORE = ROOT / "fixtures" / "example" / "before.etl"
AFTER = ROOT / "fixtures" / "example" / "after.etl"

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
HEX = re.compile(r"^0x[0-9a-f]+$")
EVENT_KEYS = {"heap_alloc", "heap_free", "heap_realloc", "heap_create", "heap_destroy", "heap_other",
              "stack_walk", "image", "process", "other"}


def _doc(capsys: pytest.CaptureFixture[str], tmp: pathlib.Path, *traces: pathlib.Path) -> dict[str, Any]:
    with pytest.raises(SystemExit) as e:
        main([*map(str, traces), "--json", "-", "-q", "-o", str(tmp / "r.html")])
    assert e.value.code == 0
    d: dict[str, Any] = json.loads(capsys.readouterr().out)
    return d


def _bb(x: Any) -> None:
    assert set(x) >= {"blocks", "bytes"}
    assert isinstance(x["blocks"], int) and isinstance(x["bytes"], int)


def _check_trace(t: dict[str, Any], role: str) -> None:
    assert t["role"] == role
    assert isinstance(t["path"], str) and t["pointer_size"] in (4, 8)
    assert ISO.match(t["start_utc"]) and ISO.match(t["end_utc"])
    assert set(t["events"]) == EVENT_KEYS and all(isinstance(v, int) for v in t["events"].values())
    assert sum(t["events"].values()) == t["records"]
    assert isinstance(t["events_lost"], int) and isinstance(t["unmatched_frees"], int)
    _bb(t["outstanding"])
    for pid, v in t["outstanding_by_pid"].items():
        assert pid.isdigit()
        _bb(v)
    assert sum(v["bytes"] for v in t["outstanding_by_pid"].values()) == t["outstanding"]["bytes"]
    assert all(isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in t["anomalies"].items())
    for p in t["processes"]:
        assert set(p) >= {"pid", "image_name", "command_line"}


def _check_group_common(g: dict[str, Any]) -> None:
    assert isinstance(g["stack"], list) and all(isinstance(f, str) for f in g["stack"])
    # module+0xrva, an address in no image, or module!function where both inputs have the module's symbols
    assert all(re.match(r"^([^+!]+\+0x[0-9a-f]+|0x[0-9a-f]+|[^!]+![^!].*)$", f) for f in g["stack"])
    assert isinstance(g["module"], str)
    assert all(HEX.match(h) for h in g["heaps"])
    assert all(isinstance(v, int) for v in g["sources"].values())
    assert all(isinstance(v, int) for v in g["size_histogram"].values())
    assert ISO.match(g["first_alloc_utc"]) and ISO.match(g["last_alloc_utc"])
    assert g["first_alloc_utc"] <= g["last_alloc_utc"]
    assert all(HEX.match(a) for a in g["sample_addresses"])


def test_single_document(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    d = _doc(capsys, tmp_path, AFTER)
    assert d["schema"] == "heapdiff/1" and d["mode"] == "single"
    assert set(d) >= {"schema", "mode", "totals", "traces", "groups"}
    _bb(d["totals"])
    (t,) = d["traces"]
    _check_trace(t, "trace")
    assert d["groups"]
    for g in d["groups"]:
        _check_group_common(g)
        _bb(g)
        assert sum(g["size_histogram"].values()) == g["blocks"] == sum(g["sources"].values())
    assert sum(g["bytes"] for g in d["groups"]) == d["totals"]["bytes"] == t["outstanding"]["bytes"]
    assert sum(g["blocks"] for g in d["groups"]) == d["totals"]["blocks"]


def test_diff_document(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    d = _doc(capsys, tmp_path, BEFORE, AFTER)
    assert d["mode"] == "diff"
    for k in ("before", "after", "delta"):
        _bb(d["totals"][k])
    _check_trace(d["traces"][0], "before")
    _check_trace(d["traces"][1], "after")
    statuses = set()
    for g in d["groups"]:
        _check_group_common(g)
        for k in ("before", "after", "delta"):
            _bb(g[k])
        assert g["delta"]["bytes"] == g["after"]["bytes"] - g["before"]["bytes"]
        assert g["status"] in ("new", "gone", "common")
        statuses.add(g["status"])
    assert {"new", "common"} <= statuses
    for k in ("before", "after", "delta"):
        for f in ("blocks", "bytes"):
            assert sum(g[k][f] for g in d["groups"]) == d["totals"][k][f]
