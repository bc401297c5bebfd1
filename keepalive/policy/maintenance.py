"""Recurring maintenance windows from the targets file's ``[[maintenance]]`` tables (SPEC 13).

    [[maintenance]]
    name = "nightly-backup"
    targets = ["db", "api-*"]        # globs; omitted: every target
    start = "02:00"                  # wall-clock time in `timezone`
    duration = "45m"
    days = ["sun", "wed"]            # omitted: every day
    timezone = "Europe/Madrid"       # IANA name; omitted: the machine's local zone

A window opens once on each of its days, at ``start`` on that day's wall clock in its zone,
and lasts ``duration`` of real time. That one rule settles the hard cases:
- across midnight: a window starting 23:30 for 1h covers 00:00-00:30 of the next day, and
  ``days`` names the day it starts on;
- spring forward (Europe/Madrid, last Sunday of March, 02:00 -> 03:00): a start inside the
  skipped hour is read with the offset before the change (02:30 opens at 03:30 CEST, as the
  clock shows it), so the window still happens, for its whole duration;
- fall back (last Sunday of October, 03:00 -> 02:00): a start inside the repeated hour is its
  first occurrence, and the window opens once, not twice;
- a 45-minute window is 45 minutes on every day of the year.
"""

from __future__ import annotations

import math
import re
import time as systime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keepalive.errors import ConfigError
from keepalive.policy.durations import ALLOWED, parse_duration
from keepalive.policy.globs import compile_globs, read_globs

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WINDOW_KEYS = frozenset({"name", "targets", "start", "duration", "days", "timezone"})
# A window is a recurring quiet hour, not a holiday: a longer one is a mistake in the file.
MAX_WINDOW = 7 * 86400.0
MAX_WINDOWS = 1000
_START = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    targets: tuple[str, ...] | None  # None: every target
    start: time
    duration: float  # seconds of real time
    days: frozenset[int]  # date.weekday() numbers; empty: every day
    timezone: str | None  # IANA name; None: the machine's local zone
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _zone: tzinfo | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", compile_globs(self.targets) if self.targets else None)
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone) if self.timezone else None)

    def covers(self, target: str) -> bool:
        return self._pattern is None or self._pattern.fullmatch(target) is not None

    def _local(self, epoch: float) -> datetime:
        """Wall-clock time at ``epoch`` in the window's zone (naive)."""
        if self._zone is None:
            return datetime.fromtimestamp(epoch)
        return datetime.fromtimestamp(epoch, self._zone).replace(tzinfo=None)

    def _epoch(self, wall: datetime) -> float:
        """The epoch of a wall-clock time (fold=0: before a change, see the module docstring)."""
        if self._zone is None:
            return wall.timestamp()  # mktime: the local zone with its daylight-saving rules
        return wall.replace(tzinfo=self._zone).timestamp()

    def opening(self, day: date) -> float | None:
        """When the window opens on ``day`` (epoch), or None when ``day`` is not one of its days."""
        if self.days and day.weekday() not in self.days:
            return None
        return self._epoch(datetime.combine(day, self.start))

    def open_until(self, now: float) -> float | None:
        """When the occurrence open at ``now`` closes (epoch), or None when none is open."""
        today = self._local(now).date()
        # An occurrence that opened up to ``duration`` ago (plus a day of zone slack) may be open.
        back = math.ceil(self.duration / 86400) + 1
        ends = []
        for offset in range(back + 1):
            opened = self.opening(today - timedelta(days=offset))
            if opened is not None and opened <= now < opened + self.duration:
                ends.append(opened + self.duration)
        return max(ends) if ends else None

    def next_opening(self, now: float) -> float | None:
        """The next time the window opens after ``now`` (within two weeks), for the page."""
        today = self._local(now).date()
        for offset in range(15):
            opened = self.opening(today + timedelta(days=offset))
            if opened is not None and opened > now:
                return opened
        return None

    def why(self) -> str:
        return f"maintenance {self.name}"


def _zone(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ConfigError(f"{where}: timezone={value!r} is invalid: expected an IANA name like Europe/Madrid")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{where}: timezone={value!r} is invalid: not an IANA time zone name (like Europe/Madrid, UTC)"
        ) from None
    return value


