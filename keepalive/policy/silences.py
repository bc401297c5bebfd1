"""The silence book: ad-hoc silences (SPEC 13), kept in ``MONITOR_STATE_DIR/silences.json``.

A silence holds the notifications (never the checks) of every target whose name matches one of
its globs, from when it is made until ``ends_at``. The end is required and capped by
``MAX_SILENCE``, so a forgotten silence cannot hide an outage for ever: it expires on its own,
and until then it is listed with who made it, why and until when.

The book is shared by the web API (a worker thread writes the file), the Telegram commands and
the hold policy on the event loop; a lock keeps each change whole. A change is on disk (written
atomically, fsynced) before it is acknowledged, so a restart keeps every silence it confirmed.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keepalive.engine.statestore import reserve_aside, write_atomically
from keepalive.policy.durations import format_duration, parse_duration
from keepalive.policy.globs import compile_globs, read_globs

SILENCES_FILE = "silences.json"
DEFAULT_MAX_SILENCE = 7 * 86400.0
# Bounds on what one client may store: the book is read on every hold decision.
MAX_SILENCES = 1000
# Globs over all silences: the snapshot matches every target against all of them (as one
# regular expression, compiled when the book changes, in the writer's thread). 300 silences of
# 100 long globs each made that compile take ~60 s and each snapshot ~1.5 s, on the event loop.
MAX_BOOK_GLOBS = 1000
MAX_COMMENT = 500
MAX_AUTHOR = 100
FILE_VERSION = 1
CENTURY = 100 * 365 * 86400.0


class SilenceError(ValueError):
    """A silence request that cannot be honoured; the text says why, in one line."""


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    targets: tuple[str, ...]  # globs
    starts_at: float  # epoch seconds
    ends_at: float
    comment: str
    created_by: str
    created_at: float
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", compile_globs(self.targets))

    def covers(self, target: str) -> bool:
        return self._pattern.fullmatch(target) is not None

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def why(self) -> str:
        """How a held target says it is held: ``silence 3f2a9c1e (disk swap) until 14:00Z``."""
        until = datetime.fromtimestamp(self.ends_at, UTC).strftime("%Y-%m-%dT%H:%MZ")
        comment = f" ({self.comment})" if self.comment else ""
        return f"silence {self.short_id}{comment} by {self.created_by} until {until}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "targets": list(self.targets),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }

    def to_json(self, now: float) -> dict[str, Any]:
        """As the API shows it: times in ISO-8601 UTC, and what is left of it."""
        return {
            "id": self.id,
            "targets": list(self.targets),
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at),
            "remaining": format_duration(max(0.0, self.ends_at - now)),
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
        }

    def event_fields(self) -> dict[str, Any]:
        """What the silence_created and silence_expired events say of it, the same wherever it
        was made (API, command line, Telegram): before, Telegram wrote ``ends_at`` in its own
        message format."""
        return {
            "id": self.id,
            "targets": list(self.targets),
            "ends_at": iso(self.ends_at),
            "comment": self.comment,
            "created_by": self.created_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Silence:
        """Raises ValueError (or KeyError/TypeError) on a record that is not a silence."""
        numbers = [data["starts_at"], data["ends_at"], data["created_at"]]
        if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
            raise ValueError("times are not numbers")
        texts = [data["id"], data["comment"], data["created_by"]]
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("id, comment or created_by is not a text")
        return cls(
            id=data["id"],
            targets=read_globs(data["targets"], "targets"),
            starts_at=float(data["starts_at"]),
            ends_at=float(data["ends_at"]),
            comment=data["comment"][:MAX_COMMENT],
            created_by=data["created_by"][:MAX_AUTHOR],
            created_at=float(data["created_at"]),
        )


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_when(text: str) -> float:
    """An ISO-8601 time (``2026-01-26T14:00:00Z``, ``...+01:00``) as epoch seconds; a time
    without a zone is refused rather than guessed."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SilenceError(
            f"ends_at={text!r} is invalid: expected ISO-8601 like 2026-01-26T14:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise SilenceError(f"ends_at={text!r} is invalid: it needs a zone (Z or +01:00)")
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class SilenceRequest:
    targets: tuple[str, ...]
    ends_at: float
    comment: str
    created_by: str


