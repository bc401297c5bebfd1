"""A small fixed-size ring of recent check results per target, for the page's chart and uptime %.

Kept in flat arrays rather than a deque of tuples: at 10,000 targets the tuples would cost
well over 100 MB, the arrays about 1.3 KB a target.
"""

from __future__ import annotations

from array import array

HISTORY_POINTS = 100
_FAILED = -1.0  # latency marker of a failed check


class History:
    __slots__ = ("_count", "_latency", "_next", "_times")

    def __init__(self) -> None:
        self._times = array("d")
        self._latency = array("f")
        self._next = 0
        self._count = 0

    def add(self, at: float, ok: bool, latency_ms: float | None) -> None:
        value = (latency_ms if latency_ms is not None else 0.0) if ok else _FAILED
        if len(self._times) < HISTORY_POINTS:
            self._times.append(at)
            self._latency.append(value)
        else:
            self._times[self._next] = at
            self._latency[self._next] = value
        self._next = (self._next + 1) % HISTORY_POINTS
        self._count = min(self._count + 1, HISTORY_POINTS)

    def _order(self) -> range:
        if len(self._times) < HISTORY_POINTS:
            return range(len(self._times))
        return range(self._next, self._next + HISTORY_POINTS)

    def points(self) -> list[tuple[float, float | None, bool]]:
        """Oldest first: (time, latency in ms or None when failed, ok)."""
        out: list[tuple[float, float | None, bool]] = []
        for i in self._order():
            j = i % HISTORY_POINTS
            latency = float(self._latency[j])
            ok = latency != _FAILED
            out.append((self._times[j], round(latency, 2) if ok else None, ok))
        return out

    def uptime_percent(self) -> float | None:
        if not self._count:
            return None
        passed = sum(1 for value in self._latency if value != _FAILED)
        return round(100.0 * passed / len(self._latency), 2)