def read_window(raw: Any, index: int, source: str) -> Window:
    """One ``[[maintenance]]`` table, validated; ConfigError names the window."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [[maintenance]] entry {index} must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or not name.isprintable() or len(name) > 100:
        raise ConfigError(f"{source}: [[maintenance]] entry {index} has no name (a unique name is required)")
    where = f"{source}: maintenance {name!r}"
    unknown = sorted(set(raw) - WINDOW_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(WINDOW_KEYS))})")
    targets = None
    if "targets" in raw:
        try:
            targets = read_globs(raw["targets"], "targets")
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    start_text = raw.get("start")
    match = _START.match(start_text) if isinstance(start_text, str) else None
    if match is None:
        raise ConfigError(
            f"{where}: start={start_text!r} is invalid: expected a 24-hour time like 02:00 or 23:30"
        )
    duration_text = raw.get("duration")
    try:
        if not isinstance(duration_text, str):
            raise ValueError
        duration = parse_duration(duration_text)
    except ValueError:
        raise ConfigError(f"{where}: duration={duration_text!r} is invalid: expected {ALLOWED}") from None
    if duration > MAX_WINDOW:
        raise ConfigError(f"{where}: duration={duration_text!r} is invalid: expected at most 7d")
    days: set[int] = set()
    if "days" in raw:
        value = raw["days"]
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{where}: days={value!r} is invalid: expected a list of {', '.join(DAYS)}")
        for item in items:
            word = item.strip().lower()[:3] if isinstance(item, str) else None
            if word not in DAYS or len(item.strip()) not in (3, len(_FULL.get(word, ""))):
                raise ConfigError(f"{where}: days has {item!r}: expected a list of {', '.join(DAYS)}")
            days.add(DAYS.index(word))
    return Window(
        name=name,
        targets=targets,
        start=time(int(match.group(1)), int(match.group(2))),
        duration=duration,
        days=frozenset(days),
        timezone=_zone(where, raw.get("timezone")),
    )


_FULL = {
    "mon": "monday",
    "tue": "tuesday",
    "wed": "wednesday",
    "thu": "thursday",
    "fri": "friday",
    "sat": "saturday",
    "sun": "sunday",
}


def read_windows(entries: Any, source: str) -> tuple[Window, ...]:
    """Every ``[[maintenance]]`` table of a targets file; names must be unique."""
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: maintenance must be [[maintenance]] tables")
    if len(entries) > MAX_WINDOWS:
        raise ConfigError(f"{source}: {len(entries)} [[maintenance]] tables: at most {MAX_WINDOWS}")
    windows = [read_window(raw, index, source) for index, raw in enumerate(entries, start=1)]
    seen: set[str] = set()
    for window in windows:
        if window.name in seen:
            raise ConfigError(f"{source}: maintenance {window.name!r}: duplicate name")
        seen.add(window.name)
    return tuple(windows)


class Calendar:
    """The windows in force, asked per target: which window holds it now, and until when."""

    def __init__(self, windows: tuple[Window, ...] = (), clock: Callable[[], float] = systime.time) -> None:
        self.windows = windows
        self.clock = clock
        self._cached: tuple[int, list[tuple[Window, float]]] | None = None

    def open_for(self, target: str, now: float | None = None) -> tuple[Window, float] | None:
        """The open window covering ``target`` that closes last, with its closing time."""
        best: tuple[Window, float] | None = None
        for window, until in self.open_windows(self.clock() if now is None else now):
            if window.covers(target) and (best is None or until > best[1]):
                best = (window, until)
        return best

    def open_now(self, now: float | None = None) -> Mapping[str, float]:
        """Each open window's name and closing time."""
        return {
            window.name: until for window, until in self.open_windows(self.clock() if now is None else now)
        }

    def open_windows(self, now: float) -> list[tuple[Window, float]]:
        # Asked once per target per snapshot: the zone arithmetic is done once per second.
        second = math.floor(now)
        if self._cached is not None and self._cached[0] == second:
            return self._cached[1]
        found = []
        for window in self.windows:
            until = window.open_until(now)
            if until is not None:
                found.append((window, until))
        self._cached = (second, found)
        return found
