"""Apprise channel (SPEC 17): the real ``apprise`` library in process, against a loopback
receiver through its ``json://`` service; one recipient per URL, retried with the outbox's
backoff and given up an hour after the alert, URLs never recorded, --test-alert per URL."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from keepalive.alerts import AlertKind
from keepalive.notifiers.apprise_channel import GIVE_UP_AFTER, AppriseNotifier, build_message, recipient_name
from keepalive.notifiers.base import NotifyError
from tests.fakes.delivery_fixtures import DeliveryHarness, free_port, make_alert
from tests.fakes.engine import WallClock
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.monitor_proc import base_env, run_cli

TOKEN = "ApPrIsEtOkEn0123456789"


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def url_of(hook: WebhookReceiver, path: str = "/notify") -> str:
    return f"json://user:{TOKEN}@127.0.0.1:{hook.port}{path}"


def fresh_clock() -> WallClock:
    return WallClock(make_alert().at + 5)  # five seconds after the alert was raised


def test_the_message_is_plain_text_every_service_can_show() -> None:
    assert build_message([make_alert("api", reason="HTTP 503")]) == (
        "DOWN: api",
        "Reason: HTTP 503\nSince: 2025-11-13 02:13:20 UTC\nFailed checks: 2\n"
        "URL: http://127.0.0.1:5004/api/health\nMonitor: monitor-host",
    )
    title, body = build_message([make_alert("api", AlertKind.RECOVERED)])
    assert (title, body.splitlines()[0]) == ("RECOVERED: api", "Down for 5 min 3 s")
    title, body = build_message([make_alert("a"), make_alert("b", AlertKind.RECOVERED)])
    assert (title, body) == (
        "2 alerts (1 down, 1 other)",
        "DOWN: a (connection refused)\nRECOVERED: b (connection refused)",
    )


def test_an_alert_reaches_the_service_through_apprise(hook: WebhookReceiver) -> None:
    notifier = AppriseNotifier([url_of(hook)], clock=fresh_clock())
    (recipient,) = notifier.recipients()

    assert notifier.send(recipient, [make_alert("api")]) is None

    (got,) = hook.received("/notify")
    body = got.json()
    assert (body["title"], body["type"]) == ("DOWN: api", "failure")
    assert body["message"].startswith("Reason: connection refused\n")


def test_each_url_is_a_recipient_named_by_scheme_and_hash(hook: WebhookReceiver) -> None:
    urls = [url_of(hook, "/one"), url_of(hook, "/two")]
    notifier = AppriseNotifier(urls, clock=fresh_clock())

    assert list(notifier.recipients()) == [recipient_name(urls[0]), recipient_name(urls[1])]
    assert all(name.startswith("json#") and TOKEN not in name for name in notifier.recipients())


def test_a_failure_is_temporary_with_apprises_reason(hook: WebhookReceiver) -> None:
    hook.script([(500, {})])
    notifier = AppriseNotifier([url_of(hook)], clock=fresh_clock())

    with pytest.raises(NotifyError) as caught:
        notifier.send(notifier.recipients()[0], [make_alert()])

    assert (caught.value.reason, caught.value.permanent) == (
        "apprise failure: Failed to send JSON POST notification: Internal server error., error=500.",
        False,
    )


def test_a_failure_an_hour_after_the_alert_is_given_up(hook: WebhookReceiver) -> None:
    hook.script([(404, {})])
    clock = WallClock(make_alert().at + GIVE_UP_AFTER)
    notifier = AppriseNotifier([url_of(hook)], clock=clock)

    with pytest.raises(NotifyError) as caught:
        notifier.send(notifier.recipients()[0], [make_alert()])

    assert caught.value.permanent is True
    assert caught.value.reason.endswith("(given up: failing 1 h 0 min after the alert)")


def test_a_url_apprise_cannot_parse_fails_at_once() -> None:
    notifier = AppriseNotifier(["nosuchservice://abc/def"])
    with pytest.raises(NotifyError) as caught:
        notifier.send(notifier.recipients()[0], [make_alert()])

    assert (caught.value.reason, caught.value.permanent) == (
        "Apprise does not accept this URL (nosuchservice://...): check the scheme and its required parts",
        True,
    )


def test_through_the_outbox_retried_then_delivered_once_and_no_token_recorded(
    hook: WebhookReceiver, harness: DeliveryHarness
) -> None:
    hook.script([(503, {}), (502, {})])

    harness.run([AppriseNotifier([url_of(hook)], clock=fresh_clock())], [make_alert()])

    assert len(hook.received("/notify")) == 3
    assert [e["reason"].split(":")[0] for e in harness.named("alert_retry")] == ["apprise failure"] * 2
    assert len(harness.named("alert_sent")) == 1
    assert TOKEN.encode() not in harness.database_bytes()
    assert all(TOKEN not in json.dumps(e) for e in harness.events.recent)


def test_test_alert_reports_each_url(hook: WebhookReceiver, tmp_path: Path) -> None:
    good, bad = url_of(hook), f"json://user:{TOKEN}@127.0.0.1:{free_port()}/closed"
    env = base_env(tmp_path, APPRISE_URLS=f"{good},{bad}")

    result = run_cli(["--test-alert"], env)

    lines = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("apprise")]
    assert lines[0] == f"apprise   {recipient_name(good)}: delivered"
    assert lines[1].startswith(f"apprise   {recipient_name(bad)}: FAILED (temporary): apprise failure: ")
    assert result.returncode != 0
    assert TOKEN not in result.stdout + result.stderr
    assert hook.received("/notify")[0].json()["title"] == "Test alert from the keep-alive monitor"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_apprise_writes_nothing_to_the_monitors_log(hook: WebhookReceiver) -> None:
    notifier = AppriseNotifier([url_of(hook)], clock=fresh_clock())
    root, collect = logging.getLogger(), Collect()
    level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    try:
        notifier.send(notifier.recipients()[0], [make_alert()])  # delivered
        hook.script([(500, {})])
        with pytest.raises(NotifyError):
            notifier.send(notifier.recipients()[0], [make_alert()])
    finally:
        root.removeHandler(collect)
        root.setLevel(level)

    assert [r.getMessage() for r in collect.records if r.name.startswith("apprise")] == []


def test_a_certificate_running_out_is_a_warning(hook: WebhookReceiver) -> None:
    expiring = replace(make_alert("api"), kind=AlertKind.EXPIRING, reason="certificate expires in 6 days")
    notifier = AppriseNotifier([url_of(hook)], clock=fresh_clock())
    notifier.send(notifier.recipients()[0], [expiring])

    body = hook.received("/notify")[0].json()
    assert (body["title"], body["type"]) == ("EXPIRING: api", "warning")
    assert body["message"].startswith(
        "certificate expires in 6 days\nCertificate expires: 2025-11-13 02:13:20 UTC\n"
    )


def test_a_backlog_goes_in_digests_that_name_every_alert(
    hook: WebhookReceiver, harness: DeliveryHarness
) -> None:
    alerts = [make_alert(f"target-{i:03}", reason="x" * 200) for i in range(60)]

    harness.run([AppriseNotifier([url_of(hook)], clock=fresh_clock())], alerts, digest_after=3)

    named = [
        line.split(" ")[1] for r in hook.received("/notify") for line in r.json()["message"].splitlines()
    ]
    assert sorted(named) == [f"target-{i:03}" for i in range(60)]
    assert len(hook.received("/notify")) > 1
    assert all(len(r.json()["message"]) <= 4000 for r in hook.received("/notify"))
