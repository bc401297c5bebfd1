"""What delivery reports: per-channel figures and one event plus one log line per outcome.

Events (one per message; a digest is one message): every one carries ``alert_ids``,
``targets``, ``kind`` (the alert's kind, or ``"digest"``), ``channel``, ``recipient``,
``attempt`` and ``digest_size`` (alerts in the message), and then
    ``alert_sent``    ``message_id``
    ``alert_retry``   ``reason``, ``next_try_in`` (seconds)
    ``alert_failed``  ``reason``
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keepalive.alerts import Alert
from keepalive.events import EventLog

log = logging.getLogger("keepalive.outbox")


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one recipient: what every event about it says."""

    channel: str
    recipient: str
    alerts: tuple[Alert, ...]
    attempt: int

    def fields(self) -> dict[str, Any]:
        alerts = self.alerts
        return {
            "alert_ids": [alert.id for alert in alerts],
            "targets": list(dict.fromkeys(alert.target for alert in alerts)),
            "kind": str(alerts[0].kind) if len(alerts) == 1 else "digest",
            "channel": self.channel,
            "recipient": self.recipient,
            "attempt": self.attempt,
            "digest_size": len(alerts),
        }


def _fresh_stats() -> dict[str, Any]:
    return {
        "last_success": None,
        "last_error": None,
        "last_error_at": None,
        "sent_total": 0,
        "failed_total": 0,
    }


class Ledger:
    """Counts outcomes per channel (thread-safe) and reports each one as an event and a log line."""

    def __init__(self, events: EventLog) -> None:
        self._events = events
        self._lock = threading.Lock()
        self._stats: dict[str, dict[str, Any]] = {}

    def know(self, channels: Sequence[str]) -> None:
        """Make sure these channels appear in the figures, even before their first message."""
        with self._lock:
            for channel in channels:
                self._stats.setdefault(channel, _fresh_stats())

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per channel: last_success, last_error, last_error_at, sent_total, failed_total
        (totals count alerts, since this process started)."""
        with self._lock:
            return {channel: dict(stats) for channel, stats in self._stats.items()}

    def sent(self, message: Message, message_id: str | None, at: float) -> None:
        with self._lock:
            stats = self._stats.setdefault(message.channel, _fresh_stats())
            stats["last_success"] = at
            stats["sent_total"] += len(message.alerts)
        fields = message.fields()
        self._events.emit("alert_sent", **fields, message_id=message_id)
        # The monitor already wrote the alert itself to the log ("ALERT DOWN ..."); saying the
        # log channel "sent" it too would only double every alert line.
        log.log(
            logging.DEBUG if message.channel == "log" else logging.INFO,
            "alert sent channel=%s recipient=%s kind=%s alerts=%d attempt=%d message_id=%s",
            message.channel,
            message.recipient,
            fields["kind"],
            len(message.alerts),
            message.attempt,
            message_id,
        )

    def retry(self, message: Message, reason: str, delay: float, at: float) -> None:
        self._error(message.channel, reason, at, failed=0)
        self._events.emit("alert_retry", **message.fields(), reason=reason, next_try_in=round(delay, 3))
        log.warning(
            "alert delivery will retry channel=%s recipient=%s attempt=%d in=%.3gs reason=%s",
            message.channel,
            message.recipient,
            message.attempt,
            delay,
            reason,
        )

    def failed(self, message: Message, reason: str, at: float) -> None:
        self._error(message.channel, reason, at, failed=len(message.alerts))
        self._events.emit("alert_failed", **message.fields(), reason=reason)
        log.error(
            "alert delivery failed for good channel=%s recipient=%s attempt=%d reason=%s",
            message.channel,
            message.recipient,
            message.attempt,
            reason,
        )

    def _error(self, channel: str, reason: str, at: float, failed: int) -> None:
        with self._lock:
            stats = self._stats.setdefault(channel, _fresh_stats())
            stats["last_error"] = reason
            stats["last_error_at"] = at
            stats["failed_total"] += failed
