"""The per-target ring of recent results."""

from __future__ import annotations

from keepalive.engine.history import HISTORY_POINTS, History


def test_an_empty_history_has_no_uptime() -> None:
    assert History().uptime_percent() is None
    assert History().points() == []


def test_points_are_oldest_first_and_failures_have_no_latency() -> None:
    h = History()
    h.add(1.0, True, 10.0)
    h.add(2.0, False, None)
    h.add(3.0, True, 30.5)
    assert h.points() == [(1.0, 10.0, True), (2.0, None, False), (3.0, 30.5, True)]
    assert h.uptime_percent() == 66.67


def test_the_ring_keeps_only_the_newest_points() -> None:
    h = History()
    for i in range(HISTORY_POINTS + 25):
        h.add(float(i), i % 2 == 0, 1.0)
    points = h.points()
    assert len(points) == HISTORY_POINTS
    assert points[0][0] == 25.0
    assert points[-1][0] == float(HISTORY_POINTS + 24)
    assert h.uptime_percent() == 50.0


def test_the_uptime_follows_the_points_as_they_wrap_around() -> None:
    h = History()
    pattern = [True, False, False, True, True, True, False]
    for i in range(3 * HISTORY_POINTS + 11):
        h.add(float(i), pattern[i % len(pattern)], 1.0)
        points = h.points()
        expected = round(100.0 * sum(1 for p in points if p[2]) / len(points), 2)
        assert h.uptime_percent() == expected, i
