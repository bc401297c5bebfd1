"""A typed, immutable picture of the running monitor that /health, /api/status and /metrics
all render from.

The engine builds one ``MonitorSnapshot`` at most once a second (and a target's part only
when that target changed), so a request costs a lookup, not a walk over every runtime. Times
are raw floats, Unix epoch seconds; renderers format them (ISO for JSON, plain numbers for
Prometheus), so nothing downstream re-parses a timestamp.

URLs here are ``Target.public_url``: no password ever reaches a snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keepalive.actions.result import RemediationResult
from keepalive.events import iso
from keepalive.probe.detail import Detail
from keepalive.state import Status

# /health "status" words, from the most to the least serious problem; "ok" when none.
STATUS_OK = "ok"
STATUS_STALLED = "stalled"
STATUS_ALERT_PATH = "alert_path_failing"


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One recent check: when (epoch), latency in ms (None when it failed), passed or not."""

    at: float
    latency_ms: float | None
    ok: bool


@dataclass(frozen=True, slots=True)
class TargetSnapshot:
    name: str
    url: str  # Target.public_url
    state: Status
    last_check: float | None  # epoch seconds
    last_latency_ms: float | None
    last_reason: str | None  # None while up and the last check passed
    consecutive_failures: int
    since: float | None  # epoch of the current state's start (the outage's first failure); None if unknown
    interval_seconds: float
    uptime_percent: float | None  # over the recent history; None before the first check
    checks_ok_total: int
    checks_failed_total: int
    # Oldest first; None when the snapshot was taken without history (it is the costly part).
    history: Sequence[HistoryPoint] | None = None
    # The kind of check (SPEC 14: http, tcp, push, log) and what its last check learned besides
    # the verdict: a push's last ping, a log's file and last match, an https certificate.
    kind: str = "http"
    detail: Detail | None = None
    # push: the slack after the interval before "no ping" (None: the interval, SPEC 14).
    grace_seconds: float | None = None
    # Quiet on purpose (SPEC 13, keepalive.policy.holds): why notifications are held now
    # ("silence 3f2a9c1e ...", "maintenance nightly-backup", "depends on 'router' (down)"),
    # until when (None: until a parent recovers), and whether a DOWN waits for the hold to end.
    silenced_by: str | None = None
    held_until: float | None = None
    held_alert: bool = False
    # Seconds failing or down since records began, and the parts inside maintenance or held
    # by a dependency (the uptime figures say how much of an outage was planned or inherited).
    downtime_seconds: float = 0.0
    downtime_in_maintenance_seconds: float = 0.0
    downtime_held_by_dependency_seconds: float = 0.0
    # The last run of the target's on_down (SPEC 15); None when it never ran.
    remediation: RemediationResult | None = None


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    name: str
    enabled: bool
    why: str
    last_success: float | None  # epoch seconds
    last_error: str | None
    last_error_at: float | None  # epoch seconds
    sent_total: int
    failed_total: int


@dataclass(frozen=True, slots=True)
class LagSnapshot:
    """How late checks started against their schedule (seconds), over recent checks."""

    p50: float | None
    p99: float | None
    max: float | None


@dataclass(frozen=True, slots=True)
class ReplicaSnapshot:
    """Which replica this is (SPEC 17) and how much of the targets file it checks."""

    name: str
    replicas: tuple[str, ...]  # empty: the only one, checking every target
    copies: int
    checks: int
    of: int


@dataclass(frozen=True, slots=True)
class SilenceSnapshot:
    """A silence as the page, /api/status and the command line show it: who, why, until."""

    id: str
    targets: tuple[str, ...]
    starts_at: float
    ends_at: float
    comment: str
    created_by: str


def silence_json(silence: SilenceSnapshot, now: float) -> dict[str, Any]:
    return {
        "id": silence.id,
        "targets": list(silence.targets),
        "starts_at": iso(silence.starts_at),
        "ends_at": iso(silence.ends_at),
        "remaining_seconds": round(max(0.0, silence.ends_at - now), 1),
        "comment": silence.comment,
        "created_by": silence.created_by,
    }


