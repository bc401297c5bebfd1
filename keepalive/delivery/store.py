"""The durable outbox: alerts and their deliveries in SQLite (SPEC section 6).

An alert is committed to ``<state_dir>/outbox.sqlite3`` (WAL, ``synchronous=FULL``) before
anything tries to send it, with one delivery row per (alert, channel, recipient). Each row
keeps its own status (pending, sent, failed), attempt count, next try and last error, so a
restart - even ``kill -9`` - resumes exactly where delivery stopped.

Each (channel, recipient) pair is a queue served in creation order: it is due when its oldest
pending delivery is due, so a newer alert never overtakes an older one that is backing off.

A damaged file must not silence the monitor: ``PRAGMA quick_check`` runs at open, and an
operation that meets a corrupt page (while running) sets the file aside under a unique name,
starts a fresh one, carries over whatever pending deliveries can still be read, and repeats
the operation there - so the alerts in hand are stored, not lost. ``health()`` says whether
the last operation worked, for ``/health`` and ``keepalive_up``.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from keepalive.alerts import Alert, AlertKind, alert_id
from keepalive.scrub import scrub

log = logging.getLogger("keepalive.outbox")

FILENAME = "outbox.sqlite3"
PENDING, SENT, FAILED = "pending", "sent", "failed"
# SQLite's primary result codes for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB).
_CORRUPT_CODES = frozenset({11, 26})

# An e-mail address as mail servers quote it in a refusal ("<bob@corp.example>: ...").
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
Key = tuple[str, str, str]  # (alert_id, channel, recipient): one delivery
Route = tuple[str, str]  # (channel, recipient)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id      TEXT PRIMARY KEY,
    created REAL NOT NULL,
    payload TEXT NOT NULL,
    target  TEXT  -- the alert's target, for the detail view; NULL in rows stored before it
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
CREATE TABLE IF NOT EXISTS moves (
    channel   TEXT NOT NULL,
    recipient TEXT NOT NULL,  -- as configured
    moved_to  TEXT NOT NULL,
    at        REAL NOT NULL,
    PRIMARY KEY (channel, recipient)
);
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One pending delivery of one alert to one recipient."""

    alert: Alert
    channel: str
    recipient: str
    attempts: int  # attempts made so far
    next_try: float  # epoch seconds (wall clock: for display and for after a restart)
    created: float  # when the alert entered the outbox

    @property
    def key(self) -> Key:
        return (self.alert.id, self.channel, self.recipient)


@dataclass(frozen=True, slots=True)
class QueueHead:
    """The oldest pending delivery of one (channel, recipient) queue."""

    channel: str
    recipient: str
    next_try: float  # wall clock
    alert_id: str

    @property
    def key(self) -> Key:
        return (self.alert_id, self.channel, self.recipient)


@dataclass(frozen=True, slots=True)
class ChannelOutcome:
    """How one alert fared on one channel, over its recipients (who they are is not shown)."""

    channel: str
    sent: int
    pending: int
    failed: int
    attempts: int  # the most attempts made for one recipient
    next_try: float | None  # the soonest retry of a pending recipient (wall clock)
    last_error: str | None  # a pending recipient's last error, or a failed one's reason
    sent_at: float | None  # the last delivery (wall clock)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One stored alert of a target and what became of it, channel by channel."""

    alert: Alert
    stored_at: float
    channels: tuple[ChannelOutcome, ...]


