"""E-mail hardening (issue 9): greetings that never end, AUTH echoed in base64, a private CA
(SMTP_CA_FILE), and RECOVERED threaded under its DOWN."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from keepalive.alerts import AlertKind
from keepalive.config import load_settings
from keepalive.notifiers.base import NotifyError
from keepalive.notifiers.email import EmailNotifier, build_message
from keepalive.notifiers.factory import build_notifiers
from tests.fakes.delivery_fixtures import DeliveryHarness, make_alert
from tests.fakes.smtp_server import EndlessGreeting, FakeSMTP

SENDER = "monitor@example.com"
OPS = "ops@example.com"
USER = "user"
PASSWORD = "smtp-secret-pw"


def mail(port: int, **options: Any) -> EmailNotifier:
    values: dict[str, Any] = {
        "server": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": USER,
        "password": PASSWORD,
        "sender": SENDER,
        "recipients": [OPS],
        "timeout": 5.0,
    }
    values.update(options)
    return EmailNotifier(**values)


def failure(notifier: EmailNotifier) -> NotifyError:
    with pytest.raises(NotifyError) as caught:
        notifier.send(OPS, [make_alert()])
    return caught.value


# -- sends that never end ---------------------------------------------------------------------------


def test_a_greeting_trickling_220_lines_is_cut_off_at_the_total_deadline() -> None:
    """Each line arrives well within the per-read timeout; smtplib reads continuation lines
    for as long as they come, so only the total deadline ends it."""
    with EndlessGreeting(interval=0.05) as server:
        caught = failure(mail(server.port, timeout=5.0, deadline=1.0))

    assert (caught.reason, caught.permanent) == ("no complete answer within 1 s", False)


def test_a_greeting_flooding_220_lines_is_read_only_up_to_the_reply_cap() -> None:
    with EndlessGreeting(interval=0.0) as server:
        caught = failure(mail(server.port, timeout=5.0, deadline=30.0))

    assert (caught.reason, caught.permanent) == (
        "server disconnected: Connection unexpectedly closed: reply longer than 64 KiB",
        False,
    )


# -- secrets ---------------------------------------------------------------------------------------


def test_a_server_echoing_auth_in_base64_never_puts_the_password_in_a_reason_event_or_log(
    harness: DeliveryHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeSMTP(credentials=(USER, "the-right-one"), echo_auth=True) as fake:
        harness.run([mail(fake.port)], [make_alert()])

    encoded = [
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"\x00{USER}\x00{PASSWORD}".encode()).decode(),
    ]
    [failed] = harness.named("alert_failed")
    # smtplib tries PLAIN, then LOGIN: the last refusal echoes LOGIN's base64 password.
    assert failed["reason"] == "authentication failed: 535 5.7.8 Authentication failed for ***"
    # The fake server's own log (mail.log) shows what it was sent; the monitor's must not.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("keepalive")]
    assert any("authentication failed" in text for text in ours)
    texts = [json.dumps(harness.events.recent), *ours]
    for form in [PASSWORD, *encoded, *(e.rstrip("=") for e in encoded)]:
        assert all(form not in text for text in texts), form
        assert form.encode() not in harness.database_bytes()


# -- SMTP_CA_FILE: a private mail CA -----------------------------------------------------------------


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_a_server_certified_by_the_private_ca_in_smtp_ca_file_is_trusted(
    security: str, private_ca: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ca, cert, key = private_ca
    settings = load_settings(
        {
            "MONITOR_ENV_FILE": "",
            "SMTP_SERVER": "127.0.0.1",
            "SMTP_USERNAME": USER,
            "SMTP_PASSWORD": PASSWORD,
            "SMTP_SECURITY": security,
            "SMTP_CA_FILE": str(ca),
            "EMAIL_SENDER": SENDER,
            "EMAIL_RECIPIENT": OPS,
        },
        root=tmp_path,
    )
    with FakeSMTP(credentials=(USER, PASSWORD), tls=security, certfile=cert, keyfile=key) as fake:
        settings = type(settings)(**{**settings.__dict__, "smtp_port": fake.port})
        [notifier] = [n for n in build_notifiers(settings) if n.channel == "email"]

        message_id = notifier.send(OPS, [make_alert()])

        [received] = fake.received
        assert received.login == USER
        assert str(received.message["Message-ID"]) == message_id


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_without_smtp_ca_file_the_private_ca_is_not_trusted(
    security: str, private_ca: tuple[Path, Path, Path]
) -> None:
    _, cert, key = private_ca
    with FakeSMTP(credentials=(USER, PASSWORD), tls=security, certfile=cert, keyfile=key) as fake:
        caught = failure(mail(fake.port, security=security))

        assert caught.reason == "TLS error: unable to get local issuer certificate"
        assert not caught.permanent
        assert fake.received == []


# -- threading ---------------------------------------------------------------------------------------


def test_each_e_mail_has_a_message_id_derived_from_its_alerts() -> None:
    down = make_alert("api")
    first = build_message([down], SENDER, OPS)
    again = build_message([down], SENDER, "other@example.com")
    digest = build_message([down, make_alert("db")], SENDER, OPS)

    assert first["Message-ID"] == again["Message-ID"] == f"<{down.id}.alert@example.com>"
    assert str(digest["Message-ID"]).endswith(".digest@example.com>")
    assert digest["Message-ID"] != first["Message-ID"]
    assert first["In-Reply-To"] is None and first["References"] is None


def test_a_recovery_e_mail_refers_to_the_first_down_of_its_outage(
    fake_smtp: FakeSMTP, harness: DeliveryHarness
) -> None:
    notifier = mail(fake_smtp.port)

    harness.run([notifier], [make_alert("api")])
    harness.run([notifier], [make_alert("api", sequence=1)])  # a repeated DOWN
    harness.run([notifier], [make_alert("api", AlertKind.RECOVERED)])

    first_down, _, recovered = fake_smtp.messages_to(OPS)
    assert str(recovered["Subject"]) == "[RECOVERED] api"
    assert str(recovered["In-Reply-To"]) == str(first_down["Message-ID"])
    assert str(recovered["References"]) == str(first_down["Message-ID"])