@dataclass(frozen=True, slots=True)
class MonitorSnapshot:
    host: str
    version: str
    python: str
    taken_at: float  # epoch seconds the snapshot was built
    started_at: float  # epoch seconds
    # True while checks make progress AND the alert path works (outbox writable, state saved).
    healthy: bool
    status: str  # STATUS_OK, STATUS_STALLED or STATUS_ALERT_PATH
    problems: tuple[str, ...]  # one line each, why it is not healthy; empty when healthy
    progressing: bool  # the checking loop alone
    stall_after_seconds: float
    last_progress_age_seconds: float
    targets_up: int
    targets_failing: int
    targets_down: int
    targets_unknown: int
    outbox_depth: int
    oldest_undelivered_age_seconds: float | None  # None when nothing waits
    checks_total: int
    checks_missed_total: int
    schedule_lag: LagSnapshot
    targets: tuple[TargetSnapshot, ...]
    channels: tuple[ChannelSnapshot, ...]
    replica: ReplicaSnapshot | None = None
    push_unknown_total: int = 0  # pings with a token no push target has (SPEC 14)
    telegram_commands_refused_total: int = 0  # bot commands from chats not in TELEGRAM_CHAT_ID (SPEC 16)
    # SPEC 13: targets whose notifications are held now, those inside an open maintenance
    # window, every silence not yet expired, and each open window with its closing time.
    targets_held: int = 0
    targets_in_maintenance: int = 0
    silences: tuple[SilenceSnapshot, ...] = ()
    maintenance_open: tuple[tuple[str, float], ...] = ()

    @property
    def uptime_seconds(self) -> float:
        return max(0.0, self.taken_at - self.started_at)

    @property
    def targets_total(self) -> int:
        return len(self.targets)

    @property
    def has_history(self) -> bool:
        return all(t.history is not None for t in self.targets)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def to_health(snapshot: MonitorSnapshot) -> tuple[bool, dict[str, Any]]:
    """(healthy?, the /health body): 200 when healthy, else 503 with ``status`` and ``problems``."""
    return snapshot.healthy, {
        "status": snapshot.status,
        "problems": list(snapshot.problems),
        "uptime_seconds": round(snapshot.uptime_seconds, 3),
        "targets_up": snapshot.targets_up,
        "targets_down": snapshot.targets_down,
        "targets_failing": snapshot.targets_failing,
        "outbox_depth": snapshot.outbox_depth,
        "oldest_undelivered_age_seconds": _round(snapshot.oldest_undelivered_age_seconds, 3),
        "last_progress_age_seconds": round(snapshot.last_progress_age_seconds, 3),
        "stall_after_seconds": snapshot.stall_after_seconds,
    }


def target_json(target: TargetSnapshot, include_history: bool) -> dict[str, Any]:
    """One target as /api/status and the page's event stream carry it."""
    item: dict[str, Any] = {
        "name": target.name,
        "url": target.url,
        "state": target.state.value,
        "last_check": iso(target.last_check),
        "last_latency_ms": _round(target.last_latency_ms, 2),
        "last_reason": target.last_reason,
        "consecutive_failures": target.consecutive_failures,
        "since": iso(target.since),
        "interval_seconds": target.interval_seconds,
        "uptime_percent": target.uptime_percent,
        "checks_ok_total": target.checks_ok_total,
        "checks_failed_total": target.checks_failed_total,
        "silenced_by": target.silenced_by,
        "held_until": iso(target.held_until),
        "held_alert": target.held_alert,
        "downtime_seconds": round(target.downtime_seconds, 1),
        "downtime_in_maintenance_seconds": round(target.downtime_in_maintenance_seconds, 1),
        "downtime_held_by_dependency_seconds": round(target.downtime_held_by_dependency_seconds, 1),
    }
    # The last run of its on_down (SPEC 15): command, who asked, exit code, duration, output.
    item["remediation"] = target.remediation.to_json() if target.remediation is not None else None
    item["kind"] = target.kind
    if target.kind == "push":  # what the page shows as "expected every ..., grace ..."
        item["grace_seconds"] = (
            target.grace_seconds if target.grace_seconds is not None else target.interval_seconds
        )
    if target.detail is not None:
        item.update(detail_json(target.detail, target.kind))
    if include_history:
        if target.history is None:
            raise ValueError("this snapshot was taken without history")
        item["history"] = [[p.at, p.latency_ms, p.ok] for p in target.history]
    return item


