"""The durable outbox (SQLite) and the thread that delivers what it holds (SPEC section 6).

An alert is committed to ``<state_dir>/outbox.sqlite3`` (WAL, ``synchronous=FULL``) before
anything tries to send it, with one delivery row per (alert, channel, recipient). Each row
keeps its own status (pending, sent, failed), attempt count, next try and last error, so a
restart - even ``kill -9`` - resumes exactly where delivery stopped.

Each (channel, recipient) pair is a queue served in creation order: it is due when its oldest
pending delivery is due, so a newer alert never overtakes an older one that is backing off,
and whatever piles up behind a failing head goes out as one digest once it clears.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keepalive.alerts import Alert
from keepalive.events import EventLog
from keepalive.notifiers.base import Notifier, NotifyError
from keepalive.scrub import scrub

log = logging.getLogger("keepalive.outbox")

FILENAME = "outbox.sqlite3"
PENDING, SENT, FAILED = "pending", "sent", "failed"

Key = tuple[str, str, str]  # (alert_id, channel, recipient): one delivery

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id      TEXT PRIMARY KEY,
    created REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id   TEXT NOT NULL REFERENCES alerts(id),
    channel    TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_try   REAL NOT NULL,
    last_error TEXT,
    sent_at    REAL,
    message_id TEXT,
    PRIMARY KEY (alert_id, channel, recipient)
);
CREATE INDEX IF NOT EXISTS deliveries_pending
    ON deliveries (channel, recipient) WHERE status = 'pending';
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One pending delivery of one alert to one recipient."""

    alert: Alert
    channel: str
    recipient: str
    attempts: int  # attempts made so far
    next_try: float  # epoch seconds
    created: float  # when the alert entered the outbox

    @property
    def key(self) -> Key:
        return (self.alert.id, self.channel, self.recipient)


