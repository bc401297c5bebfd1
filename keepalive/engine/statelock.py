"""One monitor per state directory: ``MONITOR_STATE_DIR/lock``, held for the process's life.

Two monitors sharing a state directory each raise every alert, and both deliver it: the same
message twice. The second start is refused in one line that names the holder's pid.
``flock`` is released by the kernel when the holder dies, however it dies (kill -9 included),
so a stale lock file never blocks a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from keepalive.errors import ConfigError


class StateDirLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write our pid into it. Raises ConfigError (one line, naming the
        holder's pid) when another process holds it, or when the directory cannot be used."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"MONITOR_STATE_DIR={str(self.path.parent)!r} cannot be used: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise ConfigError(
                f"MONITOR_STATE_DIR={str(self.path.parent)!r} is in use by another monitor ({who}): "
                "stop it first, or give this one a directory of its own"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
