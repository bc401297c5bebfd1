"""Readings from /proc: CPU time of a process tree, peak memory, how busy the machine is.

Stdlib only, so the helper processes that import it start fast.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """pid's living children, grandchildren, ... (from /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_times(pid: int, tree: bool = True) -> tuple[float, float]:
    """(utime, stime) of pid (and, with tree, of its living descendants), in seconds."""
    user = system = 0
    for each in [pid, *(descendants(pid) if tree else [])]:
        fields = _stat_fields(each)
        if fields is not None:
            user += int(fields[11])
            system += int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """utime + stime of pid (and, with tree, of its living descendants), in seconds."""
    return sum(cpu_times(pid, tree))


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0.0
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS of one process, in KiB (empty when it is gone)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def peak_rss_mib(pid: int, tree: bool = True) -> float:
    """Sum of VmHWM over pid and its descendants, in MiB."""
    pids = [pid, *(descendants(pid) if tree else [])]
    return sum(memory_kib(each).get("VmHWM", 0) for each in pids) / 1024


@dataclass
class CpuSample:
    wall: float
    cpu: float
    user: float = 0.0
    system: float = 0.0


def sample_cpu(pid: int, tree: bool = True) -> CpuSample:
    user, system = cpu_times(pid, tree)
    return CpuSample(time.monotonic(), user + system, user, system)


def cpu_between(start: CpuSample, end: CpuSample) -> tuple[float, float]:
    """(CPU seconds used, wall seconds elapsed) between two samples."""
    return end.cpu - start.cpu, end.wall - start.wall
