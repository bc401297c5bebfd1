"""Each target's runtime, and the pure ``reconcile`` that a reload (SIGHUP) applies.

A runtime is two parts with different lives:

* ``Observed``: everything learned from checks (the state machine's state, counters, the
  history ring). It belongs to the endpoint, so a reload that keeps the endpoint hands the
  same object to the new runtime: every field is carried across by construction, and a field
  added later cannot be forgotten by a hand-written copy.
* the runtime itself: the configuration (target, policy) and the schedule's bookkeeping
  (next due time, the check in flight), which a changed configuration starts afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from keepalive.actions.result import RemediationResult
from keepalive.engine.history import History
from keepalive.engine.snapshot import TargetSnapshot
from keepalive.probe.detail import Detail
from keepalive.state import Policy, Status, TargetState
from keepalive.targets import Target


class Observed:
    """What checks of one endpoint have shown; outlives a runtime when a reload keeps the URL."""

    __slots__ = (
        "checks_failed",
        "checks_ok",
        "detail",
        "history",
        "last_check",
        "last_latency_ms",
        "last_ok",
        "last_reason",
        "remediation",
        "state",
        "status_since",
    )

    def __init__(self, state: TargetState, now: float) -> None:
        self.state = state
        self.history = History()
        self.last_check: float | None = None  # epoch seconds
        self.last_latency_ms: float | None = None
        self.last_reason: str | None = state.last_reason
        self.last_ok: bool | None = None
        self.checks_ok = 0
        self.checks_failed = 0
        # Epoch seconds the current status began (shown as "since" while up).
        self.status_since = state.since if state.since is not None else now
        # What the last check of a push, log or https target learned (keepalive.probe.detail).
        self.detail: Detail | None = None
        # The last run of the target's on_down (SPEC 15, keepalive.actions.remediation).
        self.remediation: RemediationResult | None = None

    @property
    def consecutive_failures(self) -> int:
        return self.state.outage_failures if self.state.status in (Status.FAILING, Status.DOWN) else 0


class TargetRuntime:
    """One target's configuration, what it has shown (``observed``) and its place in the schedule."""

    __slots__ = (
        "next_due",
        "observed",
        "policy",
        "public_url",
        "retired",
        "running_since",
        "target",
        "task",
        "view",
        "view_with_history",
    )

    def __init__(self, target: Target, policy: Policy, observed: Observed) -> None:
        self.target = target
        self.policy = policy
        self.observed = observed
        # Parsed once: it is shown after every check (snapshot, state record).
        self.public_url = target.public_url
        self.next_due: float = 0.0  # loop (monotonic) time of the next planned check
        self.running_since: float | None = None  # loop time the current check started
        self.task: asyncio.Task[None] | None = None  # the check in flight, if any
        self.retired = False  # removed or replaced by a reload: no further checks
        # This target's part of the last snapshot; dropped whenever ``observed`` changes.
        self.view: TargetSnapshot | None = None
        self.view_with_history: TargetSnapshot | None = None

    def observed_changed(self) -> None:
        """A check changed ``observed``: this target's snapshot parts are out of date."""
        self.view = self.view_with_history = None

    @property
    def interval(self) -> float:
        return self.target.interval

    def retire(self) -> None:
        """No further checks for this runtime (removed, replaced or shutting down); a check in
        flight is cancelled."""
        self.retired = True
        if self.task is not None:
            self.task.cancel()

    def record(self) -> dict[str, Any]:
        """What the state file keeps: the URL as shown (no password) and the state machine."""
        seen = self.observed
        return {
            "url": self.public_url,
            **seen.state.to_dict(),
            "consecutive_failures": seen.consecutive_failures,
            "last_check": seen.last_check,
            "last_latency_ms": seen.last_latency_ms,
        }


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What a reload does to the runtimes, by name and in the new targets' order.

    ``runtimes`` is the complete new set. ``added`` and the new halves of ``changed`` need
    scheduling; ``removed`` and the old halves of ``changed`` need retiring. ``kept`` are the
    unchanged runtimes, the very same objects (their schedule goes on undisturbed).
    """

    runtimes: dict[str, TargetRuntime]
    kept: list[TargetRuntime]
    added: list[TargetRuntime]
    changed: list[tuple[TargetRuntime, TargetRuntime]]
    removed: list[TargetRuntime]

    def to_schedule(self) -> list[TargetRuntime]:
        return [*self.added, *(new for _, new in self.changed)]

    def to_retire(self) -> list[TargetRuntime]:
        return [*self.removed, *(old for old, _ in self.changed)]


def reconcile(
    old: Mapping[str, TargetRuntime],
    new_targets: Sequence[Target],
    policy_for: Callable[[Target], Policy],
    now: float,
) -> Reconciled:
    """Match the running runtimes to a new list of targets, by name, in O(n). Pure: nothing is
    retired or scheduled here.

    A target whose configuration and policy are unchanged keeps its runtime. A changed one gets
    a new runtime; it keeps what was observed when its URL (as shown, so a changed password
    alone is the same endpoint) is the same, else starts fresh as a new target does.
    """
    runtimes: dict[str, TargetRuntime] = {}
    kept: list[TargetRuntime] = []
    added: list[TargetRuntime] = []
    changed: list[tuple[TargetRuntime, TargetRuntime]] = []
    for target in new_targets:
        policy = policy_for(target)
        before = old.get(target.name)
        if before is None:
            runtime = TargetRuntime(target, policy, Observed(TargetState(), now))
            added.append(runtime)
        elif before.target == target and before.policy == policy:
            runtime = before
            kept.append(runtime)
        else:
            same_endpoint = before.public_url == target.public_url
            observed = before.observed if same_endpoint else Observed(TargetState(), now)
            runtime = TargetRuntime(target, policy, observed)
            changed.append((before, runtime))
        runtimes[target.name] = runtime
    removed = [rt for name, rt in old.items() if name not in runtimes]
    return Reconciled(runtimes, kept, added, changed, removed)


def view_of(rt: TargetRuntime) -> TargetSnapshot:
    """This target's part of a snapshot (without history), rebuilt only after it changed."""
    view = rt.view
    if view is not None:
        return view
    seen = rt.observed
    status = seen.state.status
    # While up, a failure that did not end the "up" is shown only until the next pass.
    reason = (None if seen.last_ok else seen.last_reason) if status is Status.UP else seen.last_reason
    since = seen.state.since if status in (Status.FAILING, Status.DOWN) else seen.status_since
    view = TargetSnapshot(
        name=rt.target.name,
        url=rt.public_url,
        state=status,
        last_check=seen.last_check,
        last_latency_ms=seen.last_latency_ms,
        last_reason=reason,
        consecutive_failures=seen.consecutive_failures,
        since=None if status is Status.UNKNOWN else since,
        interval_seconds=rt.target.interval,
        uptime_percent=seen.history.uptime_percent(),
        checks_ok_total=seen.checks_ok,
        checks_failed_total=seen.checks_failed,
        kind=rt.target.kind,
        detail=seen.detail,
        grace_seconds=rt.target.grace,
        remediation=seen.remediation,
    )
    rt.view = view
    return view


def view_with_history(rt: TargetRuntime) -> TargetSnapshot:
    """This target's part of a snapshot with its history, rebuilt only after it changed."""
    view = rt.view_with_history
    if view is None:
        view = rt.view_with_history = replace(view_of(rt), history=rt.observed.history.view())
    return view
