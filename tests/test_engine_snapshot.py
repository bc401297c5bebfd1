"""The typed snapshot and its two JSON renderers: exactly the keys /health and /api/status had,
times as ISO strings rendered from epoch floats, history expanded only when read."""

from __future__ import annotations

from dataclasses import replace

import pytest

from keepalive.engine.history import HISTORY_POINTS, History
from keepalive.engine.snapshot import (
    ChannelSnapshot,
    HistoryPoint,
    LagSnapshot,
    MonitorSnapshot,
    TargetSnapshot,
    to_health,
    to_status_json,
)
from keepalive.state import Status

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z

TARGET = TargetSnapshot(
    name="db",
    url="http://ops:***@db.example/health",
    state=Status.DOWN,
    last_check=T0 + 59.1234,
    last_latency_ms=None,
    last_reason="HTTP 503",
    consecutive_failures=4,
    since=T0,
    interval_seconds=5.0,
    uptime_percent=60.0,
    checks_ok_total=6,
    checks_failed_total=4,
    history=(HistoryPoint(T0, None, False), HistoryPoint(T0 + 5, 12.34, True)),
)
CHANNEL = ChannelSnapshot("telegram", True, "token and 1 chat", T0 + 1, None, None, 3, 0)


def snapshot(**changes: object) -> MonitorSnapshot:
    fields: dict[str, object] = {
        "host": "mon-1",
        "version": "9.9",
        "python": "3.11.7",
        "taken_at": T0 + 60.0004,
        "started_at": T0,
        "healthy": True,
        "status": "ok",
        "problems": (),
        "progressing": True,
        "stall_after_seconds": 15.0,
        "last_progress_age_seconds": 0.12345,
        "targets_up": 0,
        "targets_failing": 0,
        "targets_down": 1,
        "targets_unknown": 0,
        "outbox_depth": 2,
        "oldest_undelivered_age_seconds": 1.23456,
        "checks_total": 10,
        "checks_missed_total": 1,
        "schedule_lag": LagSnapshot(0.012345, 0.0456789, 0.1),
        "targets": (TARGET,),
        "channels": (CHANNEL,),
    }
    fields.update(changes)
    return MonitorSnapshot(**fields)  # type: ignore[arg-type]


def test_the_status_document_has_exactly_the_keys_it_always_had_plus_problems() -> None:
    document = to_status_json(snapshot(), include_history=True)
    assert document["monitor"] == {
        "host": "mon-1",
        "version": "9.9",
        "python": "3.11.7",
        "started_at": "2023-11-14T22:13:20.000Z",
        "uptime_seconds": 60.0,
        "status": "ok",
        "problems": [],
        "stall_after_seconds": 15.0,
        "targets_total": 1,
        "targets_up": 0,
        "targets_failing": 0,
        "targets_down": 1,
        "targets_unknown": 0,
        "outbox_depth": 2,
        "oldest_undelivered_age_seconds": 1.235,
        "checks_total": 10,
        "checks_missed_total": 1,
        "push_unknown_total": 0,
        "telegram_commands_refused_total": 0,
        "targets_held": 0,
        "targets_in_maintenance": 0,
        "schedule_lag_seconds": {"p50": 0.0123, "p99": 0.0457, "max": 0.1},
    }
    assert document["targets"] == [
        {
            "name": "db",
            "url": "http://ops:***@db.example/health",
            "state": "down",
            "last_check": "2023-11-14T22:14:19.123Z",
            "last_latency_ms": None,
            "last_reason": "HTTP 503",
            "consecutive_failures": 4,
            "since": "2023-11-14T22:13:20.000Z",
            "interval_seconds": 5.0,
            "uptime_percent": 60.0,
            "checks_ok_total": 6,
            "checks_failed_total": 4,
            "silenced_by": None,
            "held_until": None,
            "held_alert": False,
            "downtime_seconds": 0.0,
            "downtime_in_maintenance_seconds": 0.0,
            "downtime_held_by_dependency_seconds": 0.0,
            "remediation": None,
            "kind": "http",
            "history": [[T0, None, False], [T0 + 5, 12.34, True]],
        }
    ]
    assert document["channels"] == [
        {
            "name": "telegram",
            "enabled": True,
            "why": "token and 1 chat",
            "last_success": "2023-11-14T22:13:21.000Z",
            "last_error": None,
            "last_error_at": None,
            "sent_total": 3,
            "failed_total": 0,
        }
    ]


def test_without_history_the_targets_have_no_history_key() -> None:
    (target,) = to_status_json(snapshot(), include_history=False)["targets"]
    assert "history" not in target


def test_asking_history_of_a_snapshot_taken_without_it_is_an_error_not_an_empty_chart() -> None:
    bare = snapshot(targets=(replace(TARGET, history=None),))
    assert bare.has_history is False
    with pytest.raises(ValueError, match="taken without history"):
        to_status_json(bare, include_history=True)


def test_health_is_200_with_the_figures_while_healthy() -> None:
    healthy, body = to_health(snapshot())
    assert healthy is True
    assert body == {
        "status": "ok",
        "problems": [],
        "uptime_seconds": 60.0,
        "targets_up": 0,
        "targets_down": 1,
        "targets_failing": 0,
        "outbox_depth": 2,
        "oldest_undelivered_age_seconds": 1.235,
        "last_progress_age_seconds": 0.123,
        "stall_after_seconds": 15.0,
    }


def test_health_carries_the_status_word_and_every_problem_when_unhealthy() -> None:
    problems = ("saving state to /s/state.json has failed for 42 s: Read-only file system",)
    healthy, body = to_health(snapshot(healthy=False, status="alert_path_failing", problems=problems))
    assert healthy is False
    assert (body["status"], body["problems"]) == ("alert_path_failing", list(problems))


def test_a_history_view_reads_like_the_ring_and_stays_as_it_was_taken() -> None:
    history = History()
    for i in range(HISTORY_POINTS + 7):  # wrapped around
        history.add(T0 + i, i % 3 != 0, 10.0 + i / 1000)
    view = history.view()
    expected = [HistoryPoint(at, latency, ok) for at, latency, ok in history.points()]
    assert list(view) == expected
    assert len(view) == HISTORY_POINTS
    assert view[0] == expected[0] and view[-1] == expected[-1]
    assert list(view[2:5]) == expected[2:5]
    history.add(T0 + 999, False, None)
    assert list(view) == expected  # a later check does not reach into a taken snapshot


def test_a_history_view_of_a_short_ring() -> None:
    history = History()
    history.add(T0, True, 1.234)
    history.add(T0 + 1, False, None)
    assert list(history.view()) == [HistoryPoint(T0, 1.23, True), HistoryPoint(T0 + 1, None, False)]
    assert list(History().view()) == []
