"""Durations as people write them: ``90s``, ``45m``, ``2h``, ``1d``, ``1h30m`` (SPEC 13)."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"^(?:\d+[smhdw])+$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
ALLOWED = "a duration like 90s, 45m, 2h, 1d or 1h30m"


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError saying what is allowed. Zero is refused."""
    spelled = text.strip().lower().replace(" ", "")
    if len(spelled) > 40 or not _WHOLE.match(spelled):
        raise ValueError(f"{text!r} is not {ALLOWED}")
    seconds = sum(int(n) * _UNIT[u] for n, u in _PART.findall(spelled))
    if seconds <= 0:
        raise ValueError(f"{text!r} is not {ALLOWED} (greater than zero)")
    return float(seconds)


def format_duration(seconds: float) -> str:
    """The shortest spelling ``parse_duration`` reads back: 5400 -> ``1h30m``."""
    rest = round(seconds)
    if rest <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
