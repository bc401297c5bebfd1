"""Files that grow without end: rotated by size, reopened on SIGHUP for logrotate users.

``RotatingFile`` is the part shared by the log (through ``ReopenableRotatingFileHandler``) and the
events file: a failed check writes ~430 bytes, so 1,000 targets down at a 60 s interval would
add ~620 MB a day to a file nobody rotates.
"""

from __future__ import annotations

import logging
import os
import threading
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TextIO


def rotate_files(path: Path, backups: int) -> None:
    """``path`` becomes ``path.1``, ``path.1`` becomes ``path.2`` ... the oldest beyond ``backups`` goes."""
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
    if path.exists():
        os.replace(path, path.with_name(f"{path.name}.1"))


class RotatingFile:
    """An append-only text file rotated when the next line would pass ``max_bytes`` (0: never).

    Not thread-safe by itself: the caller holds its own lock around ``write``/``reopen``."""

    def __init__(self, path: Path, max_bytes: int = 0, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = max(1, backups)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: TextIO | None = self._open()

    def _open(self) -> TextIO:
        # backslashreplace: a lone surrogate is written as its escape instead of failing the
        # write (and everything after it in the caller).
        return self.path.open("a", encoding="utf-8", errors="backslashreplace")

    def write(self, line: str) -> None:
        """Append ``line`` (with its newline) and flush; rotate first when it would not fit."""
        if self._handle is None:
            self._handle = self._open()
        if self.max_bytes > 0:
            size = self._handle.tell()
            if size > 0 and size + len(line.encode("utf-8", "backslashreplace")) > self.max_bytes:
                self._handle.close()
                self._handle = None
                rotate_files(self.path, self.backups)
                self._handle = self._open()
        self._handle.write(line)
        self._handle.flush()

    def reopen(self) -> None:
        """Close and open the path again: after logrotate renamed the file, write to a new one."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._handle = self._open()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class ReopenableRotatingFileHandler(RotatingFileHandler):
    """The standard library's size rotation, plus ``reopen()`` for SIGHUP after logrotate."""

    def __init__(self, path: Path, max_bytes: int = 0, backups: int = 5) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(
            path, maxBytes=max_bytes, backupCount=max(1, backups), encoding="utf-8", errors="backslashreplace"
        )

    def reopen(self) -> None:
        """Close the stream and open the path again (the handler's own lock keeps writers out)."""
        with self.lock or threading.Lock():
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()


def reopen_log_files(logger: logging.Logger | None = None) -> int:
    """Reopen every rotating file handler of ``logger`` (default: the root logger).

    The monitor calls it on SIGHUP, beside ``EventLog.reopen()``. Returns how many it reopened."""
    handlers = (logger or logging.getLogger()).handlers
    reopened = 0
    for handler in handlers:
        if isinstance(handler, ReopenableRotatingFileHandler):
            handler.reopen()
            reopened += 1
    return reopened
