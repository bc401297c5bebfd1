"""Remove secrets from text before it reaches a log, the events file, a state file or a page.

The bot token travels inside Telegram URLs, and requests/urllib3 put that URL into their
exception messages; scrubbing every outgoing string in one place is the only way to be sure.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
# Telegram tokens look like 123456789:AAH...; mask anything of that shape even if unregistered,
# so a token read from somewhere unexpected still never leaks.
_TOKEN_SHAPE = re.compile(r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{30,}")


def register_secret(*values: str | None) -> None:
    """Add values that must never appear in output (empty and very short values are ignored)."""
    global _secrets
    with _lock:
        found = set(_secrets)
        for value in values:
            if value and len(value) >= 4:
                found.add(value)
        # Longest first so a secret containing another is masked whole.
        _secrets = tuple(sorted(found, key=len, reverse=True))


def registered() -> tuple[str, ...]:
    """Every secret registered so far (a settings reader in a child process sends them back)."""
    return _secrets


def scrub(text: str) -> str:
    """Return ``text`` with every registered secret and token-shaped string masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _TOKEN_SHAPE.sub(MASK, text)


def mask(value: str | None) -> str:
    """How a secret setting is shown: set or not, never its value."""
    return f"{MASK} (set)" if value else "(empty)"


class ScrubFilter(logging.Filter):
    """Logging filter that renders each record and scrubs the final text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            # Tracebacks carry exception texts (and URLs); render them now so they get scrubbed.
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = scrub(message)
        record.args = None
        return True
