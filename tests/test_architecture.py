"""Imports flow one way: etl <- events <- reduce <- diff <- report <- job <- cli; only cli touches click and files.

Parsed with ast (no import side effects), so a violation fails whatever the import order at run time.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "heapdiff"

#: module (dotted, relative to heapdiff) -> layer; a module may import only from its own layer or lower ones
LAYERS = {
    "errors": 0, "_jit": 0,
    "etl": 1,
    "events": 2,
    "reduce": 3,
    "frames": 4, "diff": 4,
    "report": 5, "info": 5,
    "job": 6,
    # the shell: symbols finds, downloads and reads PDBs; cli parses arguments, touches the terminal and files
    "symbols": 7, "_native": 7,
    "cli": 8,
    # tooling: writes traces for tests, fixtures and benchmarks; the core never imports it
    "tracegen": 9,
}


def _layer(mod: str) -> int:
    parts = mod.split(".")
    assert parts[0] == "heapdiff"
    if len(parts) == 1:
        return 0
    return LAYERS[parts[1]]


def _modules() -> list[tuple[str, pathlib.Path]]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        out.append((name, path))
    return out


def _imports(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


@pytest.mark.parametrize(("name", "path"), _modules(), ids=[m[0] for m in _modules()])
def test_imports_flow_one_way(name: str, path: pathlib.Path) -> None:
    mine = _layer(name)
    for imp in _imports(path):
        if imp.startswith("heapdiff.") or imp == "heapdiff":
            if imp == "heapdiff":
                continue
            assert _layer(imp) <= mine, f"{name} (layer {mine}) imports {imp} (layer {_layer(imp)})"
        if imp == "click" or imp.startswith("click."):
            assert name == "heapdiff.cli", f"{name} imports click: only heapdiff.cli may"


def test_every_module_has_a_layer() -> None:
    for name, _ in _modules():
        _layer(name)  # KeyError names a module the table forgot


def test_the_core_never_opens_files() -> None:
    core = [(n, p) for n, p in _modules() if _layer(n) <= LAYERS["job"]]
    for name, path in core:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                pytest.fail(f"{name} calls open() at line {node.lineno}: file access belongs to heapdiff.cli")


def test_the_layer_table_catches_a_violation(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from heapdiff.cli import main\n", encoding="utf-8")
    assert "heapdiff.cli" in _imports(bad)
    assert _layer("heapdiff.cli") > _layer("heapdiff.etl.reader")
