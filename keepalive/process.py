"""Which process is this repository's monitor, read from /proc (Linux).

A stale PID file may name an unrelated process, so a PID is trusted only when that process is a
Python interpreter whose first non-option argument is exactly our monitor_server.py. (Merely
mentioning the path, as `tail -f .../monitor_server.py` or an editor does, is not enough.)
stop_monitor.sh checks the same rule in shell right before each signal (scripts/common.sh).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessTable:
    """Reads processes from ``proc`` (a directory laid out like /proc)."""

    proc: Path = Path("/proc")
    ticks_per_second: int = field(default_factory=_clock_ticks)

    def cmdline(self, pid: int) -> list[str] | None:
        """The arguments of a live process, or None when it is gone or a zombie."""
        base = self.proc / str(pid)
        try:
            raw = (base / "cmdline").read_bytes()
            status = (base / "status").read_text(errors="replace")
        except OSError:
            return None
        state = next((line.split()[1:2] for line in status.splitlines() if line.startswith("State:")), [])
        if not state or state[0] in ("Z", "X") or not raw:
            return None
        return raw.rstrip(b"\0").decode(errors="replace").split("\0")

    def script_arguments(self, pid: int, script: Path) -> list[str] | None:
        """The arguments after ``script`` when ``pid`` is a Python process running it, else None."""
        argv = self.cmdline(pid)
        if not argv or not Path(argv[0]).name.startswith("python"):
            return None
        for index, arg in enumerate(argv[1:], start=1):
            if arg.startswith("-"):
                continue
            return argv[index + 1 :] if arg == str(script) else None
        return None

    def runs_script(self, pid: int, script: Path) -> bool:
        return self.script_arguments(pid, script) is not None

    def is_daemon(self, pid: int, script: Path) -> bool:
        """Running ``script`` with no arguments: the monitor itself, not --once, --status and the like."""
        return self.script_arguments(pid, script) == []

    def daemons(self, script: Path, exclude: int | None = None) -> list[int]:
        """Every PID running ``script`` as the monitor, lowest first."""
        try:
            pids = sorted(int(entry.name) for entry in self.proc.iterdir() if entry.name.isdigit())
        except OSError:
            return []
        return [pid for pid in pids if pid != exclude and self.is_daemon(pid, script)]

    def uptime(self, pid: int) -> float | None:
        """Seconds since ``pid`` started, or None when that cannot be read."""
        try:
            stat = (self.proc / str(pid) / "stat").read_text()
            since_boot = float((self.proc / "uptime").read_text().split()[0])
            # Field 22 (starttime); the command name before it may hold spaces and ')'.
            start_ticks = int(stat.rpartition(")")[2].split()[19])
        except (OSError, ValueError, IndexError):
            return None
        return max(0.0, since_boot - start_ticks / self.ticks_per_second)
