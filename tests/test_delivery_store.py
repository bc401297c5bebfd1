"""The outbox store on a damaged disk (issue 9 defect 6), its health, and what it remembers."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import pytest

from keepalive.alerts import Alert, AlertKind
from keepalive.delivery.store import Outbox, Route
from keepalive.delivery.worker import DeliveryWorker
from keepalive.events import EventLog
from tests.fakes.delivery_fixtures import Scripted, make_alert, wait_until

PAGE = 4096  # SQLite's default page size: page 1 holds the header and the schema


def fill(box: Outbox, count: int = 60) -> list[Alert]:
    """Enough alerts (with long reasons) that the file spans many pages."""
    alerts = [make_alert(f"held-{i:02}", reason="x" * 300) for i in range(count)]
    box.put(alerts, [("log", "log"), ("telegram", "7")])
    return alerts


def checkpoint(path: Path) -> None:
    """Move everything from the WAL into the main file, where the garbage will land."""
    with closing(sqlite3.connect(path)) as other:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def garble_pages(path: Path) -> None:
    """Garbage over pages 2..n: the header (page 1) stays intact, so the file still opens."""
    size = path.stat().st_size
    assert size > 4 * PAGE, "too few pages to damage"
    with path.open("r+b") as handle:
        handle.seek(PAGE)
        handle.write(os.urandom(size - PAGE))


def test_a_file_with_garbage_pages_is_set_aside_at_open_and_a_fresh_one_works(tmp_path: Path) -> None:
    first = Outbox(tmp_path)
    fill(first)
    first.close()
    garble_pages(tmp_path / "outbox.sqlite3")

    box = Outbox(tmp_path)
    try:
        assert [path.name for path in box.set_aside] == [
            path.name for path in tmp_path.glob("outbox.sqlite3.corrupt-*")
        ]
        assert len(box.set_aside) == 1
        assert box.put([make_alert("after")], [("log", "log")]) == 1
        assert box.depth() == 1
        assert box.health() == (True, None)
    finally:
        box.close()


def test_pages_damaged_while_running_set_the_file_aside_and_keep_the_alerts_in_hand(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    try:
        fill(box)
        checkpoint(box.path)
        garble_pages(box.path)
        in_hand = [make_alert("in-hand-1"), make_alert("in-hand-2")]

        assert box.put(in_hand, [("log", "log"), ("telegram", "7")]) == 2

        assert len(box.set_aside) == 1 and box.set_aside[0].exists()
        assert [d.alert.id for d in box.pending("telegram", "7")] == [a.id for a in in_hand]
        assert box.depth() == 4
        assert box.health() == (True, None)
        # Every later operation works on the fresh file: nothing fails "for ever".
        box.mark_sent([(in_hand[0].id, "telegram", "7")], "1")
        assert box.counts() == {"pending": 3, "sent": 1, "failed": 0}
    finally:
        box.close()


def test_two_set_asides_in_the_same_second_keep_both_files(tmp_path: Path) -> None:
    frozen = 1_763_000_000.0
    for round_ in range(2):
        (tmp_path / "outbox.sqlite3").write_bytes(b"not a database, round %d " % round_ * 200)
        box = Outbox(tmp_path, clock=lambda: frozen)
        box.close()

    kept = sorted(path.name for path in tmp_path.glob("outbox.sqlite3.corrupt-*"))
    assert kept == ["outbox.sqlite3.corrupt-20251113T021320", "outbox.sqlite3.corrupt-20251113T021320-1"]
    assert [(tmp_path / name).read_bytes()[:24] for name in kept] == [
        b"not a database, round 0 ",
        b"not a database, round 1 ",
    ]


class RefusingOutbox(Outbox):
    """An outbox whose disk refuses the next ``refusals`` inserts (say, the disk is full)."""

    refusals = 0

    def _insert(self, db: sqlite3.Connection, alert: Alert, routes: Sequence[Route], now: float) -> bool:
        if self.refusals:
            self.refusals -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return super()._insert(db, alert, routes, now)


def test_health_says_why_while_writes_fail_and_recovers_with_the_next_write(tmp_path: Path) -> None:
    box = RefusingOutbox(tmp_path)
    try:
        box.refusals = 1
        with pytest.raises(sqlite3.OperationalError):
            box.put([make_alert()], [("log", "log")])

        assert box.health() == (False, "outbox: OperationalError: database or disk is full")
        assert box.set_aside == []  # the environment, not the file: nothing moved

        assert box.put([make_alert()], [("log", "log")]) == 1
        assert box.health() == (True, None)
    finally:
        box.close()


def test_close_twice_is_harmless_and_health_says_closed(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.close()
    box.close()

    assert box.health() == (False, "outbox closed")
    with pytest.raises(sqlite3.ProgrammingError):
        box.depth()


def test_a_recovery_knows_the_message_id_of_its_outages_first_down_per_recipient(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    try:
        down = make_alert("api", sequence=0)
        repeat = make_alert("api", sequence=1)
        recovered = make_alert("api", AlertKind.RECOVERED)
        box.put([down, repeat], [("telegram", "7"), ("telegram", "8")])
        box.mark_sent([(down.id, "telegram", "7")], "501")
        box.mark_sent([(repeat.id, "telegram", "7")], "502")

        assert box.thread_root("telegram", "7", recovered) == "501"
        assert box.thread_root("telegram", "8", recovered) is None  # never sent there
        assert box.thread_root("telegram", "7", down) is None  # only a RECOVERED replies
        other = make_alert("api", AlertKind.RECOVERED, since=1_763_000_999.0)
        assert box.thread_root("telegram", "7", other) is None  # another outage
    finally:
        box.close()


def test_an_alert_stored_after_the_pages_were_damaged_is_still_delivered(tmp_path: Path) -> None:
    """Defect 6 end to end: before, every store failed ("database disk image is malformed")
    and 0 of 1 alerts reached anyone."""
    box = Outbox(tmp_path)
    fake = Scripted(recipients=("7",))
    worker = DeliveryWorker(box, [fake], EventLog(None), 3, base_delay=0.05, max_delay=0.2)
    try:
        fill(box)
        checkpoint(box.path)
        garble_pages(box.path)
        alert = make_alert("after-the-damage")

        box.put([alert], [("fake", "7")])
        worker.start()
        wait_until(lambda: fake.sent_to("7") == [[alert.id]], what="the alert delivered")
        wait_until(lambda: box.depth() == 0, what="its delivery recorded")
    finally:
        worker.stop(5.0)
        box.close()
    assert len(box.set_aside) == 1


def test_a_targets_recent_alerts_say_what_each_channel_did_newest_first(tmp_path: Path) -> None:
    now = [1_763_000_100.0]
    box = Outbox(tmp_path, clock=lambda: now[0])
    try:
        odd_name = 'db "primary" \\ 1'  # quotes and a backslash survive the JSON lookup
        down = make_alert(odd_name)
        routes: list[Route] = [("telegram", "111"), ("telegram", "222"), ("email", "ops@x.test")]
        box.put([down], routes)
        now[0] += 60
        recovered = make_alert(odd_name, AlertKind.RECOVERED)
        box.put([recovered], routes)
        box.put([make_alert("other")], routes)  # another target's: never listed
        box.mark_sent([(down.id, "telegram", "111"), (down.id, "telegram", "222")], "7", sent_at=now[0])
        box.mark_retry([(down.id, "email", "ops@x.test")], now[0] + 30, "connection refused")
        box.mark_retry([(down.id, "email", "ops@x.test")], now[0] + 90, "timeout after 10 s")
        box.mark_failed([(recovered.id, "telegram", "222")], "403 Forbidden: bot was blocked by the user")
        box.mark_failed(
            [(recovered.id, "email", "ops@x.test")],
            "recipient refused: 550 5.1.1 <OPS@x.test>: Recipient address rejected (see postmaster@corp.example)",
        )

        first, second = box.recent_for(odd_name)
        assert (first.alert, second.alert) == (recovered, down)
        telegram, email = sorted(second.channels, key=lambda c: c.channel, reverse=True)
        assert (telegram.channel, telegram.sent, telegram.pending, telegram.failed) == ("telegram", 2, 0, 0)
        assert telegram.sent_at == now[0] and telegram.last_error is None
        assert (email.channel, email.sent, email.pending, email.attempts) == ("email", 0, 1, 2)
        assert (email.next_try, email.last_error) == (now[0] + 90, "timeout after 10 s")
        by_channel = {c.channel: c for c in first.channels}
        assert (by_channel["telegram"].pending, by_channel["telegram"].failed) == (1, 1)
        assert by_channel["telegram"].last_error == "403 Forbidden: bot was blocked by the user"
        # The open page must not learn who the recipients are, not even from a server's words.
        assert by_channel["email"].last_error == (
            "recipient refused: 550 5.1.1 <(recipient)>: Recipient address rejected (see (address))"
        )

        assert [r.alert for r in box.recent_for(odd_name, limit=1)] == [recovered]
        assert box.recent_for("nobody") == []
    finally:
        box.close()


def test_an_outbox_from_before_the_target_column_is_migrated_and_its_alerts_listed(tmp_path: Path) -> None:
    old = make_alert("legacy")
    with closing(sqlite3.connect(tmp_path / "outbox.sqlite3")) as db:
        db.executescript(
            "CREATE TABLE alerts (id TEXT PRIMARY KEY, created REAL NOT NULL, payload TEXT NOT NULL);"
            "CREATE TABLE deliveries (alert_id TEXT NOT NULL REFERENCES alerts(id), channel TEXT NOT NULL,"
            " recipient TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL"
            " DEFAULT 0, next_try REAL NOT NULL, last_error TEXT, sent_at REAL, message_id TEXT,"
            " PRIMARY KEY (alert_id, channel, recipient));"
        )
        db.execute("INSERT INTO alerts VALUES (?, ?, ?)", (old.id, 1.0, old.to_json()))
        db.execute(
            "INSERT INTO deliveries (alert_id, channel, recipient, next_try) VALUES (?, 'log', 'log', 1.0)",
            (old.id,),
        )
        db.commit()
    box = Outbox(tmp_path)
    try:
        (record,) = box.recent_for("legacy")
        assert record.alert == old and [(c.channel, c.pending) for c in record.channels] == [("log", 1)]
        assert box.depth() == 1  # the pending delivery is still there to be sent
    finally:
        box.close()
