"""Pure delivery policy: backoff, what a send's outcome means, digest splitting, retry times.

Nothing here sleeps, reads a clock or touches the database: the worker passes times in.

Which failures are permanent: only a refusal BY THE SERVER (``NotifyError(permanent=True)``).
Anything of ours - a timeout, ``OSError`` such as EMFILE while building a connection - is
retried like a network error and never counts toward giving up. An unexpected exception (a
bug in a channel) is retried ``max_unexpected`` times and then recorded failed, because the
same message failing the same way blocks every later alert to that recipient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from keepalive.notifiers.base import NotifyError
from keepalive.scrub import scrub

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sent:
    """The server accepted the message."""

    message_id: str | None


@dataclass(frozen=True, slots=True)
class Retry:
    """A temporary failure: try again ``delay`` seconds from now."""

    delay: float
    reason: str
    unexpected: bool = False  # raised by a bug, not reported by the channel


@dataclass(frozen=True, slots=True)
class Failed:
    """A permanent failure: never tried again."""

    reason: str


Outcome = Sent | Retry | Failed


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff (``base_delay`` doubling up to ``max_delay``) and the give-up rule."""

    base_delay: float = 1.0
    max_delay: float = 300.0
    max_unexpected: int = 5

    def backoff(self, attempt: int) -> float:
        """Seconds before the next try after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.base_delay * 2 ** min(max(attempt, 1) - 1, 40), self.max_delay))

    def outcome(
        self,
        error: BaseException | None,
        attempt: int,
        *,
        unexpected_in_row: int = 0,
        message_id: str | None = None,
    ) -> Outcome:
        """What attempt number ``attempt`` (1-based) ending in ``error`` (None: accepted) means.

        ``unexpected_in_row``: unexpected exceptions this message met in a row, this one
        included; only those count toward giving up, never a retry for any other reason."""
        if error is None:
            return Sent(message_id)
        if isinstance(error, NotifyError):
            reason = scrub(error.reason) or "unknown error"
            if error.permanent:
                return Failed(reason)
            # The server's own retry_after wins over our schedule, in both directions.
            delay = max(0.0, error.retry_after) if error.retry_after is not None else self.backoff(attempt)
            return Retry(delay, reason)
        reason = scrub(f"{type(error).__name__}: {error}")
        if isinstance(error, OSError):
            # Ours (EMFILE, ENOBUFS, a socket that could not be built): the environment heals.
            return Retry(self.backoff(attempt), reason)
        if unexpected_in_row >= self.max_unexpected:
            return Failed(f"internal error: {reason}")
        return Retry(self.backoff(attempt), reason, unexpected=True)

    def due_after_restart(self, stored_next_try: float, wall_now: float) -> float:
        """Seconds from now until a delivery read back from disk is due.

        The stored time is wall-clock, and the wall clock may have moved since it was written
        (set back an hour, say): wait at most one maximum backoff, never longer."""
        return min(max(0.0, stored_next_try - wall_now), self.max_delay)


def split_digests(items: Sequence[T], capacity: Callable[[Sequence[T]], int]) -> list[list[T]]:
    """``items`` cut into consecutive messages, each holding as many as ``capacity`` says fit
    (at least one, so an alert too long for any message still goes, on its own)."""
    messages: list[list[T]] = []
    rest = list(items)
    while rest:
        fits = min(len(rest), max(1, int(capacity(rest))))
        messages.append(rest[:fits])
        rest = rest[fits:]
    return messages
