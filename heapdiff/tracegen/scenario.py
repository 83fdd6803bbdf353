"""Simulated programs written as heap traces, with their own bookkeeping of what they leave outstanding.

No public trace holds heap events, so the bundled example, the end-to-end tests and the benchmarks all come from
here: a program (processes, modules at per-run bases, heaps, threads, call sites given as module+rva frames)
calls alloc/free/realloc and the :class:`~heapdiff.tracegen.writer.TraceWriter` writes each call with its
stack walk. The bookkeeping (``live``, :meth:`expected_groups`) is kept by this module from the calls
themselves, never by heapdiff's reducer, so tests can compare the two.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from heapdiff.tracegen.writer import TraceWriter

Frame = tuple[str, int]          # (module file name, rva)


@dataclass
class Module:
    name: str                    # e.g. "app.exe"
    path: str                    # NT path as Windows logs it
    base: int
    size: int = 0x100000
    #: the PE TimeDateStamp (None: the writer makes one up) and, for a merged trace, the PDB its CodeView
    #: record names (file name, GUID as Windows prints it, age): the trace then carries ImageID/DbgID events
    time_date_stamp: int | None = None
    pdb: tuple[str, str, int] | None = None


@dataclass
class Process:
    pid: int
    image: str
    modules: dict[str, Module]
    heaps: list[int]
    threads: list[int]
    cmdline: str = ""


@dataclass
class Scenario:
    """One trace being written: call :meth:`alloc`/:meth:`free`/:meth:`realloc`, then :meth:`close`."""

    writer: TraceWriter
    cpus: int = 2
    ts: int = 0
    live: dict[tuple[int, int, int], tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    stack_in_next_cpu_buffer: bool = False
    _n: int = 0
    _next_addr: dict[tuple[int, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ts = self.writer.t0 + 1000

    def tick(self, dt: int = 2500) -> int:
        self.ts += dt
        return self.ts

    def start_process(self, p: Process, rundown: bool = True) -> None:
        t = self.tick()
        self.writer.process(t, 0, p.pid, 4, p.image, p.cmdline, kind="dcstart" if rundown else "start")
        for m in p.modules.values():
            self._image(p, m, "dcstart" if rundown else "load")

    def load_module(self, p: Process, m: Module) -> None:
        p.modules[m.name] = m
        self._image(p, m, "load")

    def _image(self, p: Process, m: Module, kind: str) -> None:
        t = self.tick()
        if m.pdb is not None:
            name, guid, age = m.pdb
            self.writer.image_identity(t, 0, p.pid, m.base, m.size, m.time_date_stamp or 0, m.path, name, guid, age)
        self.writer.image(t, 0, p.pid, m.base, m.size, m.path, kind=kind, time_date_stamp=m.time_date_stamp)

    def end_process(self, p: Process) -> None:
        self.writer.process(self.tick(), 0, p.pid, 4, p.image, p.cmdline, kind="end")
        for key in [k for k in self.live if k[0] == p.pid]:
            del self.live[key]

    def new_address(self, p: Process, heap: int, size: int) -> int:
        k = (p.pid, heap)
        a = self._next_addr.get(k, heap + 0x10000)
        self._next_addr[k] = a + ((size + 15) & ~15) + 16
        return a

    def _frames(self, p: Process, site: Sequence[Frame]) -> tuple[list[int], tuple[str, ...]]:
        addrs = [p.modules[mod].base + rva for mod, rva in site]
        sig = tuple(f"{mod.lower()}+0x{rva:x}" for mod, rva in site)
        return addrs, sig

    def _stack(self, p: Process, tid: int, cpu: int, event_ts: int, addrs: list[int]) -> None:
        scpu = (cpu + 1) % self.cpus if self.stack_in_next_cpu_buffer else cpu
        self.writer.stack(self.tick(1), scpu, event_ts, p.pid, tid, addrs)

    def alloc(self, p: Process, site: Sequence[Frame], size: int, *, heap: int | None = None, tid: int | None = None,
              source: int = 3, addr: int | None = None) -> int:
        heap = p.heaps[0] if heap is None else heap
        tid = p.threads[self._n % len(p.threads)] if tid is None else tid
        self._n += 1
        cpu = self._n % self.cpus
        a = self.new_address(p, heap, size) if addr is None else addr
        t = self.tick()
        self.writer.heap_alloc(t, cpu, p.pid, tid, heap, size, a, source)
        addrs, sig = self._frames(p, site)
        self._stack(p, tid, cpu, t, addrs)
        self.live[(p.pid, heap, a)] = (size, sig)
        return a

    def free(self, p: Process, addr: int, *, heap: int | None = None, tid: int | None = None) -> None:
        heap = p.heaps[0] if heap is None else heap
        tid = p.threads[0] if tid is None else tid
        self._n += 1
        self.writer.heap_free(self.tick(), self._n % self.cpus, p.pid, tid, heap, addr)
        self.live.pop((p.pid, heap, addr), None)

    def realloc(self, p: Process, site: Sequence[Frame], old_addr: int, new_size: int, *, move: bool,
                heap: int | None = None, tid: int | None = None) -> int:
        heap = p.heaps[0] if heap is None else heap
        tid = p.threads[0] if tid is None else tid
        self._n += 1
        cpu = self._n % self.cpus
        old = self.live.pop((p.pid, heap, old_addr), None)
        # in place only when it fits where the block was (a real heap moves a block that grows past its slot)
        in_place = not move and old is not None and new_size <= old[0]
        new = old_addr if in_place else self.new_address(p, heap, new_size)
        t = self.tick()
        self.writer.heap_realloc(t, cpu, p.pid, tid, heap, new, old_addr, new_size, old[0] if old else 0)
        addrs, sig = self._frames(p, site)
        self._stack(p, tid, cpu, t, addrs)
        self.live[(p.pid, heap, new)] = (new_size, sig)
        return new

    def destroy(self, p: Process, heap: int) -> None:
        self.writer.heap_destroy(self.tick(), 0, p.pid, p.threads[0], heap)
        for key in [k for k in self.live if k[0] == p.pid and k[1] == heap]:
            del self.live[key]

    def close(self) -> None:
        self.writer.close()

    def expected_groups(self, pids: set[int] | None = None) -> dict[tuple[str, ...], tuple[int, int]]:
        """signature -> (blocks, bytes) of what this program left outstanding."""
        out: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
        for (pid, _, _), (size, sig) in self.live.items():
            if pids is None or pid in pids:
                out[sig][0] += 1
                out[sig][1] += size
        return {k: (v[0], v[1]) for k, v in out.items()}

    def expected_by_pid(self) -> dict[int, tuple[int, int]]:
        out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for (pid, _, _), (size, _) in self.live.items():
            out[pid][0] += 1
            out[pid][1] += size
        return {k: (v[0], v[1]) for k, v in out.items()}


# --- the bundled example: a program that leaks at two call sites -------------------------------------------------
SYS32 = "\\Device\\HarddiskVolume3\\Windows\\System32\\"
APP = "\\Device\\HarddiskVolume3\\Program Files\\Contoso\\"

# app.exe and plugin.dll are real images with real PDBs (fixtures/example, built by fixtures/symbols/build.sh):
# their identities and the return addresses below are the ones fixtures/example/callsites.json records, so the
# example's frames name real functions and lines (a test keeps the two in step). ntdll, ucrtbase and kernelbase
# stand for the system's modules, whose PDBs a user would get from a symbol server.
#: (TimeDateStamp, SizeOfImage, (PDB name, GUID, age)) of each image
IMAGES: dict[str, tuple[int, int, tuple[str, str, int]]] = {
    "app.exe": (0x2CBE1542, 0x5000, ("app.pdb", "3429b01a-eb0b-e191-4c4c-44205044422e", 1)),
    "plugin.dll": (0xD7313C69, 0x5000, ("plugin.pdb", "26439d46-2c62-d5f5-4c4c-44205044422e", 1)),
}
MAIN_LOOP = ("app.exe", 0x13A9)      # mainCRTStartup, the call of read_config
SITE_PARSER = [("ntdll.dll", 0x3A2F0), ("ucrtbase.dll", 0x1B4C0), ("app.exe", 0x101E), ("app.exe", 0x1186),
               MAIN_LOOP]                                                   # parse_line <- read_config <- main
SITE_CACHE = [("ntdll.dll", 0x3A2F0), ("app.exe", 0x11BE), ("app.exe", 0x11EC), ("app.exe", 0x13B6)]
SITE_BALANCED = [("ntdll.dll", 0x3A2F0), ("ucrtbase.dll", 0x1B4C0), ("app.exe", 0x12B2), ("app.exe", 0x13BD)]
SITE_PLUGIN = [("ntdll.dll", 0x3A2F0), ("plugin.dll", 0x1056), ("plugin.dll", 0x1079), ("app.exe", 0x13D4)]
SITE_GROW = [("ntdll.dll", 0x3A2F0), ("ucrtbase.dll", 0x1C010), ("app.exe", 0x1324), ("app.exe", 0x13CD)]


def _real(name: str, base: int) -> Module:
    stamp, size, pdb = IMAGES[name]
    return Module(name, APP + name, base, size, stamp, pdb)


def write_example(path: str, run: int, *, compress: bool = False) -> Scenario:
    """Run 0 = before, run 1 = after: other pid, heap handles, module bases; more leaks at one site, a new DLL
    that leaks in run 1, fewer outstanding blocks at the cache site."""
    w = TraceWriter(path, pointer_size=8, cpus=2, buffer_size=0x4000, compress=compress,
                    logger_name="heapdiff example", log_file_name=f"C:\\traces\\example-{run}.etl")
    sc = Scenario(w)
    shift = 0x10000 * (7 + 13 * run)
    mods = {
        "ntdll.dll": Module("ntdll.dll", SYS32 + "ntdll.dll", 0x7FFA_1000_0000 + shift * 16, 0x1F8000),
        "ucrtbase.dll": Module("ucrtbase.dll", SYS32 + "ucrtbase.dll", 0x7FFA_0E00_0000 + shift * 8, 0x100000),
        "kernelbase.dll": Module("kernelbase.dll", SYS32 + "KernelBase.dll", 0x7FFA_0D00_0000 + shift * 4,
                                 0x3A0000),
        "app.exe": _real("app.exe", 0x7FF6_2000_0000 + shift * 32),
    }
    p = Process(pid=4312 + 1000 * run, image="app.exe", modules=mods,
                heaps=[0x1F0000 + 0x310000 * run, 0x2A00000 + 0x70000 * run],
                threads=[6120 + 8 * run, 7004 + 4 * run], cmdline="\"C:\\Program Files\\Contoso\\app.exe\" --run")
    sc.start_process(p)
    balanced = []
    for i in range(40):
        balanced.append(sc.alloc(p, SITE_BALANCED, 64 + i))
    for a in balanced:
        sc.free(p, a)
    leak = 30 if run == 0 else 60
    for i in range(leak):
        sc.alloc(p, SITE_PARSER, 256 + 8 * (i % 5))
    cache = [sc.alloc(p, SITE_CACHE, 4096, heap=p.heaps[1], source=2) for _ in range(20)]
    for a in cache[: 5 if run == 0 else 15]:
        sc.free(p, a, heap=p.heaps[1])
    g = sc.alloc(p, SITE_GROW, 100)
    for k in range(3 + run):
        g = sc.realloc(p, SITE_GROW, g, 200 * (k + 2), move=bool(k % 2))
    if run == 1:
        sc.load_module(p, _real("plugin.dll", 0x7FFA_3000_0000 + shift))
        for i in range(25):
            sc.alloc(p, SITE_PLUGIN, 1024 + i)
    sc.close()
    return sc
