"""The pure delivery policy: backoff, what each send outcome means, digest splitting, restarts."""

from __future__ import annotations

import pytest

from keepalive.delivery.policy import Failed, Retry, RetryPolicy, Sent, split_digests
from keepalive.notifiers.base import NotifyError

POLICY = RetryPolicy(base_delay=1.0, max_delay=300.0, max_unexpected=5)


def test_backoff_is_one_second_doubling_to_five_minutes() -> None:
    assert [POLICY.backoff(n) for n in range(1, 11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert POLICY.backoff(10_000) == 300


def test_an_accepted_message_is_sent_with_its_id() -> None:
    assert POLICY.outcome(None, 1, message_id="42") == Sent("42")


def test_a_refusal_by_the_server_is_failed_at_once_with_its_reason() -> None:
    refusal = NotifyError("Forbidden: bot was blocked by the user", permanent=True)
    assert POLICY.outcome(refusal, 1) == Failed("Forbidden: bot was blocked by the user")


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1.0), (3, 4.0), (12, 300.0)])
def test_a_temporary_failure_backs_off_by_its_attempt(attempt: int, delay: float) -> None:
    assert POLICY.outcome(NotifyError("HTTP 502"), attempt) == Retry(delay, "HTTP 502")


def test_retry_after_from_the_server_wins_over_the_backoff_both_ways() -> None:
    assert POLICY.outcome(NotifyError("429", retry_after=0.5), 9) == Retry(0.5, "429")
    assert POLICY.outcome(NotifyError("429", retry_after=900), 1) == Retry(900.0, "429")
    assert POLICY.outcome(NotifyError("429", retry_after=-3), 1) == Retry(0.0, "429")


def test_an_os_error_of_ours_is_retried_for_ever_and_never_counts_toward_giving_up() -> None:
    """Defect 8: EMFILE while building a request became a permanent failure after 5 tries."""
    emfile = OSError(24, "Too many open files")

    outcomes = [POLICY.outcome(emfile, n, unexpected_in_row=n) for n in range(1, 21)]

    assert all(isinstance(outcome, Retry) and not outcome.unexpected for outcome in outcomes)
    assert outcomes[0] == Retry(1.0, "OSError: [Errno 24] Too many open files")


def test_a_bug_in_a_channel_is_retried_then_failed_on_the_fifth_in_a_row() -> None:
    bug = RuntimeError("cannot format")

    assert POLICY.outcome(bug, 7, unexpected_in_row=4) == Retry(64.0, "RuntimeError: cannot format", True)
    assert POLICY.outcome(bug, 8, unexpected_in_row=5) == Failed(
        "internal error: RuntimeError: cannot format"
    )


def test_a_reason_is_scrubbed_of_a_token() -> None:
    token = "123456789:AAFakeTokenForKeepAliveTests_0123456789"
    outcome = POLICY.outcome(ConnectionError(f"POST /bot{token}/sendMessage refused"), 1)
    assert outcome == Retry(1.0, "ConnectionError: POST /bot***/sendMessage refused")


@pytest.mark.parametrize(
    ("stored", "now", "due_in"),
    [(1000.0, 990.0, 10.0), (1000.0, 1500.0, 0.0), (5000.0, 1000.0, 300.0)],
    ids=["still-ahead", "overdue", "wall-clock-set-back"],
)
def test_a_delivery_read_from_disk_waits_at_most_one_maximum_backoff(
    stored: float, now: float, due_in: float
) -> None:
    assert POLICY.due_after_restart(stored, now) == due_in


def test_digests_hold_as_many_as_the_channel_says_fit_and_keep_the_order() -> None:
    assert split_digests(list(range(20)), lambda rest: 7) == [
        list(range(7)),
        list(range(7, 14)),
        list(range(14, 20)),
    ]


def test_a_channel_that_fits_nothing_still_sends_one_alert_a_message() -> None:
    assert split_digests(["a", "b", "c"], lambda rest: 0) == [["a"], ["b"], ["c"]]


def test_the_default_capacity_is_one_digest_for_all() -> None:
    assert split_digests(list(range(150)), len) == [list(range(150))]
