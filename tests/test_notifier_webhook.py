"""Webhook channel (SPEC 17): the body, the stable id, the signature, the status classes, the
outbox's retries, and a URL's token kept out of everything recorded."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from keepalive.alerts import AlertKind
from keepalive.notifiers.base import NotifyError
from keepalive.notifiers.webhook import WebhookNotifier, build_body
from tests.fakes.delivery_fixtures import DeliveryHarness, free_port, make_alert
from tests.fakes.webhook_receiver import WebhookReceiver

SECRET = "webhook-signing-secret-1234"
TOKEN_PATH = "/hooks/T0KEN-in-the-path-abcdef"


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def verify(secret: str, body: bytes, header: str) -> bool:
    """The README's verification snippet, verbatim."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def test_the_body_holds_every_field_of_the_spec() -> None:
    alert = make_alert("api", AlertKind.RECOVERED, url="https://user:***@api.test/health", downtime=303.25)

    assert json.loads(build_body(alert)) == {
        "id": alert.id,
        "kind": "RECOVERED",
        "target": "api",
        "url": "https://user:***@api.test/health",
        "state": "up",
        "reason": "connection refused",
        "since": "2025-11-13T02:13:20.000Z",
        "failed_checks": 2,
        "downtime_seconds": 303.25,
        "host": "monitor-host",
        "ts": "2025-11-13T02:14:20.000Z",
    }
    down = json.loads(build_body(make_alert("api")))
    assert (down["kind"], down["state"], down["downtime_seconds"]) == ("DOWN", "down", None)


def test_a_signed_post_verifies_with_the_readme_snippet(hook: WebhookReceiver) -> None:
    alert = make_alert()
    WebhookNotifier([hook.url + TOKEN_PATH], SECRET).send(
        f"http://127.0.0.1:{hook.port}#" + _hash(hook.url + TOKEN_PATH), [alert]
    )

    (got,) = hook.received()
    assert got.path == TOKEN_PATH
    assert got.headers["x-keepalive-alert-id"] == alert.id
    assert got.headers["content-type"] == "application/json"
    assert verify(SECRET, got.body, got.headers["x-keepalive-signature"])
    assert not verify("another-secret-of-16+", got.body, got.headers["x-keepalive-signature"])
    assert got.body == build_body(alert)


def test_without_a_secret_there_is_no_signature_header(hook: WebhookReceiver) -> None:
    notifier = WebhookNotifier([hook.url])
    (recipient,) = notifier.recipients()
    notifier.send(recipient, [make_alert()])

    assert "x-keepalive-signature" not in hook.received()[0].headers


def test_a_recipient_is_named_by_host_and_hash_never_by_its_token() -> None:
    notifier = WebhookNotifier(["https://hooks.example.com" + TOKEN_PATH, "https://hooks.example.com/other"])

    names = list(notifier.recipients())
    assert names == [
        "https://hooks.example.com#" + _hash("https://hooks.example.com" + TOKEN_PATH),
        "https://hooks.example.com#" + _hash("https://hooks.example.com/other"),
    ]
    assert all("T0KEN" not in name for name in names)


@pytest.mark.parametrize(
    ("status", "headers", "reason", "permanent", "retry_after"),
    [
        (500, {}, "HTTP 500: scripted failure", False, None),
        (503, {}, "HTTP 503: scripted failure", False, None),
        (408, {}, "HTTP 408: scripted failure", False, None),
        (429, {"Retry-After": "7"}, "HTTP 429: scripted failure", False, 7.0),
        (404, {}, "HTTP 404: scripted failure", True, None),
        (401, {}, "HTTP 401: scripted failure", True, None),
        (301, {"Location": "/elsewhere"}, "HTTP 301 (redirects are not followed: fix the URL)", True, None),
    ],
)
def test_each_status_class_means_what_the_spec_says(
    hook: WebhookReceiver,
    status: int,
    headers: dict[str, str],
    reason: str,
    permanent: bool,
    retry_after: float | None,
) -> None:
    hook.script([(status, headers)])
    notifier = WebhookNotifier([hook.url])
    with pytest.raises(NotifyError) as caught:
        notifier.send(notifier.recipients()[0], [make_alert()])

    assert (caught.value.reason, caught.value.permanent, caught.value.retry_after) == (
        reason,
        permanent,
        retry_after,
    )


def test_a_refused_connection_is_temporary_and_names_no_url() -> None:
    url = f"http://127.0.0.1:{free_port()}{TOKEN_PATH}"
    notifier = WebhookNotifier([url])
    with pytest.raises(NotifyError) as caught:
        notifier.send(notifier.recipients()[0], [make_alert()])

    assert caught.value.permanent is False
    assert caught.value.reason.startswith("connection error: ")
    assert "T0KEN" not in caught.value.reason


def test_retries_through_the_outbox_carry_the_same_alert_id_and_deliver_once(
    hook: WebhookReceiver, harness: DeliveryHarness
) -> None:
    hook.script([(503, {}), (429, {"Retry-After": "0"}), (200, {})])
    alert = make_alert()

    harness.run([WebhookNotifier([hook.url + TOKEN_PATH], SECRET)], [alert])

    got = hook.received()
    assert [r.headers["x-keepalive-alert-id"] for r in got] == [alert.id] * 3
    assert [e["reason"] for e in harness.named("alert_retry")] == [
        "HTTP 503: scripted failure",
        "HTTP 429: scripted failure",
    ]
    assert len(harness.named("alert_sent")) == 1
    assert b"T0KEN" not in harness.database_bytes()
    assert all("T0KEN" not in json.dumps(e) for e in harness.events.recent)


def test_a_permanent_refusal_is_recorded_failed_once(hook: WebhookReceiver, harness: DeliveryHarness) -> None:
    hook.script([(410, {})])

    harness.run([WebhookNotifier([hook.url])], [make_alert()])

    assert len(hook.received()) == 1
    assert [e["reason"] for e in harness.named("alert_failed")] == ["HTTP 410: scripted failure"]


def test_a_backlog_goes_one_alert_per_request(hook: WebhookReceiver, harness: DeliveryHarness) -> None:
    alerts = [make_alert(f"t{i}") for i in range(5)]

    harness.run([WebhookNotifier([hook.url])], alerts, digest_after=1)

    assert sorted(r.json()["target"] for r in hook.received()) == ["t0", "t1", "t2", "t3", "t4"]


def _hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:8]


def test_a_certificate_running_out_is_about_a_target_that_is_up() -> None:
    expiring = replace(make_alert("api"), kind=AlertKind.EXPIRING, reason="certificate expires in 6 days")
    body = json.loads(build_body(expiring))
    assert (body["kind"], body["state"], body["reason"]) == (
        "EXPIRING",
        "up",
        "certificate expires in 6 days",
    )
