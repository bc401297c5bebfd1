"""The events file: one JSON object a line, failures and state changes only."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keepalive.logfile import RotatingFile
from keepalive.scrub import scrub

log = logging.getLogger("keepalive.events")


def iso(ts: float | None) -> str | None:
    """UTC ISO-8601 with milliseconds and a Z, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventLog:
    """Appends events to a JSON-lines file. Thread-safe; every line is scrubbed of secrets.

    ``path=None`` keeps events in memory only (``--once`` and unit tests use it). The file is
    rotated when it would pass ``max_bytes`` (0: never), keeping ``backups`` old files, and
    ``reopen()`` (on SIGHUP) follows a rename by logrotate."""

    def __init__(
        self, path: Path | None, clock: Any = time.time, max_bytes: int = 0, backups: int = 5
    ) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._file = None if path is None else RotatingFile(path, max_bytes, backups)
        self.recent: list[dict[str, Any]] = []  # bounded, for tests and the status page

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event. Never raises: losing an event line must not cost an alert."""
        try:
            record = {"ts": iso(self._clock()), "event": event, **fields}
            line = scrub(json.dumps(record, ensure_ascii=False, default=str))
            with self._lock:
                self.recent.append(record)
                del self.recent[:-200]
                if self._file is not None:
                    self._file.write(line + "\n")
        except Exception as exc:  # a full disk, say
            log.error("events file write failed path=%s event=%s error=%s", self._path, event, exc)

    def reopen(self) -> None:
        """Open the file again by name (after logrotate moved it). Never raises."""
        try:
            with self._lock:
                if self._file is not None:
                    self._file.reopen()
        except OSError as exc:
            log.error("events file reopen failed path=%s error=%s", self._path, exc)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
