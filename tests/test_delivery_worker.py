"""The delivery worker: OS errors of ours are retried, retries run on the monotonic clock,
recoveries reply to their DOWN."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keepalive.alerts import AlertKind
from keepalive.delivery.outbox import DeliveryWorker, Outbox
from keepalive.events import EventLog
from keepalive.notifiers.base import NotifyError
from tests.fakes.delivery_fixtures import Scripted, make_alert, wait_until


def named(events: EventLog, name: str) -> list[dict[str, Any]]:
    return [event for event in events.recent if event["event"] == name]


@pytest.fixture
def events() -> EventLog:
    return EventLog(None)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "state")
    yield box
    box.close()


def test_emfile_from_a_channel_is_retried_past_the_bug_limit_and_the_alert_delivered(
    outbox: Outbox, events: EventLog
) -> None:
    """Defect 8: OSError(24) while building a request was counted as a channel bug and the
    DOWN recorded failed for good after 5 tries; only a refusal by the server is permanent."""
    emfile = OSError(24, "Too many open files")
    fake = Scripted(script={"a": [emfile] * (DeliveryWorker.MAX_UNEXPECTED + 2)})
    alert = make_alert()
    outbox.put([alert], [("fake", "a")])
    worker = DeliveryWorker(outbox, [fake], events, 3, base_delay=0.01, max_delay=0.05)
    worker.start()
    try:
        wait_until(lambda: outbox.depth() == 0, what="the alert settled")
    finally:
        worker.stop(5.0)

    assert outbox.counts() == {"pending": 0, "sent": 1, "failed": 0}
    assert fake.sent_to("a") == [[alert.id]] * (DeliveryWorker.MAX_UNEXPECTED + 3)
    retries = named(events, "alert_retry")
    assert len(retries) == DeliveryWorker.MAX_UNEXPECTED + 2
    assert {e["reason"] for e in retries} == {"OSError: [Errno 24] Too many open files"}
    assert named(events, "alert_failed") == []


def test_a_retry_happens_at_its_monotonic_time_when_the_wall_clock_is_set_back_an_hour(
    tmp_path: Path, events: EventLog
) -> None:
    wall = [1_763_000_000.0]
    mono = [500.0]
    box = Outbox(tmp_path, clock=lambda: wall[0])
    fake = Scripted(script={"a": [NotifyError("HTTP 502")]})
    fake.clock = lambda: mono[0]
    box.put([make_alert()], [("fake", "a")])
    worker = DeliveryWorker(
        box,
        [fake],
        events,
        3,
        clock=lambda: wall[0],
        monotonic=lambda: mono[0],
        base_delay=10.0,
        max_delay=10.0,
    )
    worker.start()
    try:
        wait_until(lambda: named(events, "alert_retry"), what="the first attempt failed")
        [retry] = named(events, "alert_retry")
        assert retry["next_try_in"] == 10.0

        wall[0] -= 3600.0  # an operator (or NTP) sets the clock back an hour
        mono[0] += 10.0  # ten seconds pass
        worker.wake()

        wait_until(lambda: box.depth() == 0, what="the retry ten monotonic seconds later")
    finally:
        worker.stop(5.0)
        box.close()
    assert fake.clock_at_call == [500.0, 510.0]


def test_a_retry_stored_far_ahead_in_wall_time_waits_at_most_one_maximum_backoff_after_a_restart(
    outbox: Outbox, events: EventLog
) -> None:
    """The process restarts after the clock went back an hour: the stored next_try is an hour
    ahead of the new wall time, but no retry ever waits longer than max_delay."""
    alert = make_alert()
    outbox.put([alert], [("fake", "a")])
    outbox.mark_retry([(alert.id, "fake", "a")], time.time() + 3600.0, "HTTP 502")
    fake = Scripted()
    worker = DeliveryWorker(outbox, [fake], events, 3, base_delay=0.05, max_delay=0.2)
    worker.start()
    try:
        wait_until(lambda: outbox.depth() == 0, timeout=20.0, what="the retry, well before an hour")
    finally:
        worker.stop(5.0)
    assert fake.sent_to("a") == [[alert.id]]


def test_a_recovery_goes_as_a_reply_to_its_downs_message_and_a_down_as_no_reply(
    outbox: Outbox, events: EventLog
) -> None:
    fake = Scripted(recipients=("a", "b"))
    down = make_alert("api")
    recovered = make_alert("api", AlertKind.RECOVERED)
    worker = DeliveryWorker(outbox, [fake], events, 3, base_delay=0.05)
    worker.start()
    try:
        outbox.put([down], [("fake", "a")])
        worker.wake()
        wait_until(lambda: outbox.depth() == 0, what="the DOWN")
        outbox.put([recovered], [("fake", "a"), ("fake", "b")])
        worker.wake()
        wait_until(lambda: outbox.depth() == 0, what="the RECOVERED")
    finally:
        worker.stop(5.0)

    assert fake.sent_to("a") == [[down.id], [recovered.id]]
    # "a" got the DOWN as message m1; "b" never did, so its RECOVERED stands alone.
    sends = sorted(zip([who for who, _, _ in fake.calls], fake.replies, strict=True), key=repr)
    assert sends == [("a", "m1"), ("a", None), ("b", None)]
    assert fake.replies[0] is None  # the DOWN itself
