"""Addresses to `module+0xrva` frames, by the images loaded in each process at the time (notes 6.1).

Kernel images are logged under the System/Idle process and serve the kernel addresses of every process. An image
is valid from its Load (or from the trace start for a rundown DCStart) to its UnLoad; a DCEnd is the end-of-trace
rundown, not an unload.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

import numpy as np

from heapdiff.events.decode import ImageEvent, ImageIdEvent

KERNEL_PIDS = (0, 4)
NEVER = 1 << 62


def kernel_floor(pointer_size: int) -> int:
    """Lowest kernel address of a trace: 0xffff800000000000 on 64-bit, 0x80000000 on 32-bit."""
    return 0xFFFF800000000000 if pointer_size == 8 else 0x80000000


def module_name(file_name: str) -> str:
    """Last path component, lowercased (NT paths use backslashes; forward slashes are accepted too)."""
    return file_name.replace("/", "\\").rsplit("\\", 1)[-1].lower() or "?"


@dataclass(frozen=True)
class LoadedImage:
    base: int
    end: int
    name: str
    start_ts: int
    end_ts: int
    #: the image's identity, for symbols: its path, PE TimeDateStamp (0: unknown), and the trace's DbgID_RSDS
    #: event for it (notes 6.3), which names the PDB its CodeView record names, when the trace has one
    path: str = ""
    pid: int = 0
    time_date_stamp: int = 0
    rsds: ImageIdEvent | None = None
    #: position in :attr:`ImageMap.images`
    index: int = -1


def _identities(image_ids: list[ImageIdEvent]) -> tuple[dict[tuple[int, int], ImageIdEvent],
                                                        dict[tuple[int, int], ImageIdEvent]]:
    """The ImageID and DbgID_RSDS events by (raw timestamp, image base): merged traces write each with the same
    timestamp and base as the image event it describes (TraceEvent pairs them the same way)."""
    ids: dict[tuple[int, int], ImageIdEvent] = {}
    rsds: dict[tuple[int, int], ImageIdEvent] = {}
    for e in image_ids:
        (rsds if e.kind == "rsds" else ids).setdefault((e.ts, e.base), e)
    return ids, rsds


#: one past the last 64-bit address, as far as a uint64 column can say it
_ADDRESS_END = (1 << 64) - 1
#: images as sorted arrays for a vectorised search: bases, ends, names, indices into ImageMap.images
_Table = tuple[np.ndarray, np.ndarray, list[str], list[int]]


def _table(imgs: list[LoadedImage]) -> _Table:
    return (np.asarray([i.base for i in imgs], np.uint64), np.asarray([i.end for i in imgs], np.uint64),
            [i.name for i in imgs], [i.index for i in imgs])


class ImageMap:
    """Per-process image ranges over time, for frame resolution."""

    def __init__(self, images: list[ImageEvent], pointer_size: int, image_ids: list[ImageIdEvent] | None = None
                 ) -> None:
        self.kernel_floor = kernel_floor(pointer_size)
        ids, rsds = _identities(image_ids or [])

        def loaded(ev: ImageEvent, start: int, end: int) -> LoadedImage:
            idev, dbg = ids.get((ev.ts, ev.base)), rsds.get((ev.ts, ev.base))
            stamp = ev.time_date_stamp or (idev.time_date_stamp if idev is not None else 0)
            # an image can end no later than the address space: a base + size past 2**64 is damage, kept in range
            return LoadedImage(ev.base, min(ev.base + max(ev.size, 1), _ADDRESS_END), module_name(ev.file_name),
                               start, end,
                               path=ev.file_name, pid=ev.pid, time_date_stamp=stamp, rsds=dbg)

        opened: dict[tuple[int, int], list[LoadedImage]] = {}
        done: list[tuple[int, LoadedImage]] = []
        for ev in sorted(images, key=lambda e: e.ts):
            key = (ev.pid, ev.base)
            if ev.kind in ("load", "dcstart"):
                start = -NEVER if ev.kind == "dcstart" else ev.ts
                if ev.kind == "dcstart" and opened.get(key):
                    continue  # a rundown repeats what a load already said
                opened.setdefault(key, []).append(loaded(ev, start, NEVER))
            elif ev.kind == "unload":
                stack = opened.get(key)
                if stack:
                    img = stack.pop()
                    done.append((ev.pid, replace(img, end_ts=ev.ts)))
            elif ev.kind == "dcend":
                stack = opened.get(key)
                if not stack:  # only seen at the end: it was there all along
                    opened.setdefault(key, []).append(loaded(ev, -NEVER, NEVER))
                elif stack[-1].rsds is None and (ev.ts, ev.base) in rsds:  # the end rundown names its PDB
                    fuller = loaded(ev, stack[-1].start_ts, NEVER)
                    stack[-1] = replace(fuller, time_date_stamp=stack[-1].time_date_stamp or
                                        fuller.time_date_stamp)
        for (pid, _), stack in opened.items():
            done.extend((pid, img) for img in stack)
        done = [(pid, replace(img, index=i)) for i, (pid, img) in enumerate(done)]
        #: every image of the trace, each with its identity; frames name them by index
        self.images: list[LoadedImage] = [img for _, img in done]
        self._by_pid: dict[int, tuple[list[int], list[LoadedImage]]] = {}
        per: dict[int, list[LoadedImage]] = {}
        for pid, img in done:
            per.setdefault(pid, []).append(img)
        for pid, lst in per.items():
            lst.sort(key=lambda i: (i.base, i.start_ts))
            self._by_pid[pid] = ([i.base for i in lst], lst)
        self.max_image = max((i.end - i.base for _, i in done), default=0)
        # a process whose images neither come nor go nor overlap resolves without looking at the time:
        # one vectorised search for all its frames (see frames())
        self._static: dict[int, _Table] = {}
        self._bounds: dict[int, list[int]] = {}
        self._epochs: dict[tuple[int, int], _Table | None] = {}
        self._memo: dict[tuple[int, ...], dict[int, tuple[str, int]]] = {}
        for pid, (_, imgs) in self._by_pid.items():
            if imgs and all(i.start_ts == -NEVER and i.end_ts == NEVER for i in imgs) and all(
                    imgs[k].end <= imgs[k + 1].base for k in range(len(imgs) - 1)):
                self._static[pid] = _table(imgs)

    def find(self, pid: int, addr: int, ts: int) -> LoadedImage | None:
        pids = (*KERNEL_PIDS, pid) if addr >= self.kernel_floor else (pid,)
        for p in pids:
            entry = self._by_pid.get(p)
            if entry is None:
                continue
            bases, imgs = entry
            i = bisect.bisect_right(bases, addr) - 1
            while i >= 0 and addr - bases[i] < self.max_image:
                img = imgs[i]
                if img.base <= addr < img.end and img.start_ts <= ts < img.end_ts:
                    return img
                i -= 1
        return None

    def frame(self, pid: int, addr: int, ts: int) -> str:
        img = self.find(pid, addr, ts)
        if img is None:
            return f"0x{addr:x}"
        return f"{img.name}+0x{addr - img.base:x}"

    def _table_at(self, pid: int, ts: int) -> tuple[int, _Table | None]:
        """(epoch, images of ``pid`` loaded at ``ts`` as sorted arrays) or (epoch, None) when they overlap.

        The set of loaded images changes only at load/unload times, so it is built once per interval between
        two such times (the epoch) and reused for every stack of that interval."""
        static = self._static.get(pid)
        if static is not None:
            return -1, static
        bounds = self._bounds.get(pid)
        if bounds is None:  # images that come and go: their load and unload times
            imgs0 = self._by_pid[pid][1]
            bounds = sorted({i.start_ts for i in imgs0} | {i.end_ts for i in imgs0})
            self._bounds[pid] = bounds
        epoch = bisect.bisect_right(bounds, ts)
        key = (pid, epoch)
        if key not in self._epochs:
            imgs = [i for i in self._by_pid[pid][1] if i.start_ts <= ts < i.end_ts]
            self._epochs[key] = (_table(imgs) if all(imgs[k].end <= imgs[k + 1].base for k in range(len(imgs) - 1))
                                 else None)
        return epoch, self._epochs[key]

    def _hits(self, tables: list[tuple[_Table, bool]], addrs: np.ndarray
              ) -> tuple[list[tuple[np.ndarray, np.ndarray, _Table]], np.ndarray]:
        """Which of ``addrs`` the first of ``tables`` (sorted, non-overlapping images; ``True``: kernel addresses
        only) that holds each holds: per table, the positions it holds and their image rows (one vectorised
        search a table), and the mask of the addresses no table holds."""
        out = []
        todo = np.ones(addrs.shape[0], bool)  # not yet in an image of an earlier table
        floor = np.uint64(self.kernel_floor)
        for table, kernel_only in tables:
            bases, ends = table[0], table[1]
            if not bases.shape[0]:
                continue
            idx = np.searchsorted(bases, addrs, side="right").astype(np.int64) - 1
            safe = np.maximum(idx, 0)
            hit = todo & (idx >= 0) & (addrs < ends[safe])
            if kernel_only:
                hit &= addrs >= floor
            todo &= ~hit
            js = np.flatnonzero(hit)
            out.append((js, safe[js], table))
        return out, todo

    def _search(self, tables: list[tuple[_Table, bool]], addrs: np.ndarray) -> list[tuple[str, int]]:
        """(``module+0xrva`` or ``0x...``, image index or -1) of each of ``addrs`` (see :meth:`_hits`)."""
        out: list[tuple[str, int]] = [("", -1)] * int(addrs.shape[0])
        hits, todo = self._hits(tables, addrs)
        for js, ks, (bases, _, names, index) in hits:
            # plain ints from whole columns: a numpy scalar per element was most of this loop's time
            for j, k, rva in zip(js.tolist(), ks.tolist(), (addrs[js] - bases[ks]).tolist(), strict=True):
                out[j] = (f"{names[k]}+0x{rva:x}", index[k])
        js = np.flatnonzero(todo)
        for j, a in zip(js.tolist(), addrs[js].tolist(), strict=True):
            out[j] = (f"0x{a:x}", -1)
        return out

    def _search_index(self, tables: list[tuple[_Table, bool]], addrs: np.ndarray) -> np.ndarray:
        """:meth:`_search` as a column: the image index of each address, -1 where none holds it."""
        out = np.full(addrs.shape[0], -1, np.int64)
        hits, _ = self._hits(tables, addrs)
        for js, ks, (_, _, _, index) in hits:
            out[js] = np.asarray(index, np.int64)[ks]
        return out

    def locate_flat(self, pids: np.ndarray, starts: np.ndarray, flat: np.ndarray, tss: np.ndarray) -> np.ndarray:
        """The image index (or -1) of every address of many stacks at once, stack ``k`` being
        ``flat[starts[k]:starts[k + 1]]`` of process ``pids[k]`` at time ``tss[k]``; :meth:`find`'s lookup order.

        Whole columns: the stacks of a process whose images are static (and the kernel's) in one search, the
        others in one search per interval between image loads; only processes whose images overlap go frame by
        frame. Nothing per frame is a Python object, so a trace of a million distinct stacks stays small."""
        out = np.full(flat.shape[0], -1, np.int64)
        lens = np.diff(starts)
        only = np.unique(pids)
        frame_pid = np.repeat(pids, lens) if only.shape[0] > 1 else None
        kernel_tables = [self._static.get(kp) for kp in KERNEL_PIDS]
        kernel_static = all(kp not in self._by_pid or t is not None for kp, t in zip(KERNEL_PIDS, kernel_tables,
                                                                                    strict=True))
        for p in only.tolist():
            ks = np.flatnonzero(pids == p)
            if kernel_static and (p not in self._by_pid or p in self._static):
                rows = slice(None) if frame_pid is None else frame_pid == p
                tables = [(t, True) for t in kernel_tables if t is not None]
                own = self._static.get(p)
                if own is not None:
                    tables.append((own, False))
                out[rows] = self._search_index(tables, flat[rows])
                continue
            for k in ks.tolist():  # images that come and go, or overlap: stack by stack
                a, b = int(starts[k]), int(starts[k + 1])
                out[a:b] = [idx for _, idx in self.located(p, flat[a:b], int(tss[k]))]
        return out

    def _one(self, pid: int, addr: int, ts: int) -> tuple[str, int]:
        img = self.find(pid, addr, ts)
        return (f"0x{addr:x}", -1) if img is None else (f"{img.name}+0x{addr - img.base:x}", img.index)

    def located(self, pid: int, addrs: np.ndarray, ts: int) -> list[tuple[str, int]]:
        """(frame text, image index or -1) of many addresses of one process at one time, with :meth:`frame`'s
        lookup order (kernel addresses: System/Idle images first).

        Vectorised over the images loaded at ``ts`` (see :meth:`_table_at`), and the answers are remembered per
        (process, epochs, address): stacks share most of their frames. Only processes whose loaded images
        overlap each other go frame by frame."""
        kernel = addrs >= np.uint64(self.kernel_floor)
        order = [(p, True) for p in KERNEL_PIDS] + [(pid, False)] if bool(np.any(kernel)) else [(pid, False)]
        tables: list[tuple[_Table, bool]] = []
        epochs: list[int] = [pid]
        for p, kernel_only in order:
            if p not in self._by_pid:
                epochs.append(-2)
                continue
            epoch, table = self._table_at(p, ts)
            if table is None:
                return [self._one(pid, int(a), ts) for a in addrs.tolist()]
            epochs.append(epoch)
            tables.append((table, kernel_only))
        memo = self._memo.setdefault(tuple(epochs), {})
        values = addrs.tolist()
        known = [memo.get(a) for a in values]
        missing = [j for j, k in enumerate(known) if k is None]
        if not missing:
            return known  # type: ignore[return-value]  # no None left
        for j, got in zip(missing, self._search(tables, addrs[np.asarray(missing, np.int64)]), strict=True):
            known[j] = memo[values[j]] = got
        return known  # type: ignore[return-value]  # every None was filled

    def frames(self, pid: int, addrs: np.ndarray, ts: int) -> list[str]:
        """:meth:`frame` for many addresses of one process at one time (see :meth:`located`)."""
        return [text for text, _ in self.located(pid, addrs, ts)]

    def located_many(self, pids: list[int], addrs: list[np.ndarray], tss: list[int]) -> list[list[tuple[str, int]]]:
        """:meth:`located` for many stacks at once: ``located(pids[k], addrs[k], tss[k])`` for every k.

        Grouping resolves thousands of stacks, and one call per stack is mostly numpy set-up, so the stacks of a
        process whose images are static (and the kernel's, when static) are resolved in one vectorised search,
        each distinct address formatted once; the others go stack by stack."""
        out: list[list[tuple[str, int]] | None] = [None] * len(pids)
        by_pid: dict[int, list[int]] = {}
        for k, p in enumerate(pids):
            by_pid.setdefault(p, []).append(k)
        for p, ks in by_pid.items():
            kernel_tables = [self._static.get(kp) for kp in KERNEL_PIDS]
            if (p in self._by_pid and p not in self._static) or any(
                    kp in self._by_pid and t is None for kp, t in zip(KERNEL_PIDS, kernel_tables, strict=True)):
                for k in ks:
                    out[k] = self.located(p, addrs[k], tss[k])
                continue
            lens = [int(addrs[k].shape[0]) for k in ks]
            allv = np.concatenate([addrs[k] for k in ks]) if ks else np.zeros(0, np.uint64)
            uniq, inv = np.unique(allv, return_inverse=True)
            lookups = [(t, True) for t in kernel_tables if t is not None]
            own = self._static.get(p)
            if own is not None:
                lookups.append((own, False))
            found = self._search(lookups, uniq)
            holder = np.empty(len(found), dtype=object)
            holder[:] = found
            flat = holder[inv.reshape(-1)].tolist()  # one gather, not a loop
            pos = 0
            for k, n in zip(ks, lens, strict=True):
                out[k] = flat[pos:pos + n]
                pos += n
        return out  # type: ignore[return-value]  # every stack was resolved

    def frames_many(self, pids: list[int], addrs: list[np.ndarray], tss: list[int]) -> list[list[str]]:
        """:meth:`frames` for many stacks at once (see :meth:`located_many`)."""
        return [[text for text, _ in stack] for stack in self.located_many(pids, addrs, tss)]

    def is_kernel(self, addr: int) -> bool:
        return addr >= self.kernel_floor
