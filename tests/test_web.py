"""The monitor's own endpoint, served for real on loopback with a fake view."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.parser import text_string_to_metric_families

from keepalive.engine.snapshot import (
    STATUS_ALERT_PATH,
    STATUS_OK,
    STATUS_STALLED,
    ChannelSnapshot,
    HistoryPoint,
    LagSnapshot,
    MonitorSnapshot,
    TargetSnapshot,
)
from keepalive.errors import ConfigError
from keepalive.state import Status
from keepalive.web.app import start_web

EVIL = "<script>alert(1)</script>"
STALL_PROBLEM = "checking loop stalled: no progress for 95 s"

HISTORY_UP = [[1767322980.0 + 30 * i, 10.0 + i, True] for i in range(5)]
HISTORY_DOWN = [
    [1767322980.0, 20.0, True],
    [1767323010.0, 22.0, True],
    [1767323040.0, None, False],
    [1767323070.0, 5000.0, False],
    [1767323100.0, None, False],
]

STATUS: dict[str, Any] = {
    "monitor": {
        "host": "test-host",
        "version": "1.0.0",
        "python": "3.11.2",
        "started_at": "2026-01-02T02:00:00.000Z",
        "uptime_seconds": 3600.5,
        "status": "ok",
        "problems": [],
        "stall_after_seconds": 30.0,
        "targets_total": 2,
        "targets_up": 1,
        "targets_failing": 0,
        "targets_down": 1,
        "targets_unknown": 0,
        "outbox_depth": 2,
        "oldest_undelivered_age_seconds": 42.5,
        "checks_total": 240,
        "checks_missed_total": 3,
        "push_unknown_total": 0,
        "telegram_commands_refused_total": 0,
        "targets_held": 0,
        "targets_in_maintenance": 0,
        "schedule_lag_seconds": {"p50": 0.001, "p99": 0.012, "max": 0.05},
    },
    "targets": [
        {
            "name": EVIL,
            "url": 'http://127.0.0.1:9/health?q="x"',
            "state": "up",
            "last_check": "2026-01-02T03:00:00.000Z",
            "last_latency_ms": 12.5,
            "last_reason": None,
            "consecutive_failures": 0,
            "since": "2026-01-02T02:00:30.000Z",
            "interval_seconds": 30.0,
            "uptime_percent": 98.3,
            "checks_ok_total": 118,
            "checks_failed_total": 2,
            "silenced_by": None,
            "held_until": None,
            "held_alert": False,
            "downtime_seconds": 0.0,
            "downtime_in_maintenance_seconds": 0.0,
            "downtime_held_by_dependency_seconds": 0.0,
            "remediation": None,
            "kind": "http",
            "history": HISTORY_UP,
        },
        {
            "name": "billing",
            "url": "http://127.0.0.1:8081/health",
            "state": "down",
            "last_check": "2026-01-02T03:00:00.000Z",
            "last_latency_ms": None,
            "last_reason": "connection refused",
            "consecutive_failures": 5,
            "since": "2026-01-02T02:58:00.000Z",
            "interval_seconds": 30.0,
            "uptime_percent": 83.33,
            "checks_ok_total": 100,
            "checks_failed_total": 20,
            "silenced_by": None,
            "held_until": None,
            "held_alert": False,
            "downtime_seconds": 0.0,
            "downtime_in_maintenance_seconds": 0.0,
            "downtime_held_by_dependency_seconds": 0.0,
            "remediation": None,
            "kind": "http",
            "history": HISTORY_DOWN,
        },
    ],
    "channels": [
        {
            "name": "log",
            "enabled": True,
            "why": "always on",
            "last_success": "2026-01-02T02:58:01.000Z",
            "last_error": None,
            "last_error_at": None,
            "sent_total": 4,
            "failed_total": 0,
        },
        {
            "name": "telegram",
            "enabled": True,
            "why": "1 chat",
            "last_success": "2026-01-02T02:30:00.000Z",
            "last_error": "HTTP 502 Bad Gateway",
            "last_error_at": "2026-01-02T02:58:02.000Z",
            "sent_total": 3,
            "failed_total": 7,
        },
        {
            "name": "email",
            "enabled": False,
            "why": "SMTP_SERVER is not set",
            "last_success": None,
            "last_error": None,
            "last_error_at": None,
            "sent_total": 0,
            "failed_total": 0,
        },
    ],
    "silences": [],
    "maintenance": [],
}

UNKNOWN_TARGET: dict[str, Any] = {
    "name": "new-one",
    "url": "http://127.0.0.1:8082/health",
    "state": "unknown",
    "last_check": None,
    "last_latency_ms": None,
    "last_reason": None,
    "consecutive_failures": 0,
    "since": None,
    "interval_seconds": 60.0,
    "uptime_percent": None,
    "checks_ok_total": 0,
    "checks_failed_total": 0,
    "history": [],
}


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def snapshot_of(
    document: dict[str, Any],
    include_history: bool,
    *,
    healthy: bool = True,
    status: str = STATUS_OK,
    problems: tuple[str, ...] = (),
    progressing: bool = True,
    last_progress_age: float = 0.4,
) -> MonitorSnapshot:
    """The snapshot whose /api/status rendering is ``document`` (an /api/status-shaped dict)."""
    monitor = document["monitor"]
    started = _epoch(monitor["started_at"])
    assert started is not None
    lag = monitor["schedule_lag_seconds"]
    return MonitorSnapshot(
        host=monitor["host"],
        version=monitor["version"],
        python=monitor["python"],
        taken_at=started + monitor["uptime_seconds"],
        started_at=started,
        healthy=healthy,
        status=status,
        problems=problems,
        progressing=progressing,
        stall_after_seconds=monitor["stall_after_seconds"],
        last_progress_age_seconds=last_progress_age,
        targets_up=monitor["targets_up"],
        targets_failing=monitor["targets_failing"],
        targets_down=monitor["targets_down"],
        targets_unknown=monitor["targets_unknown"],
        outbox_depth=monitor["outbox_depth"],
        oldest_undelivered_age_seconds=monitor["oldest_undelivered_age_seconds"],
        checks_total=monitor["checks_total"],
        checks_missed_total=monitor["checks_missed_total"],
        schedule_lag=LagSnapshot(p50=lag["p50"], p99=lag["p99"], max=lag["max"]),
        targets=tuple(
            TargetSnapshot(
                name=t["name"],
                url=t["url"],
                state=Status(t["state"]),
                last_check=_epoch(t["last_check"]),
                last_latency_ms=t["last_latency_ms"],
                last_reason=t["last_reason"],
                consecutive_failures=t["consecutive_failures"],
                since=_epoch(t["since"]),
                interval_seconds=t["interval_seconds"],
                uptime_percent=t["uptime_percent"],
                checks_ok_total=t["checks_ok_total"],
                checks_failed_total=t["checks_failed_total"],
                history=tuple(HistoryPoint(*point) for point in t["history"]) if include_history else None,
            )
            for t in document["targets"]
        ),
        channels=tuple(
            ChannelSnapshot(
                name=c["name"],
                enabled=c["enabled"],
                why=c["why"],
                last_success=_epoch(c["last_success"]),
                last_error=c["last_error"],
                last_error_at=_epoch(c["last_error_at"]),
                sent_total=c["sent_total"],
                failed_total=c["failed_total"],
            )
            for c in document["channels"]
        ),
    )


class FakeView:
    """Snapshots of fixed documents, one object per kind (as the engine caches them); records requests."""

    def __init__(self, stalled: bool = False, extra_targets: tuple[dict[str, Any], ...] = ()) -> None:
        self.document = copy.deepcopy(STATUS)
        self.document["targets"].extend(copy.deepcopy(list(extra_targets)))
        self.stalled = stalled
        if stalled:
            self.document["monitor"]["status"] = STATUS_STALLED
            self.document["monitor"]["problems"] = [STALL_PROBLEM]
        self.history_requests: list[bool] = []
        self._snapshots: dict[bool, MonitorSnapshot] = {}

    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        self.history_requests.append(include_history)
        if include_history not in self._snapshots:
            state: dict[str, Any] = (
                {
                    "healthy": False,
                    "status": STATUS_STALLED,
                    "problems": (STALL_PROBLEM,),
                    "progressing": False,
                }
                if self.stalled
                else {}
            )
            self._snapshots[include_history] = snapshot_of(
                self.document, include_history, last_progress_age=95.0 if self.stalled else 0.4, **state
            )
        return self._snapshots[include_history]

    def changed(self) -> None:
        """Forget the snapshots, as the engine does when a target changes."""
        self._snapshots.clear()

    def health_body(self) -> dict[str, Any]:
        monitor = self.document["monitor"]
        return {
            "status": monitor["status"],
            "problems": monitor["problems"],
            "uptime_seconds": monitor["uptime_seconds"],
            "targets_up": monitor["targets_up"],
            "targets_down": monitor["targets_down"],
            "targets_failing": monitor["targets_failing"],
            "outbox_depth": monitor["outbox_depth"],
            "oldest_undelivered_age_seconds": monitor["oldest_undelivered_age_seconds"],
            "last_progress_age_seconds": 95.0 if self.stalled else 0.4,
            "stall_after_seconds": monitor["stall_after_seconds"],
        }


@contextlib.asynccontextmanager
async def serving(view: Any) -> AsyncIterator[str]:
    """The app on a free loopback port; yields its base URL."""
    # A view may also answer for the outbox: recent_alerts(name), as the engine's outbox does.
    runner = await start_web(view, "127.0.0.1", 0, alerts=getattr(view, "recent_alerts", None))
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def against(view: Any, scenario: Callable[[aiohttp.ClientSession, str], Awaitable[None]]) -> None:
    """Run ``scenario(session, base_url)`` against the app serving ``view``."""

    async def main() -> None:
        async with serving(view) as base, aiohttp.ClientSession() as session:
            await scenario(session, base)

    asyncio.run(main())


def test_health_answers_200_with_the_view_body() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/health") as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            body = await response.json()
        assert body == FakeView().health_body()
        assert body["status"] == "ok"
        assert body["problems"] == []

    against(FakeView(), scenario)


def test_health_answers_503_stalled_when_the_loop_makes_no_progress() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/health") as response:
            assert response.status == 503
            body = await response.json()
        assert body == {
            "status": "stalled",
            "problems": [STALL_PROBLEM],
            "uptime_seconds": 3600.5,
            "targets_up": 1,
            "targets_down": 1,
            "targets_failing": 0,
            "outbox_depth": 2,
            "oldest_undelivered_age_seconds": 42.5,
            "last_progress_age_seconds": 95.0,
            "stall_after_seconds": 30.0,
        }

    against(FakeView(stalled=True), scenario)


def test_head_health_is_answered_without_a_body() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.head(base + "/health") as response:
            assert response.status == 200
            assert await response.read() == b""

    against(FakeView(), scenario)


def test_api_status_returns_the_whole_document_uncached() -> None:
    view = FakeView()

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/api/status?history=1") as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.content_type == "application/json"
            assert await response.json() == STATUS

    against(view, scenario)
    assert view.history_requests == [True]


@pytest.mark.parametrize("value", ["0", "false", "no"])
def test_api_status_leaves_out_history_when_asked(value: str) -> None:
    view = FakeView()

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/api/status", params={"history": value}) as response:
            document = await response.json()
        assert [sorted(target) for target in document["targets"]] == [
            sorted(set(target) - {"history"}) for target in STATUS["targets"]
        ]

    against(view, scenario)
    assert view.history_requests == [False]


def test_api_status_rejects_a_history_value_it_does_not_understand() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/api/status?history=maybe") as response:
            assert response.status == 400
            assert await response.json() == {"error": "history='maybe' is invalid: expected 0 or 1"}

    against(FakeView(), scenario)


def samples_of(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def types_of(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_metrics_expose_every_target_channel_and_monitor_value() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4
            assert response.headers["Cache-Control"] == "no-store"
            text = await response.text()
        ours = {k: v for k, v in samples_of(text).items() if k[0].startswith("keepalive_")}

        def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
            return name, frozenset(labels.items())

        expected = {
            key("keepalive_target_up", target=EVIL, url='http://127.0.0.1:9/health?q="x"'): 1.0,
            key("keepalive_target_up", target="billing", url="http://127.0.0.1:8081/health"): 0.0,
            **{
                key("keepalive_target_state", target=EVIL, state=state): float(state == "up")
                for state in ("up", "failing", "down", "unknown")
            },
            **{
                key("keepalive_target_state", target="billing", state=state): float(state == "down")
                for state in ("up", "failing", "down", "unknown")
            },
            key("keepalive_target_check_duration_seconds", target=EVIL): 0.0125,
            key("keepalive_target_consecutive_failures", target=EVIL): 0.0,
            key("keepalive_target_consecutive_failures", target="billing"): 5.0,
            key("keepalive_target_last_check_timestamp_seconds", target=EVIL): 1767322800.0,
            key("keepalive_target_last_check_timestamp_seconds", target="billing"): 1767322800.0,
            key("keepalive_target_checks_total", target=EVIL, result="ok"): 118.0,
            key("keepalive_target_checks_total", target=EVIL, result="fail"): 2.0,
            key("keepalive_target_checks_total", target="billing", result="ok"): 100.0,
            key("keepalive_target_checks_total", target="billing", result="fail"): 20.0,
            key("keepalive_alerts_sent_total", channel="log"): 4.0,
            key("keepalive_alerts_sent_total", channel="telegram"): 3.0,
            key("keepalive_alerts_sent_total", channel="email"): 0.0,
            key("keepalive_alerts_failed_total", channel="log"): 0.0,
            key("keepalive_alerts_failed_total", channel="telegram"): 7.0,
            key("keepalive_alerts_failed_total", channel="email"): 0.0,
            key("keepalive_channel_enabled", channel="log"): 1.0,
            key("keepalive_channel_enabled", channel="telegram"): 1.0,
            key("keepalive_channel_enabled", channel="email"): 0.0,
            key("keepalive_outbox_depth"): 2.0,
            key("keepalive_oldest_undelivered_age_seconds"): 42.5,
            key("keepalive_checks_total"): 240.0,
            key("keepalive_checks_missed_total"): 3.0,
            key("keepalive_schedule_lag_p50_seconds"): 0.001,
            key("keepalive_schedule_lag_p99_seconds"): 0.012,
            key("keepalive_schedule_lag_max_seconds"): 0.05,
            key("keepalive_up"): 1.0,
            key("keepalive_loop_stalled"): 0.0,
            key("keepalive_build_info", version="1.0.0", python="3.11.2"): 1.0,
            key("keepalive_start_time_seconds"): 1767319200.0,
            key("keepalive_target_silenced", target=EVIL): 0.0,
            key("keepalive_target_silenced", target="billing"): 0.0,
            key("keepalive_silences"): 0.0,
            key("keepalive_maintenance_windows_open"): 0.0,
            key("keepalive_push_unknown_total"): 0.0,
            key("keepalive_telegram_commands_refused_total"): 0.0,
        }
        assert ours == expected
        assert types_of(text)["process_cpu_seconds"] == "counter"  # the monitor's own process, too
        assert {name: kind for name, kind in types_of(text).items() if name.startswith("keepalive_")} == {
            "keepalive_target_up": "gauge",
            "keepalive_target_state": "gauge",
            "keepalive_target_check_duration_seconds": "gauge",
            "keepalive_target_consecutive_failures": "gauge",
            "keepalive_target_last_check_timestamp_seconds": "gauge",
            "keepalive_target_checks": "counter",
            "keepalive_alerts_sent": "counter",
            "keepalive_alerts_failed": "counter",
            "keepalive_channel_enabled": "gauge",
            "keepalive_outbox_depth": "gauge",
            "keepalive_oldest_undelivered_age_seconds": "gauge",
            "keepalive_checks": "counter",
            "keepalive_checks_missed": "counter",
            "keepalive_schedule_lag_p50_seconds": "gauge",
            "keepalive_schedule_lag_p99_seconds": "gauge",
            "keepalive_schedule_lag_max_seconds": "gauge",
            "keepalive_up": "gauge",
            "keepalive_loop_stalled": "gauge",
            "keepalive_build_info": "gauge",
            "keepalive_start_time_seconds": "gauge",
            "keepalive_target_silenced": "gauge",
            "keepalive_silences": "gauge",
            "keepalive_maintenance_windows_open": "gauge",
            "keepalive_target_cert_expiry_timestamp_seconds": "gauge",
            "keepalive_push_unknown": "counter",
            "keepalive_telegram_commands_refused": "counter",
        }

    against(FakeView(), scenario)


def test_metrics_are_read_without_history() -> None:
    view = FakeView()

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/metrics") as response:
            await response.read()

    against(view, scenario)
    assert view.history_requests == [False]


def test_metrics_leave_out_up_for_an_unchecked_target_and_show_a_stall() -> None:
    view = FakeView(stalled=True, extra_targets=(UNKNOWN_TARGET,))
    view.document["monitor"]["oldest_undelivered_age_seconds"] = None
    view.document["monitor"]["schedule_lag_seconds"] = {"p50": None, "p99": None, "max": None}

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/metrics") as response:
            samples = samples_of(await response.text())
        names_for_new_one = sorted(name for name, labels in samples if ("target", "new-one") in labels)
        assert names_for_new_one == [
            "keepalive_target_checks_total",
            "keepalive_target_checks_total",
            "keepalive_target_consecutive_failures",
            "keepalive_target_silenced",
            *["keepalive_target_state"] * 4,
        ]
        assert (
            samples["keepalive_target_state", frozenset({("target", "new-one"), ("state", "unknown")})] == 1.0
        )
        assert samples["keepalive_up", frozenset()] == 0.0
        assert samples["keepalive_loop_stalled", frozenset()] == 1.0
        assert samples["keepalive_oldest_undelivered_age_seconds", frozenset()] == 0.0
        assert not [name for name, _ in samples if name.startswith("keepalive_schedule_lag")]

    against(view, scenario)


def test_page_is_served_with_a_strict_content_security_policy() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            csp = response.headers["Content-Security-Policy"]
            page = await response.text()
        assert "script-src 'self';" in csp
        assert "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert '<script src="static/status.js" defer></script>' in page
        assert "<style" not in page
        assert "test-host" not in page  # data arrives only through /api/status

    against(FakeView(), scenario)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/static/status.js", "text/javascript"), ("/static/status.css", "text/css")],
)
def test_page_assets_are_served_with_their_type(path: str, content_type: str) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + path) as response:
            assert response.status == 200
            assert response.content_type == content_type
            assert response.charset == "utf-8"
            assert len(await response.read()) > 1000

    against(FakeView(), scenario)


def test_status_script_never_uses_inner_html() -> None:
    from keepalive.web.app import STATIC_DIR

    script = (STATIC_DIR / "status.js").read_text(encoding="utf-8")
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("//"))
    assert "innerHTML" not in code
    assert "outerHTML" not in code
    assert "insertAdjacentHTML" not in code
    assert "document.write" not in code


@pytest.mark.parametrize("path", ["/nope", "/api/status/extra", "/static/other.js", "/health/"])
def test_an_unknown_path_is_404(path: str) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + path) as response:
            assert response.status == 404
            assert response.headers["X-Content-Type-Options"] == "nosniff"

    against(FakeView(), scenario)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_is_answered(method: str) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.request(method, base + "/api/status") as response:
            assert response.status == 405

    against(FakeView(), scenario)


def test_a_port_in_use_is_a_config_error_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            asyncio.run(start_web(FakeView(), "127.0.0.1", port))
    assert (
        str(caught.value) == f"MONITOR_HTTP_PORT={port} is invalid: address 127.0.0.1:{port} already in use"
    )


def test_an_address_not_on_this_machine_is_a_config_error_naming_the_host() -> None:
    with pytest.raises(ConfigError) as caught:
        asyncio.run(start_web(FakeView(), "203.0.113.7", 5005))
    assert str(caught.value).startswith(
        "MONITOR_HTTP_HOST='203.0.113.7' is invalid: cannot listen on 203.0.113.7:5005 (not an address of this machine"
    )


class AlertPathFailingView(FakeView):
    """Checks progress, but alerts cannot be stored: healthy is false, the loop is not stalled."""

    PROBLEM = "outbox not writable: database disk image is malformed"

    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        return snapshot_of(
            self.document,
            include_history,
            healthy=False,
            status=STATUS_ALERT_PATH,
            problems=(self.PROBLEM,),
            progressing=True,
        )


def test_a_failing_alert_path_is_keepalive_up_0_without_a_stall_and_health_503() -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/metrics") as response:
            samples = samples_of(await response.text())
        assert samples["keepalive_up", frozenset()] == 0.0
        assert samples["keepalive_loop_stalled", frozenset()] == 0.0
        async with session.get(base + "/health") as response:
            assert response.status == 503
            body = await response.json()
        assert (body["status"], body["problems"]) == ("alert_path_failing", [AlertPathFailingView.PROBLEM])

    against(AlertPathFailingView(), scenario)
