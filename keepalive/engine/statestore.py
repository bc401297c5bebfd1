"""Target states on disk, so a restart mid-outage neither re-announces nor forgets a recovery.

The file is input like any other: every record is validated field by field on load
(``TargetState.from_dict``). A bad record is set aside on its own, the rest are kept; a file
that is not a state document at all is set aside whole. Either way the log says whose outage
memory was lost, because that is what a set-aside costs: an outage announced before the
restart gets no RECOVERED, and is announced DOWN again if it goes on.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keepalive.state import TargetState

STATE_VERSION = 1
# Bad records named in the one log line; the set-aside file holds them all.
SHOWN = 20
LOST_MEMORY = (
    "their outage memory is lost: an outage announced before this start gets no RECOVERED "
    "and is announced DOWN again if it goes on"
)


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


def reserve_aside(path: Path, kind: str, clock: float | None = None) -> Path:
    """A new, empty, uniquely named file beside ``path`` (``state.json.corrupt-20260126T013000Z``,
    then ``...-2``, ...): two set-asides in one second never overwrite each other."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if clock is None else clock))
    base = f"{path.name}.{kind}-{stamp}"
    for n in range(1, 10_000):
        candidate = path.with_name(base if n == 1 else f"{base}-{n}")
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        return candidate
    raise OSError(f"no free name for {base}")


@dataclass(frozen=True, slots=True)
class SavedTarget:
    url: str  # as shown (no password); the endpoint the state belongs to
    state: TargetState


@dataclass(slots=True)
class Loaded:
    targets: dict[str, SavedTarget] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # one line each, for the log and events


class StateStore:
    """``<state_dir>/state.json``: {"version", "saved_at", "targets": {name: record}}."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "state.json"

    def load(self) -> Loaded:
        """The saved states by target name, and what had to be set aside (never raises)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Loaded()
        except OSError as exc:
            return Loaded(
                problems=[
                    f"state file {self.path} unreadable ({exc.strerror}); starting with fresh state: "
                    f"every target's outage memory is lost"
                ]
            )
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not isinstance(data.get("targets"), dict):
                raise ValueError("not a state document")
        except (ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            return Loaded(problems=[self._set_aside_file(why)])
        loaded = Loaded()
        bad: dict[str, Any] = {}
        reasons: list[str] = []
        for name, record in data["targets"].items():
            try:
                loaded.targets[name] = _saved(record)
            except ValueError as exc:
                bad[name] = record
                reasons.append(f"{name!r} ({exc})")
        if bad:
            loaded.problems.append(self._set_aside_records(bad, reasons))
        return loaded

    def _set_aside_file(self, why: str) -> str:
        try:
            aside = reserve_aside(self.path, "corrupt")
            os.replace(self.path, aside)
            where = f"moved to {aside.name}"
        except OSError as exc:
            where = f"could not be moved aside ({exc})"
        return (
            f"state file {self.path} is corrupt ({why}); {where}, starting fresh: "
            f"every target's outage memory is lost"
        )

    def _set_aside_records(self, bad: dict[str, Any], reasons: list[str]) -> str:
        try:
            aside = reserve_aside(self.path, "rejected")
            aside.write_text(json.dumps({"targets": bad}, default=str))
            where = f"set aside in {aside.name}"
        except (OSError, ValueError) as exc:
            where = f"dropped (could not be set aside: {exc})"
        return (
            f"state of {len(bad)} target(s) unreadable, {where}; the others are kept; "
            f"{LOST_MEMORY}: {', '.join(reasons[:SHOWN])}"
            + (f" and {len(reasons) - SHOWN} more" if len(reasons) > SHOWN else "")
        )

    def save(self, records: dict[str, dict[str, Any]]) -> None:
        document = {"version": STATE_VERSION, "saved_at": time.time(), "targets": records}
        # allow_nan=False: a state file this process cannot read back is never written.
        write_atomically(self.path, json.dumps(document, separators=(",", ":"), allow_nan=False).encode())


def _saved(record: Any) -> SavedTarget:
    if not isinstance(record, dict):
        raise ValueError("not a record")
    url = record.get("url")
    if not isinstance(url, str):
        raise ValueError(f"url={url!r} is not a text")
    return SavedTarget(url, TargetState.from_dict(record))
