"""Process figures from /proc: CPU seconds, RSS, peak RSS, process trees (Linux only)."""

from __future__ import annotations

import os
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    rest = raw[raw.rfind(")") + 2:].split()
    return rest  # rest[0] is field 3 (state)


def ppid(pid: int) -> int | None:
    f = _stat_fields(pid)
    return int(f[1]) if f else None


def cpu_seconds(pid: int, children: bool = True) -> float:
    """utime+stime of the process (all its threads), plus cutime+cstime of children it has reaped."""
    f = _stat_fields(pid)
    if not f:
        return 0.0
    # fields 14..17 (1-based) = utime, stime, cutime, cstime -> rest[11..14]
    ticks = int(f[11]) + int(f[12])
    if children:
        ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    """A kB figure from /proc/PID/status, e.g. VmRSS, VmHWM; 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, needs ptrace rights on the process)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def descendants(root: int) -> list[int]:
    """root and every process below it."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            p = ppid(int(name))
            if p is not None:
                parent[int(name)] = p
    out, frontier = [root], [root]
    while frontier:
        nxt = [pid for pid, pp in parent.items() if pp in frontier]
        out.extend(nxt)
        frontier = nxt
    return [p for p in out if p in parent or p == root]


class Group:
    """A set of processes measured together: fixed pids plus the trees below some roots.

    cpu(): CPU seconds of every live member plus what each root has reaped from exited children,
    so processes that came and went during a run (Postfix's smtpd, cleanup, smtp) are counted.
    """

    def __init__(self, pids: list[int] = (), tree_roots: list[int] = ()):
        self.pids = list(pids)
        self.tree_roots = list(tree_roots)

    def members(self) -> list[int]:
        out = list(self.pids)
        for r in self.tree_roots:
            out.extend(descendants(r))
        return sorted(set(out))

    def cpu(self) -> float:
        total = 0.0
        roots = set(self.pids) | set(self.tree_roots)
        for pid in self.members():
            total += cpu_seconds(pid, children=pid in roots)
        return total

    def rss_kb(self) -> int:
        """Sum of PSS for groups of several processes (shared libraries counted once), RSS for one."""
        return rss_kb_of(self.members())


def rss_kb_of(members: list[int]) -> int:
    """Group.rss_kb() of these processes."""
    if len(members) == 1:
        return status_kb(members[0], "VmRSS")
    return sum(pss_kb(p) for p in members)


class PeakSampler:
    """Samples Group.rss_kb() every `interval` seconds in a thread; .peak_kb is the highest seen.

    The group's members are looked up again every `members_every` seconds, not at every sample:
    finding them reads the stat file of every process on the machine (descendants()), which at ten
    samples a second took ~0.05 of a core on a machine running a few hundred processes, taken from
    the system measured on the same cores. Postfix's processes live for minutes (max_idle), the
    relay's for the run, so a member is at most a second late to be counted."""

    def __init__(self, group: Group, interval: float = 0.1, members_every: float = 1.0):
        self.group = group
        self.interval = interval
        self.members_every = members_every
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        members: list[int] = []
        looked = float("-inf")
        while not self._stop.is_set():
            now = time.monotonic()
            if now - looked >= self.members_every:
                members, looked = self.group.members(), now
            self.peak_kb = max(self.peak_kb, rss_kb_of(members))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak_kb = max(self.peak_kb, self.group.rss_kb())
