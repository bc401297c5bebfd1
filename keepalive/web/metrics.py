"""Prometheus metrics, read from the status document when Prometheus scrapes.

Nothing on the checking path touches a metric. The collector asks for
``status(include_history=False)`` at scrape time, so /metrics always agrees with /api/status
and a slow or absent scraper costs the checking loop nothing.

Metrics (base units; label values are escaped by prometheus_client):
    keepalive_target_up{target,url}                        gauge    1 last check ok, 0 failed
    keepalive_target_state{target,state}                   gauge    1 for the current state
    keepalive_target_check_duration_seconds{target}        gauge    latency of the last check
    keepalive_target_consecutive_failures{target}          gauge
    keepalive_target_last_check_timestamp_seconds{target}  gauge
    keepalive_target_checks_total{target,result}           counter  result="ok" | "fail"
    keepalive_alerts_sent_total{channel}                   counter
    keepalive_alerts_failed_total{channel}                 counter
    keepalive_channel_enabled{channel}                     gauge
    keepalive_outbox_depth                                 gauge
    keepalive_oldest_undelivered_age_seconds               gauge    0 when the outbox is empty
    keepalive_checks_total                                 counter
    keepalive_checks_missed_total                          counter
    keepalive_schedule_lag_seconds{quantile}               gauge    0.5, 0.99 and 1 (the max)
    keepalive_up                                           gauge    1 while the checking loop progresses
    keepalive_loop_stalled                                 gauge    1 when it has stalled
    keepalive_build_info{version,python}                   gauge    always 1
    keepalive_start_time_seconds                           gauge    unix time
plus the standard process_* metrics of this process.

Choices that matter when writing alert rules:
- keepalive_target_up follows the last check, so "failing" (failed, not yet alerted) is 0 like
  "down"; use keepalive_target_state{state="down"} for the monitor's own verdict. A target that
  has not been checked yet ("unknown") has no keepalive_target_up sample at all: NaN would
  poison sum() and avg(), and 0 would page someone about a target nobody has looked at yet.
- Values the document gives as null (no latency yet, no lag measured) are left out, except the
  outbox age, which is 0 when nothing waits so that ``> 600`` rules work without ``absent()``.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

STATES = ("up", "failing", "down", "unknown")
_LAG_QUANTILES = (("p50", "0.5"), ("p99", "0.99"), ("max", "1"))


class StatusSource(Protocol):
    """The part of keepalive.web.app.MonitorView the metrics need."""

    def status(self, include_history: bool = True) -> dict[str, Any]: ...


def _epoch(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


class StatusCollector(Collector):
    """Turns one status document into metric families, once per scrape."""

    def __init__(self, source: StatusSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        document = self._source.status(include_history=False)
        yield from self._targets(document["targets"])
        yield from self._channels(document["channels"])
        yield from self._monitor(document["monitor"])

    def _targets(self, targets: list[dict[str, Any]]) -> Iterator[Metric]:
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
            name = target["name"]
            if target["state"] != "unknown":
                up.add_metric([name, target["url"]], 1.0 if target["state"] == "up" else 0.0)
            for each in STATES:
                state.add_metric([name, each], 1.0 if target["state"] == each else 0.0)
            if target["last_latency_ms"] is not None:
                duration.add_metric([name], target["last_latency_ms"] / 1000.0)
            failures.add_metric([name], target["consecutive_failures"])
            checked_at = _epoch(target["last_check"])
            if checked_at is not None:
                last_check.add_metric([name], checked_at)
            checks.add_metric([name, "ok"], target["checks_ok_total"])
            checks.add_metric([name, "fail"], target["checks_failed_total"])
        yield from (up, state, duration, failures, last_check, checks)

    def _channels(self, channels: list[dict[str, Any]]) -> Iterator[Metric]:
        sent = CounterMetricFamily(
            "keepalive_alerts_sent", "Alerts delivered through the channel.", labels=["channel"]
        )
        failed = CounterMetricFamily(
            "keepalive_alerts_failed",
            "Alert delivery attempts through the channel that failed.",
            labels=["channel"],
        )
        enabled = GaugeMetricFamily(
            "keepalive_channel_enabled", "1 if the alert channel is configured and on.", labels=["channel"]
        )
        for channel in channels:
            sent.add_metric([channel["name"]], channel["sent_total"])
            failed.add_metric([channel["name"]], channel["failed_total"])
            enabled.add_metric([channel["name"]], 1.0 if channel["enabled"] else 0.0)
        yield from (sent, failed, enabled)

    def _monitor(self, monitor: dict[str, Any]) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "keepalive_outbox_depth",
            "Alerts waiting in the outbox to be delivered.",
            value=monitor["outbox_depth"],
        )
        yield GaugeMetricFamily(
            "keepalive_oldest_undelivered_age_seconds",
            "Age of the oldest undelivered alert; 0 when the outbox is empty.",
            value=monitor["oldest_undelivered_age_seconds"] or 0.0,
        )
        yield CounterMetricFamily(
            "keepalive_checks", "Checks run since the monitor started.", value=monitor["checks_total"]
        )
        yield CounterMetricFamily(
            "keepalive_checks_missed",
            "Scheduled checks that were missed rather than run.",
            value=monitor["checks_missed_total"],
        )
        lag = GaugeMetricFamily(
            "keepalive_schedule_lag_seconds",
            "How late checks started against their schedule, recent quantiles.",
            labels=["quantile"],
        )
        for key, quantile in _LAG_QUANTILES:
            value = monitor["schedule_lag_seconds"][key]
            if value is not None:
                lag.add_metric([quantile], value)
        yield lag
        progressing = monitor["status"] == "ok"
        yield GaugeMetricFamily(
            "keepalive_up", "1 while the checking loop is making progress.", value=1.0 if progressing else 0.0
        )
        yield GaugeMetricFamily(
            "keepalive_loop_stalled",
            "1 when the checking loop has stopped making progress.",
            value=0.0 if progressing else 1.0,
        )
        info = GaugeMetricFamily(
            "keepalive_build_info",
            "Monitor version and Python version; always 1.",
            labels=["version", "python"],
        )
        info.add_metric([monitor["version"], platform.python_version()], 1.0)
        yield info
        yield GaugeMetricFamily(
            "keepalive_start_time_seconds",
            "Unix time the monitor started.",
            value=_epoch(monitor["started_at"]),
        )


def build_registry(source: StatusSource) -> CollectorRegistry:
    """A registry of its own, so tests and several apps in one process never collide."""
    registry = CollectorRegistry()
    registry.register(StatusCollector(source))
    # Memory, CPU and open files of the monitor itself: the first thing to look at when it misbehaves.
    ProcessCollector(registry=registry)
    return registry
