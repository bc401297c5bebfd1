"""Alertmanager channel: the monitor as an Alertmanager client, as Prometheus is (SPEC 17).

Each base URL of ``ALERTMANAGER_URLS`` (every instance of the cluster) is an outbox recipient
of its own: a DOWN or RECOVERED is POSTed to ``<base>/api/v2/alerts`` durably, retried, once.
Every replica sends identical LABELS for one target (``alertname="KeepAliveTargetDown"``,
``target``, ``severity``, the target's ``labels``), so the cluster sees one alert however many
replicas report it, and its gossiped notification log sends one notification.

Alertmanager forgets an alert when its ``endsAt`` passes, so a firing alert is a LEASE:
``endsAt`` = now + 4 x max(interval, 60 s), re-sent every 60 s while the target is down. A
replica that dies stops renewing; with ``MONITOR_COPIES`` >= 2 another replica checking the
same target renews it. A resolution (``endsAt`` = the recovery time) is re-sent for 5 minutes,
so an instance that missed it (restarted, partitioned) still learns it.

The renewals are not alerts the outbox keeps: ``LeaseBook`` holds, per instance and target, the
last alert the instance accepted (written to ``<state_dir>/alertmanager-leases.json`` so a
restart resumes the leases), and one thread re-sends what is due. Only what reached the outbox
is ever leased: an alert held by a silence or maintenance window (SPEC 13, ``AlertPolicy``) is
never sent, here or anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from keepalive.alerts import Alert, AlertKind
from keepalive.notifiers.base import Notifier, NotifyError
from keepalive.notifiers.httpjson import JsonPoster, classify
from keepalive.notifiers.webhook import iso
from keepalive.scrub import scrub
from keepalive.targets import Target, public_url

log = logging.getLogger("keepalive.alertmanager")

ALERTNAME = "KeepAliveTargetDown"
TEST_ALERTNAME = "KeepAliveTest"
# A certificate running out (SPEC 14) is news, not a state: posted once, ending 5 minutes later
# (route it to a receiver with send_resolved: false, as docs/alertmanager/alertmanager.yml does).
EXPIRING_ALERTNAME = "KeepAliveCertificateExpiring"
RENEW_EVERY = 60.0  # seconds between re-sends of a lease
LEASE_FACTOR = 4  # endsAt = now + LEASE_FACTOR x max(interval, MIN_LEASE_BASE)
MIN_LEASE_BASE = 60.0
RESOLVED_FOR = 300.0  # a resolution is re-sent this long after the recovery
MAX_ENTRIES = 100_000  # bound on the book (one per target and instance)
RENEW_BATCH = 500  # alerts per renewal request
FILENAME = "alertmanager-leases.json"


def lease_seconds(interval: float) -> float:
    """How long Alertmanager keeps a firing alert without hearing from us again."""
    return LEASE_FACTOR * max(interval, MIN_LEASE_BASE)


def labels_for(alert: Alert, target: Target | None) -> dict[str, str]:
    """The identity of an alert in Alertmanager: the same on every replica."""
    labels = dict(target.labels) if target is not None else {}
    name = {AlertKind.TEST: TEST_ALERTNAME, AlertKind.EXPIRING: EXPIRING_ALERTNAME}.get(alert.kind, ALERTNAME)
    severity = target.severity if target is not None else "critical"
    labels.update(
        alertname=name, target=alert.target, severity="warning" if name == EXPIRING_ALERTNAME else severity
    )
    return labels


def postable(alert: Alert, target: Target | None, reporter: str, now: float) -> dict[str, Any]:
    """One entry of the ``/api/v2/alerts`` array for ``alert`` as of ``now`` (pure)."""
    interval = target.interval if target is not None else MIN_LEASE_BASE
    if alert.kind is AlertKind.RECOVERED:
        ends = alert.at
        summary = f"{alert.target} recovered"
    elif alert.kind is AlertKind.TEST:
        ends = now + RESOLVED_FOR
        summary = "test alert from the keep-alive monitor"
    elif alert.kind is AlertKind.EXPIRING:
        ends = alert.at + RESOLVED_FOR
        summary = f"{alert.target}: certificate expiring"
    else:
        ends = now + lease_seconds(interval)
        summary = f"{alert.target} is down"
    return {
        "labels": labels_for(alert, target),
        "annotations": {
            "summary": summary,
            "reason": alert.reason,
            "url": alert.url,
            "reporter": reporter,
        },
        "startsAt": iso(alert.since if alert.kind in (AlertKind.DOWN, AlertKind.RECOVERED) else alert.at),
        "endsAt": iso(ends),
        "generatorURL": alert.url if alert.url.startswith(("http://", "https://")) else "",
    }


class LeaseBook:
    """Per instance and target: the last alert that instance accepted, and when it was last
    (re-)sent. Kept in a JSON file beside the outbox; thread-safe."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        # instance -> target -> (alert, wall time of the last accepted send)
        self._entries: dict[str, dict[str, tuple[Alert, float]]] = {}
        # One send at a time per instance, renewals included: a renewal built from a DOWN must
        # not reach Alertmanager after the RECOVERED that replaced it (it would fire again).
        self._guards: dict[str, threading.Lock] = {}
        self._load()

    def guard(self, instance: str) -> threading.Lock:
        """The lock every send to ``instance`` holds, from building the request to recording it."""
        with self._lock:
            return self._guards.setdefault(instance, threading.Lock())

    def current(self, instance: str, alerts: Sequence[Alert]) -> list[Alert]:
        """Those of ``alerts`` that are still the last word on their target at ``instance``."""
        with self._lock:
            book = self._entries.get(instance, {})
            return [a for a in alerts if (entry := book.get(a.target)) is not None and entry[0].id == a.id]

    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            for instance, targets in data.items():
                for name, entry in targets.items():
                    self._entries.setdefault(instance, {})[name] = (
                        Alert.from_json(entry["alert"]),
                        float(entry["sent"]),
                    )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # A damaged book costs at most one renewal period: the next alerts rebuild it.
            log.error("alertmanager lease book unreadable, starting empty error=%s", scrub(str(exc)))
            self._entries = {}

    def _save(self) -> None:
        if self._path is None:
            return
        data = {
            instance: {name: {"alert": a.to_json(), "sent": sent} for name, (a, sent) in targets.items()}
            for instance, targets in self._entries.items()
        }
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".leases-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)
        except OSError as exc:
            log.error("alertmanager lease book not written error=%s", scrub(str(exc)))

    def accepted(self, instance: str, alerts: Sequence[Alert], at: float) -> None:
        """``instance`` accepted ``alerts`` at ``at``: lease (DOWN) or resolve (RECOVERED) them."""
        with self._lock:
            book = self._entries.setdefault(instance, {})
            for alert in alerts:
                if alert.kind not in (AlertKind.DOWN, AlertKind.RECOVERED):
                    continue  # TEST and EXPIRING are posted once, never leased
                current = book.get(alert.target)
                # An older alert retried late must not replace a newer one (a RECOVERED by its
                # DOWN); of two raised at the same time, the RECOVERED is the later word.
                if current is not None and _order(current[0]) > _order(alert):
                    continue
                if len(book) >= MAX_ENTRIES and alert.target not in book:
                    continue
                book[alert.target] = (alert, at)
            self._save()

    def due(self, now: float, checked: Callable[[str], bool] = lambda name: True) -> dict[str, list[Alert]]:
        """Per instance, the alerts whose lease or resolution is due for a re-send. Dropped:
        resolutions older than ``RESOLVED_FOR``, and targets this replica no longer checks
        (removed from the file, or moved to another replica's share): their lease runs out in
        Alertmanager unless the replica that checks them now renews it."""
        out: dict[str, list[Alert]] = {}
        changed = False
        with self._lock:
            for instance, book in self._entries.items():
                for name, (alert, sent) in list(book.items()):
                    if not checked(name) or (
                        alert.kind is AlertKind.RECOVERED and now - alert.at > RESOLVED_FOR
                    ):
                        del book[name]
                        changed = True
                    elif now - sent >= RENEW_EVERY:
                        out.setdefault(instance, []).append(alert)
            if changed:
                self._save()
        return out

    def renewed(self, instance: str, alerts: Sequence[Alert], at: float) -> None:
        """A re-send of ``alerts`` to ``instance`` was accepted at ``at``."""
        with self._lock:
            book = self._entries.get(instance, {})
            for alert in alerts:
                current = book.get(alert.target)
                if current is not None and current[0].id == alert.id:
                    book[alert.target] = (alert, at)
            self._save()

    def firing(self) -> dict[str, list[str]]:
        """Per instance, the targets leased as firing (for tests and the status page)."""
        with self._lock:
            return {
                instance: sorted(n for n, (a, _) in book.items() if a.kind is AlertKind.DOWN)
                for instance, book in self._entries.items()
            }