def _text(body: Mapping[str, Any], key: str, limit: int, default: str) -> str:
    value = body.get(key, default)
    if value is None:
        value = default
    if not isinstance(value, str) or len(value) > limit:
        raise SilenceError(f"{key} is invalid: expected a text of at most {limit} characters")
    # One line, printable: it is shown on the page, in the log and in Telegram answers.
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def read_request(body: Any, now: float, max_silence: float, who: str = "api") -> SilenceRequest:
    """A POST /api/silences body (``targets``, ``duration`` or ``ends_at``, ``comment``,
    ``created_by``) validated; raises SilenceError with one line saying what is wrong."""
    if not isinstance(body, dict):
        raise SilenceError(
            'expected a JSON object like {"targets": "db-*", "duration": "2h", "comment": "..."}'
        )
    unknown = sorted(set(body) - {"targets", "duration", "ends_at", "comment", "created_by"})
    if unknown:
        raise SilenceError(
            f"unknown field {unknown[0]!r} (allowed: targets, duration, ends_at, comment, created_by)"
        )
    if "targets" not in body:
        raise SilenceError('targets is missing: expected a glob like "db-*" or a list of globs')
    try:
        targets = read_globs(body["targets"], "targets")
    except ValueError as exc:
        raise SilenceError(str(exc)) from None
    has_duration = body.get("duration") is not None
    has_end = body.get("ends_at") is not None
    if has_duration == has_end:
        raise SilenceError(
            "expected exactly one of duration (like 2h) or ends_at (ISO-8601): a silence must end"
        )
    if has_duration:
        duration = body["duration"]
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            seconds = float(duration)
        elif isinstance(duration, str):
            try:
                seconds = parse_duration(duration)
            except ValueError as exc:
                raise SilenceError(f"duration={exc}") from None
        else:
            raise SilenceError(f"duration={duration!r} is invalid: expected a duration like 2h or 1h30m")
        if not 0 < seconds < float("inf"):
            raise SilenceError(f"duration={duration!r} is invalid: expected more than zero")
        ends_at = now + seconds
    else:
        if not isinstance(body["ends_at"], str):
            raise SilenceError("ends_at is invalid: expected ISO-8601 like 2026-01-26T14:00:00Z")
        ends_at = parse_when(body["ends_at"])
        if ends_at <= now:
            raise SilenceError(f"ends_at={body['ends_at']!r} is invalid: it is in the past")
    if ends_at - now > max_silence + 1:
        lasts = ends_at - now
        # duration=1e300 must not print a 300-digit number of days.
        shown = format_duration(lasts) if lasts < CENTURY else "more than 100 years"
        raise SilenceError(
            f"the silence would last {shown}: at most MAX_SILENCE="
            f"{format_duration(max_silence)} (a longer quiet is a maintenance window)"
        )
    return SilenceRequest(
        targets=targets,
        ends_at=ends_at,
        comment=_text(body, "comment", MAX_COMMENT, ""),
        created_by=_text(body, "created_by", MAX_AUTHOR, who) or who,
    )


