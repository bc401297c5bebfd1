"""Apprise channel: Discord, Slack, ntfy, Matrix, ... through the ``apprise`` library, in process
(SPEC 17). Never its command-line tool: a subprocess per alert is slow, loses the error, and
broke for Uptime Kuma's users whenever the tool moved (Kuma #1440 #5547 #5519 #7361).

Each URL of ``APPRISE_URLS`` is an outbox recipient of its own, so retries and "once" hold per
URL. The URLs carry tokens: they are registered as secrets, and a recipient is named only by its
scheme and a hash of the URL (``discord#1a2b3c4d``) in the outbox, logs, events and metrics.

Apprise reports success or failure but not whether a failure is permanent, so every failure is
retried with the outbox's backoff (1 s doubling to 5 min) until ``GIVE_UP_AFTER`` (1 hour) after
the alert was raised; the next failure after that is recorded as failed, with Apprise's own
last words as the reason. One send is bounded by ``SEND_TIMEOUT`` (Apprise's call deadline).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from keepalive.alerts import Alert, AlertKind
from keepalive.fanout import apprise_name
from keepalive.notifiers.base import Notifier, NotifyError
from keepalive.notifiers.httpjson import clean
from keepalive.notifiers.text import duration, utc
from keepalive.scrub import register_secret

GIVE_UP_AFTER = 3600.0
SEND_TIMEOUT = 30.0
MAX_BODY = 4000  # characters; the strictest common services (Discord 2000, Telegram 4096) cut the rest
MAX_LINE = 300  # one alert's line in a digest


def recipient_name(url: str) -> str:
    """``scheme#hash``: tells URLs apart without a word of them (the same as --check-config)."""
    return apprise_name(url)


def build_message(alerts: Sequence[Alert]) -> tuple[str, str]:
    """(title, body) of one notification: plain text every service can show (pure)."""
    if len(alerts) == 1:
        alert = alerts[0]
        if alert.kind is AlertKind.DOWN:
            title = f"DOWN: {alert.target}"
            lines = [
                f"Reason: {alert.reason}",
                f"Since: {utc(alert.since)}",
                f"Failed checks: {alert.failed_checks}",
            ]
        elif alert.kind is AlertKind.RECOVERED:
            title = f"RECOVERED: {alert.target}"
            lines = [f"Down for {duration(alert.downtime or 0.0)}", f"Last failure: {alert.reason}"]
        elif alert.kind is AlertKind.EXPIRING:
            title = f"EXPIRING: {alert.target}"
            lines = [alert.reason, f"Certificate expires: {utc(alert.since)}"]
        else:
            title = "Test alert from the keep-alive monitor"
            lines = [alert.reason]
        lines += [f"URL: {alert.url}", f"Monitor: {alert.host}"]
        return title, "\n".join(lines)[:MAX_BODY]
    down = sum(1 for a in alerts if a.kind is AlertKind.DOWN)
    title = f"{len(alerts)} alerts ({down} down, {len(alerts) - down} other)"
    return title, "\n".join(_digest_line(a) for a in alerts)[:MAX_BODY]


def _digest_line(alert: Alert) -> str:
    return f"{alert.kind}: {alert.target} ({alert.reason})"[:MAX_LINE]


def digest_capacity(alerts: Sequence[Alert]) -> int:
    """How many of ``alerts``, from the first, one digest names in full (at least one)."""
    used = 0
    for count, alert in enumerate(alerts):
        used += len(_digest_line(alert)) + 1
        if used > MAX_BODY + 1:
            return max(1, count)
    return len(alerts)


class AppriseNotifier(Notifier):
    """Sends through ``apprise.Apprise``, one instance per URL (see the module doc)."""

    channel = "apprise"

    def __init__(
        self,
        urls: Sequence[str],
        *,
        clock: Callable[[], float] = time.time,
        give_up_after: float = GIVE_UP_AFTER,
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        if not urls:
            raise ValueError("AppriseNotifier needs at least one URL (APPRISE_URLS)")
        with warnings.catch_warnings():
            # apprise 2.2 imports the stdlib's imghdr (PGP e-mail support), deprecated since
            # Python 3.11: a library's own business, not a line on the operator's terminal.
            warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
            import apprise  # ~0.2 s to import: only when the channel is on
            import apprise.utils.pgp  # the e-mail plugins import it lazily; once is enough

        register_secret(*urls)
        # Apprise logs two INFO lines per send and its warnings through its own logger; each
        # result carries them (its capture handler sits on that logger), and the outbox writes
        # the one line that matters (sent, retry, failed with Apprise's reason). Kept out of
        # the monitor's log: one line per thing.
        logging.getLogger("apprise").propagate = False
        self._apprise = apprise
        self._clock = clock
        self._give_up_after = give_up_after
        self._timeout = timeout
        self._services: dict[str, Any] = {}
        self._refused: dict[str, str] = {}
        for url in urls:
            name = recipient_name(url)
            service = apprise.Apprise()
            # add() refuses a URL it cannot parse (unknown scheme, missing token); the alert is
            # then recorded failed at once with the reason, rather than retried for an hour.
            if service.add(url):
                self._services[name] = service
            else:
                self._refused[name] = (
                    f"Apprise does not accept this URL ({url.partition('://')[0]}://...): "
                    "check the scheme and its required parts"
                )
        # Apprise logs through one process-wide logger; one send at a time keeps each result's
        # log lines its own.
        self._lock = threading.Lock()

    def _notify_type(self, alerts: Sequence[Alert]) -> Any:
        """Apprise's colour and icon: failure for a DOWN, warning for an EXPIRING, else success."""
        kinds = {alert.kind for alert in alerts}
        if AlertKind.DOWN in kinds:
            return self._apprise.NotifyType.FAILURE
        if AlertKind.EXPIRING in kinds:
            return self._apprise.NotifyType.WARNING
        return self._apprise.NotifyType.SUCCESS

    def digest_capacity(self, alerts: Sequence[Alert]) -> int:
        """A digest names each of its alerts in full; the worker sends the rest next."""
        return digest_capacity(alerts)

    def recipients(self) -> Sequence[str]:
        return (*self._services, *self._refused)

    def send(self, recipient: str, alerts: Sequence[Alert], reply_to: str | None = None) -> str | None:
        """Notify one URL; raises NotifyError (temporary until ``give_up_after``)."""
        refused = self._refused.get(recipient)
        if refused is not None:
            raise NotifyError(refused, permanent=True)
        title, body = build_message(alerts)
        with self._lock:
            result = self._services[recipient].notify(
                title=title,
                body=body,
                body_format=self._apprise.NotifyFormat.TEXT,
                notify_type=self._notify_type(alerts),
                timeout=self._timeout,
            )
        if result:
            return None
        words = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR")]
        status = getattr(result.status, "name", str(result.status)).lower()
        reason = clean(f"apprise {status}: {words[-1] if words else 'no reason given'}")
        oldest = min(alert.at for alert in alerts)
        if self._clock() - oldest >= self._give_up_after:
            raise NotifyError(
                f"{reason} (given up: failing {duration(self._give_up_after)} after the alert)",
                permanent=True,
            )
        raise NotifyError(reason)
