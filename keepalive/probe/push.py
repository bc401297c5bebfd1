"""Push targets (SPEC section 14): jobs that report in, instead of being polled.

A job calls ``/ping/<push_token>`` (or ``/ping/<push_token>/fail`` with a reason) on the
monitor's endpoint (keepalive.web.ping); the ``PushBoard`` keeps, per token, when it last
pinged and whether it reported a failure. The ``PushProbe`` is then checked on the target's
schedule like any other: it fails when the last ping reported a failure, or when no ping came
for ``interval + grace`` seconds (``no ping for 6m (expected every 5m)``).

A ping costs a dict lookup and two stores on the loop: thousands of cron jobs may ping. An
unknown token is counted (``keepalive_push_unknown_total``) and nothing else: it may be
someone's typo of a secret, so it is never logged.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from keepalive.probe.answer import Failure
from keepalive.probe.detail import Detail
from keepalive.targets import Target

MAX_FAIL_REASON = 200
PINGS_FILE = "push_pings.json"  # under MONITOR_STATE_DIR
FAILED_WITHOUT_REASON = "the job reported a failure"


def short_duration(seconds: float, exact: bool = True) -> str:
    """``45s``, ``1m30s``, ``6m``, ``1h30m``, ``2d3h``: the compact form durations are written
    in. ``exact=False`` drops the seconds past the first minute (an elapsed time)."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs and exact else f"{minutes}m"
    return f"{secs}s"


def fail_reason(body: bytes) -> str:
    """The first line of a /fail body, printable and at most MAX_FAIL_REASON characters."""
    first = body[: MAX_FAIL_REASON * 4].decode("utf-8", "replace").splitlines()
    line = first[0] if first else ""
    line = "".join(" " if ch < " " or "\x7f" <= ch <= "\x9f" else ch for ch in line).strip()
    return line[:MAX_FAIL_REASON] or FAILED_WITHOUT_REASON


@dataclass(slots=True)
class PushRecord:
    """What one push target has reported."""

    name: str
    last_ping: float | None = None  # epoch seconds
    failure: str | None = None  # the reason of the last ping, when it was a /fail
    pings_total: int = 0


class PushBoard:
    """Pings by token; shared by the web route (writes) and the probe (reads), both on the loop."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_token: dict[str, PushRecord] = {}
        self.unknown_total = 0
        # Before the first ping, silence is measured from when the board learned the target.
        self._known_since: dict[str, float] = {}
        # Called on the loop after each known ping: (target name, when, the /fail reason or None).
        self.on_ping: Callable[[str, float, str | None], None] | None = None

    def set_targets(self, targets: Iterable[Target]) -> None:
        """The push targets now configured (start and every reload). A token kept by the same
        name keeps its record; everything else starts afresh."""
        now = self._clock()
        fresh: dict[str, PushRecord] = {}
        since: dict[str, float] = {}
        for target in targets:
            token = target.push_token
            if token is None:
                continue
            record = self._by_token.get(token)
            if record is None or record.name != target.name:
                record = PushRecord(target.name)
            fresh[token] = record
            since[token] = self._known_since.get(token, now) if token in self._by_token else now
        self._by_token = fresh
        self._known_since = since

    def ping(self, token: str, failure: str | None = None) -> bool:
        """Record a ping (``failure``: the job's reason, for /fail). False for an unknown token."""
        record = self._by_token.get(token)
        if record is None:
            self.unknown_total += 1
            return False
        now = self._clock()
        record.last_ping = now
        record.failure = failure
        record.pings_total += 1
        if self.on_ping is not None:
            self.on_ping(record.name, now, failure)
        return True

    def record(self, token: str) -> PushRecord | None:
        return self._by_token.get(token)

    def known_since(self, token: str) -> float:
        return self._known_since.get(token, self._clock())

    def save(self, path: Path) -> None:
        """Write each push target's last ping (by name: tokens are secrets) to ``path``, so a
        restart measures a job's silence from its last ping, not from the restart. Run it off
        the event loop; raises OSError."""
        document = {r.name: r.last_ping for r in self._by_token.values() if r.last_ping is not None}
        tmp = path.with_suffix(".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    def restore(self, path: Path) -> int:
        """Read what ``save`` wrote (call after ``set_targets``); returns the pings restored. A
        missing or bad file restores nothing: silence is then measured from now."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        if not isinstance(document, dict):
            return 0
        now = self._clock()
        restored = 0
        for record in self._by_token.values():
            at = document.get(record.name)
            if record.last_ping is None and isinstance(at, int | float) and not isinstance(at, bool):
                record.last_ping = min(float(at), now)
                restored += 1
        return restored


class PushProbe:
    """Push targets: judged from the board, no I/O."""

    def __init__(self, board: PushBoard, clock: Callable[[], float] = time.time) -> None:
        self._board = board
        self._clock = clock

    def handles(self, target: Target) -> bool:
        return target.push_token is not None

    async def run(self, target: Target) -> str | None:
        token = target.push_token
        assert token is not None
        record = self._board.record(token)
        if record is None:
            raise Failure("push target not registered")  # a defect: set_targets was not called
        if record.failure is not None:
            return record.failure
        grace = target.grace if target.grace is not None else target.interval
        last = record.last_ping if record.last_ping is not None else self._board.known_since(token)
        silent = self._clock() - last
        if silent > target.interval + grace:
            expected = short_duration(target.interval)
            return f"no ping for {short_duration(silent, exact=False)} (expected every {expected})"
        return None

    def detail(self, target: Target) -> Detail | None:
        record = self._board.record(target.push_token or "")
        return Detail(last_ping=record.last_ping if record is not None else None)

    async def close(self) -> None:
        return None
