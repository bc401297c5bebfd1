"""From state-machine results to stored alerts, and the one reporter that writes what happened.

Every occurrence worth keeping is written once through ``Reporter.report``: the same fields go
to the events file (JSON) and to the log (one ``key=value`` line), so the two never disagree
and nobody hand-builds a second copy.

Between "the state machine raised X" and "X is queued for delivery" sits ``AlertPolicy``: the
place where silences, maintenance windows and dependencies (SPEC 13) hold a notification
(keepalive.policy.holds); without them nothing is held (``NotifyAll``). The state machine
itself never learns about holds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from keepalive.alerts import Alert, AlertKind, alert_id
from keepalive.events import EventLog, iso
from keepalive.expiry import time_left
from keepalive.probe.checker import CheckResult
from keepalive.state import Policy, Raised, Status, TargetState
from keepalive.targets import Target


def _field(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return _field(",".join(str(v) for v in value))
    text = str(value)
    if not text or not text.isprintable() or any(c in text for c in ' "='):
        # Quoted, with control characters escaped: a target name may hold anything.
        return json.dumps(text, ensure_ascii=not text.isprintable())
    return text


def format_fields(fields: dict[str, Any]) -> str:
    """``key=value key="two words"``: the log's one field format."""
    return " ".join(f"{key}={_field(value)}" for key, value in fields.items())


class Reporter:
    """Writes one event and one log line, from the same fields, for each thing that happened."""

    def __init__(self, events: EventLog, logger: logging.Logger) -> None:
        self.events = events
        self._log = logger

    def report(self, event: str, message: str, level: int = logging.INFO, /, **fields: Any) -> None:
        self.events.emit(event, **fields)
        if self._log.isEnabledFor(level):
            self._log.log(level, "%s %s", message, format_fields(fields))


class AlertPolicy(Protocol):
    """Decides whether a raised alert is notified now."""

    def hold(self, alert: Alert, target: Target) -> str | None:
        """Why ``alert`` is held (e.g. "silence 3f2a"), or None to notify it."""
        ...

    def annotate(self, alert: Alert, target: Target) -> Alert:
        """The alert as it is notified (a parent's DOWN names its failing dependents)."""
        ...

    def is_held(self, name: str) -> bool:
        """True while the target's DOWN is held (remediation waits, SPEC 15)."""
        ...


class NotifyAll:
    """No silences, maintenance windows or dependencies: every raised alert is notified."""

    def hold(self, alert: Alert, target: Target) -> str | None:
        return None

    def annotate(self, alert: Alert, target: Target) -> Alert:
        return alert

    def is_held(self, name: str) -> bool:
        return False


class Announcer:
    """Reports what one check changed and turns what the state machine raised into alerts,
    handed to ``queue`` (the monitor's way to the outbox)."""

    def __init__(
        self,
        reporter: Reporter,
        hostname: str,
        queue: Callable[[Alert], None],
        policy: AlertPolicy | None = None,
    ) -> None:
        self.reporter = reporter
        self.hostname = hostname
        self._queue = queue
        self.policy: AlertPolicy = policy if policy is not None else NotifyAll()
        # What a target's on_down did since its last alert (SPEC 15, keepalive.actions), said in
        # the next DOWN or RECOVERED of that target; None: no remediation wired in.
        self.remark: Callable[[str, AlertKind], str] | None = None

    def changed(
        self,
        target: Target,
        policy: Policy,
        old: TargetState,
        new: TargetState,
        result: CheckResult,
        raised: Raised | None,
    ) -> None:
        """One check moved ``target`` from ``old`` to ``new`` (they differ)."""
        name, url = target.name, target.public_url
        if not result.ok:
            self.reporter.report(
                "target_failed",
                "check failed",
                target=name,
                url=url,
                reason=result.reason,
                consecutive_failures=new.outage_failures,
                threshold=policy.failure_threshold,
            )
        # A first check that passes is no news: "unknown -> up" is not written.
        if new.status != old.status and (old.status != Status.UNKNOWN or new.status != Status.UP):
            self.reporter.report(
                "target_state_changed",
                "state changed",
                target=name,
                url=url,
                **{"from": old.status.value, "to": new.status.value},
            )
        if raised is not None:
            self.raised(target, raised, result.at)

    def raised(self, target: Target, raised: Raised, at: float) -> Alert:
        alert = Alert(
            id=alert_id(target.name, raised.since, raised.kind, raised.sequence),
            kind=raised.kind,
            target=target.name,
            url=target.public_url,
            reason=raised.reason,
            since=raised.since,
            at=at,
            failed_checks=raised.failed_checks,
            downtime=raised.downtime,
            host=self.hostname,
            remediation=self.remark(target.name, raised.kind) if self.remark is not None else "",
        )
        if raised.kind is AlertKind.DOWN:
            self.reporter.report(
                "target_down",
                "ALERT DOWN",
                logging.WARNING,
                target=target.name,
                url=alert.url,
                reason=raised.reason,
                since=iso(raised.since),
                failed_checks=raised.failed_checks,
                repeat=raised.sequence,
                alert_id=alert.id,
                **({"remediation": alert.remediation} if alert.remediation else {}),
            )
        else:
            self.reporter.report(
                "target_recovered",
                "ALERT RECOVERED",
                logging.WARNING,
                target=target.name,
                url=alert.url,
                downtime_seconds=round(raised.downtime or 0.0, 3),
                since=iso(raised.since),
                failed_checks=raised.failed_checks,
                alert_id=alert.id,
                **({"remediation": alert.remediation} if alert.remediation else {}),
            )
        self._hand_over(alert, target)
        return alert

    def _hand_over(self, alert: Alert, target: Target) -> None:
        """Queue ``alert`` for delivery, unless the policy holds it (said once, with why)."""
        held = self.policy.hold(alert, target)
        if held is not None:
            self.reporter.report(
                "alert_held", "alert held", target=target.name, alert_id=alert.id, kind=alert.kind, why=held
            )
        else:
            self._queue(self.policy.annotate(alert, target))

    def expiring(self, target: Target, days: int, expires_at: float, at: float) -> Alert:
        """A certificate's time left fell below ``days`` (keepalive.expiry decides when). Its id
        comes from the target, the expiry time and the threshold: raised again (a restart that
        lost cert_warnings.json), it is stored once."""
        reason = (
            f"TLS certificate expires in {time_left(expires_at - at)} ({iso(expires_at)}), below {days} days"
        )
        alert = Alert(
            id=alert_id(target.name, expires_at, AlertKind.EXPIRING, days),
            kind=AlertKind.EXPIRING,
            target=target.name,
            url=target.public_url,
            reason=reason,
            since=expires_at,
            at=at,
            failed_checks=0,
            downtime=None,
            host=self.hostname,
        )
        self.reporter.report(
            "target_cert_expiring",
            "ALERT EXPIRING",
            logging.WARNING,
            target=target.name,
            url=alert.url,
            expires_at=iso(expires_at),
            threshold_days=days,
            alert_id=alert.id,
        )
        self._hand_over(alert, target)
        return alert
