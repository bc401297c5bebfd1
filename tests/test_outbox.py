"""The durable outbox and the delivery worker: storage, ordering, digests, retries, restarts."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from keepalive.alerts import Alert, AlertKind
from keepalive.delivery.outbox import DeliveryWorker, Outbox
from keepalive.events import EventLog
from keepalive.notifiers.base import Notifier, NotifyError
from keepalive.notifiers.email import EmailNotifier
from keepalive.notifiers.factory import routes
from keepalive.notifiers.log import LogNotifier
from keepalive.notifiers.telegram import TelegramNotifier
from tests.fakes.delivery_fixtures import Scripted, make_alert, wait_until
from tests.fakes.smtp_server import FakeSMTP
from tests.fakes.telegram_api import FakeTelegram, Rule

ROOT = Path(__file__).resolve().parent.parent
StartWorker = Callable[..., DeliveryWorker]


def named(events: EventLog, name: str) -> list[dict[str, Any]]:
    return [event for event in events.recent if event["event"] == name]


def row(outbox: Outbox, alert: Alert, channel: str, recipient: str) -> tuple[Any, ...]:
    with closing(sqlite3.connect(outbox.path)) as db:
        found: tuple[Any, ...] = db.execute(
            "SELECT status, attempts, last_error, message_id FROM deliveries"
            " WHERE alert_id = ? AND channel = ? AND recipient = ?",
            (alert.id, channel, recipient),
        ).fetchone()
        return found


def settle(outbox: Outbox, worker: DeliveryWorker, what: str) -> None:
    """Wait until no delivery is pending, then stop ``worker``. A sending thread records an
    outcome in the outbox before it emits the outcome's event and counts it in the channel
    figures: joining the threads (``stop``) is what makes those complete."""
    wait_until(lambda: outbox.depth() == 0, what=what)
    worker.stop(5.0)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "state")
    yield box
    box.close()


@pytest.fixture
def events() -> EventLog:
    return EventLog(None)


@pytest.fixture
def start_worker(outbox: Outbox, events: EventLog) -> Iterator[StartWorker]:
    """Start a DeliveryWorker on ``outbox`` with a fast backoff (0.05 s doubling to 0.4 s)."""
    workers: list[DeliveryWorker] = []

    def start(notifiers: Sequence[Notifier], digest_after: int = 3, **options: Any) -> DeliveryWorker:
        box = options.pop("box", outbox)
        options.setdefault("base_delay", 0.05)
        options.setdefault("max_delay", 0.4)
        worker = DeliveryWorker(box, notifiers, events, digest_after, **options)
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop(5.0)


def telegram(fake: FakeTelegram, chats: Sequence[str], timeout: float = 5.0) -> TelegramNotifier:
    return TelegramNotifier(fake.token, chats, fake.url, timeout=timeout, per_chat_interval=0.0)


# -- the outbox on its own --------------------------------------------------------------------


def test_put_stores_each_alert_once_with_one_pending_delivery_per_route(outbox: Outbox) -> None:
    alert = make_alert()
    wanted = [("telegram", "1"), ("telegram", "2"), ("email", "ops@example.com"), ("telegram", "1")]

    assert outbox.put([alert], wanted) == 1
    assert outbox.put([alert], wanted) == 0

    assert outbox.depth() == 3
    assert outbox.counts() == {"pending": 3, "sent": 0, "failed": 0}
    assert outbox.pending_by_channel() == {"telegram": 2, "email": 1}


def test_put_is_on_disk_for_another_connection_when_it_returns(outbox: Outbox) -> None:
    alert = make_alert()
    outbox.put([alert], [("log", "log")])

    with closing(sqlite3.connect(outbox.path)) as other:
        assert other.execute("SELECT id, payload FROM alerts").fetchall() == [(alert.id, alert.to_json())]
        assert other.execute("SELECT status, attempts FROM deliveries").fetchall() == [("pending", 0)]
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_queue_waits_for_its_oldest_delivery_even_when_newer_ones_are_due(outbox: Outbox) -> None:
    first, second = make_alert("first"), make_alert("second")
    outbox.put([first], [("fake", "a")])
    outbox.put([second], [("fake", "a")])
    now = time.time()
    outbox.mark_retry([(first.id, "fake", "a")], now + 60, "HTTP 500")

    assert outbox.due(now + 1) == {}
    due = outbox.due(now + 61)
    assert [d.alert.id for d in due[("fake", "a")]] == [first.id, second.id]
    assert [d.attempts for d in due[("fake", "a")]] == [1, 0]


def test_a_delivery_recorded_as_sent_or_failed_never_changes_again(outbox: Outbox) -> None:
    sent, failed = make_alert("sent"), make_alert("failed")
    outbox.put([sent, failed], [("fake", "a")])
    outbox.mark_sent([(sent.id, "fake", "a")], "42")
    outbox.mark_failed([(failed.id, "fake", "a")], "Forbidden: bot was blocked by the user")

    outbox.mark_retry([(sent.id, "fake", "a"), (failed.id, "fake", "a")], time.time() + 5, "late")
    outbox.mark_sent([(failed.id, "fake", "a")], "43")

    assert row(outbox, sent, "fake", "a") == ("sent", 1, None, "42")
    assert row(outbox, failed, "fake", "a") == ("failed", 1, "Forbidden: bot was blocked by the user", None)


def test_depth_and_oldest_pending_follow_what_is_left(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(tmp_path, clock=lambda: now[0])
    try:
        assert (box.depth(), box.oldest_pending_created()) == (0, None)
        old, new = make_alert("old"), make_alert("new")
        box.put([old], [("fake", "a"), ("fake", "b")])
        now[0] = 1010.0
        box.put([new], [("fake", "a")])
        assert (box.depth(), box.oldest_pending_created()) == (3, 1000.0)

        box.mark_sent([(old.id, "fake", "a"), (old.id, "fake", "b")], None)
        assert (box.depth(), box.oldest_pending_created()) == (1, 1010.0)
    finally:
        box.close()


def test_an_unreadable_outbox_file_is_set_aside_and_a_new_one_started(tmp_path: Path) -> None:
    (tmp_path / "outbox.sqlite3").write_bytes(b"this is not a database" * 100)

    box = Outbox(tmp_path)
    try:
        assert box.put([make_alert()], [("log", "log")]) == 1
        assert len(list(tmp_path.glob("outbox.sqlite3.corrupt-*"))) == 1
    finally:
        box.close()


def test_prune_forgets_finished_old_alerts_and_keeps_pending_ones(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(tmp_path, clock=lambda: now[0])
    try:
        done, waiting = make_alert("done"), make_alert("waiting")
        box.put([done, waiting], [("fake", "a")])
        box.mark_sent([(done.id, "fake", "a")], None)

        assert box.prune(before=2000.0) == 1
        assert box.counts() == {"pending": 1, "sent": 0, "failed": 0}
        # A forgotten alert raised again is stored again; a kept one is still recognised.
        assert box.put([waiting], [("fake", "a")]) == 0
    finally:
        box.close()


# -- the worker with in-memory channels --------------------------------------------------------


def test_up_to_digest_after_alerts_go_one_by_one_oldest_first(
    outbox: Outbox, start_worker: StartWorker
) -> None:
    fake = Scripted()
    alerts = [make_alert(f"t{i}") for i in range(3)]
    outbox.put(alerts, [("fake", "a")])

    start_worker([fake], digest_after=3)

    wait_until(lambda: outbox.depth() == 0, what="three deliveries")
    assert fake.sent_to("a") == [[alert.id] for alert in alerts]


def test_more_than_digest_after_alerts_go_as_one_digest(
    outbox: Outbox, events: EventLog, start_worker: StartWorker
) -> None:
    fake = Scripted()
    alerts = [make_alert(f"t{i}") for i in range(4)]
    outbox.put(alerts, [("fake", "a")])

    worker = start_worker([fake], digest_after=3)

    settle(outbox, worker, "the digest")
    assert fake.sent_to("a") == [[alert.id for alert in alerts]]
    [sent] = named(events, "alert_sent")
    assert sent["kind"] == "digest"
    assert sent["digest_size"] == 4
    assert sent["alert_ids"] == [alert.id for alert in alerts]
    assert sent["message_id"] == "m1"


def test_temporary_failures_back_off_exponentially_up_to_the_cap(
    outbox: Outbox, events: EventLog, start_worker: StartWorker
) -> None:
    fake = Scripted(script={"a": [NotifyError("HTTP 500")] * 5})
    outbox.put([make_alert()], [("fake", "a")])

    worker = start_worker([fake], base_delay=0.05, max_delay=0.4)

    settle(outbox, worker, "delivery after five failures")
    retries = named(events, "alert_retry")
    assert [e["next_try_in"] for e in retries] == [0.05, 0.1, 0.2, 0.4, 0.4]
    assert [e["attempt"] for e in retries] == [1, 2, 3, 4, 5]
    assert {e["reason"] for e in retries} == {"HTTP 500"}
    [sent] = named(events, "alert_sent")
    assert sent["attempt"] == 6
    assert len(fake.calls) == 6


def test_the_production_backoff_is_one_second_doubling_to_five_minutes(outbox: Outbox) -> None:
    worker = DeliveryWorker(outbox, [], EventLog(None), 3)
    assert [worker.backoff(n) for n in range(1, 11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert worker.backoff(10_000) == 300


def test_retry_after_from_the_server_is_waited_exactly(
    outbox: Outbox, events: EventLog, start_worker: StartWorker
) -> None:
    fake = Scripted(script={"a": [NotifyError("Too Many Requests: retry after 1", retry_after=0.5)]})
    outbox.put([make_alert()], [("fake", "a")])

    start_worker([fake], base_delay=0.05)

    wait_until(lambda: outbox.depth() == 0, what="delivery after a 429")
    [retry] = named(events, "alert_retry")
    assert retry["next_try_in"] == 0.5
    assert retry["reason"] == "Too Many Requests: retry after 1"
    (_, _, first), (_, _, second) = fake.calls
    assert second - first >= 0.5


def test_a_permanent_failure_is_recorded_once_and_other_recipients_still_get_theirs(
    outbox: Outbox, events: EventLog, start_worker: StartWorker
) -> None:
    blocked = NotifyError("Forbidden: bot was blocked by the user", permanent=True)
    fake = Scripted(recipients=("a", "b", "c"), script={"b": [blocked]})
    alert = make_alert()
    outbox.put([alert], routes([fake]))

    worker = start_worker([fake])

    settle(outbox, worker, "every delivery settled")
    assert fake.sent_to("a") == fake.sent_to("b") == fake.sent_to("c") == [[alert.id]]
    assert row(outbox, alert, "fake", "b") == ("failed", 1, "Forbidden: bot was blocked by the user", None)
    assert outbox.counts() == {"pending": 0, "sent": 2, "failed": 1}
    [failed] = named(events, "alert_failed")
    assert (failed["recipient"], failed["reason"]) == ("b", "Forbidden: bot was blocked by the user")


def test_a_recipients_batch_stops_at_its_first_failure_and_keeps_its_order(
    outbox: Outbox, start_worker: StartWorker
) -> None:
    fake = Scripted(script={"a": [None, NotifyError("HTTP 502")]})
    first, second, third = (make_alert(f"t{i}") for i in range(3))
    outbox.put([first, second, third], [("fake", "a")])

    start_worker([fake], digest_after=3)

    wait_until(lambda: outbox.depth() == 0, what="all three delivered")
    assert fake.sent_to("a") == [[first.id], [second.id], [second.id], [third.id]]


def test_a_crashing_notifier_costs_a_retry_not_the_worker(
    outbox: Outbox, events: EventLog, start_worker: StartWorker
) -> None:
    fake = Scripted(script={"a": [RuntimeError("boom")]})
    outbox.put([make_alert()], [("fake", "a")])

    worker = start_worker([fake])

    wait_until(lambda: outbox.depth() == 0, what="delivery after the crash")
    assert [e["reason"] for e in named(events, "alert_retry")] == ["RuntimeError: boom"]
    assert worker.is_alive()


class FlakyOutbox(Outbox):
    """An outbox whose disk refuses the next ``failures`` mark_sent writes."""

    failures = 0

    def mark_sent(
        self, keys: Sequence[tuple[str, str, str]], message_id: str | None, sent_at: float | None = None
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        super().mark_sent(keys, message_id, sent_at)


def test_a_send_the_database_failed_to_record_is_recorded_later_and_not_sent_again(
    tmp_path: Path, events: EventLog
) -> None:
    box = FlakyOutbox(tmp_path)
    box.failures = 3
    fake = Scripted()
    alert = make_alert()
    box.put([alert], [("fake", "a")])
    worker = DeliveryWorker(box, [fake], events, 3, base_delay=0.05)
    worker.ERROR_PAUSE = 0.05
    worker.start()
    try:
        wait_until(lambda: box.depth() == 0, what="the send recorded")
    finally:
        worker.stop(5.0)
        box.close()

    assert fake.sent_to("a") == [[alert.id]]
    assert len(named(events, "alert_sent")) == 1


def test_deliveries_to_a_channel_no_longer_configured_stay_pending_until_it_returns(
    outbox: Outbox, start_worker: StartWorker
) -> None:
    kept, dropped = Scripted("kept"), Scripted("dropped")
    alert = make_alert()
    outbox.put([alert], routes([kept, dropped]))

    worker = start_worker([kept])

    # The send is recorded in the outbox just after the channel has accepted it.
    wait_until(lambda: row(outbox, alert, "kept", "a")[0] == "sent", what="the configured channel")
    assert outbox.pending_by_channel() == {"dropped": 1}
    assert row(outbox, alert, "dropped", "a") == ("pending", 0, None, None)

    worker.set_notifiers([kept, dropped])
    wait_until(lambda: outbox.depth() == 0, what="the channel that came back")
    assert kept.sent_to("a") == dropped.sent_to("a") == [[alert.id]]


def test_channel_stats_count_alerts_and_remember_the_last_error(
    outbox: Outbox, start_worker: StartWorker
) -> None:
    fake = Scripted(
        recipients=("a", "b"),
        script={"b": [NotifyError("Bad Request: chat not found", permanent=True)]},
    )
    outbox.put([make_alert("x"), make_alert("y")], routes([fake]))

    worker = start_worker([fake, LogNotifier()])

    settle(outbox, worker, "everything settled")
    stats = worker.channel_stats()
    assert stats["fake"]["sent_total"] == 3  # x and y to a, y to b
    assert stats["fake"]["failed_total"] == 1  # x to b
    assert stats["fake"]["last_error"] == "Bad Request: chat not found"
    assert stats["fake"]["last_success"] is not None
    assert stats["log"] == {
        "last_success": None,
        "last_error": None,
        "last_error_at": None,
        "sent_total": 0,
        "failed_total": 0,
    }


def test_stop_is_prompt_while_a_delivery_backs_off(outbox: Outbox, start_worker: StartWorker) -> None:
    fake = Scripted(script={"a": [NotifyError("HTTP 503")]})
    outbox.put([make_alert()], [("fake", "a")])
    worker = start_worker([fake], base_delay=300.0, max_delay=300.0)
    wait_until(lambda: fake.calls, what="the first attempt")

    worker.stop(5.0)

    assert not worker.is_alive()
    assert outbox.depth() == 1


# -- end to end, with the loopback fakes --------------------------------------------------------


def test_an_outage_alert_reaches_every_recipient_once_and_a_recovery_once(
    fake_telegram: FakeTelegram,
    fake_smtp: FakeSMTP,
    outbox: Outbox,
    events: EventLog,
    start_worker: StartWorker,
) -> None:
    mail = EmailNotifier(
        "127.0.0.1",
        fake_smtp.port,
        "none",
        "user",
        "smtp-secret-pw",
        "monitor@example.com",
        ["ops1@example.com", "ops2@example.com"],
        timeout=5.0,
    )
    notifiers: list[Notifier] = [LogNotifier(), telegram(fake_telegram, ["101", "102"]), mail]
    worker = start_worker(notifiers)

    outbox.put([make_alert("api")], routes(notifiers))
    worker.wake()
    assert fake_telegram.wait_for_messages(2) and fake_smtp.wait_for_messages(2)
    outbox.put([make_alert("api", AlertKind.RECOVERED)], routes(notifiers))
    worker.wake()
    wait_until(lambda: outbox.counts() == {"pending": 0, "sent": 10, "failed": 0}, what="ten deliveries")
    worker.stop(5.0)  # each sending thread emits its alert_sent just after recording the send

    for chat in ("101", "102"):
        texts = [m.rendered.splitlines()[0] for m in fake_telegram.messages_to(chat)]
        assert texts == ["🔴 DOWN · api", "✅ RECOVERED · api"]
    for address in ("ops1@example.com", "ops2@example.com"):
        subjects = [str(m["Subject"]) for m in fake_smtp.messages_to(address)]
        assert subjects == ["[DOWN] api", "[RECOVERED] api"]
    assert len(fake_telegram.attempts) == 4
    assert fake_smtp.transactions == 4
    assert len(named(events, "alert_sent")) == 10


def test_twenty_alerts_at_once_give_one_digest_per_recipient(
    fake_telegram: FakeTelegram,
    fake_smtp: FakeSMTP,
    outbox: Outbox,
    events: EventLog,
    start_worker: StartWorker,
) -> None:
    mail = EmailNotifier(
        "127.0.0.1",
        fake_smtp.port,
        "none",
        None,
        None,
        "monitor@example.com",
        ["ops@example.com"],
        timeout=5.0,
    )
    notifiers: list[Notifier] = [telegram(fake_telegram, ["101", "102"]), mail]
    worker = start_worker(notifiers, digest_after=3)

    outbox.put([make_alert(f"target-{i:02}") for i in range(20)], routes(notifiers))
    worker.wake()

    wait_until(lambda: outbox.counts()["sent"] == 60, what="sixty deliveries")
    worker.stop(5.0)  # each sending thread emits its alert_sent just after recording the send
    for chat in ("101", "102"):
        [message] = fake_telegram.messages_to(chat)
        assert message.rendered.splitlines()[0] == "📋 20 alerts (DOWN x20) from monitor-host"
        assert all(f"target-{i:02}" in message.rendered for i in range(20))
    [email] = fake_smtp.messages_to("ops@example.com")
    assert str(email["Subject"]) == "[DOWN x20] 20 alerts"
    assert [e["digest_size"] for e in named(events, "alert_sent")] == [20, 20, 20]


def test_pending_deliveries_resume_after_a_restart(
    fake_telegram: FakeTelegram, tmp_path: Path, events: EventLog
) -> None:
    state = tmp_path / "state"
    fake_telegram.stop()  # the Bot API is unreachable: connections are refused
    first_box = Outbox(state)
    first = DeliveryWorker(first_box, [telegram(fake_telegram, ["7"])], events, 3, base_delay=0.05)
    first.start()
    first_box.put([make_alert("api")], [("telegram", "7")])
    first.wake()
    wait_until(lambda: named(events, "alert_retry"), what="a failed attempt")
    first.stop(5.0)
    first_box.close()
    assert named(events, "alert_retry")[0]["reason"] == "connection error: [Errno 111] Connection refused"

    fake_telegram.start()
    second_box = Outbox(state)
    second = DeliveryWorker(second_box, [telegram(fake_telegram, ["7"])], events, 3, base_delay=0.05)
    second.start()
    try:
        wait_until(lambda: second_box.depth() == 0, what="delivery after the restart")
    finally:
        second.stop(5.0)
        second_box.close()

    [message] = fake_telegram.messages
    assert message.rendered.startswith("🔴 DOWN · api")


SIGKILLED_SENDER = """
import sys, threading
from pathlib import Path
from keepalive.events import EventLog
from keepalive.notifiers.telegram import TelegramNotifier
from keepalive.delivery.outbox import DeliveryWorker, Outbox
from tests.fakes.delivery_fixtures import make_alert

