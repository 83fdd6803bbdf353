"""Records counted per provider and per event kind, the counts of `info` and of the report.

Every record of the file falls in exactly one kind (:data:`KIND_NAMES`): the heap kinds by opcode, stack walks,
images, processes, and everything else. A record counts under the provider its header names (a kernel group or
a GUID), with the one exception consumers make (:func:`_provider_of`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heapdiff._jit import borrow, njit
from heapdiff.etl.batch import RecordBatch
from heapdiff.etl.reader import GUID_PROVIDER_BASE
from heapdiff.etl.walk import ST_BAD_PAYLOAD
from heapdiff.events import kinds as K

#: event kind index -> name; the ten keys partition every record of the file
KIND_NAMES = (*K.EVENT_KIND_NAMES, "other")
_KIND = {n: i for i, n in enumerate(KIND_NAMES)}


def _kind_tables() -> tuple[np.ndarray, np.ndarray]:
    by_prov = np.full(GUID_PROVIDER_BASE, _KIND["other"], np.int8)
    by_prov[K.GROUP_STACKWALK] = _KIND["stack_walk"]
    by_prov[K.GROUP_IMAGE] = _KIND["image"]
    by_prov[K.GROUP_PROCESS] = _KIND["process"]
    by_prov[K.GROUP_HEAP] = _KIND["heap_other"]
    heap_op = np.full(256, _KIND["heap_other"], np.int8)
    for hook, name in K.HEAP_HOOK_KIND.items():
        heap_op[hook & 0xFF] = _KIND[name]
    return by_prov, heap_op


_BY_PROV, _HEAP_OP_KIND = _kind_tables()
_OTHER = _KIND["other"]


@njit(inline="always")
def _provider_of(p: Any, h: Any) -> Any:
    """The provider a record counts under: the one its header names (group byte or GUID), except a Process-group
    image load (hook 0x030A), which consumers see as the Image provider's Load (notes 3.7)."""
    if h == K.HOOK_PROCESS_LOAD_IMAGE and p == K.GROUP_PROCESS:
        return K.GROUP_IMAGE
    return p


@njit(inline="always")
def _kind_of(p: Any, h: Any) -> int:
    if p == K.GROUP_HEAP:
        return int(_HEAP_OP_KIND[h & 0xFF])
    if 0 <= p < GUID_PROVIDER_BASE:
        return int(_BY_PROV[p])
    return _OTHER


@njit()
def _count_kernel(prov: np.ndarray, hook: np.ndarray, status: np.ndarray, rows: np.ndarray, prov_counts: np.ndarray,
                  kind_counts: np.ndarray) -> int:
    """Records ``rows`` per provider and per event kind; returns how many payloads did not fit their layout."""
    # borrowed: no reference counting in the loop (heapdiff._jit.borrow)
    prov, hook, status, rows, prov_counts, kind_counts = borrow((prov, hook, status, rows, prov_counts, kind_counts))
    bad = 0
    # (no prefetch here: three columns a row, no faster with it)
    for i in range(rows.shape[0]):
        r = rows[i]
        h = np.int64(hook[r])
        p = _provider_of(np.int64(prov[r]), h)
        prov_counts[p + 1] += 1
        kind_counts[_kind_of(p, h)] += 1
        if status[r] & ST_BAD_PAYLOAD:
            bad += 1
    return bad


class RecordCounts:
    """Records per provider (message records at index 0, kernel groups at 1..256, GUIDs above) and per kind."""

    def __init__(self) -> None:
        self.providers = np.zeros(GUID_PROVIDER_BASE + 2, np.int64)
        self.kinds = np.zeros(len(KIND_NAMES), np.int64)

    def add_batch(self, batch: RecordBatch, guids: int) -> list[tuple[str, int]]:
        """Count a batch in one JIT pass (through the batch's rows: no gather), ``guids`` providers known by GUID
        so far; returns (kind, position) of each record whose payload did not fit its layout."""
        # a bound on the batch's provider indexes without scanning them: a group byte (< GUID_PROVIDER_BASE),
        # -1 (messages) or a GUID the reader has interned
        top = GUID_PROVIDER_BASE + guids + 2
        if top > self.providers.shape[0]:
            self.providers = np.concatenate((self.providers, np.zeros(top - self.providers.shape[0], np.int64)))
        src = batch.src
        if not _count_kernel(src["prov"], src["hook"], src["status"], batch.rows, self.providers, self.kinds):
            return []
        prov, hook, pos = batch.prov, batch.hook, batch.pos
        return [(self.kind_name(int(prov[i]), int(hook[i])), int(pos[i]))
                for i in np.flatnonzero(batch.status & ST_BAD_PAYLOAD).tolist()]

    def add(self, prov: int, hook: int, count: int) -> None:
        """``count`` records of one provider and hook (the records the reader linked onto others: in no batch)."""
        p = _provider_of(prov, hook)
        self.providers[p + 1] += count
        self.kinds[_kind_of(p, hook)] += count

    @staticmethod
    def kind_name(prov: int, hook: int) -> str:
        return KIND_NAMES[_kind_of(_provider_of(prov, hook), hook)]

    def by_provider(self, guids: list[str]) -> dict[str, int]:
        """Provider GUID (or "message", or "group:0x..") -> records, ``guids`` being the reader's GUID providers."""
        return {_provider_key(i - 1, guids): int(c) for i, c in enumerate(self.providers.tolist()) if c}

    def by_kind(self) -> dict[str, int]:
        return {name: int(self.kinds[i]) for i, name in enumerate(KIND_NAMES)}


def _provider_key(p: int, guids: list[str]) -> str:
    if p < 0:
        return "message"
    if p < GUID_PROVIDER_BASE:
        return K.GROUP_GUIDS.get(p, f"group:{p:#04x}")
    return guids[p - GUID_PROVIDER_BASE]
