"""The interface every channel implements.

Contract of ``Notifier.send(recipient, alerts, reply_to=None)``:
    * ``alerts`` holds one alert, or several that go as one digest message;
    * ``reply_to`` is the message id the server gave an earlier message to the same recipient
      that this one answers (the DOWN a RECOVERED closes), when the outbox knows it; a channel
      that cannot thread ignores it;
    * returns the server's message id when it gives one (else ``None``) once the server has
      accepted the message;
    * raises ``NotifyError`` on failure: ``permanent=True`` only when the SERVER refused
      (Telegram 400/401/403, SMTP authentication failure or recipient refused) - anything on
      our side (a timeout, a full descriptor table, a bug) is temporary. ``retry_after`` when
      the server said how long to wait (Telegram 429). The reason is short and free of secrets.

``digest_capacity(alerts)``: how many of ``alerts``, from the first, one digest message can
name in full. Channels without a length limit keep the default (all of them); the worker
sends the rest in the next digest.

``moved_recipients()`` / ``follow_moves(moves)``: a channel whose server can move a recipient
(Telegram's ``migrate_to_chat_id``) reports the moves it learnt; the worker stores them in the
outbox and hands them back to the next process. Others keep the defaults (no moves).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    """A channel. Subclass it explicitly to inherit the default ``digest_capacity``."""

    channel: str  # "telegram", "email" or "log"

    def recipients(self) -> Sequence[str]:
        """The recipients this channel delivers each alert to (chat ids, addresses)."""
        ...

    def send(self, recipient: str, alerts: Sequence[Alert], reply_to: str | None = None) -> str | None:
        """Deliver one message (a single alert, or a digest of several) to ``recipient``."""
        ...

    def digest_capacity(self, alerts: Sequence[Alert]) -> int:
        """How many of ``alerts`` one digest message names in full: all of them by default."""
        return len(alerts)

    def moved_recipients(self) -> Mapping[str, str]:
        """Recipients the server said have moved (a Telegram group upgraded to a supergroup):
        configured id -> the id sent to now. The outbox keeps them across restarts."""
        return {}

    def follow_moves(self, moves: Mapping[str, str]) -> None:
        """Send to the new ids of recipients known to have moved (read back after a restart)."""
        return None