class Outbox:
    """Alerts and their deliveries in SQLite. Thread-safe: one connection behind one lock."""

    def __init__(
        self, state_dir: Path, clock: Callable[[], float] = time.time, group_wait: float = 0.0
    ) -> None:
        """``group_wait``: a new delivery becomes due this many seconds after it is stored, so
        alerts raised together (many targets behind one failed switch) leave as one digest."""
        self.path = Path(state_dir) / FILENAME
        self._clock = clock
        self._group_wait = group_wait
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            # OperationalError (locked, read-only, disk full) is the environment, not the file:
            # moving the file aside would lose pending alerts for nothing.
            if isinstance(exc, sqlite3.OperationalError):
                raise
            self._set_aside(exc)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when put() returns, so a power cut cannot lose an alert.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, exc: Exception) -> None:
        """Keep an unreadable file for inspection and start an empty outbox, rather than stop
        the monitor from alerting at all."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                source.rename(source.with_name(f"{source.name}.corrupt-{stamp}"))
        log.error("outbox unreadable, set aside path=%s error=%s", self.path, scrub(str(exc)))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def put(self, alerts: Sequence[Alert], routes: Sequence[tuple[str, str]]) -> int:
        """Store alerts with one pending delivery per (channel, recipient) route, in one
        transaction, committed (on disk) when this returns. Returns how many alerts were new.

        An alert whose id is already stored is ignored, deliveries included, so the same alert
        raised twice (say, once before a crash and once after) is delivered once."""
        now = self._clock()
        unique_routes = list(dict.fromkeys(routes))
        new = 0
        with self._transaction() as db:
            for alert in alerts:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO alerts (id, created, payload) VALUES (?, ?, ?)",
                    (alert.id, now, alert.to_json()),
                )
                if cursor.rowcount != 1:
                    continue
                new += 1
                db.executemany(
                    "INSERT OR IGNORE INTO deliveries (alert_id, channel, recipient, next_try)"
                    " VALUES (?, ?, ?, ?)",
                    [
                        (alert.id, channel, recipient, now + self._group_wait)
                        for channel, recipient in unique_routes
                    ],
                )
        return new

    def depth(self) -> int:
        """Pending deliveries, all channels."""
        return int(self._query("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")[0][0])

    def oldest_pending_created(self) -> float | None:
        """When the oldest alert still waiting for a delivery entered the outbox, or None."""
        row = self._query(
            "SELECT MIN(a.created) FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
            " WHERE d.status = 'pending'"
        )[0]
        return None if row[0] is None else float(row[0])

    def counts(self) -> dict[str, int]:
        """Deliveries by status: ``{"pending": n, "sent": n, "failed": n}``."""
        found = dict(self._query("SELECT status, COUNT(*) FROM deliveries GROUP BY status"))
        return {status: int(found.get(status, 0)) for status in (PENDING, SENT, FAILED)}

    def pending_by_channel(self) -> dict[str, int]:
        """Pending deliveries per channel (channels with none are absent)."""
        rows = self._query(
            "SELECT channel, COUNT(*) FROM deliveries WHERE status = 'pending' GROUP BY channel"
        )
        return {str(channel): int(count) for channel, count in rows}

    def queues(self, channels: Collection[str] | None = None) -> list[tuple[str, str, float]]:
        """``(channel, recipient, next_try)`` for every recipient with pending deliveries, where
        ``next_try`` is that of its oldest pending delivery (the head of its queue)."""
        rows = self._query(
            """
            SELECT channel, recipient, next_try FROM (
                SELECT d.channel, d.recipient, d.next_try, ROW_NUMBER() OVER (
                    PARTITION BY d.channel, d.recipient ORDER BY a.rowid) AS position
                FROM deliveries d JOIN alerts a ON a.id = d.alert_id
                WHERE d.status = 'pending'
            ) WHERE position = 1
            """
        )
        return [
            (str(channel), str(recipient), float(next_try))
            for channel, recipient, next_try in rows
            if channels is None or channel in channels
        ]

    def pending(self, channel: str, recipient: str, limit: int = 100) -> list[Delivery]:
        """The oldest ``limit`` pending deliveries to one recipient, in creation order."""
        rows = self._query(
            "SELECT a.payload, a.created, d.attempts, d.next_try, a.id"
            " FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
            " WHERE d.channel = ? AND d.recipient = ? AND d.status = 'pending'"
            " ORDER BY a.rowid LIMIT ?",
            (channel, recipient, limit),
        )
        found: list[Delivery] = []
        for payload, created, attempts, next_try, alert_id in rows:
            try:
                alert = Alert.from_json(payload)
            except (ValueError, TypeError, KeyError) as exc:
                # A record this version cannot read would block its queue for ever.
                self.mark_failed([(alert_id, channel, recipient)], f"unreadable alert record: {exc}")
                continue
            found.append(Delivery(alert, channel, recipient, int(attempts), float(next_try), float(created)))
        return found

    def due(
        self, now: float, channels: Collection[str] | None = None, limit: int = 100
    ) -> dict[tuple[str, str], list[Delivery]]:
        """Pending deliveries of every queue whose head is due, by (channel, recipient)."""
        return {
            (channel, recipient): self.pending(channel, recipient, limit)
            for channel, recipient, next_try in self.queues(channels)
            if next_try <= now
        }

    def mark_sent(self, keys: Sequence[Key], message_id: str | None, sent_at: float | None = None) -> None:
        """Record deliveries the server has accepted (one message: one id)."""
        at = self._clock() if sent_at is None else sent_at
        self._update(
            "UPDATE deliveries SET status = 'sent', attempts = attempts + 1, sent_at = ?, message_id = ?",
            (at, message_id),
            keys,
        )

    def mark_retry(self, keys: Sequence[Key], next_try: float, error: str) -> None:
        """Record a temporary failure: try again at ``next_try``."""
        self._update(
            "UPDATE deliveries SET attempts = attempts + 1, next_try = ?, last_error = ?",
            (next_try, scrub(error)),
            keys,
        )

    def mark_failed(self, keys: Sequence[Key], reason: str) -> None:
        """Record a permanent failure: never tried again."""
        self._update(
            "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_error = ?",
            (scrub(reason),),
            keys,
        )

    def _update(self, sql: str, params: tuple[Any, ...], keys: Sequence[Key]) -> None:
        # Only pending rows change: a delivery recorded as sent or failed is final.
        statement = sql + " WHERE alert_id = ? AND channel = ? AND recipient = ? AND status = 'pending'"
        with self._transaction() as db:
            db.executemany(statement, [(*params, *key) for key in keys])

    def prune(self, before: float) -> int:
        """Forget alerts created before ``before`` that have nothing left to deliver.

        Returns how many alerts went. Keep them long enough that an alert raised again after
        a restart is still recognised (the worker keeps 30 days)."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM deliveries WHERE alert_id IN (SELECT a.id FROM alerts a"
                " WHERE a.created < ? AND NOT EXISTS (SELECT 1 FROM deliveries d"
                " WHERE d.alert_id = a.id AND d.status = 'pending'))",
                (before,),
            )
            cursor = db.execute(
                "DELETE FROM alerts WHERE created < ?"
                " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = alerts.id)",
                (before,),
            )
            return int(cursor.rowcount)

    def close(self) -> None:
        """Close the database (later calls raise)."""
        with self._lock:
            self._db.close()