def is_corrupt(exc: BaseException) -> bool:
    """A damaged file, as opposed to the environment (locked, read-only, disk full)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _CORRUPT_CODES:
        return True
    # The bare class is what the sqlite3 module raises for a damaged image; its subclasses
    # (OperationalError, IntegrityError ...) are about the environment or the statement.
    return type(exc) is sqlite3.DatabaseError


def _outcome(channel: str, deliveries: list[tuple[Any, ...]]) -> ChannelOutcome:
    """``deliveries``: (status, attempts, next_try, last_error, sent_at, recipient) each."""
    statuses = [status for status, *_ in deliveries]
    waiting = [d for d in deliveries if d[0] == "pending"]
    refused = [d for d in deliveries if d[0] == "failed"]
    errors = [_without_recipient(str(d[3]), d[5]) for d in (*waiting, *refused) if d[3]]
    sent = [float(d[4]) for d in deliveries if d[0] == "sent" and d[4] is not None]
    return ChannelOutcome(
        channel=channel,
        sent=statuses.count("sent"),
        pending=len(waiting),
        failed=len(refused),
        attempts=max(int(d[1]) for d in deliveries),
        next_try=min((float(d[2]) for d in waiting), default=None),
        last_error=errors[0] if errors else None,
        sent_at=max(sent, default=None),
    )


def _without_recipient(error: str, recipient: str) -> str:
    """An error as the open page may show it: secrets scrubbed, and neither the recipient nor
    any other e-mail address in it (a mail server's refusal quotes the address it refused)."""
    text = scrub(error)
    if recipient:
        text = re.sub(re.escape(recipient), "(recipient)", text, flags=re.IGNORECASE)
    return _ADDRESS.sub("(address)", text)


def _add_target_column(db: sqlite3.Connection) -> None:
    """Outboxes made before the detail view listed alerts have no ``target`` column: add it and
    fill it from the payloads (once, at the first open by this version)."""
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(alerts)")}
    if "target" not in columns:
        db.execute("ALTER TABLE alerts ADD COLUMN target TEXT")
        db.execute("UPDATE alerts SET target = json_extract(payload, '$.target') WHERE json_valid(payload)")
    db.execute("CREATE INDEX IF NOT EXISTS alerts_by_target ON alerts (target, created)")


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
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._problem: str | None = None
        self.set_aside: list[Path] = []  # files moved away, oldest first
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                # The environment, not the file: moving the file aside would lose pending
                # alerts for nothing.
                raise
            self._replace(exc)

    # -- opening, and replacing a damaged file ---------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when put() returns, so a power cut cannot lose an alert.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(_SCHEMA)
            _add_target_column(db)
            # A file whose header is intact but whose pages are garbage opens fine and then
            # fails every statement that touches them: look at every page once, now.
            found = [str(row[0]) for row in db.execute("PRAGMA quick_check").fetchall()]
            if found != ["ok"]:
                raise sqlite3.DatabaseError(f"quick_check: {'; '.join(found[:3])}")
        except BaseException:
            db.close()
            raise
        return db

    def _replace(self, exc: BaseException) -> None:
        """Set the damaged file aside, start a fresh one and carry over what can be read."""
        if self._db is not None:
            with_db, self._db = self._db, None
            with_db.close()
        rescued = self._salvage()
        self._move_aside(exc)
        self._db = self._open()
        if rescued:
            now = self._clock()
            with self._transaction() as db:
                for alert, routes in rescued:
                    self._insert(db, alert, routes, now)
            log.warning("outbox carried over pending alerts=%d from the damaged file", len(rescued))

    def _salvage(self) -> list[tuple[Alert, list[Route]]]:
        """Pending deliveries still readable in the damaged file (often none)."""
        found: dict[str, tuple[Alert, list[Route]]] = {}
        try:
            with closing(sqlite3.connect(self.path, timeout=1.0)) as db:
                rows = db.execute(
                    "SELECT a.payload, d.channel, d.recipient FROM deliveries d"
                    " JOIN alerts a ON a.id = d.alert_id WHERE d.status = 'pending' ORDER BY a.rowid"
                ).fetchall()
            for payload, channel, recipient in rows:
                alert = Alert.from_json(payload)
                found.setdefault(alert.id, (alert, []))[1].append((str(channel), str(recipient)))
        except Exception:  # the damage reaches these rows too: nothing to carry over
            return []
        return list(found.values())

    def _move_aside(self, exc: BaseException) -> None:
        """Keep the damaged file for inspection under a name no later set-aside reuses."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self._clock()))
        number = 0
        while True:
            suffix = f".corrupt-{stamp}" + (f"-{number}" if number else "")
            names = [self.path.with_name(self.path.name + extra + suffix) for extra in ("", "-wal", "-shm")]
            if not any(name.exists() for name in names):
                break
            number += 1
        target = self.path.with_name(self.path.name + suffix)
        for extra in ("", "-wal", "-shm"):
            source = self.path.with_name(self.path.name + extra)
            if source.exists():
                source.rename(source.with_name(source.name + suffix))
        self.set_aside.append(target)
        log.error("outbox damaged, set aside as %s and started afresh error=%s", target, scrub(str(exc)))

    # -- running statements ----------------------------------------------------------------------

    def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation`` on the database; on a damaged file, replace it and run it again."""
        with self._lock:
            try:
                try:
                    result = operation(self._connection())
                except sqlite3.DatabaseError as exc:
                    if not is_corrupt(exc):
                        raise
                    self._replace(exc)
                    result = operation(self._connection())
            except Exception as exc:
                self._problem = scrub(f"{type(exc).__name__}: {exc}")
                raise
            self._problem = None
            return result

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise sqlite3.ProgrammingError("the outbox is closed")
        if self._db is None:
            # A replacement that failed half-way (the fresh file could not be created, say on
            # a full disk): try again on every use rather than stay without an outbox.
            self._db = self._open()
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with suppress(sqlite3.Error):  # a damaged file may refuse the rollback too
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        def in_transaction(_: sqlite3.Connection) -> T:
            with self._transaction() as db:
                return operation(db)

        return self._run(in_transaction)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._run(lambda db: db.execute(sql, params).fetchall())

    def health(self) -> tuple[bool, str | None]:
        """``(True, None)`` while the outbox works; ``(False, reason)`` after its last
        operation failed (disk full, unreadable, closed) until one succeeds again."""
        with self._lock:
            if self._closed:
                return False, "outbox closed"
            if self._problem is not None:
                return False, f"outbox: {self._problem}"
            return True, None

    # -- storing ---------------------------------------------------------------------------------

    def _insert(self, db: sqlite3.Connection, alert: Alert, routes: Sequence[Route], now: float) -> bool:
        cursor = db.execute(
            "INSERT OR IGNORE INTO alerts (id, created, payload, target) VALUES (?, ?, ?, ?)",
            (alert.id, now, alert.to_json(), alert.target),
        )
        if cursor.rowcount != 1:
            return False
        db.executemany(
            "INSERT OR IGNORE INTO deliveries (alert_id, channel, recipient, next_try) VALUES (?, ?, ?, ?)",
            [(alert.id, channel, recipient, now + self._group_wait) for channel, recipient in routes],
        )
        return True

    def put(self, alerts: Sequence[Alert], routes: Sequence[Route]) -> int:
        """Store alerts with one pending delivery per (channel, recipient) route, in one
        transaction, committed (on disk) when this returns. Returns how many alerts were new.

        An alert whose id is already stored is ignored, deliveries included, so the same alert
        raised twice (say, once before a crash and once after) is delivered once."""
        now = self._clock()
        unique_routes = list(dict.fromkeys(routes))
        return self._write(lambda db: sum(self._insert(db, alert, unique_routes, now) for alert in alerts))

    # -- reading ---------------------------------------------------------------------------------

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

    def queues(self, channels: Collection[str] | None = None) -> list[QueueHead]:
        """The head (oldest pending delivery) of every recipient's queue."""
        rows = self._query(
            """
            SELECT channel, recipient, next_try, alert_id FROM (
                SELECT d.channel, d.recipient, d.next_try, d.alert_id, ROW_NUMBER() OVER (
                    PARTITION BY d.channel, d.recipient ORDER BY a.rowid) AS position
                FROM deliveries d JOIN alerts a ON a.id = d.alert_id
                WHERE d.status = 'pending'
            ) WHERE position = 1
            """
        )
        return [
            QueueHead(str(channel), str(recipient), float(next_try), str(head))
            for channel, recipient, next_try, head in rows
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
        for payload, created, attempts, next_try, stored_id in rows:
            try:
                alert = Alert.from_json(payload)
            except (ValueError, TypeError, KeyError) as exc:
                # A record this version cannot read would block its queue for ever.
                self.mark_failed([(stored_id, channel, recipient)], f"unreadable alert record: {exc}")
                continue
            found.append(Delivery(alert, channel, recipient, int(attempts), float(next_try), float(created)))
        return found

    def recent_for(self, target: str, limit: int = 10) -> list[AlertRecord]:
        """The newest ``limit`` alerts of ``target`` still in the outbox (delivered ones are kept
        for a while, see DeliveryWorker), newest first, each with its outcome per channel.
        One indexed read under the lock: the delivery threads wait for it only briefly."""

        def read(db: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            alerts = db.execute(
                "SELECT id, created, payload FROM alerts WHERE target = ? ORDER BY created DESC LIMIT ?",
                (target, limit),
            ).fetchall()
            marks = ",".join("?" * len(alerts))
            deliveries = db.execute(
                "SELECT alert_id, channel, recipient, status, attempts, next_try, last_error, sent_at"
                f" FROM deliveries WHERE alert_id IN ({marks}) ORDER BY channel",
                [row[0] for row in alerts],
            ).fetchall()
            return alerts, deliveries

        rows, deliveries = self._run(read)
        per_alert: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
        for alert_key, channel, recipient, *rest in deliveries:
            per_channel = per_alert.setdefault(str(alert_key), {})
            per_channel.setdefault(str(channel), []).append((*rest, str(recipient)))
        records: list[AlertRecord] = []
        for stored_id, created, payload in rows:
            with suppress(ValueError, TypeError, KeyError):  # unreadable: its queue marks it failed
                alert = Alert.from_json(payload)
                outcomes = per_alert.get(str(stored_id), {})
                records.append(
                    AlertRecord(alert, float(created), tuple(_outcome(c, d) for c, d in outcomes.items()))
                )
        return records

    def due(
        self, now: float, channels: Collection[str] | None = None, limit: int = 100
    ) -> dict[tuple[str, str], list[Delivery]]:
        """Pending deliveries of every queue whose head is due at wall time ``now``."""
        return {
            (head.channel, head.recipient): self.pending(head.channel, head.recipient, limit)
            for head in self.queues(channels)
            if head.next_try <= now
        }

    def thread_root(self, channel: str, recipient: str, alert: Alert) -> str | None:
        """The message id the recipient's server gave the first DOWN of ``alert``'s outage,
        so a RECOVERED can be sent as a reply to it; None when unknown."""
        if alert.kind is not AlertKind.RECOVERED:
            return None
        rows = self._query(
            "SELECT d.message_id FROM deliveries d WHERE d.alert_id = ? AND d.channel = ?"
            " AND d.recipient = ? AND d.status = 'sent' AND d.message_id IS NOT NULL",
            (alert_id(alert.target, alert.since, AlertKind.DOWN, 0), channel, recipient),
        )
        return str(rows[0][0]) if rows else None

    # -- recipients that moved -------------------------------------------------------------------

    def record_moves(self, channel: str, moves: Mapping[str, str]) -> None:
        """Remember that these recipients of ``channel`` now live under new ids."""
        now = self._clock()
        rows = [(channel, old, new, now) for old, new in moves.items()]
        self._write(
            lambda db: db.executemany(
                "INSERT INTO moves (channel, recipient, moved_to, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (channel, recipient) DO UPDATE SET moved_to = excluded.moved_to,"
                " at = excluded.at",
                rows,
            )
        )

    def moves(self, channel: str) -> dict[str, str]:
        """Recipients of ``channel`` known to have moved: configured id -> new id."""
        rows = self._query("SELECT recipient, moved_to FROM moves WHERE channel = ?", (channel,))
        return {str(old): str(new) for old, new in rows}

    # -- recording outcomes ----------------------------------------------------------------------

    def mark_sent(self, keys: Sequence[Key], message_id: str | None, sent_at: float | None = None) -> None:
        """Record deliveries the server has accepted (one message: one id)."""
        at = self._clock() if sent_at is None else sent_at
        self._update(
            "UPDATE deliveries SET status = 'sent', attempts = attempts + 1, sent_at = ?, message_id = ?",
            (at, message_id),
            keys,
        )

    def mark_retry(self, keys: Sequence[Key], next_try: float, error: str) -> None:
        """Record a temporary failure: try again at wall time ``next_try``."""
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
        self._write(lambda db: db.executemany(statement, [(*params, *key) for key in keys]))

    def prune(self, before: float) -> int:
        """Forget alerts created before ``before`` that have nothing left to deliver.

        Returns how many alerts went. Keep them long enough that an alert raised again after
        a restart is still recognised (the worker keeps 30 days)."""

        def forget(db: sqlite3.Connection) -> int:
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

        return self._write(forget)

    def close(self) -> None:
        """Close the database. Safe to call more than once; later operations raise."""
        with self._lock:
            self._closed = True
            if self._db is not None:
                db, self._db = self._db, None
                db.close()
