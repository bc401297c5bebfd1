"""Telegram hardening (issue 9): sends that never end, endless answers, our own OS errors,
group upgrades (migrate_to_chat_id), group pacing, RECOVERED as a reply to its DOWN."""

from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Any

import pytest
import requests
import responses

from keepalive.alerts import AlertKind
from keepalive.notifiers.base import NotifyError
from keepalive.notifiers.deadline import Deadline
from keepalive.notifiers.telegram import Pacer, TelegramNotifier
from tests.fakes.delivery_fixtures import DeliveryHarness, make_alert
from tests.fakes.telegram_api import FakeTelegram

TOKEN = "987654321:AAUnitTestTokenThatMustNeverLeak_abcdefgh"
API = "https://api.telegram.test"
SEND_URL = f"{API}/bot{TOKEN}/sendMessage"
OLD_GROUP, NEW_GROUP = "-100", "-1001234567890"


def to_fake(fake: FakeTelegram, chats: list[str], **options: Any) -> TelegramNotifier:
    options.setdefault("per_chat_interval", 0.0)
    options.setdefault("per_group_interval", 0.0)
    return TelegramNotifier(fake.token, chats, fake.url, **options)


def test_a_server_trickling_a_byte_at_a_time_is_cut_off_at_the_total_deadline(
    fake_telegram: FakeTelegram,
) -> None:
    """Every read gets a byte well within the per-read timeout, so only a total deadline
    ends the send (before: the sending thread hung for as long as the server liked)."""
    fake_telegram.trickle(times=1, seconds=0.05)
    send = to_fake(fake_telegram, ["7"], timeout=5.0, deadline=1.0)

    with pytest.raises(NotifyError) as caught:
        send.send("7", [make_alert()])

    assert (caught.value.reason, caught.value.permanent) == ("no complete answer within 1 s", False)
    assert send.send("7", [make_alert()]) == "1"  # the next send is unaffected


def test_an_endless_answer_is_read_only_up_to_the_cap(fake_telegram: FakeTelegram) -> None:
    fake_telegram.flood(times=1)
    send = to_fake(fake_telegram, ["7"], timeout=5.0, deadline=30.0)

    with pytest.raises(NotifyError) as caught:
        send.send("7", [make_alert()])

    assert (caught.value.reason, caught.value.permanent) == ("answer larger than 1024 KiB", False)


def test_a_trickling_send_is_retried_and_delivered_once_through_the_outbox(
    fake_telegram: FakeTelegram, harness: DeliveryHarness
) -> None:
    fake_telegram.trickle(times=1, seconds=0.05)

    harness.run([to_fake(fake_telegram, ["7"], timeout=5.0, deadline=0.5)], [make_alert()])

    assert [e["reason"] for e in harness.named("alert_retry")] == ["no complete answer within 0.5 s"]
    assert len(fake_telegram.messages_to("7")) == 1


