"""A small fixed-size ring of recent check results per target, for the page's chart and uptime %.

Kept in flat arrays rather than a deque of tuples: at 10,000 targets the tuples would cost
well over 100 MB, the arrays about 1.3 KB a target.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import overload

from keepalive.engine.snapshot import HistoryPoint

HISTORY_POINTS = 100
_FAILED = -1.0  # latency marker of a failed check


class History:
    __slots__ = ("_count", "_latency", "_next", "_passed", "_times")

    def __init__(self) -> None:
        self._times = array("d")
        self._latency = array("f")
        self._next = 0
        self._count = 0
        # Passed checks among the points, kept as they come and go: the uptime is read after
        # every check (the target's snapshot part), and summing the ring each time cost ~4 us.
        self._passed = 0

    def add(self, at: float, ok: bool, latency_ms: float | None) -> None:
        value = (latency_ms if latency_ms is not None else 0.0) if ok else _FAILED
        if len(self._times) < HISTORY_POINTS:
            self._times.append(at)
            self._latency.append(value)
        else:
            if self._latency[self._next] != _FAILED:
                self._passed -= 1
            self._times[self._next] = at
            self._latency[self._next] = value
        if ok:
            self._passed += 1
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

    def view(self) -> HistoryView:
        """The points as they are now, oldest first, frozen (see HistoryView)."""
        start = 0 if len(self._times) < HISTORY_POINTS else self._next
        return HistoryView(self._times[:], self._latency[:], start)

    def uptime_percent(self) -> float | None:
        if not self._count:
            return None
        return round(100.0 * self._passed / len(self._latency), 2)


class HistoryView(Sequence[HistoryPoint]):
    """A frozen copy of a ring's points for a snapshot: two flat array copies (about a
    microsecond), expanded into ``HistoryPoint`` objects only when a renderer reads them, off
    the loop. Building 100 point objects for each of 50,000 targets on the loop every second
    would not be."""

    __slots__ = ("_latency", "_start", "_times")

    def __init__(self, times: array[float], latency: array[float], start: int) -> None:
        self._times = times
        self._latency = latency
        self._start = start

    def __len__(self) -> int:
        return len(self._times)

    @overload
    def __getitem__(self, index: int) -> HistoryPoint: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[HistoryPoint]: ...
    def __getitem__(self, index: int | slice) -> HistoryPoint | Sequence[HistoryPoint]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        size = len(self._times)
        if not -size <= index < size:
            raise IndexError("history index out of range")
        j = (self._start + index % size) % size
        latency = float(self._latency[j])
        ok = latency != _FAILED
        return HistoryPoint(self._times[j], round(latency, 2) if ok else None, ok)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]
