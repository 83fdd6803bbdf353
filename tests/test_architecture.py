"""Imports flow one way, from the shell down to the core; only the shell touches click and writes files.

Parsed with ast (no import side effects), so a violation fails whatever the import order at run time. Each guard is
run once on a file made to break it, so that a guard that cannot fail is caught too.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "heapdiff"

#: module (dotted, relative to heapdiff) -> layer; a module may import only from its own layer or lower ones
LAYERS = {
    "errors": 0, "_jit": 0, "_ondemand": 0, "_runs": 0,
    "etl": 1,
    "events": 2,
    "reduce": 3,
    # grouping and diff decide every domain fact once, by the rules; frames declares what symbols add, and
    # frame_table holds a trace's distinct frames as columns for symbolize to name and grouping to group by
    "rules": 4, "frames": 4, "frame_table": 4, "window": 4, "symbolize": 5, "grouping": 5, "diff": 6,
    "document": 7,
    # one reporter per output, reading the document
    "report": 8,
    # one module per command: a short pipeline over the layers below
    "commands": 9,
    # the shell: symbols finds, downloads and reads PDBs; cli parses arguments, touches the terminal and files
    "symbols": 10, "_native": 10,
    "cli": 11,
    # tooling: writes traces for tests, fixtures and benchmarks; the tool never imports it
    "tracegen": 12,
}
#: the parts that may write files: the shell, and the trace-writing tooling
WRITERS = ("symbols", "cli", "tracegen")
#: methods only files and paths have, that write, move or delete them or make folders
PATH_WRITES = {"write_text", "write_bytes", "mkdir", "touch", "unlink", "rmdir", "symlink_to", "hardlink_to", "open"}
#: modules whose every function that is called touches the file system
FS_MODULES = {"os": {"replace", "rename", "renames", "remove", "unlink", "mkdir", "makedirs", "rmdir", "removedirs",
                     "write", "open", "link", "symlink", "truncate", "ftruncate", "mkfifo"},
              "shutil": None, "tempfile": None}


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


def _imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def import_violations(name: str, source: str) -> list[str]:
    """What ``name`` (a module of the package, with this source) imports against the layer table."""
    mine = _layer(name)
    out = []
    for imp in _imports(ast.parse(source)):
        if imp.startswith("heapdiff.") and _layer(imp) > mine:
            out.append(f"{name} (layer {mine}) imports {imp} (layer {_layer(imp)})")
        if (imp == "click" or imp.startswith("click.")) and name.split(".")[1:2] != ["cli"]:
            out.append(f"{name} imports click: only heapdiff.cli may")
    return out


def write_violations(name: str, source: str) -> list[str]:
    """Where a module outside the shell opens a file or calls something that writes, moves or deletes one."""
    if name.split(".")[1:2] and name.split(".")[1] in WRITERS:
        return []
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            bad = isinstance(f, ast.Name) and f.id == "open"
            if isinstance(f, ast.Attribute):
                owner = f.value.id if isinstance(f.value, ast.Name) else None
                fs = FS_MODULES.get(owner or "", set())
                bad = f.attr in PATH_WRITES or (owner in FS_MODULES and (fs is None or f.attr in fs))
            if bad:
                out.append(f"{name} calls {ast.unparse(f)}() at line {node.lineno}: file access belongs to the shell")
        elif isinstance(node, ast.Attribute) and node.attr == "FileSystemBytecodeCache":
            out.append(f"{name} uses a file-writing template cache at line {node.lineno}")
    return out


@pytest.mark.parametrize(("name", "path"), _modules(), ids=[m[0] for m in _modules()])
def test_imports_flow_one_way(name: str, path: pathlib.Path) -> None:
    assert import_violations(name, path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(("name", "path"), _modules(), ids=[m[0] for m in _modules()])
def test_only_the_shell_writes_files(name: str, path: pathlib.Path) -> None:
    assert write_violations(name, path.read_text(encoding="utf-8")) == []


def test_every_module_has_a_layer() -> None:
    for name, _ in _modules():
        _layer(name)  # KeyError names a module the table forgot


@pytest.mark.parametrize(("name", "source"), [
    ("heapdiff.etl.reader", "from heapdiff.cli import main\n"),
    ("heapdiff.grouping", "import heapdiff.report.html\n"),
    ("heapdiff.document.build", "from heapdiff.commands.report import run_report\n"),
    ("heapdiff.report.html", "import click\n"),
    ("heapdiff.commands.report", "from heapdiff.symbols import resolver\n"),
])
def test_the_layer_check_catches_a_violation(name: str, source: str) -> None:
    assert import_violations(name, source), source


@pytest.mark.parametrize("source", [
    "open('x', 'w')\n",
    "import pathlib\npathlib.Path('x').write_text('y')\n",
    "import os\nos.replace('a', 'b')\n",
    "import shutil\nshutil.copyfile('a', 'b')\n",
    "import tempfile\ntempfile.NamedTemporaryFile()\n",
    "import jinja2\nclass C(jinja2.FileSystemBytecodeCache): pass\n",
    "from pathlib import Path\nPath('d').mkdir()\n",
    "import os\nos.makedirs('d')\n",
    "from pathlib import Path\nPath('d').open('w')\n",
])
def test_the_write_check_catches_a_write(source: str) -> None:
    assert write_violations("heapdiff.report.html", source), source
    assert not write_violations("heapdiff.cli.files", source)
