"""Plain-text pieces shared by the channels' message builders (no markup, no escaping)."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from keepalive.alerts import Alert, AlertKind

# Digest summaries list kinds in this order, whatever order the alerts came in.
KIND_ORDER = (AlertKind.DOWN, AlertKind.RECOVERED, AlertKind.EXPIRING, AlertKind.TEST)
ELLIPSIS = "…"


def utc(ts: float) -> str:
    """``2025-11-13 10:00:00 UTC``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    """A short human duration: ``42 s``, ``5 min 3 s``, ``2 h 5 min``, ``3 d 4 h``."""
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def one_line(text: str) -> str:
    """Collapse every run of whitespace or control characters into one space.

    Target names and reasons come from config files and remote servers; a line break in one
    of them must not be able to forge a line (or a header) of our message."""
    cleaned = "".join(_clean(ch) for ch in text)
    return " ".join(cleaned.split())


def _clean(ch: str) -> str:
    if _is_break(ch):
        return " "
    # A lone surrogate (valid in JSON as "\ud800") cannot be encoded as UTF-8: it would make
    # every message that quotes it fail to send, and block the queue behind it.
    return "\ufffd" if unicodedata.category(ch) == "Cs" else ch


def _is_break(ch: str) -> bool:
    # Cc: C0/C1 controls incl. CR, LF, TAB, NUL; Zl/Zp: U+2028/U+2029, which splitlines() honours.
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + ELLIPSIS


def kind_counts(alerts: Sequence[Alert]) -> str:
    """``DOWN x3, RECOVERED x1`` for a digest."""
    counts = Counter(alert.kind for alert in alerts)
    return ", ".join(f"{kind} x{counts[kind]}" for kind in KIND_ORDER if counts[kind])
