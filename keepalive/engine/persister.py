"""The alert path's engine end: raised alerts into the durable outbox, target states into the
state file, and how well both are going (for /health and ``keepalive_up``).

Order matters: the state file must never run ahead of the outbox. A state that says
"announced" is saved only once the outbox holds that alert, so a crash between the two at
worst announces an alert twice (its id makes the outbox store it once), never loses it.

Disk work runs in a worker thread (``asyncio.to_thread``); everything else on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from keepalive.alerts import Alert
from keepalive.engine.announcer import Reporter
from keepalive.engine.statestore import Loaded

log = logging.getLogger("keepalive.monitor")

# State-file writes are coalesced to at most one a second; alerts never wait for that.
STATE_SAVE_EVERY = 1.0
# How often the outbox's figures (depth, oldest, health) are read, in a thread: SQLite and its
# lock, held by a delivery thread during an fsync, stay off the event loop.
OUTBOX_FIGURES_EVERY = 1.0
# After a failed outbox store, wait this long before the next try.
RETRY_STORE_AFTER = 1.0


class OutboxLike(Protocol):
    def put(self, alerts: Sequence[Alert], routes: Sequence[tuple[str, str]]) -> int: ...
    def depth(self) -> int: ...
    def oldest_pending_created(self) -> float | None: ...
    def health(self) -> tuple[bool, str | None]:
        """(True, None) while the outbox works; (False, why) after an operation failed."""
        ...


class StateStoreLike(Protocol):
    path: Path

    def load(self) -> Loaded: ...
    def save(self, records: dict[str, dict[str, Any]]) -> None: ...


class Failing:
    """Since when (monotonic) something has kept failing, and its last error; empty when fine."""

    __slots__ = ("error", "since")

    def __init__(self) -> None:
        self.since: float | None = None
        self.error = ""

    def failed(self, now: float, error: str) -> None:
        if self.since is None:
            self.since = now
        self.error = error

    def ok(self) -> None:
        self.since, self.error = None, ""

    def for_longer_than(self, grace: float, now: float) -> float | None:
        """Seconds it has been failing, when that is more than ``grace``; else None."""
        if self.since is None or now - self.since <= grace:
            return None
        return now - self.since


class Persister:
    """Holds raised alerts until the outbox has them, and saves target states."""

    def __init__(
        self,
        store: StateStoreLike,
        outbox: OutboxLike,
        reporter: Reporter,
        *,
        records: Callable[[], dict[str, dict[str, Any]]],
        routes: Callable[[], list[tuple[str, str]]],
        stored: Callable[[], None],
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.reporter = reporter
        self._records = records
        self._routes = routes
        self._stored = stored
        # Told, on the loop, which alerts the outbox now holds (SPEC 15: a DOWN's on_down starts
        # only once its alert is safe). It must return at once.
        self.after_store: Callable[[Sequence[Alert]], None] | None = None
        # Called on the loop right before each state save; the work it returns runs in the
        # save's thread BEFORE the state file is written. The holds file (SPEC 13) uses it: a
        # held DOWN must be on disk before a state that says "announced", or a kill -9 between
        # the two writes loses it.
        self.before_state: Callable[[], Callable[[], None] | None] | None = None
        self._wall = wall
        self._now = monotonic
        self._pending: list[Alert] = []
        self._in_flight = 0  # alerts handed to outbox.put that it has not confirmed yet
        self._dirty = False
        self._wake = asyncio.Event()
        self._last_save = -float("inf")
        self.saving = Failing()
        self.storing = Failing()
        self.outbox_broken = Failing()
        self.outbox_depth = 0
        self._outbox_oldest: float | None = None

    # ---------------------------------------------------------------- what the engine calls

    def queue(self, alert: Alert) -> None:
        """Store ``alert`` in the outbox as soon as possible (and the state right after)."""
        self._pending.append(alert)
        self._wake.set()

    def dirty(self) -> None:
        """Target states changed: save them (coalesced to one write a second)."""
        self._dirty = True
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def unstored(self) -> int:
        """Alerts queued that the outbox does not hold yet (waiting, or being stored now)."""
        return len(self._pending) + self._in_flight

    def oldest_undelivered_age(self) -> float | None:
        oldest = self._outbox_oldest
        return None if oldest is None else max(0.0, self._wall() - oldest)

    def problems(self, grace: float) -> list[str]:
        """Why the alert path is not working, one line each, once a failure lasted ``grace`` s."""
        now = self._now()
        found = []
        if (lasted := self.storing.for_longer_than(grace, now)) is not None:
            found.append(
                f"storing alerts in the outbox has failed for {lasted:.0f} s "
                f"({len(self._pending)} waiting): {self.storing.error}"
            )
        if (lasted := self.outbox_broken.for_longer_than(grace, now)) is not None:
            found.append(f"the outbox has been failing for {lasted:.0f} s: {self.outbox_broken.error}")
        if (lasted := self.saving.for_longer_than(grace, now)) is not None:
            found.append(
                f"saving state to {self.store.path} has failed for {lasted:.0f} s: {self.saving.error}"
            )
        return found

    # ---------------------------------------------------------------- background tasks

    async def run(self) -> None:
        """Flush alerts at once and state at most once a second, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending:
                await self._store_alerts()
                # An alert changes what a restart must know (announced or not): save at once,
                # not on the coalescing schedule below.
                await self._save()
            if self._dirty:
                wait = self._last_save + STATE_SAVE_EVERY - self._now()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        # New alerts cut the wait short; the state save then follows them.
                        # asyncio.timeout, not wait_for: on 3.11 a wake-up at the moment of a
                        # cancel made wait_for swallow the cancel, and stop() hung forever.
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
                        continue
                await self._save()

    async def watch_outbox(self) -> None:
        """Read the outbox's figures every OUTBOX_FIGURES_EVERY seconds, until cancelled."""

        def read() -> tuple[int, float | None, tuple[bool, str | None]]:
            return self.outbox.depth(), self.outbox.oldest_pending_created(), self.outbox.health()

        while True:
            try:
                self.outbox_depth, self._outbox_oldest, (works, why) = await asyncio.to_thread(read)
            except Exception as exc:
                works, why = False, f"reading its figures failed: {exc}"
                log.error("reading the outbox figures failed: %s", exc)
            if works:
                self.outbox_broken.ok()
            else:
                self.outbox_broken.failed(self._now(), why or "unusable")
            await asyncio.sleep(OUTBOX_FIGURES_EVERY)

    async def flush(self, force_state: bool) -> None:
        """Store what is pending and save the state now (shutdown)."""
        if self._pending:
            await self._store_alerts()
        if self._dirty or force_state:
            await self._save()

    # ---------------------------------------------------------------- the work

    async def _store_alerts(self) -> None:
        alerts, self._pending = self._pending, []
        routes = self._routes()
        self._in_flight = len(alerts)
        try:
            await asyncio.to_thread(self.outbox.put, alerts, routes)
        except asyncio.CancelledError:
            # A stop while the put runs in its thread: whether it committed is unknown, so the
            # stop's flush stores them again (their ids make the outbox keep them once) before
            # the state that says "announced" is saved.
            self._pending[:0] = alerts
            self._in_flight = 0
            raise
        except Exception as exc:
            # Keep them and try again on the next flush; nothing is dropped.
            self.storing.failed(self._now(), str(exc))
            log.error("storing %d alert(s) in the outbox failed: %s", len(alerts), exc)
            self._pending[:0] = alerts
            self._in_flight = 0
            await asyncio.sleep(RETRY_STORE_AFTER)
            self._wake.set()
            return
        self._in_flight = 0
        self.storing.ok()
        for alert in alerts:
            self.reporter.report(
                "alert_queued",
                "alert queued",
                logging.DEBUG,
                alert_id=alert.id,
                kind=alert.kind.value,
                target=alert.target,
                recipients=[f"{c}:{r}" for c, r in routes],
            )
        self._stored()
        if self.after_store is not None:
            try:
                self.after_store(alerts)
            except Exception:  # a remediation bug must never cost the alert path
                log.exception("the after-store hook failed")

    async def _save(self) -> None:
        if self._pending:
            # These alerts' states say "announced" but the outbox does not hold them yet: the
            # state file must never run ahead of the outbox, or a crash would lose them.
            self._dirty = True
            return
        self._dirty = False
        self._last_save = self._now()
        records = self._records()
        first = self.before_state() if self.before_state is not None else None

        def write() -> None:
            if first is not None:
                first()
            self.store.save(records)

        try:
            await asyncio.to_thread(write)
        except (OSError, ValueError) as exc:
            self._dirty = True
            self.saving.failed(self._now(), str(exc))
            log.error("saving state to %s failed: %s", self.store.path, exc)
            self._wake.set()  # try again in STATE_SAVE_EVERY, changes or not
        else:
            self.saving.ok()
