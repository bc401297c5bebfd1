"""The interface every channel implements.

Contract of ``Notifier.send(recipient, alerts)``:
    * ``alerts`` holds one alert, or several that go as one digest message;
    * returns the server's message id when it gives one (else ``None``) once the server has
      accepted the message;
    * raises ``NotifyError`` on failure: ``permanent=True`` when retrying cannot help (Telegram
      400/401/403, SMTP authentication failure or recipient refused), ``retry_after`` when the
      server said how long to wait (Telegram 429). The reason is short and already free of
      secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from keepalive.alerts import Alert


class NotifyError(Exception):
    """A failed delivery to one recipient."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


class Notifier(Protocol):
    channel: str  # "telegram", "email" or "log"

    def recipients(self) -> Sequence[str]:
        """The recipients this channel delivers each alert to (chat ids, addresses)."""
        ...

    def send(self, recipient: str, alerts: Sequence[Alert]) -> str | None:
        """Deliver one message (a single alert, or a digest of several) to ``recipient``."""
        ...
