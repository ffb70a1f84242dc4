"""Process accounting from /proc: the process tree, CPU seconds (utime + stime) and resident memory."""

import os
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2:].split()


def tree(root: int) -> list[int]:
    """`root` and all its descendants (walks /proc once)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in out or not os.path.exists(f"/proc/{pid}"):
            continue
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def cpu_ticks(pid: int) -> int:
    fields = _stat_fields(pid)
    if fields is None:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the full line)


def cpu_snapshot(pids) -> dict[int, int]:
    return {pid: cpu_ticks(pid) for pid in pids}


def cpu_seconds(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU spent between two snapshots, processes that appeared in between counted from zero."""
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items()) / CLK_TCK


def system_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def total_rss_kib(pids) -> int:
    return sum(rss_kib(pid) for pid in pids)


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except FileNotFoundError:
        return ""


def nofile_limit(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (FileNotFoundError, ValueError):
        pass
    return None


def describe(pids, root: int) -> list[dict]:
    """Each process with a role guessed from its command line, for the report."""
    out = []
    for pid in pids:
        cmd = cmdline(pid)
        if pid == root:
            role = "master (the serve process)"
        elif "usage_writer" in cmd or "lean_writer" in cmd:
            role = "usage writer"
        elif "resource_tracker" in cmd:
            role = "multiprocessing resource tracker"
        elif "xrouter_project.server" in cmd:  # a worker, forked by the serve process (its command line)
            role = "uvicorn worker"
        else:
            role = "other"
        out.append({"pid": pid, "role": role, "rss_kib": rss_kib(pid), "pss_kib": pss_kib(pid), "nofile": nofile_limit(pid),
                    "cmd": cmd[:160]})
    return out


class RssSampler:
    """Samples the summed RSS of a process tree in a thread; keeps the peak. Bounded by stop()."""

    def __init__(self, root: int, interval: float = 0.25):
        self.root = root
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        pids = tree(self.root)
        last_walk = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_walk > 5:
                pids, last_walk = tree(self.root), time.monotonic()
            self.peak = max(self.peak, total_rss_kib(pids))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
