"""Shared helpers of the benchmarks: the machine's description, child processes with their own peak RSS.

Peak RSS of a child is the kernel's own: ``os.wait4`` returns the rusage of exactly that child (``ru_maxrss``,
its high-water mark, which includes the pages of memory-mapped files it touched). A poller also samples
``/proc/<pid>/status`` of the child and its descendants every 10 ms for the high-water mark (``VmHWM``, summed
over the tree) and for the anonymous part of the resident set (``RssAnon``, the memory that is not file
pages)."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "example" / "before.etl"


def machine() -> dict[str, str]:
    """Cores, memory, CPU model, versions and the date: the header of RESULTS.md."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    versions = {}
    for mod in ("numpy", "numba", "click", "jinja2"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "not installed"
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always"], capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        # dirty only if the code is: the run itself rewrites benchmarks/RESULTS.md while it goes
        changed = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        if changed:
            rev += "-dirty"
    except (OSError, subprocess.SubprocessError):
        rev = "?"
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": f"{affinity} usable ({os.cpu_count()} online)",
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "heapdiff_revision": rev,
        **versions,
    }


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out += [int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return out


def _status_kb(pid: int, keys: Sequence[str]) -> dict[str, int]:
    got: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in keys:
                got[k] = int(v.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return got


@dataclass
class ChildRun:
    """One measured child process."""

    argv: list[str]
    returncode: int = 0
    wall_s: float = 0.0
    maxrss_mb: float = 0.0  # ru_maxrss from wait4: the child's own peak RSS (file pages included)
    tree_hwm_mb: float = 0.0  # VmHWM summed over the process tree (polled)
    anon_peak_mb: float = 0.0  # peak of RssAnon summed over the tree (polled every 10 ms)
    processes: int = 1
    threads_peak: int = 1
    user_s: float = 0.0
    sys_s: float = 0.0
    stdout: str = ""
    stderr: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def run_child(
    argv: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None, poll: float = 0.01
) -> ChildRun:
    """Run ``argv`` to its end; wall time, peak RSS of its own and of its tree, CPU time."""
    res = ChildRun(list(argv))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    t0 = time.perf_counter()
    p = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out_w, stderr=err_w, stdin=subprocess.DEVNULL)
    os.close(out_w)
    os.close(err_w)
    bufs: dict[int, list[bytes]] = {out_r: [], err_r: []}

    def drain(fd: int) -> None:
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            bufs[fd].append(b)
        os.close(fd)

    readers = [threading.Thread(target=drain, args=(fd,), daemon=True) for fd in (out_r, err_r)]
    for t in readers:
        t.start()
    stop = threading.Event()
    hwm: dict[int, int] = {}
    anon_peak = 0
    seen: set[int] = set()
    threads_peak = 1

    def poller() -> None:
        nonlocal anon_peak, threads_peak
        while not stop.is_set():
            tree = [p.pid]
            i = 0
            while i < len(tree):
                tree += _children(tree[i])
                i += 1
            anon = 0
            nthreads = 0
            for pid in tree:
                st = _status_kb(pid, ("VmHWM", "RssAnon", "Threads"))
                if "VmHWM" in st:
                    hwm[pid] = max(hwm.get(pid, 0), st["VmHWM"])
                    seen.add(pid)
                anon += st.get("RssAnon", 0)
                nthreads += st.get("Threads", 0)
            anon_peak = max(anon_peak, anon)
            threads_peak = max(threads_peak, nthreads)
            stop.wait(poll)

    pt = threading.Thread(target=poller, daemon=True)
    pt.start()
    _, status, ru = os.wait4(p.pid, 0)
    res.wall_s = time.perf_counter() - t0
    stop.set()
    pt.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join()
    res.returncode = p.returncode
    res.maxrss_mb = ru.ru_maxrss / 1024
    res.user_s = ru.ru_utime
    res.sys_s = ru.ru_stime
    res.tree_hwm_mb = max(sum(hwm.values()) / 1024, res.maxrss_mb)
    res.anon_peak_mb = anon_peak / 1024
    res.processes = max(1, len(seen))
    res.threads_peak = threads_peak
    res.stdout = b"".join(bufs[out_r]).decode(errors="replace")
    res.stderr = b"".join(bufs[err_r]).decode(errors="replace")
    return res


def python() -> str:
    return sys.executable


def bench_env(numba_cache: Path | str | None) -> dict[str, str]:
    """The environment of measured children: the numba cache outside the repository, Python's bytecode cache on.

    An installed heapdiff has its modules compiled (pip writes the .pyc files) and a checkout writes them on the
    first import, unless PYTHONDONTWRITEBYTECODE is set, as it is in some sandboxes and CI images: then every
    run compiles heapdiff's sources again (measured: 0.06 s of each start-up). Measured as a user runs it."""
    env = dict(os.environ)
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    env.pop("HEAPDIFF_NO_JIT", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:,.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:,.1f} k"
    return f"{x:,.0f}"
