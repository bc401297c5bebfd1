"""Webhook channel: one JSON POST per alert to each of ``WEBHOOK_URLS`` (SPEC 17).

The body is ``build_body(alert)`` (a pure function). Headers: ``X-KeepAlive-Alert-Id`` (the
alert's id: the same on every retry and after a restart, so a receiver drops repeats) and, with
``WEBHOOK_SECRET``, ``X-KeepAlive-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>``.
2xx sent; 408, 429 (``Retry-After``), 5xx and network errors retried; other 4xx permanent.

A webhook URL often holds its token in the path (Slack, Discord, Mattermost): a recipient is
named ``scheme://host#hash`` everywhere (outbox, logs, metrics), never by the URL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import requests

from keepalive.alerts import Alert, AlertKind
from keepalive.fanout import hidden_url
from keepalive.notifiers.base import Notifier
from keepalive.notifiers.httpjson import JsonPoster, classify
from keepalive.scrub import register_secret

# A certificate running out (EXPIRING) is about a target that still answers: "up".
_STATES = {
    AlertKind.DOWN: "down",
    AlertKind.RECOVERED: "up",
    AlertKind.EXPIRING: "up",
    AlertKind.TEST: "test",
}


def iso(ts: float) -> str:
    """``2026-11-26T01:02:03.456Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_body(alert: Alert) -> bytes:
    """The JSON object of one alert, as UTF-8 bytes (the exact bytes that are signed)."""
    data: dict[str, Any] = {
        "id": alert.id,
        "kind": str(alert.kind),
        "target": alert.target,
        "url": alert.url,
        "state": _STATES.get(alert.kind, str(alert.kind).lower()),
        "reason": alert.reason,
        "since": iso(alert.since),
        "failed_checks": alert.failed_checks,
        "downtime_seconds": None if alert.downtime is None else round(alert.downtime, 3),
        "host": alert.host,
        "ts": iso(alert.at),
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """The ``X-KeepAlive-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier(Notifier):
    """POSTs each alert to every webhook URL; each URL is an outbox recipient of its own."""

    channel = "webhook"

    def __init__(
        self,
        urls: Sequence[str],
        secret: str | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        deadline: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not urls:
            raise ValueError("WebhookNotifier needs at least one URL (WEBHOOK_URLS)")
        register_secret(*urls, secret)
        self._urls = {hidden_url(url): url for url in urls}
        self._secret = secret
        self._poster = JsonPoster(session, timeout, deadline)
        self._clock = clock

    def recipients(self) -> Sequence[str]:
        """One per URL, named ``scheme://host#hash``."""
        return tuple(self._urls)

    def digest_capacity(self, alerts: Sequence[Alert]) -> int:
        """One alert per request: a receiver handles one object, whatever the backlog."""
        return 1

    def send(self, recipient: str, alerts: Sequence[Alert], reply_to: str | None = None) -> str | None:
        """POST each alert (the worker hands one at a time); raises NotifyError."""
        url = self._urls[recipient]
        for alert in alerts:
            body = build_body(alert)
            headers = {"X-KeepAlive-Alert-Id": alert.id}
            if self._secret:
                headers["X-KeepAlive-Signature"] = signature(self._secret, body)
            status, retry_header, answer = self._poster.post(url, body, headers)
            classify(status, retry_header, answer, self._clock())
        return None
