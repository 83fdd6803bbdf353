"""Symbol-store keys and the probing of one local directory, flat or in store layout. Reads only, never writes.

A store keeps ``name/KEY/name``: a PDB under its GUID + age (:attr:`heapdiff.frames.PdbId.store_key`), an image
under its TimeDateStamp + SizeOfImage (:func:`pe_key`). An ``index2.txt`` at the root marks a two-tier store
(``na/name/KEY/name``). The lookup folder holds the file, its compressed form (``name.pd_``, a CAB) or a
``file.ptr`` naming where the file really is (``PATH:...``) or why it is not available (``MSG:...``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from heapdiff.symbols.path import is_windows_path

POINTER = "file.ptr"
TWO_TIER_MARK = "index2.txt"
#: a file.ptr is a line of text; anything longer is not one
_POINTER_MAX = 4096


def pe_key(timestamp: int, size: int) -> str:
    """The store key of an image: TimeDateStamp as 8 upper-case hex digits, then SizeOfImage in hex."""
    return f"{timestamp:08X}{size:x}"


def compressed_name(name: str) -> str:
    """``app.pdb`` -> ``app.pd_``: how stores and servers name the CAB-compressed form of a file."""
    return name[:-1] + "_"


@dataclass(frozen=True, slots=True)
class Hit:
    """A file found on disk: the file itself, or a CAB (``compressed``) to expand before use."""

    path: Path
    compressed: bool = False


@dataclass(frozen=True, slots=True)
class Unavailable:
    """The store knows the file but cannot give it: a ``file.ptr`` message, or a pointer that leads nowhere."""

    note: str


Probe = Hit | Unavailable | None


def _variants(text: str) -> list[str]:
    """The text as given, then lower case: stores written on Windows keep whatever case the tool wrote, and this
    host's file system may tell cases apart."""
    return list(dict.fromkeys([text, text.lower()]))


def _lookup_folders(root: Path, name: str, key: str) -> Iterator[tuple[Path, str]]:
    """(folder, file name) in probing order: two-tier first when the store says it is two-tier, then flat tier;
    per tier the name as given then lower case, the key upper case then lower case."""
    tiers: list[Path] = []
    if (root / TWO_TIER_MARK).is_file():
        tiers += [root / n[:2] for n in _variants(name)]
    tiers.append(root)
    seen: set[Path] = set()
    for base in tiers:
        for n in _variants(name):
            for k in _variants(key):
                folder = base / n / k
                if folder not in seen:
                    seen.add(folder)
                    yield folder, n


def probe_store(root: Path, name: str, key: str) -> Probe:
    """Look for ``name`` under ``key`` in the store at ``root``: the file, then ``name`` compressed, then
    ``file.ptr``, in each lookup folder (:func:`_lookup_folders`). The first thing found is the answer."""
    for folder, file_name in _lookup_folders(root, name, key):
        if not folder.is_dir():
            continue
        plain = folder / file_name
        if plain.is_file():
            return Hit(plain)
        packed = folder / compressed_name(file_name)
        if packed.is_file():
            return Hit(packed, compressed=True)
        pointer = folder / POINTER
        if pointer.is_file():
            return read_pointer(pointer, pointer.read_bytes()[:_POINTER_MAX + 1])
    return None


def read_pointer(where: Path | str, data: bytes) -> Hit | Unavailable:
    """Follow a ``file.ptr`` (its bytes ``data``, read from ``where``): ``PATH:<path>`` to an existing file is a
    hit (compressed when its name ends in ``_``); ``MSG:<text>`` makes the text the note; anything else, or a
    path that is missing or written for Windows on another host, is unavailable with a note saying so."""
    if len(data) > _POINTER_MAX:
        return Unavailable(f"{where} is not a file pointer (too long)")
    text = data.decode("utf-8", "replace").strip()
    kind, _, value = text.partition(":")
    value = value.strip()
    if kind.upper() == "MSG":
        return Unavailable(value or f"{where}: not available (empty message)")
    if kind.upper() != "PATH" or not value:
        return Unavailable(f"{where} is not a file pointer (starts {text[:20]!r})")
    if os.name != "nt" and is_windows_path(value):
        return Unavailable(f"{where} points to {value}, a Windows path")
    target = Path(value).expanduser()
    if not target.is_absolute() and isinstance(where, Path):
        target = where.parent / target
    if not target.is_file():
        return Unavailable(f"{where} points to {value}, which does not exist")
    return Hit(target, compressed=target.name.endswith("_"))


def flat_candidates(root: Path, name: str, image_name: str) -> list[Path]:
    """Files called ``name`` directly in ``root`` the way the debuggers look in a plain directory:
    ``root/symbols/<ext>/name``, ``root/<ext>/name``, ``root/name``, where ``ext`` is the image's extension
    (``dll``). They carry no key, so each must be checked against the identity the image asks for."""
    ext = image_name.rpartition(".")[2].lower() if "." in image_name else ""
    folders = ([root / "symbols" / ext, root / ext] if ext else []) + [root]
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()  # a case-insensitive file system finds one file under both spellings
    for folder in folders:
        for n in _variants(name):
            candidate = folder / n
            if candidate.is_file():
                st = candidate.stat()
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    found.append(candidate)
    return found
