"""Prometheus metrics, rendered from one engine snapshot (keepalive.engine.snapshot).

Nothing on the checking path touches a metric. Each exposition is built from an immutable
``MonitorSnapshot``, in a worker thread (see keepalive.web.render), so /metrics always agrees
with /api/status and a scrape never holds the checking loop.

Metrics (base units; label values are escaped by prometheus_client):
    keepalive_target_up{target,url}                        gauge    1 last check ok, 0 failed
    keepalive_target_state{target,state}                   gauge    1 for the current state
    keepalive_target_check_duration_seconds{target}        gauge    latency of the last check
    keepalive_target_consecutive_failures{target}          gauge
    keepalive_target_last_check_timestamp_seconds{target}  gauge
    keepalive_target_checks_total{target,result}           counter  result="ok" | "fail"
    keepalive_alerts_sent_total{channel}                   counter
    keepalive_alerts_failed_total{channel}                 counter  refused for good
    keepalive_channel_enabled{channel}                     gauge
    keepalive_outbox_depth                                 gauge
    keepalive_oldest_undelivered_age_seconds               gauge    0 when the outbox is empty
    keepalive_checks_total                                 counter
    keepalive_checks_missed_total                          counter
    keepalive_schedule_lag_p50_seconds                     gauge    over recent checks
    keepalive_schedule_lag_p99_seconds                     gauge    over recent checks
    keepalive_schedule_lag_max_seconds                     gauge    over recent checks
    keepalive_up                                           gauge    1 while checking and alerting work
    keepalive_loop_stalled                                 gauge    1 when the checking loop has stalled
    keepalive_build_info{version,python}                   gauge    always 1
    keepalive_start_time_seconds                           gauge    unix time
plus the standard process_* metrics of this process.

Choices that matter when writing alert rules:
- keepalive_target_up follows the last check, so "failing" (failed, not yet alerted) is 0 like
  "down"; use keepalive_target_state{state="down"} for the monitor's own verdict. A target that
  has not been checked yet ("unknown") has no keepalive_target_up sample at all: NaN would
  poison sum() and avg(), and 0 would page someone about a target nobody has looked at yet.
- Values the snapshot gives as None (no latency yet, no lag measured) are left out, except the
  outbox age, which is 0 when nothing waits so that ``> 600`` rules work without ``absent()``.
- The schedule lag is three gauges, not one with a ``quantile`` label: a ``quantile`` label
  belongs to a summary, whose ``_sum`` and ``_count`` must count every observation since
  start, and these figures cover only the recent checks. promtool rejects the labelled gauge.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from keepalive.engine.snapshot import ChannelSnapshot, MonitorSnapshot, TargetSnapshot
from keepalive.state import Status

STATES = tuple(status.value for status in Status)


class SnapshotCollector(Collector):
    """Turns one snapshot into metric families."""

    def __init__(self, snapshot: MonitorSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from _targets(self._snapshot.targets)
        yield from _channels(self._snapshot.channels)
        yield from _monitor(self._snapshot)
        yield from _quiet(self._snapshot)
        yield from _kinds(self._snapshot)
        yield CounterMetricFamily(
            "keepalive_telegram_commands_refused",
            "Bot commands from chats not in TELEGRAM_CHAT_ID: ignored, never answered (SPEC 16).",
            value=self._snapshot.telegram_commands_refused_total,
        )


def _targets(targets: tuple[TargetSnapshot, ...]) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "keepalive_target_up",
        "1 if the last check of the target succeeded, 0 if it failed; absent until first checked.",
        labels=["target", "url"],
    )
    state = GaugeMetricFamily(
        "keepalive_target_state",
        "1 for the target's current state (up, failing, down, unknown), 0 for the others.",
        labels=["target", "state"],
    )
    duration = GaugeMetricFamily(
        "keepalive_target_check_duration_seconds",
        "How long the last check of the target took.",
        labels=["target"],
    )
    failures = GaugeMetricFamily(
        "keepalive_target_consecutive_failures",
        "Checks of the target that failed in a row.",
        labels=["target"],
    )
    last_check = GaugeMetricFamily(
        "keepalive_target_last_check_timestamp_seconds",
        "Unix time of the last check of the target.",
        labels=["target"],
    )
    checks = CounterMetricFamily(
        "keepalive_target_checks",
        "Checks of the target since the monitor started, by result.",
        labels=["target", "result"],
    )
    for target in targets:
        name = target.name
        current = target.state.value
        if target.state is not Status.UNKNOWN:
            up.add_metric([name, target.url], 1.0 if target.state is Status.UP else 0.0)
        for each in STATES:
            state.add_metric([name, each], 1.0 if current == each else 0.0)
        if target.last_latency_ms is not None:
            duration.add_metric([name], target.last_latency_ms / 1000.0)
        failures.add_metric([name], target.consecutive_failures)
        if target.last_check is not None:
            last_check.add_metric([name], target.last_check)
        checks.add_metric([name, "ok"], target.checks_ok_total)
        checks.add_metric([name, "fail"], target.checks_failed_total)
    yield from (up, state, duration, failures, last_check, checks)


def _channels(channels: tuple[ChannelSnapshot, ...]) -> Iterator[Metric]:
    sent = CounterMetricFamily(
        "keepalive_alerts_sent", "Alerts delivered through the channel.", labels=["channel"]
    )
    failed = CounterMetricFamily(
        "keepalive_alerts_failed",
        "Alerts the channel refused for good (not retried); temporary failures are retried.",
        labels=["channel"],
    )
    enabled = GaugeMetricFamily(
        "keepalive_channel_enabled", "1 if the alert channel is configured and on.", labels=["channel"]
    )
    for channel in channels:
        sent.add_metric([channel.name], channel.sent_total)
        failed.add_metric([channel.name], channel.failed_total)
        enabled.add_metric([channel.name], 1.0 if channel.enabled else 0.0)
    yield from (sent, failed, enabled)


def _monitor(snapshot: MonitorSnapshot) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "keepalive_outbox_depth", "Alerts waiting in the outbox to be delivered.", value=snapshot.outbox_depth
    )
    yield GaugeMetricFamily(
        "keepalive_oldest_undelivered_age_seconds",
        "Age of the oldest undelivered alert; 0 when the outbox is empty.",
        value=snapshot.oldest_undelivered_age_seconds or 0.0,
    )
    yield CounterMetricFamily(
        "keepalive_checks", "Checks run since the monitor started.", value=snapshot.checks_total
    )
    yield CounterMetricFamily(
        "keepalive_checks_missed",
        "Scheduled checks that were missed rather than run.",
        value=snapshot.checks_missed_total,
    )
    lag = snapshot.schedule_lag
    for word, value in (("p50", lag.p50), ("p99", lag.p99), ("max", lag.max)):
        if value is not None:
            yield GaugeMetricFamily(
                f"keepalive_schedule_lag_{word}_seconds",
                f"How late recent checks started against their schedule ({word}).",
                value=value,
            )
    yield GaugeMetricFamily(
        "keepalive_up",
        "1 while checks make progress and alerts can be stored; see /health for why not.",
        value=1.0 if snapshot.healthy else 0.0,
    )
    yield GaugeMetricFamily(
        "keepalive_loop_stalled",
        "1 when the checking loop has stopped making progress.",
        value=0.0 if snapshot.progressing else 1.0,
    )
    info = GaugeMetricFamily(
        "keepalive_build_info", "Monitor version and Python version; always 1.", labels=["version", "python"]
    )
    info.add_metric([snapshot.version, snapshot.python], 1.0)
    yield info
    yield GaugeMetricFamily(
        "keepalive_start_time_seconds", "Unix time the monitor started.", value=snapshot.started_at
    )


def _kinds(snapshot: MonitorSnapshot) -> Iterator[Metric]:
    """SPEC 14: certificate expiry of https targets, and pings nobody expects."""
    expiry = GaugeMetricFamily(
        "keepalive_target_cert_expiry_timestamp_seconds",
        "Unix time the target's TLS certificate expires (https targets with cert_warn_days).",
        labels=["target"],
    )
    for target in snapshot.targets:
        detail = target.detail
        if detail is not None and detail.cert_expires_at is not None:
            expiry.add_metric([target.name], detail.cert_expires_at)
    yield expiry
    yield CounterMetricFamily(
        "keepalive_push_unknown",
        "Pings to /ping/<token> with a token no push target has (never logged: it may be a typo of one).",
        value=snapshot.push_unknown_total,
    )


def _quiet(snapshot: MonitorSnapshot) -> Iterator[Metric]:
    """SPEC 13: which targets' notifications are held, and the silences and windows holding them."""
    silenced = GaugeMetricFamily(
        "keepalive_target_silenced",
        "1 while the target's notifications are held (silence, maintenance window, or a dependency "
        "that is down; why: silenced_by in /api/status), else 0.",
        labels=["target"],
    )
    for target in snapshot.targets:
        silenced.add_metric([target.name], 1.0 if target.silenced_by is not None else 0.0)
    yield silenced
    yield GaugeMetricFamily(
        "keepalive_silences", "Silences not yet expired (POST /api/silences).", value=len(snapshot.silences)
    )
    yield GaugeMetricFamily(
        "keepalive_maintenance_windows_open",
        "Maintenance windows of the targets file open now.",
        value=len(snapshot.maintenance_open),
    )


def build_registry(snapshot: MonitorSnapshot) -> CollectorRegistry:
    """A registry of its own for one snapshot, so builds and tests never share state."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    # Memory, CPU and open files of the monitor itself: the first thing to look at when it misbehaves.
    ProcessCollector(registry=registry)
    return registry