class SilenceBook:
    """Every silence not yet expired, on disk under the state directory."""

    def __init__(
        self,
        state_dir: Path,
        *,
        max_silence: float = DEFAULT_MAX_SILENCE,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.path = state_dir / SILENCES_FILE
        self.max_silence = max_silence
        self.clock = clock
        self._lock = threading.Lock()
        self._silences: tuple[Silence, ...] = ()
        # Every stored silence's globs as one pattern (None: no silence), built where the book
        # changes so the event loop never compiles it; expired ones in it only cost a miss.
        self.union: re.Pattern[str] | None = None
        self.problems: list[str] = []
        self.on_change = on_change
        self._load()

    # ------------------------------------------------------------------ reading

    def all(self) -> tuple[Silence, ...]:
        """Every silence not yet expired (those still to start included), soonest end first."""
        now = self.clock()
        return tuple(sorted((s for s in self._silences if s.ends_at > now), key=lambda s: s.ends_at))

    def active(self, now: float | None = None) -> tuple[Silence, ...]:
        moment = self.clock() if now is None else now
        return tuple(s for s in self._silences if s.active(moment))

    def covering(self, target: str, now: float | None = None) -> Silence | None:
        """The active silence that holds ``target`` longest, or None."""
        moment = self.clock() if now is None else now
        found = [s for s in self._silences if s.active(moment) and s.covers(target)]
        return max(found, key=lambda s: s.ends_at) if found else None

    def find(self, silence_id: str) -> Silence | None:
        """By full id or by an unambiguous prefix of at least 4 characters (as shown: 8)."""
        wanted = silence_id.strip().lower()
        if len(wanted) < 4:
            return None
        found = [s for s in self._silences if s.id.startswith(wanted)]
        return found[0] if len(found) == 1 else None

    # ------------------------------------------------------------------ changes

    def add(self, request: SilenceRequest) -> Silence:
        """Store a silence (on disk before this returns). Raises SilenceError when the book is
        full, OSError when the file cannot be written (nothing is changed then)."""
        now = self.clock()
        silence = Silence(
            id=secrets.token_hex(8),
            targets=request.targets,
            starts_at=now,
            ends_at=request.ends_at,
            comment=request.comment,
            created_by=request.created_by,
            created_at=now,
        )
        with self._lock:
            kept = tuple(s for s in self._silences if s.ends_at > now)
            if len(kept) >= MAX_SILENCES:
                raise SilenceError(
                    f"{len(kept)} silences are active: at most {MAX_SILENCES}; remove some first"
                )
            globs = sum(len(s.targets) for s in kept) + len(silence.targets)
            if globs > MAX_BOOK_GLOBS:
                raise SilenceError(
                    f"the active silences would hold {globs} globs: at most {MAX_BOOK_GLOBS}; "
                    "use fewer, wider globs (db-*) or remove some silences first"
                )
            self._write((*kept, silence))
        self._changed()
        return silence

    def create(self, targets: Any, duration: str, comment: str = "", created_by: str = "api") -> Silence:
        """``add`` from the pieces a command gives (``/silence db-* 2h disk swap``)."""
        body = {"targets": targets, "duration": duration, "comment": comment, "created_by": created_by}
        return self.add(read_request(body, self.clock(), self.max_silence, created_by))

    def remove(self, silence_id: str) -> Silence | None:
        """End a silence now; returns it, or None when no silence has that id (or prefix)."""
        with self._lock:
            found = self.find(silence_id)
            if found is None:
                return None
            now = self.clock()
            self._write(tuple(s for s in self._silences if s.id != found.id and s.ends_at > now))
        self._changed()
        return found

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _write(self, silences: tuple[Silence, ...]) -> None:
        document = {"version": FILE_VERSION, "silences": [s.to_dict() for s in silences]}
        write_atomically(self.path, json.dumps(document, separators=(",", ":")).encode())
        self.union = _union(silences)
        self._silences = silences

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self.problems.append(f"{self.path} cannot be read: {exc.strerror}")
            return
        kept: list[Silence] = []
        try:
            document = json.loads(data)
            records = document["silences"]
            if not isinstance(records, list):
                raise TypeError("silences is not a list")
            bad = 0
            for record in records[:MAX_SILENCES]:
                try:
                    kept.append(Silence.from_dict(record))
                except (KeyError, TypeError, ValueError):
                    bad += 1
            if bad:
                self.problems.append(f"{self.path}: {bad} unreadable silence record(s) dropped")
        except (ValueError, KeyError, TypeError) as exc:
            aside = reserve_aside(self.path, "corrupt")
            self.path.replace(aside)
            self.problems.append(f"{self.path} is not a silence file ({exc}); set aside as {aside.name}")
        self.union = _union(kept)
        self._silences = tuple(kept)


def _union(silences: Sequence[Silence]) -> re.Pattern[str] | None:
    globs = [g for s in silences for g in s.targets]
    return compile_globs(globs) if globs else None