class EmfileSession(requests.Session):
    """A session that cannot open a socket the first ``failures`` times (descriptors exhausted)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.failures:
            self.failures -= 1
            raise OSError(24, "Too many open files")
        return super().post(*args, **kwargs)


def test_emfile_while_building_the_request_is_temporary_and_the_alert_arrives(
    fake_telegram: FakeTelegram, harness: DeliveryHarness
) -> None:
    """Defect 8, end to end: seven EMFILEs in a row (past the five-strikes rule for channel
    bugs), then the descriptors are back and the DOWN is delivered, not failed."""
    send = to_fake(fake_telegram, ["7"], session=EmfileSession(failures=7))

    harness.run([send], [make_alert()], timeout=30.0)

    reasons = [e["reason"] for e in harness.named("alert_retry")]
    assert reasons == ["OSError: [Errno 24] Too many open files"] * 7
    assert harness.named("alert_failed") == []
    assert len(fake_telegram.messages_to("7")) == 1


def test_a_group_upgraded_to_a_supergroup_is_followed_and_remembered(
    fake_telegram: FakeTelegram, harness: DeliveryHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="keepalive.telegram")
    fake_telegram.migrate(OLD_GROUP, to=NEW_GROUP)
    send = to_fake(fake_telegram, [OLD_GROUP])

    harness.run([send], [make_alert("first")])
    harness.run([send], [make_alert("second")])

    assert [m.rendered.splitlines()[0] for m in fake_telegram.messages_to(NEW_GROUP)] == [
        "🔴 DOWN · first",
        "🔴 DOWN · second",
    ]
    assert [a.status for a in fake_telegram.attempts_to(OLD_GROUP)] == [400]  # asked once only
    assert harness.outbox.counts() == {"pending": 0, "sent": 2, "failed": 0}
    assert send.migrated() == {OLD_GROUP: NEW_GROUP}
    warnings = [r.getMessage() for r in caplog.records if r.name == "keepalive.telegram"]
    assert warnings == [
        f"telegram chat {OLD_GROUP} became a supergroup with id {NEW_GROUP}: sending there; "
        "set TELEGRAM_CHAT_ID to the new id"
    ]


def test_a_group_chat_gets_at_most_twenty_messages_a_minute() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(per_chat=1.0, overall=25.0, clock=lambda: now[0], sleep=sleep, per_group=3.0)
    pacer.wait("-100")
    pacer.wait("-100")
    pacer.wait("7")
    pacer.wait("7")

    assert slept == [pytest.approx(3.0), pytest.approx(0.04), pytest.approx(1.0)]


def test_a_recovery_is_sent_as_a_reply_to_its_down_in_the_same_chat(
    fake_telegram: FakeTelegram, harness: DeliveryHarness
) -> None:
    send = to_fake(fake_telegram, ["7", "8"])
    down = make_alert("api")

    harness.run([send], [down])
    [down_in_7] = fake_telegram.messages_to("7")
    harness.run([send], [make_alert("api", AlertKind.RECOVERED)])

    recovered_in_7 = fake_telegram.messages_to("7")[1]
    assert recovered_in_7.payload["reply_parameters"] == {
        "message_id": down_in_7.message_id,
        "allow_sending_without_reply": True,
    }
    down_in_8, recovered_in_8 = fake_telegram.messages_to("8")
    assert recovered_in_8.payload["reply_parameters"]["message_id"] == down_in_8.message_id
    assert "reply_parameters" not in down_in_7.payload


@responses.activate
def test_reply_to_is_posted_as_reply_parameters_and_ignored_when_not_a_message_id() -> None:
    responses.post(SEND_URL, json={"ok": True, "result": {"message_id": 9}})
    send = TelegramNotifier(TOKEN, ["1"], API, per_chat_interval=0.0)

    send.send("1", [make_alert()], reply_to="41")
    send.send("1", [make_alert()], reply_to="<not-an-id@example.com>")

    first, second = (json.loads(call.request.body or b"") for call in responses.calls)
    assert first["reply_parameters"] == {"message_id": 41, "allow_sending_without_reply": True}
    assert "reply_parameters" not in second


def test_a_deadline_ends_a_read_blocked_on_a_silent_socket() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:

        class Holder:
            sock = ours

        with Deadline(0.2) as deadline:
            deadline.watch_socket(Holder())
            assert ours.recv(1) == b""  # blocked until the watchdog shut the socket down

        assert deadline.expired


def test_an_expiring_deadline_never_reaches_the_socket_of_the_next_send() -> None:
    """A pooled connection object is registered twice per send (connect, request); when the
    first shutdown ends the send, the next send may reuse that object with a new socket
    before the second closer runs. The deadline's exit must wait for all its closers (CI
    once failed the trickle test on this: the next send's socket was shut down)."""
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    with first, first_peer, second, second_peer:

        class Connection:
            sock = first

        connection = Connection()
        deadline = Deadline(3600.0)
        in_first_closer = threading.Event()
        next_send_began = threading.Event()

        def first_closer() -> None:
            first.shutdown(socket.SHUT_RDWR)
            in_first_closer.set()
            # The sending thread now ends this send and starts the next; give it the chance.
            next_send_began.wait(1.0)

        deadline.watch(first_closer)
        deadline.watch_socket(connection)  # the same connection's second registration

        def sending_thread() -> None:
            in_first_closer.wait(10.0)
            deadline.__exit__(None, None, None)  # the send ended (its read saw the shutdown)
            connection.sock = second  # the next send reuses the pooled connection object
            next_send_began.set()

        sender = threading.Thread(target=sending_thread)
        sender.start()
        deadline.expire()
        sender.join(10.0)

        assert next_send_began.is_set()
        second_peer.sendall(b"x")
        assert second.recv(1) == b"x"  # the next send's socket still reads


def test_an_expiring_deadline_spares_a_connection_another_send_has_taken_since() -> None:
    """Delivery threads of one channel share a connection pool: after thread A's send failed,
    thread B may take A's connection object and connect it under B's deadline before A's
    deadline ran its last closer. That closer must leave B's socket alone."""
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    with first, first_peer, second, second_peer:

        class Connection:
            sock = first

        connection = Connection()
        a, b = Deadline(3600.0), Deadline(3600.0)
        a.watch_socket(connection)  # A's send: on connect, and again on its request
        a.watch_socket(connection)
        b.watch_socket(connection)  # B's send took the object from the pool ...
        connection.sock = second  # ... and connected it again
        a.expire()  # A's watchdog, late
        second_peer.sendall(b"x")
        assert second.recv(1) == b"x"  # B's socket still reads
        b.expire()
        assert second.recv(1) == b""  # and B's own deadline still ends it


def test_the_total_deadline_holds_through_an_http_proxy(fake_telegram: FakeTelegram) -> None:
    """With HTTPS_PROXY/HTTP_PROXY, requests opens its connections through a proxy manager
    of its own; the deadline must watch those too. The fake answers proxied requests."""
    fake_telegram.trickle(times=1, seconds=0.05)
    session = requests.Session()
    session.proxies = {"http": fake_telegram.url}
    session.trust_env = False
    send = TelegramNotifier(
        fake_telegram.token,
        ["7"],
        "http://api.telegram.invalid",
        session=session,
        timeout=5.0,
        deadline=1.0,
        per_chat_interval=0.0,
    )

    with pytest.raises(NotifyError) as caught:
        send.send("7", [make_alert()])

    assert caught.value.reason == "no complete answer within 1 s"
    assert send.send("7", [make_alert()]) == "1"  # and the proxy path works at all


def test_a_group_move_is_kept_in_the_outbox_and_followed_after_a_restart(
    fake_telegram: FakeTelegram, harness: DeliveryHarness
) -> None:
    fake_telegram.migrate(OLD_GROUP, to=NEW_GROUP)
    harness.run([to_fake(fake_telegram, [OLD_GROUP])], [make_alert("before")])

    assert harness.outbox.moves("telegram") == {OLD_GROUP: NEW_GROUP}
    restarted = to_fake(fake_telegram, [OLD_GROUP])  # a new process: a notifier that knows nothing
    harness.run([restarted], [make_alert("after")])

    assert [a.status for a in fake_telegram.attempts_to(OLD_GROUP)] == [400]  # not asked again
    assert [m.rendered.splitlines()[0] for m in fake_telegram.messages_to(NEW_GROUP)] == [
        "🔴 DOWN · before",
        "🔴 DOWN · after",
    ]
    assert restarted.migrated() == {OLD_GROUP: NEW_GROUP}
