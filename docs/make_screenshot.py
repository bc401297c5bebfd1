"""Regenerate docs/status_page.png and docs/status_page_phone.png from sample data.

Run from the repository root:  .venv/bin/python -m docs.make_screenshot
Needs Debian's chromium at /usr/bin/chromium. The page is served by the real keepalive.web
app on a free loopback port; only the monitor behind it is a sample.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

from keepalive.engine.snapshot import MonitorSnapshot
from keepalive.events import iso
from keepalive.web.app import start_web
from tests.browser import Chromium
from tests.test_web import snapshot_of

DOCS = Path(__file__).resolve().parent
# name: (page address, width, height, a phone?); the browser is the page tests' own driver.
SHOTS = {
    "status_page.png": ("/", 1280, 900, False),
    "status_page_phone.png": ("/", 390, 1500, True),
    "status_page_detail.png": ("/?target=billing", 1280, 900, False),
}


def _history(now: float, interval: float, base_ms: float, fail_at: set[int]) -> list[list[Any]]:
    points: list[list[Any]] = []
    for i in range(60):
        at = now - (59 - i) * interval
        jitter = 0.15 * ((i * 7919 + int(base_ms)) % 13) / 13
        wobble = base_ms * (1 + 0.25 * math.sin(i / 3 + base_ms) + jitter)
        ok = i not in fail_at
        points.append([at, round(wobble, 1) if ok else None, ok])
    return points


def _target(name: str, url: str, state: str, **fields: Any) -> dict[str, Any]:
    target: dict[str, Any] = {
        "name": name,
        "url": url,
        "state": state,
        "last_check": None,
        "last_latency_ms": None,
        "last_reason": None,
        "consecutive_failures": 0,
        "since": None,
        "interval_seconds": 30.0,
        "uptime_percent": None,
        "checks_ok_total": 0,
        "checks_failed_total": 0,
        "history": [],
    }
    target.update(fields)
    return target


class SampleView:
    """A believable installation: most things up, one down, one failing, one not yet checked."""

    def __init__(self) -> None:
        self.started = time.time() - 3 * 86400 - 4 * 3600

    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        return snapshot_of(self.status(include_history=True), include_history)

    def status(self, include_history: bool = True) -> dict[str, Any]:
        """The sample in /api/status's shape, the form a person can read and edit."""
        now = time.time()
        targets = [
            _target(
                "api",
                "https://api.example.com/health",
                "up",
                last_check=iso(now - 12),
                last_latency_ms=84.2,
                since=iso(now - 3 * 86400),
                uptime_percent=99.98,
                checks_ok_total=8630,
                checks_failed_total=2,
                history=_history(now - 12, 30, 80, set()),
            ),
            _target(
                "billing",
                "https://billing.internal:8443/health",
                "down",
                last_check=iso(now - 4),
                last_reason="HTTP 503",
                consecutive_failures=7,
                since=iso(now - 212),
                uptime_percent=97.41,
                checks_ok_total=8412,
                checks_failed_total=224,
                history=_history(now - 4, 30, 140, set(range(53, 60))),
            ),
            _target(
                "search",
                "http://search.example.com:9200/health",
                "failing",
                last_check=iso(now - 21),
                last_latency_ms=None,
                last_reason="timeout",
                consecutive_failures=1,
                since=iso(now - 21),
                uptime_percent=99.71,
                checks_ok_total=8605,
                checks_failed_total=25,
                history=_history(now - 21, 30, 230, {41, 59}),
            ),
            _target(
                "web",
                "https://www.example.com/healthz",
                "up",
                last_check=iso(now - 2),
                last_latency_ms=41.9,
                since=iso(now - 86400),
                uptime_percent=100.0,
                checks_ok_total=8634,
                checks_failed_total=0,
                history=_history(now - 2, 30, 40, set()),
            ),
            _target(
                "auth",
                "https://auth.example.com/health",
                "up",
                last_check=iso(now - 27),
                last_latency_ms=122.0,
                since=iso(now - 7200),
                uptime_percent=99.93,
                checks_ok_total=8628,
                checks_failed_total=6,
                history=_history(now - 27, 30, 110, {18, 19}),
            ),
            _target("reports", "https://reports.example.com/health", "unknown", interval_seconds=300.0),
        ]
        if not include_history:
            for target in targets:
                del target["history"]
        states = ("up", "failing", "down", "unknown")
        counts = {state: sum(t["state"] == state for t in targets) for state in states}
        return {
            "monitor": {
                "host": "monitor-1",
                "version": "1.0.0",
                "python": "3.11.2",
                "started_at": iso(self.started),
                "uptime_seconds": now - self.started,
                "status": "ok",
                "stall_after_seconds": 90.0,
                "targets_total": len(targets),
                **{f"targets_{state}": count for state, count in counts.items()},
                "outbox_depth": 1,
                "oldest_undelivered_age_seconds": 38.0,
                "checks_total": 51545,
                "checks_missed_total": 0,
                "schedule_lag_seconds": {"p50": 0.0009, "p99": 0.0042, "max": 0.031},
            },
            "targets": targets,
            "channels": [
                {
                    "name": "log",
                    "enabled": True,
                    "why": "always on",
                    "last_success": iso(now - 205),
                    "last_error": None,
                    "last_error_at": None,
                    "sent_total": 19,
                    "failed_total": 0,
                },
                {
                    "name": "telegram",
                    "enabled": True,
                    "why": "2 chats",
                    "last_success": iso(now - 3600),
                    "last_error": "HTTP 502: Bad Gateway",
                    "last_error_at": iso(now - 38),
                    "sent_total": 17,
                    "failed_total": 3,
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
        }


async def screenshot(url: str, path: Path, width: int, height: int, mobile: bool) -> None:
    """Save what chromium shows at ``url`` in a width x height window as a PNG, once the
    rows (and a detail view's chart) are drawn."""
    async with Chromium(width, height, mobile=mobile) as browser:
        await browser.open(url)
        await browser.wait_for("document.querySelectorAll('#target-rows tr.row').length > 0")
        if "?target=" in url:
            await browser.wait_for("!!document.querySelector('#detail-chart svg line')")
        await browser.evaluate("new Promise((done) => requestAnimationFrame(() => done(true)))")
        await browser.screenshot(path)


async def main() -> None:
    runner = await start_web(SampleView(), "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        for name, (path, width, height, mobile) in SHOTS.items():
            await screenshot(base + path, DOCS / name, width, height, mobile)
            print(f"wrote {DOCS / name} ({width}x{height})")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
