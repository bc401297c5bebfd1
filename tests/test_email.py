"""The e-mail channel: the message, error classification, TLS, and delivery end to end."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import smtplib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keepalive.alerts import AlertKind
from keepalive.notifiers.base import NotifyError
from keepalive.notifiers.deadline import Deadline
from keepalive.notifiers.email import EmailNotifier, build_message
from tests.fakes.delivery_fixtures import DeliveryHarness, free_port, make_alert
from tests.fakes.smtp_server import FakeSMTP

SENDER = "monitor@example.com"
OPS = "ops@example.com"
PASSWORD = "smtp-secret-pw"  # what the fake_smtp fixture accepts


def mail_notifier(port: int, **options: Any) -> EmailNotifier:
    values: dict[str, Any] = {
        "server": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": "user",
        "password": PASSWORD,
        "sender": SENDER,
        "recipients": [OPS],
        "timeout": 5.0,
    }
    values.update(options)
    return EmailNotifier(**values)


# -- the message ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "subject"),
    [
        (AlertKind.DOWN, "[DOWN] api"),
        (AlertKind.RECOVERED, "[RECOVERED] api"),
        (AlertKind.TEST, "[TEST] api"),
    ],
)
def test_a_single_alerts_subject_names_its_state_and_target(kind: AlertKind, subject: str) -> None:
    assert build_message([make_alert("api", kind)], SENDER, OPS)["Subject"] == subject


def test_a_digest_subject_counts_each_kind() -> None:
    alerts = [make_alert("a"), make_alert("b", AlertKind.RECOVERED), make_alert("c"), make_alert("d")]
    assert build_message(alerts, SENDER, OPS)["Subject"] == "[DOWN x3, RECOVERED x1] 4 alerts"


def test_the_message_has_date_message_id_addresses_and_a_readable_body() -> None:
    message = build_message([make_alert("api", failed_checks=3)], SENDER, OPS)

    assert (message["From"], message["To"]) == (SENDER, OPS)
    assert message["Date"]
    assert str(message["Message-ID"]).endswith("@example.com>")
    assert message.get_content() == (
        "DOWN: api\n"
        "\n"
        "Target:        api\n"
        "URL:           http://127.0.0.1:5004/api/health\n"
        "State:         DOWN\n"
        "Reason:        connection refused\n"
        "Down since:    2025-11-13 02:13:20 UTC\n"
        "Failed checks: 3\n"
        "Monitor host:  monitor-host\n"
        f"Alert id:      {make_alert('api').id}\n"
        "\n"
        "-- \n"
        "Keep-Alive Monitor\n"
    )


def test_a_recovery_body_says_how_long_the_target_was_down() -> None:
    body = build_message([make_alert("api", AlertKind.RECOVERED, downtime=90061)], SENDER, OPS).get_content()
    assert "Downtime:      1 d 1 h\n" in body
    assert "Last failure:  connection refused\n" in body


def test_a_name_with_cr_lf_cannot_inject_a_header() -> None:
    alert = make_alert("api\r\nBcc: victim@example.com\nX-Evil:\x00 1\u2028more")

    message = build_message([alert], SENDER, OPS)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)

    assert parsed["Subject"] == "[DOWN] api Bcc: victim@example.com X-Evil: 1 more"
    assert parsed["Bcc"] is None
    assert parsed["X-Evil"] is None


def test_a_long_subject_is_capped() -> None:
    subject = build_message([make_alert("x" * 500)], SENDER, OPS)["Subject"]
    assert len(subject) == 150
    assert subject.startswith("[DOWN] xxx")
    assert subject.endswith("…")


# -- classification (narrow, with a stand-in SMTP client) -------------------------------------------


class StubSMTP:
    """Stands in for smtplib.SMTP: records calls, raises what it is told to at each step."""

    def __init__(self, fail: dict[str, BaseException] | None = None) -> None:
        self.fail = fail or {}
        self.calls: list[tuple[Any, ...]] = []

    def _step(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        if name in self.fail:
            raise self.fail[name]

    def starttls(self, context: ssl.SSLContext) -> None:
        self._step("starttls", context)

    def login(self, user: str, password: str) -> None:
        self._step("login", user, password)

    def send_message(self, message: Any, from_addr: str, to_addrs: list[str]) -> dict[str, Any]:
        self._step("send_message", from_addr, to_addrs)
        return {}

    def quit(self) -> None:
        self._step("quit")

    def close(self) -> None:
        self.calls.append(("close",))


def stub_factory(stub: StubSMTP) -> Callable[..., StubSMTP]:
    def factory(
        host: str, port: int, *, security: str, timeout: float, context: ssl.SSLContext, deadline: Deadline
    ) -> StubSMTP:
        stub.calls.append(("connect", host, port, security, timeout))
        return stub

    return factory


def failing_factory(error: BaseException) -> Callable[..., StubSMTP]:
    def factory(
        host: str, port: int, *, security: str, timeout: float, context: ssl.SSLContext, deadline: Deadline
    ) -> StubSMTP:
        raise error

    return factory


def stubbed(
    stub: StubSMTP | None = None, factory: Callable[..., StubSMTP] | None = None, **options: Any
) -> EmailNotifier:
    chosen = factory or stub_factory(stub or StubSMTP())
    values: dict[str, Any] = {"security": "starttls", "timeout": 20.0, "smtp_factory": chosen}
    values.update(options)
    return mail_notifier(587, **values)


def failure(notifier: EmailNotifier) -> NotifyError:
    with pytest.raises(NotifyError) as caught:
        notifier.send(OPS, [make_alert()])
    return caught.value


@pytest.mark.parametrize(
    ("step", "error", "reason", "permanent"),
    [
        (
            "login",
            smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid"),
            "authentication failed: 535 5.7.8 Authentication credentials invalid",
            True,
        ),
        (
            "send_message",
            smtplib.SMTPRecipientsRefused({OPS: (550, b"5.1.1 User unknown")}),
            "recipient refused: 550 5.1.1 User unknown",
            True,
        ),
        (
            "send_message",
            smtplib.SMTPRecipientsRefused({OPS: (450, b"4.2.0 Mailbox busy")}),
            "recipient refused: 450 4.2.0 Mailbox busy",
            False,
        ),
        (
            "send_message",
            smtplib.SMTPSenderRefused(553, b"5.7.1 Sender not allowed", SENDER),
            "sender refused: 553 5.7.1 Sender not allowed",
            True,
        ),
        (
            "send_message",
            smtplib.SMTPSenderRefused(451, b"4.3.0 Try later", SENDER),
            "sender refused: 451 4.3.0 Try later",
            False,
        ),
        (
            "send_message",
            smtplib.SMTPDataError(451, b"4.7.1 Greylisted"),
            "message refused: 451 4.7.1 Greylisted",
            False,
        ),
        (
            "send_message",
            smtplib.SMTPDataError(554, b"5.7.1 Looks like spam"),
            "message refused: 554 5.7.1 Looks like spam",
            True,
        ),
        (
            "send_message",
            smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
            "server disconnected: Connection unexpectedly closed",
            False,
        ),
        (
            "starttls",
            smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server."),
            "SMTPNotSupportedError: STARTTLS extension not supported by server.",
            False,
        ),
        ("send_message", TimeoutError("timed out"), "timeout after 20 s", False),
    ],
    ids=[
        "535",
        "550-rcpt",
        "450-rcpt",
        "553-sender",
        "451-sender",
        "451-data",
        "554-data",
        "disconnect",
        "no-starttls",
        "timeout",
    ],
)
def test_each_smtp_error_is_classified_with_the_servers_text(
    step: str, error: BaseException, reason: str, permanent: bool
) -> None:
    stub = StubSMTP({step: error})

    caught = failure(stubbed(stub))

    assert (caught.reason, caught.permanent, caught.retry_after) == (reason, permanent, None)
    assert stub.calls[-1] == ("close",)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (TimeoutError("timed out"), "timeout after 20 s"),
        (OSError(101, "Network is unreachable"), "OSError: [Errno 101] Network is unreachable"),
        (
            smtplib.SMTPConnectError(421, b"4.7.0 Too many connections"),
            "SMTP error: 421 4.7.0 Too many connections",
        ),
    ],
    ids=["refused", "timeout", "unreachable", "421-greeting"],
)
def test_connection_failures_are_temporary(error: BaseException, reason: str) -> None:
    caught = failure(stubbed(factory=failing_factory(error)))
    assert (caught.reason, caught.permanent) == (reason, False)


def test_a_failing_quit_after_the_server_accepted_still_counts_as_sent() -> None:
    stub = StubSMTP({"quit": smtplib.SMTPServerDisconnected("gone")})

    message_id = stubbed(stub).send(OPS, [make_alert()])

    assert message_id is not None and message_id.endswith("@example.com>")
    assert [call[0] for call in stub.calls] == [
        "connect",
        "starttls",
        "login",
        "send_message",
        "quit",
        "close",
    ]


def test_login_happens_only_when_a_username_is_set() -> None:
    anonymous, named = StubSMTP(), StubSMTP()

    stubbed(anonymous, username=None, password=None, security="none").send(OPS, [make_alert()])
    stubbed(named).send(OPS, [make_alert()])

    assert [call[0] for call in anonymous.calls] == ["connect", "send_message", "quit"]
    assert ("login", "user", PASSWORD) in named.calls


def test_certificates_are_verified_by_default() -> None:
    stub = StubSMTP()
    stubbed(stub).send(OPS, [make_alert()])

    [(_, context)] = [call for call in stub.calls if call[0] == "starttls"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_each_recipient_gets_its_own_transaction() -> None:
    stub = StubSMTP()
    notifier = stubbed(stub, recipients=["a@example.com", "b@example.com"])

    for recipient in notifier.recipients():
        notifier.send(recipient, [make_alert()])

    sends = [call for call in stub.calls if call[0] == "send_message"]
    assert sends == [("send_message", SENDER, ["a@example.com"]), ("send_message", SENDER, ["b@example.com"])]


def test_the_password_is_masked_even_when_a_server_echoes_it() -> None:
    stub = StubSMTP({"login": smtplib.SMTPAuthenticationError(535, f"bad password {PASSWORD}".encode())})

    caught = failure(stubbed(stub))

    assert caught.reason == "authentication failed: 535 bad password ***"


# -- end to end through the outbox and a real SMTP server ------------------------------------------


def test_451_for_a_while_then_the_message_is_delivered_once(
    fake_smtp: FakeSMTP, harness: DeliveryHarness
) -> None:
    fake_smtp.tempfail(times=2)

    harness.run([mail_notifier(fake_smtp.port)], [make_alert("api")])

    assert fake_smtp.transactions == 3
    [message] = fake_smtp.messages_to(OPS)
    assert message["Subject"] == "[DOWN] api"
    assert [e["reason"] for e in harness.named("alert_retry")] == [
        "message refused: 451 4.3.0 Temporary local problem, try again later"
    ] * 2


def test_535_is_recorded_failed_and_not_retried(fake_smtp: FakeSMTP, harness: DeliveryHarness) -> None:
    harness.run([mail_notifier(fake_smtp.port, password="wrong-password")], [make_alert()])

    assert fake_smtp.auth_sessions == 1
    assert fake_smtp.transactions == 0
    [failed] = harness.named("alert_failed")
    assert failed["reason"] == "authentication failed: 535 5.7.8 Authentication credentials invalid"
    assert harness.outbox.counts() == {"pending": 0, "sent": 0, "failed": 1}


def test_a_refused_recipient_is_recorded_failed_and_the_others_still_get_the_alert(
    fake_smtp: FakeSMTP, harness: DeliveryHarness
) -> None:
    fake_smtp.refuse("gone@example.com")
    notifier = mail_notifier(fake_smtp.port, recipients=["gone@example.com", OPS])

    harness.run([notifier], [make_alert()])

    assert len(fake_smtp.messages_to(OPS)) == 1
    [failed] = harness.named("alert_failed")
    assert (failed["recipient"], failed["reason"]) == (
        "gone@example.com",
        "recipient refused: 550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown",
    )


def test_an_injected_header_never_reaches_the_server(fake_smtp: FakeSMTP, harness: DeliveryHarness) -> None:
    harness.run([mail_notifier(fake_smtp.port)], [make_alert("api\r\nBcc: victim@example.com")])

    [received] = fake_smtp.received
    assert received.rcpt_tos == (OPS,)
    assert received.message["Bcc"] is None
    assert received.message["Subject"] == "[DOWN] api Bcc: victim@example.com"
    assert received.login == "user"


def test_twenty_alerts_at_once_go_as_one_digest_e_mail(fake_smtp: FakeSMTP, harness: DeliveryHarness) -> None:
    harness.run([mail_notifier(fake_smtp.port)], [make_alert(f"t{i:02}") for i in range(20)])

    [message] = fake_smtp.messages_to(OPS)
    assert message["Subject"] == "[DOWN x20] 20 alerts"
    body = message.get_content().replace("\r\n", "\n")  # as received over SMTP: CRLF
    assert all(f"{i + 1}. DOWN: t{i:02}\n" in body for i in range(20))


def test_an_unreachable_server_is_a_temporary_failure() -> None:
    notifier = mail_notifier(free_port())
    with pytest.raises(NotifyError) as caught:
        notifier.send(OPS, [make_alert()])
    assert (caught.value.reason, caught.value.permanent) == ("connection refused", False)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_with_a_trusted_certificate_delivers(
    security: str, self_signed_cert: tuple[Path, Path], harness: DeliveryHarness
) -> None:
    cert, key = self_signed_cert
    context = ssl.create_default_context(cafile=str(cert))
    with FakeSMTP(credentials=("user", PASSWORD), tls=security, certfile=cert, keyfile=key) as fake:
        harness.run([mail_notifier(fake.port, security=security, ssl_context=context)], [make_alert()])

        [received] = fake.received
        assert received.login == "user"
    assert harness.outbox.counts()["sent"] == 1


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_an_untrusted_certificate_is_a_temporary_tls_error(
    security: str, self_signed_cert: tuple[Path, Path]
) -> None:
    cert, key = self_signed_cert
    with FakeSMTP(tls=security, certfile=cert, keyfile=key) as fake:
        notifier = mail_notifier(fake.port, security=security)  # the default context: verification on
        with pytest.raises(NotifyError) as caught:
            notifier.send(OPS, [make_alert()])

        assert caught.value.reason.startswith("TLS error: ")
        assert "certificate" in caught.value.reason
        assert not caught.value.permanent
        assert fake.received == []


def test_the_password_never_appears_in_reasons_events_logs_or_the_database(
    fake_smtp: FakeSMTP, harness: DeliveryHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-but-still-secret-pw"
    fake_smtp.tempfail(times=1)

    harness.run([mail_notifier(fake_smtp.port)], [make_alert("ok")])
    harness.run([mail_notifier(fake_smtp.port, password=wrong)], [make_alert("refused")])
    reasons = [
        failure(mail_notifier(free_port())).reason,
        failure(mail_notifier(fake_smtp.port, password=wrong)).reason,
    ]

    assert harness.outbox.counts() == {"pending": 0, "sent": 1, "failed": 1}
    texts = [
        *reasons,
        json.dumps(harness.events.recent),
        caplog.text,
        *(r.getMessage() for r in caplog.records),
    ]
    for secret in (PASSWORD, wrong):
        assert all(secret not in text for text in texts)
        assert secret.encode() not in harness.database_bytes()
