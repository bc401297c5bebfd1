"""The state machine fed sequences of results, asserting the state and alerts after each step."""

from __future__ import annotations

import pytest

from keepalive.alerts import AlertKind
from keepalive.state import Policy, Raised, Status, TargetState, step

OK, FAIL = True, False


def run(
    results: list[bool], policy: Policy, state: TargetState | None = None, start: float = 1000.0
) -> tuple[TargetState, list[tuple[int, Raised]]]:
    """Feed results one a second; returns the final state and (index, alert) pairs."""
    state = state or TargetState()
    raised: list[tuple[int, Raised]] = []
    for i, ok in enumerate(results):
        state, alert = step(state, ok, None if ok else f"reason {i}", start + i, policy)
        if alert is not None:
            raised.append((i, alert))
    return state, raised


def kinds(raised: list[tuple[int, Raised]]) -> list[tuple[int, str]]:
    return [(i, r.kind.value) for i, r in raised]


DEFAULT = Policy(failure_threshold=2, success_threshold=1, repeat_alerts=True)


def test_first_pass_makes_an_unknown_target_up_without_alert() -> None:
    state, raised = run([OK], DEFAULT)
    assert state.status is Status.UP
    assert raised == []


def test_a_blip_that_heals_before_the_threshold_raises_nothing() -> None:
    state, raised = run([OK, FAIL, OK, FAIL, OK], DEFAULT)
    assert raised == []
    assert state == TargetState(status=Status.UP)


def test_one_failure_marks_the_target_failing_not_down() -> None:
    state, _ = run([OK, FAIL], DEFAULT)
    assert state.status is Status.FAILING
    assert state.failures == 1
    assert state.since == 1001.0


def test_outage_raises_down_at_the_threshold_and_resets_the_counter() -> None:
    state, raised = run([OK, FAIL, FAIL], DEFAULT)
    assert kinds(raised) == [(2, "DOWN")]
    alert = raised[0][1]
    assert alert.since == 1001.0
    assert alert.failed_checks == 2
    assert alert.reason == "reason 2"
    assert alert.sequence == 0
    assert state.status is Status.DOWN
    assert state.failures == 0
    assert state.outage_failures == 2


def test_a_long_outage_is_re_announced_every_threshold_failures_with_repeat_on() -> None:
    _, raised = run([FAIL] * 7, DEFAULT)
    assert kinds(raised) == [(1, "DOWN"), (3, "DOWN"), (5, "DOWN")]
    assert [r.sequence for _, r in raised] == [0, 1, 2]
    assert [r.failed_checks for _, r in raised] == [2, 4, 6]


def test_a_long_outage_is_announced_once_with_repeat_off() -> None:
    policy = Policy(failure_threshold=2, success_threshold=1, repeat_alerts=False)
    state, raised = run([FAIL] * 9, policy)
    assert kinds(raised) == [(1, "DOWN")]
    assert state.status is Status.DOWN
    assert state.outage_failures == 9


def test_recovery_after_down_reports_the_downtime_and_failed_checks() -> None:
    state, raised = run([OK, FAIL, FAIL, FAIL, OK], DEFAULT)
    assert kinds(raised) == [(2, "DOWN"), (4, "RECOVERED")]
    recovered = raised[1][1]
    assert recovered.kind is AlertKind.RECOVERED
    assert recovered.downtime == 3.0  # first failure at t=1001, recovery confirmed at t=1004
    assert recovered.failed_checks == 3
    assert recovered.reason == "reason 3"
    assert state == TargetState(status=Status.UP)


def test_success_threshold_needs_that_many_passes_in_a_row() -> None:
    policy = Policy(failure_threshold=1, success_threshold=3, repeat_alerts=False)
    state, raised = run([FAIL, OK, OK, FAIL, OK, OK], policy)
    assert kinds(raised) == [(0, "DOWN")]
    assert state.status is Status.DOWN
    assert state.successes == 2
    state, more = run([OK], policy, state, start=2000.0)
    assert kinds(more) == [(0, "RECOVERED")]
    assert state.status is Status.UP


def test_threshold_one_alerts_on_the_first_failure() -> None:
    policy = Policy(failure_threshold=1, success_threshold=1, repeat_alerts=True)
    _, raised = run([OK, FAIL, FAIL], policy)
    assert kinds(raised) == [(1, "DOWN"), (2, "DOWN")]


@pytest.mark.parametrize("repeat", [True, False])
def test_a_restart_mid_outage_keeps_the_outage(repeat: bool) -> None:
    policy = Policy(failure_threshold=2, success_threshold=1, repeat_alerts=repeat)
    before, raised = run([OK, FAIL, FAIL, FAIL], policy)
    assert kinds(raised) == [(2, "DOWN")]
    # What the state store writes and reads back after a restart.
    restored = TargetState.from_dict(before.to_dict())
    assert restored == before
    state, after = run([FAIL, OK], policy, restored, start=1004.0)
    expected = [(0, "DOWN"), (1, "RECOVERED")] if repeat else [(1, "RECOVERED")]
    assert kinds(after) == expected
    assert after[-1][1].since == 1001.0  # the recovery counts the downtime from before the restart
    assert after[-1][1].downtime == 4.0
    if repeat:
        assert after[0][1].sequence == 1  # a new alert id, not a re-send of the first one
    assert state.status is Status.UP


def test_from_dict_of_an_unknown_target_is_the_initial_state() -> None:
    assert TargetState.from_dict({}) == TargetState()
