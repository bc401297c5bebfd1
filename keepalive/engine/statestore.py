"""Target states on disk, so a restart mid-outage neither re-announces nor forgets a recovery."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("keepalive.state")

STATE_VERSION = 1


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    # The rename itself is only durable once the directory entry is flushed.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateStore:
    """``<state_dir>/state.json``: {"version", "saved_at", "targets": {name: record}}."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.json"

    def load(self) -> tuple[dict[str, dict[str, Any]], str | None]:
        """The saved records by target name, and a warning when the file had to be set aside."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}, None
        except OSError as exc:
            return {}, f"state file {self.path} unreadable ({exc.strerror}); starting with fresh state"
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not isinstance(data.get("targets"), dict):
                raise ValueError("not a state document")
            targets: dict[str, dict[str, Any]] = {
                str(k): v for k, v in data["targets"].items() if isinstance(v, dict)
            }
            return targets, None
        except ValueError as exc:
            aside = self.path.with_name(f"state.json.corrupt-{int(time.time())}")
            try:
                os.replace(self.path, aside)
            except OSError:
                aside = self.path
            return {}, f"state file {self.path} is corrupt ({exc}); moved to {aside.name}, starting fresh"

    def save(self, records: dict[str, dict[str, Any]]) -> None:
        document = {"version": STATE_VERSION, "saved_at": time.time(), "targets": records}
        write_atomically(self.path, json.dumps(document, separators=(",", ":")).encode())
