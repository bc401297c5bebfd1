"""Log channel: every alert as one ``key=value`` line. It always succeeds.

The monitor logs each alert as it is raised; routing the log through the outbox as well makes
it one more channel in the delivery accounting (sent counts, the events file)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from keepalive.alerts import Alert
from keepalive.notifiers.base import Notifier
from keepalive.notifiers.text import clip, one_line
from keepalive.scrub import scrub

log = logging.getLogger("keepalive.alerts")


def _value(text: str) -> str:
    """A log field value: one line, quoted when it holds spaces or quotes."""
    text = clip(one_line(text), 300)
    return json.dumps(text, ensure_ascii=False) if not text or any(c in text for c in ' "=') else text


class LogNotifier(Notifier):
    """Writes alerts to the ``keepalive.alerts`` logger."""

    channel = "log"

    def recipients(self) -> Sequence[str]:
        """A single pseudo-recipient: the log."""
        return ("log",)

    def send(self, recipient: str, alerts: Sequence[Alert], reply_to: str | None = None) -> str | None:
        """Log one line per alert (DEBUG: the monitor's own ALERT line is the one people read);
        never raises NotifyError."""
        for alert in alerts:
            log.debug(
                scrub(
                    f"alert delivered channel=log id={alert.id} kind={alert.kind} "
                    f"target={_value(alert.target)} url={_value(alert.url)} reason={_value(alert.reason)}"
                )
            )
        return None
