"""The announcer: what one check changed becomes events, log lines and alerts, each event and its
log line written from the same fields by one reporter; the policy seam can hold an alert."""

from __future__ import annotations

import logging

import pytest

from keepalive.alerts import Alert, AlertKind
from keepalive.engine.announcer import Announcer, Reporter, format_fields
from keepalive.events import EventLog
from keepalive.probe.checker import CheckResult
from keepalive.state import Policy, Raised, Status, TargetState, step
from keepalive.targets import Target

T0 = 1_700_000_000.0
TARGET = Target("db", "http://ops:pw@db.example/health", 5.0, 2, 1, 2.0)
POLICY = Policy(2, 1, True)
LOGGER = "keepalive.test-announcer"


class Holding:
    def __init__(self, why: str | None) -> None:
        self.why = why
        self.asked: list[tuple[str, str]] = []

    def hold(self, alert: Alert, target: Target) -> str | None:
        self.asked.append((alert.kind.value, target.name))
        return self.why

    def annotate(self, alert: Alert, target: Target) -> Alert:
        return alert

    def is_held(self, name: str) -> bool:
        return self.why is not None


def announcer(policy: Holding | None = None) -> tuple[Announcer, EventLog, list[Alert]]:
    events = EventLog(None, clock=lambda: T0)
    queued: list[Alert] = []
    return (
        Announcer(Reporter(events, logging.getLogger(LOGGER)), "mon-1", queued.append, policy),
        events,
        queued,
    )


def feed(ann: Announcer, state: TargetState, ok: bool, at: float) -> TargetState:
    result = CheckResult(ok, None if ok else "HTTP 503", 5.0 if ok else None, at)
    new, raised = step(state, ok, result.reason, at, POLICY)
    ann.changed(TARGET, POLICY, state, new, result, raised)
    return new


def test_an_outage_writes_each_event_and_its_log_line_from_the_same_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    ann, events, queued = announcer()
    state = feed(ann, TargetState(), False, T0)
    state = feed(ann, state, False, T0 + 5)
    feed(ann, state, True, T0 + 10)
    names = [e["event"] for e in events.recent]
    assert names == [
        "target_failed",
        "target_state_changed",
        "target_failed",
        "target_state_changed",
        "target_down",
        "target_state_changed",
        "target_recovered",
    ]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == len(names)  # one line per event, no more, no less
    for event, line in zip(events.recent, lines, strict=True):
        fields = {k: v for k, v in event.items() if k not in ("ts", "event")}
        assert line.endswith(format_fields(fields)), (event, line)
    down = next(e for e in events.recent if e["event"] == "target_down")
    assert down == {
        "ts": "2023-11-14T22:13:20.000Z",
        "event": "target_down",
        "target": "db",
        "url": "http://ops:***@db.example/health",
        "reason": "HTTP 503",
        "since": "2023-11-14T22:13:20.000Z",
        "failed_checks": 2,
        "repeat": 0,
        "alert_id": queued[0].id,
    }
    assert [(a.kind, a.url, a.host) for a in queued] == [
        (AlertKind.DOWN, "http://ops:***@db.example/health", "mon-1"),
        (AlertKind.RECOVERED, "http://ops:***@db.example/health", "mon-1"),
    ]
    assert queued[1].downtime == 10.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split(" target=")[0] for w in warnings] == ["ALERT DOWN", "ALERT RECOVERED"]
    assert all("pw@" not in line for line in lines)


def test_a_first_passing_check_is_no_news() -> None:
    ann, events, queued = announcer()
    feed(ann, TargetState(), True, T0)
    assert events.recent == [] and queued == []


def test_an_alert_the_policy_holds_is_reported_and_not_queued() -> None:
    policy = Holding("silence 3f2a")
    ann, events, queued = announcer(policy)
    alert = ann.raised(TARGET, Raised(AlertKind.DOWN, T0, 2, "HTTP 503", None, 0), T0 + 5)
    assert queued == []
    assert policy.asked == [("DOWN", "db")]
    held = events.recent[-1]
    assert (held["event"], held["alert_id"], held["why"], held["kind"]) == (
        "alert_held",
        alert.id,
        "silence 3f2a",
        "DOWN",
    )


def test_an_alert_the_policy_lets_through_is_queued() -> None:
    policy = Holding(None)
    ann, events, queued = announcer(policy)
    ann.raised(TARGET, Raised(AlertKind.DOWN, T0, 2, "HTTP 503", None, 0), T0 + 5)
    assert [a.kind for a in queued] == [AlertKind.DOWN]
    assert "alert_held" not in [e["event"] for e in events.recent]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain", "plain"),
        ("two words", '"two words"'),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("red\x1b[31m", '"red\\u001b[31m"'),
        ("na\u009bme", '"na\\u009bme"'),
        ("café", "café"),
        (None, "-"),
        (2.5, "2.5"),
        (["telegram:1", "email:a@b"], "telegram:1,email:a@b"),
        (Status.DOWN, "down"),
    ],
)
def test_log_field_values_are_one_unambiguous_token_without_control_characters(
    value: object, shown: str
) -> None:
    assert format_fields({"k": value}) == f"k={shown}"
