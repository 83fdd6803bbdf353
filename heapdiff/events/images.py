"""Addresses to `module+0xrva` frames, by the images loaded in each process at the time (notes 6.1).

Kernel images are logged under the System/Idle process and serve the kernel addresses of every process. An image
is valid from its Load (or from the trace start for a rundown DCStart) to its UnLoad; a DCEnd is the end-of-trace
rundown, not an unload.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from heapdiff.events.decode import ImageEvent

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


class ImageMap:
    """Per-process image ranges over time, for frame resolution."""

    def __init__(self, images: list[ImageEvent], pointer_size: int) -> None:
        self.kernel_floor = kernel_floor(pointer_size)
        opened: dict[tuple[int, int], list[LoadedImage]] = {}
        done: list[tuple[int, LoadedImage]] = []
        for ev in sorted(images, key=lambda e: e.ts):
            key = (ev.pid, ev.base)
            if ev.kind in ("load", "dcstart"):
                start = -NEVER if ev.kind == "dcstart" else ev.ts
                if ev.kind == "dcstart" and opened.get(key):
                    continue  # a rundown repeats what a load already said
                opened.setdefault(key, []).append(
                    LoadedImage(ev.base, ev.base + max(ev.size, 1), module_name(ev.file_name), start, NEVER))
            elif ev.kind == "unload":
                stack = opened.get(key)
                if stack:
                    img = stack.pop()
                    done.append((ev.pid, LoadedImage(img.base, img.end, img.name, img.start_ts, ev.ts)))
            elif ev.kind == "dcend" and not opened.get(key):
                # only seen at the end: it was there all along
                opened.setdefault(key, []).append(
                    LoadedImage(ev.base, ev.base + max(ev.size, 1), module_name(ev.file_name), -NEVER, NEVER))
        for (pid, _), stack in opened.items():
            done.extend((pid, img) for img in stack)
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
        self._static: dict[int, tuple[np.ndarray, np.ndarray, list[str]]] = {}
        for pid, (bases, imgs) in self._by_pid.items():
            if imgs and all(i.start_ts == -NEVER and i.end_ts == NEVER for i in imgs) and all(
                    imgs[k].end <= imgs[k + 1].base for k in range(len(imgs) - 1)):
                self._static[pid] = (np.asarray(bases, np.uint64), np.asarray([i.end for i in imgs], np.uint64),
                                     [i.name for i in imgs])

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

    def frames(self, pid: int, addrs: np.ndarray, ts: int) -> list[str]:
        """:meth:`frame` for many addresses of one process at one time, with the same lookup order (kernel
        addresses: System/Idle images first), vectorised when every process involved is static."""
        kernel = addrs >= np.uint64(self.kernel_floor)
        order = [(p, True) for p in KERNEL_PIDS] + [(pid, False)] if bool(np.any(kernel)) else [(pid, False)]
        if any(p in self._by_pid and p not in self._static for p, _ in order):
            return [self.frame(pid, int(a), ts) for a in addrs.tolist()]
        out: list[str | None] = [None] * int(addrs.shape[0])
        for p, kernel_only in order:
            table = self._static.get(p)
            if table is None:
                continue
            bases, ends, names = table
            idx = np.searchsorted(bases, addrs, side="right").astype(np.int64) - 1
            safe = np.maximum(idx, 0)
            hit = (idx >= 0) & (addrs < ends[safe])
            if kernel_only:
                hit &= kernel
            for j in np.flatnonzero(hit).tolist():
                if out[j] is None:
                    k = int(safe[j])
                    out[j] = f"{names[k]}+0x{int(addrs[j]) - int(bases[k]):x}"
        return [o if o is not None else f"0x{int(a):x}" for o, a in zip(out, addrs.tolist(), strict=True)]

    def is_kernel(self, addr: int) -> bool:
        return addr >= self.kernel_floor