def _fresh_stats() -> dict[str, Any]:
    return {
        "last_success": None,
        "last_error": None,
        "last_error_at": None,
        "sent_total": 0,
        "failed_total": 0,
    }


class DeliveryWorker(threading.Thread):
    """Delivers the outbox: one short-lived sending thread per due (channel, recipient) queue,
    so a slow SMTP server never holds back a Telegram alert, and one queue is never sent to
    by two threads at once.

    A queue with more than ``digest_after`` pending alerts gets one digest message; otherwise
    its alerts go one by one, oldest first, stopping at the first failure. Temporary failures
    back off exponentially per delivery (``base_delay`` doubling up to ``max_delay``), or wait
    exactly the server's ``retry_after``; permanent ones are recorded as failed.

    Exactly-once: success is committed right after the server accepts the message. The only
    way to send an alert twice is a crash (or a stop that gives up on a hung send) between the
    server's answer and that commit; a retry or an ordinary restart never repeats a message.
    Should the database refuse that commit, this process remembers the delivery as sent and
    records it once the database recovers; only a crash before then reopens the window.

    Events (one per message; a digest is one message): every one carries ``alert_ids``,
    ``targets``, ``kind`` (the alert's kind, or ``"digest"``), ``channel``, ``recipient``,
    ``attempt`` and ``digest_size`` (alerts in the message), and then
        ``alert_sent``    ``message_id``
        ``alert_retry``   ``reason``, ``next_try_in`` (seconds)
        ``alert_failed``  ``reason``
    """

    MAX_WAIT = 60.0  # re-examine the queues at least this often (clock changes, lost wake-ups)
    ERROR_PAUSE = 5.0  # after a database error, leave the queue alone this long
    PRUNE_EVERY = 3600.0
    MAX_UNEXPECTED = 5  # attempts that end in an unexpected exception before giving up

    def __init__(
        self,
        outbox: Outbox,
        notifiers: Sequence[Notifier],
        events: EventLog,
        digest_after: int,
        clock: Callable[[], float] = time.time,
        *,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        max_digest: int = 100,
        max_lanes: int = 8,
        keep_for: float = 30 * 86400.0,
    ) -> None:
        super().__init__(name="delivery", daemon=True)
        self._outbox = outbox
        self._events = events
        self._digest_after = max(1, digest_after)
        self._clock = clock
        self._base_delay = base_delay
        self._max_delay = max_delay
        # A digest must hold more alerts than digest_after, or it would never be chosen.
        self._batch = max(max_digest, self._digest_after + 1)
        self._max_lanes = max(1, max_lanes)
        self._keep_for = keep_for
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._notifiers: dict[str, Notifier] = {}
        self._lanes: dict[tuple[str, str], threading.Thread] = {}
        # Queues whose last sending thread hit an error (the database, most likely): left alone
        # for a moment, so a broken disk does not turn into a busy loop.
        self._paused: dict[tuple[str, str], float] = {}
        # Accepted by the server but not yet recorded (the database refused the write): never
        # sent again by this process, recorded as soon as the database takes it.
        self._unrecorded: dict[Key, tuple[str | None, float]] = {}
        self._stats: dict[str, dict[str, Any]] = {}
        self.set_notifiers(notifiers)

    # -- control, from any thread ------------------------------------------------------------

    def wake(self) -> None:
        """Look at the outbox now (call after ``Outbox.put``)."""
        self._wakeup.set()

    def stop(self, timeout: float) -> None:
        """Stop scheduling and let sends in flight finish within ``timeout`` seconds.

        A send still hanging after that is abandoned (its thread is a daemon); its delivery
        stays pending and goes again after a restart."""
        self._stopping.set()
        self._wakeup.set()
        deadline = time.monotonic() + timeout
        if self.is_alive():
            self.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            lanes = list(self._lanes.items())
        for _, lane in lanes:
            lane.join(max(0.0, deadline - time.monotonic()))
        hung = [f"{channel}:{recipient}" for (channel, recipient), lane in lanes if lane.is_alive()]
        if hung:
            log.warning("delivery stopped with sends in flight, left pending queues=%s", ",".join(hung))

    def set_notifiers(self, notifiers: Sequence[Notifier]) -> None:
        """Replace the channels (SIGHUP reload). Deliveries to a channel that is gone stay
        pending; sends in flight finish with the notifier they started with."""
        with self._lock:
            self._notifiers = {notifier.channel: notifier for notifier in notifiers}
            for channel in self._notifiers:
                self._stats.setdefault(channel, _fresh_stats())
        self._wakeup.set()

    def set_digest_after(self, digest_after: int) -> None:
        """Apply a reloaded DIGEST_AFTER."""
        with self._lock:
            self._digest_after = max(1, digest_after)
            self._batch = max(self._batch, self._digest_after + 1)
        self._wakeup.set()

    def channel_stats(self) -> dict[str, dict[str, Any]]:
        """Per channel: last_success, last_error, last_error_at, sent_total, failed_total
        (totals count alerts, since this worker started)."""
        with self._lock:
            return {channel: dict(stats) for channel, stats in self._stats.items()}

    # -- the scheduling thread ---------------------------------------------------------------

    def run(self) -> None:
        next_prune = 0.0
        while not self._stopping.is_set():
            # Clear before looking, so a put() during the look still wakes the next wait.
            self._wakeup.clear()
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self.PRUNE_EVERY
                    self._outbox.prune(self._clock() - self._keep_for)
                wait = self._schedule()
            except Exception as exc:  # a database error must not end delivery for good
                log.error("outbox scheduling failed error=%s", scrub(f"{type(exc).__name__}: {exc}"))
                wait = 5.0
            self._wakeup.wait(wait)

    def _schedule(self) -> float:
        """Start a sending thread for each due queue; return how long to wait before looking again."""
        with self._lock:
            notifiers = dict(self._notifiers)
        now = self._clock()
        wait = self.MAX_WAIT
        for channel, recipient, next_try in self._outbox.queues(notifiers):
            if self._stopping.is_set():
                break
            if recipient not in notifiers[channel].recipients():
                # Removed from the settings by a reload: never message it again. Its deliveries
                # stay pending (visible in the outbox figures) in case it is added back.
                continue
            queue = (channel, recipient)
            resume = max(next_try - now, self._paused.get(queue, 0.0) - time.monotonic())
            if resume > 0:
                wait = min(wait, resume)
                continue
            with self._lock:
                # A busy queue or a full house: the ending thread wakes us.
                if queue in self._lanes or len(self._lanes) >= self._max_lanes:
                    continue
                lane = threading.Thread(
                    target=self._lane,
                    args=(notifiers[channel], channel, recipient),
                    name=f"delivery-{channel}",
                    daemon=True,
                )
                self._lanes[queue] = lane
            try:
                lane.start()
            except RuntimeError as exc:  # out of threads: try again on the next pass
                with self._lock:
                    self._lanes.pop(queue, None)
                log.error("cannot start a delivery thread error=%s", exc)
                wait = min(wait, self.ERROR_PAUSE)
        return max(0.0, wait)

    # -- the sending threads -----------------------------------------------------------------

    def _lane(self, notifier: Notifier, channel: str, recipient: str) -> None:
        try:
            self._deliver(notifier, channel, recipient)
        except Exception as exc:  # e.g. the database refused a write; try again a bit later
            log.error(
                "delivery failed channel=%s recipient=%s error=%s",
                channel,
                recipient,
                scrub(f"{type(exc).__name__}: {exc}"),
            )
            with self._lock:
                self._paused[(channel, recipient)] = time.monotonic() + self.ERROR_PAUSE
        finally:
            with self._lock:
                self._lanes.pop((channel, recipient), None)
            self._wakeup.set()

    def _deliver(self, notifier: Notifier, channel: str, recipient: str) -> None:
        batch = self._outbox.pending(channel, recipient, self._batch)
        with self._lock:
            owed = {d.key: self._unrecorded[d.key] for d in batch if d.key in self._unrecorded}
        for key, (message_id, sent_at) in owed.items():
            self._outbox.mark_sent([key], message_id, sent_at)
            with self._lock:
                self._unrecorded.pop(key, None)
        batch = [d for d in batch if d.key not in owed]
        if not batch or batch[0].next_try > self._clock():
            return
        messages = self._split(notifier, batch) if len(batch) > self._digest_after else [[d] for d in batch]
        for message in messages:
            if self._stopping.is_set() or not self._send(notifier, channel, recipient, message):
                return

    @staticmethod
    def _split(notifier: Notifier, batch: list[Delivery]) -> list[list[Delivery]]:
        """Digests that each name every alert they carry: a channel with a length limit says
        how many fit (``digest_capacity``); the rest go in the next digest."""
        capacity = getattr(notifier, "digest_capacity", None)
        messages: list[list[Delivery]] = []
        rest = batch
        while rest:
            fits = len(rest) if capacity is None else max(1, int(capacity([d.alert for d in rest])))
            messages.append(rest[:fits])
            rest = rest[fits:]
        return messages

    def _send(self, notifier: Notifier, channel: str, recipient: str, message: list[Delivery]) -> bool:
        """Send one message; record the outcome. True when it was accepted."""
        alerts = [delivery.alert for delivery in message]
        keys = [delivery.key for delivery in message]
        attempt = max(delivery.attempts for delivery in message) + 1
        fields: dict[str, Any] = {
            "alert_ids": [alert.id for alert in alerts],
            "targets": list(dict.fromkeys(alert.target for alert in alerts)),
            "kind": str(alerts[0].kind) if len(alerts) == 1 else "digest",
            "channel": channel,
            "recipient": recipient,
            "attempt": attempt,
            "digest_size": len(alerts),
        }
        try:
            message_id = notifier.send(recipient, alerts)
        except NotifyError as exc:
            reason = scrub(exc.reason) or "unknown error"
            if exc.permanent:
                self._failed(keys, fields, reason)
            else:
                self._retry(keys, fields, reason, exc.retry_after, attempt)
            return False
        except Exception as exc:
            # A bug in a channel must cost one retry, not the delivery thread.
            reason = scrub(f"{type(exc).__name__}: {exc}")
            log.error("notifier raised unexpectedly channel=%s\n%s", channel, scrub(traceback.format_exc()))
            if attempt >= self.MAX_UNEXPECTED:
                # The same message failing the same way is not going to heal, and it blocks
                # every later alert to this recipient: record it failed instead.
                self._failed(keys, fields, f"internal error: {reason}")
            else:
                self._retry(keys, fields, reason, None, attempt)
            return False
        now = self._clock()
        recorded = True
        try:
            self._outbox.mark_sent(keys, message_id, now)
        except Exception as exc:
            recorded = False
            log.error("alert sent but not recorded, will record later error=%s", scrub(str(exc)))
            with self._lock:
                self._unrecorded.update({key: (message_id, now) for key in keys})
        with self._lock:
            stats = self._stats.setdefault(channel, _fresh_stats())
            stats["last_success"] = now
            stats["sent_total"] += len(keys)
        self._events.emit("alert_sent", **fields, message_id=message_id)
        # The monitor already wrote the alert itself to the log ("ALERT DOWN ..."); saying the
        # log channel "sent" it too would only double every alert line.
        log.log(
            logging.DEBUG if channel == "log" else logging.INFO,
            "alert sent channel=%s recipient=%s kind=%s alerts=%d attempt=%d message_id=%s",
            channel,
            recipient,
            fields["kind"],
            len(keys),
            attempt,
            message_id,
        )
        return recorded

    def backoff(self, attempt: int) -> float:
        """Seconds before the next try after failed attempt number ``attempt`` (1-based)."""
        return float(min(self._base_delay * 2 ** min(attempt - 1, 40), self._max_delay))

    def _retry(
        self, keys: list[Key], fields: dict[str, Any], reason: str, retry_after: float | None, attempt: int
    ) -> None:
        # The server's own retry_after wins over our schedule, in both directions.
        delay = max(0.0, retry_after) if retry_after is not None else self.backoff(attempt)
        now = self._clock()
        self._outbox.mark_retry(keys, now + delay, reason)
        self._note_error(fields["channel"], reason, now)
        self._events.emit("alert_retry", **fields, reason=reason, next_try_in=round(delay, 3))
        log.warning(
            "alert delivery will retry channel=%s recipient=%s attempt=%d in=%.3gs reason=%s",
            fields["channel"],
            fields["recipient"],
            attempt,
            delay,
            reason,
        )

    def _failed(self, keys: list[Key], fields: dict[str, Any], reason: str) -> None:
        now = self._clock()
        self._outbox.mark_failed(keys, reason)
        self._note_error(fields["channel"], reason, now, failed=len(keys))
        self._events.emit("alert_failed", **fields, reason=reason)
        log.error(
            "alert delivery failed for good channel=%s recipient=%s attempt=%d reason=%s",
            fields["channel"],
            fields["recipient"],
            fields["attempt"],
            reason,
        )

    def _note_error(self, channel: str, reason: str, at: float, failed: int = 0) -> None:
        with self._lock:
            stats = self._stats.setdefault(channel, _fresh_stats())
            stats["last_error"] = reason
            stats["last_error_at"] = at
            stats["failed_total"] += failed