state, url, token = sys.argv[1:4]
box = Outbox(Path(state))
box.put([make_alert(f"t{i}") for i in range(3)], [("telegram", "7")])
notifier = TelegramNotifier(token, ["7"], url, timeout=60, per_chat_interval=0)
DeliveryWorker(box, [notifier], EventLog(None), 3, base_delay=0.05).start()
threading.Event().wait()
"""


@pytest.mark.slow
def test_a_process_killed_with_sigkill_loses_nothing_and_sends_nothing_twice(
    fake_telegram: FakeTelegram, tmp_path: Path, events: EventLog
) -> None:
    state = tmp_path / "state"
    # The first message is accepted; the second hangs, so the kill lands mid-delivery.
    fake_telegram.add_rule(Rule("ok", times=1))
    fake_telegram.add_rule(Rule("hang", times=1))
    process = subprocess.Popen(
        [sys.executable, "-c", SIGKILLED_SENDER, str(state), fake_telegram.url, fake_telegram.token],
        cwd=ROOT,
    )
    try:
        assert fake_telegram.wait_for_attempts(2, timeout=20), "the sender never reached the second alert"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    box = Outbox(state)
    worker = DeliveryWorker(box, [telegram(fake_telegram, ["7"])], events, 3, base_delay=0.05)
    worker.start()
    try:
        wait_until(lambda: box.depth() == 0, what="the rest delivered after the kill")
    finally:
        worker.stop(5.0)
        box.close()

    names = [m.rendered.splitlines()[0] for m in fake_telegram.messages]
    assert names == ["🔴 DOWN · t0", "🔴 DOWN · t1", "🔴 DOWN · t2"]


def test_a_notifier_that_keeps_crashing_on_a_message_fails_it_and_unblocks_the_queue(
    outbox: Outbox, events: EventLog, start_worker: StartWorker
) -> None:
    poison, later = make_alert("poison"), make_alert("later")
    fake = Scripted(script={"a": [RuntimeError("cannot format")] * DeliveryWorker.MAX_UNEXPECTED})
    outbox.put([poison], [("fake", "a")])
    outbox.put([later], [("fake", "a")])

    start_worker([fake], digest_after=5)

    wait_until(lambda: outbox.depth() == 0, what="both settled")
    assert row(outbox, poison, "fake", "a")[0] == "failed"
    assert row(outbox, poison, "fake", "a")[2] == "internal error: RuntimeError: cannot format"
    assert row(outbox, later, "fake", "a")[0] == "sent"


class Limited(Scripted):
    """A channel whose messages hold at most 7 alerts."""

    def digest_capacity(self, alerts: Sequence[Alert]) -> int:
        return min(7, len(alerts))


def test_a_digest_larger_than_the_channel_can_name_is_split_never_truncated(
    outbox: Outbox, start_worker: StartWorker
) -> None:
    alerts = [make_alert(f"t{i:02d}") for i in range(20)]
    outbox.put(alerts, [("fake", "a")])
    fake = Limited()

    start_worker([fake], digest_after=3)

    wait_until(lambda: outbox.depth() == 0, what="all sent")
    assert [len(ids) for ids in fake.sent_to("a")] == [7, 7, 6]
    assert [i for ids in fake.sent_to("a") for i in ids] == [a.id for a in alerts]
