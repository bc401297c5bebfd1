"""The log channel and the factory that builds the enabled channels from the settings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from keepalive.config import load_settings
from keepalive.notifiers.email import EmailNotifier
from keepalive.notifiers.factory import build_notifiers, routes
from keepalive.notifiers.log import LogNotifier
from keepalive.notifiers.telegram import TelegramNotifier
from tests.fakes.delivery_fixtures import make_alert

TOKEN = "123456789:AAFactoryTestTokenFactoryTestToken_xyz"


def test_only_the_log_channel_is_on_with_the_example_settings(tmp_path: Path) -> None:
    notifiers = build_notifiers(load_settings({"MONITOR_ENV_FILE": ""}, root=tmp_path))

    assert [type(n) for n in notifiers] == [LogNotifier]
    assert routes(notifiers) == [("log", "log")]


def test_telegram_and_e_mail_are_built_when_configured(tmp_path: Path) -> None:
    configured = load_settings(
        {
            "MONITOR_ENV_FILE": "",
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_CHAT_ID": "11, -1002",
            "SMTP_SERVER": "mail.internal",
            "SMTP_USERNAME": "",
            "SMTP_PASSWORD": "",
            "EMAIL_SENDER": "monitor@example.org",
            "EMAIL_RECIPIENT": "a@example.org,b@example.org",
        },
        root=tmp_path,
    )

    notifiers = build_notifiers(configured)

    assert [type(n) for n in notifiers] == [LogNotifier, TelegramNotifier, EmailNotifier]
    assert routes(notifiers) == [
        ("log", "log"),
        ("telegram", "11"),
        ("telegram", "-1002"),
        ("email", "a@example.org"),
        ("email", "b@example.org"),
    ]


def test_the_log_channel_writes_one_scrubbed_line_per_alert(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="keepalive.alerts")
    alert = make_alert("my api", reason=f"HTTP 500 from /bot{TOKEN}/x\nsecond line")

    assert LogNotifier().send("log", [alert, make_alert("db")]) is None

    assert [r.getMessage() for r in caplog.records] == [
        f'alert delivered channel=log id={alert.id} kind=DOWN target="my api" '
        'url="http://127.0.0.1:5004/my api/health" reason="HTTP 500 from /bot***/x second line"',
        f"alert delivered channel=log id={make_alert('db').id} kind=DOWN target=db "
        'url=http://127.0.0.1:5004/db/health reason="connection refused"',
    ]
