"""The pure state machine that turns check results into DOWN / RECOVERED alerts (SPEC §1, §6).

No I/O and no clock: ``step`` takes the state, one result and the time, and returns the next
state and the alert to raise, if any. That makes every rule testable one step at a time:

* a failed check counts; at ``failure_threshold`` in a row a DOWN alert is raised and the
  count restarts, so a long outage is re-announced every ``failure_threshold`` failed checks
  (or never again with ``repeat_alerts=False``);
* after a DOWN alert, ``success_threshold`` passing checks in a row raise RECOVERED with the
  downtime; a target that heals before any DOWN alert raises nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from keepalive.alerts import AlertKind


class Status(StrEnum):
    UNKNOWN = "unknown"  # not checked yet
    UP = "up"
    FAILING = "failing"  # failing, but no DOWN alert yet
    DOWN = "down"  # a DOWN alert was raised and no recovery confirmed since


@dataclass(frozen=True, slots=True)
class Policy:
    failure_threshold: int
    success_threshold: int
    repeat_alerts: bool


@dataclass(frozen=True, slots=True)
class TargetState:
    status: Status = Status.UNKNOWN
    failures: int = 0  # failures in a row toward the next DOWN alert; restarts after each alert
    outage_failures: int = 0  # failed checks since the outage began; restarts only on recovery
    successes: int = 0  # passes in a row while DOWN, toward RECOVERED
    since: float | None = None  # the first failed check of the current outage
    alerts_raised: int = 0  # DOWN alerts raised in this outage; 0 means not announced
    last_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # Spelled out rather than dataclasses.asdict: several times faster, and the state file
        # snapshots every target.
        return {
            "status": self.status.value,
            "failures": self.failures,
            "outage_failures": self.outage_failures,
            "successes": self.successes,
            "since": self.since,
            "alerts_raised": self.alerts_raised,
            "last_reason": self.last_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetState:
        """The state a saved record describes. Raises ValueError naming the first field whose
        type or range is wrong, or a combination the state machine never produces: a state
        file is input like any other (``"failures": Infinity`` and ``"since": 1e300`` are valid
        JSON)."""
        try:
            status = Status(data.get("status", "unknown"))
        except ValueError:
            raise ValueError(
                f"status={data.get('status')!r} is not one of {[s.value for s in Status]}"
            ) from None
        state = cls(
            status=status,
            failures=_count(data, "failures"),
            outage_failures=_count(data, "outage_failures"),
            successes=_count(data, "successes"),
            since=_epoch(data, "since"),
            alerts_raised=_count(data, "alerts_raised"),
            last_reason=_text(data, "last_reason"),
        )
        outage = status in (Status.FAILING, Status.DOWN)
        if outage != (state.since is not None):
            raise ValueError(f"status={status.value!r} with since={state.since!r}")
        if (status is Status.DOWN) != (state.alerts_raised > 0):
            raise ValueError(f"status={status.value!r} with alerts_raised={state.alerts_raised}")
        return state


# Beyond any real count, and small enough that arithmetic on it stays exact.
MAX_COUNT = 10**9
# Epoch seconds a timestamp may hold: what datetime can show (up to year 9999).
MAX_EPOCH = 253_402_300_799.0
MAX_REASON = 2_000


def _show(value: Any) -> str:
    """A value for an error line: short, whatever the file held."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{key}={_show(value)} is not a whole number from 0 to {MAX_COUNT}")
    return value


def _epoch(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= MAX_EPOCH:
        raise ValueError(f"{key}={_show(value)} is not a Unix time from 0 to {MAX_EPOCH:.0f}")
    return float(value)


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise ValueError(f"{key} is not a text of at most {MAX_REASON} characters")
    return value


@dataclass(frozen=True, slots=True)
class Raised:
    """An alert the state machine raises; the caller turns it into an ``Alert``."""

    kind: AlertKind
    since: float
    failed_checks: int
    reason: str
    downtime: float | None
    sequence: int  # which DOWN alert of this outage (0, 1, ...); 0 for RECOVERED


UP_STATE = TargetState(status=Status.UP)


def step(
    state: TargetState, ok: bool, reason: str | None, now: float, policy: Policy
) -> tuple[TargetState, Raised | None]:
    """Advance ``state`` by one check result taken at ``now``."""
    if ok:
        return _on_pass(state, now, policy)
    return _on_fail(state, reason or "failed", now, policy)


def _on_fail(
    state: TargetState, reason: str, now: float, policy: Policy
) -> tuple[TargetState, Raised | None]:
    since = state.since if state.since is not None else now
    failures = state.failures + 1
    outage_failures = state.outage_failures + 1
    raised: Raised | None = None
    alerts = state.alerts_raised
    if failures >= policy.failure_threshold:
        if alerts == 0 or policy.repeat_alerts:
            raised = Raised(AlertKind.DOWN, since, outage_failures, reason, None, alerts)
            alerts += 1
        failures = 0
    new = TargetState(
        status=Status.DOWN if alerts else Status.FAILING,
        failures=failures,
        outage_failures=outage_failures,
        successes=0,
        since=since,
        alerts_raised=alerts,
        last_reason=reason,
    )
    return new, raised


def _on_pass(state: TargetState, now: float, policy: Policy) -> tuple[TargetState, Raised | None]:
    if state.alerts_raised == 0:
        # Never announced: a blip (or a first check) ends quietly.
        return UP_STATE, None
    successes = state.successes + 1
    if successes < policy.success_threshold:
        return replace(state, successes=successes, failures=0), None
    since = state.since if state.since is not None else now
    raised = Raised(
        AlertKind.RECOVERED,
        since,
        state.outage_failures,
        state.last_reason or "",
        max(0.0, now - since),
        0,
    )
    return UP_STATE, raised