def _order(alert: Alert) -> tuple[float, int]:
    return (alert.at, 1 if alert.kind is AlertKind.RECOVERED else 0)


_books: dict[Path, LeaseBook] = {}
_books_lock = threading.Lock()


def book_at(state_dir: Path) -> LeaseBook:
    """The process's one LeaseBook for ``state_dir`` (a reload builds a new notifier; the
    leases it renews are the same)."""
    path = (state_dir / FILENAME).resolve()
    with _books_lock:
        book = _books.get(path)
        if book is None:
            book = _books[path] = LeaseBook(path)
        return book


class AlertmanagerNotifier(Notifier):
    """POSTs alerts to every Alertmanager instance, and renews their leases (see the module doc).

    ``targets``: the targets this replica checks, for their severity, labels and interval; a
    lease on any other target (removed, or moved to another replica's share) is not renewed."""

    channel = "alertmanager"

    def __init__(
        self,
        urls: Sequence[str],
        targets: Sequence[Target],
        reporter: str,
        *,
        book: LeaseBook | None = None,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        deadline: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not urls:
            raise ValueError("AlertmanagerNotifier needs at least one URL (ALERTMANAGER_URLS)")
        self._urls = {public_url(url.rstrip("/")): url.rstrip("/") for url in urls}
        self._targets: Mapping[str, Target] = {t.name: t for t in targets}
        self._reporter = reporter
        self._book = book if book is not None else LeaseBook(None, clock)
        self._poster = JsonPoster(session, timeout, deadline)
        self._clock = clock

    @property
    def book(self) -> LeaseBook:
        return self._book

    def recipients(self) -> Sequence[str]:
        """One per instance: its base URL (password masked)."""
        return tuple(self._urls)

    def send(self, recipient: str, alerts: Sequence[Alert], reply_to: str | None = None) -> str | None:
        """POST ``alerts`` (one array) to one instance; on success they are leased there."""
        with self._book.guard(recipient):
            self._post(recipient, alerts)
            self._book.accepted(recipient, alerts, self._clock())
        return None

    def renew(self) -> int:
        """Re-send every lease and resolution that is due, to instances still configured;
        returns how many alerts were renewed. A failure waits for the next round."""
        renewed = 0
        for instance, alerts in self._book.due(self._clock(), self._targets.__contains__).items():
            if instance not in self._urls:
                continue
            with self._book.guard(instance):
                # An alert sent since due() was read replaces its lease: renew only the rest.
                alerts = self._book.current(instance, alerts)
                if not alerts:
                    continue
                try:
                    # A switch failing can leave thousands down: bounded requests, not one 5 MB body.
                    for start in range(0, len(alerts), RENEW_BATCH):
                        self._post(instance, alerts[start : start + RENEW_BATCH])
                except NotifyError as exc:
                    log.warning(
                        "alertmanager renewal failed instance=%s alerts=%d reason=%s",
                        instance,
                        len(alerts),
                        exc.reason,
                    )
                    continue
                self._book.renewed(instance, alerts, self._clock())
            renewed += len(alerts)
        return renewed

    def _post(self, recipient: str, alerts: Sequence[Alert]) -> None:
        now = self._clock()
        body = [postable(a, self._targets.get(a.target), self._reporter, now) for a in alerts]
        status, retry_header, answer = self._poster.post(
            f"{self._urls[recipient]}/api/v2/alerts", json.dumps(body).encode(), {}
        )
        classify(status, retry_header, answer, now)


class LeaseRenewer(threading.Thread):
    """Every ``period`` seconds, calls ``renew()`` on the Alertmanager channel among the
    current notifiers (``current()``: a reload may add, change or remove it) until stopped."""

    def __init__(self, current: Callable[[], Sequence[Notifier]], period: float = 5.0) -> None:
        super().__init__(name="alertmanager-leases", daemon=True)
        self._current = current
        self._period = period
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self._period):
            try:
                for notifier in self._current():
                    if isinstance(notifier, AlertmanagerNotifier):
                        notifier.renew()
            except Exception as exc:  # a bug here must not end the renewals for good
                log.error("alertmanager renewal error=%s", scrub(f"{type(exc).__name__}: {exc}"))

    def stop(self) -> None:
        self._stopping.set()