def detail_json(detail: Detail, kind: str) -> dict[str, Any]:
    """A kind's own fields: only those of its kind, so 10,000 HTTP targets carry none."""
    if kind == "push":
        return {"last_ping": iso(detail.last_ping)}
    if kind == "log":
        return {
            "log_file": detail.log_file,
            "last_match": detail.last_match,
            "last_match_at": iso(detail.last_match_at),
            "log_note": detail.log_note,
        }
    if detail.cert_expires_at is not None:
        left = (detail.cert_expires_at - time.time()) / 86400.0
        return {"cert_expires_at": iso(detail.cert_expires_at), "cert_days_left": round(left, 1)}
    return {}


def channel_json(channel: ChannelSnapshot) -> dict[str, Any]:
    """One alert channel as /api/status and the page's event stream carry it."""
    return {
        "name": channel.name,
        "enabled": channel.enabled,
        "why": channel.why,
        "last_success": iso(channel.last_success),
        "last_error": channel.last_error,
        "last_error_at": iso(channel.last_error_at),
        "sent_total": channel.sent_total,
        "failed_total": channel.failed_total,
    }


def replica_json(replica: ReplicaSnapshot | None) -> dict[str, Any] | None:
    """Which targets this replica checks: ``checks`` of the file's ``of`` (the list is "targets")."""
    if replica is None:
        return None
    return {
        "name": replica.name,
        "replicas": list(replica.replicas),
        "copies": replica.copies,
        "checks": replica.checks,
        "of": replica.of,
    }


def to_status_json(snapshot: MonitorSnapshot, include_history: bool) -> dict[str, Any]:
    """The /api/status document: {"monitor": {...}, "targets": [...], "channels": [...],
    "replica": {...}}."""
    return {
        "monitor": monitor_json(snapshot),
        "targets": [target_json(t, include_history) for t in snapshot.targets],
        "channels": [channel_json(c) for c in snapshot.channels],
        # Silences not yet expired and maintenance windows open now (SPEC 13).
        "silences": [silence_json(s, snapshot.taken_at) for s in snapshot.silences],
        "maintenance": [{"name": n, "open_until": iso(until)} for n, until in snapshot.maintenance_open],
        # Which replica this is; "targets" lists exactly the targets it checks (SPEC 17).
        **({"replica": replica_json(snapshot.replica)} if snapshot.replica is not None else {}),
    }


def monitor_json(snapshot: MonitorSnapshot) -> dict[str, Any]:
    """The "monitor" part of /api/status (no per-target data: cheap at any size)."""
    lag = snapshot.schedule_lag
    return {
        "host": snapshot.host,
        "version": snapshot.version,
        "python": snapshot.python,
        "started_at": iso(snapshot.started_at),
        "uptime_seconds": round(snapshot.uptime_seconds, 3),
        "status": snapshot.status,
        "problems": list(snapshot.problems),
        "stall_after_seconds": snapshot.stall_after_seconds,
        "targets_total": snapshot.targets_total,
        "targets_up": snapshot.targets_up,
        "targets_failing": snapshot.targets_failing,
        "targets_down": snapshot.targets_down,
        "targets_unknown": snapshot.targets_unknown,
        "outbox_depth": snapshot.outbox_depth,
        "oldest_undelivered_age_seconds": _round(snapshot.oldest_undelivered_age_seconds, 3),
        "checks_total": snapshot.checks_total,
        "checks_missed_total": snapshot.checks_missed_total,
        "push_unknown_total": snapshot.push_unknown_total,
        "telegram_commands_refused_total": snapshot.telegram_commands_refused_total,
        "targets_held": snapshot.targets_held,
        "targets_in_maintenance": snapshot.targets_in_maintenance,
        "schedule_lag_seconds": {
            "p50": _round(lag.p50, 4),
            "p99": _round(lag.p99, 4),
            "max": _round(lag.max, 4),
        },
    }
