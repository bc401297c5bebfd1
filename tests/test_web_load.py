"""At 10,000 targets, scrapes of /metrics and /api/status are built off the checking loop.

The loop's lag is measured with a ticker while scrapes run and printed (run with ``-s`` to see
it); it is not asserted, because this machine is shared and noisy. What is asserted is that
every answer is complete. For comparison the test also prints how long one exposition takes
to build, which is how long a scrape held the loop when it was built there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import http.client
import json
import time

from prometheus_client import generate_latest

from keepalive.engine.snapshot import (
    STATUS_OK,
    ChannelSnapshot,
    HistoryPoint,
    LagSnapshot,
    MonitorSnapshot,
    TargetSnapshot,
)
from keepalive.state import Status
from keepalive.web.app import start_web
from keepalive.web.metrics import build_registry

TARGETS = 10_000
HISTORY = 100  # keepalive.engine.history.HISTORY_POINTS
TICK = 0.002


def big_snapshot(include_history: bool) -> MonitorSnapshot:
    now = 1_767_322_800.0
    states = (Status.UP, Status.UP, Status.UP, Status.FAILING, Status.DOWN, Status.UNKNOWN)
    history = tuple(HistoryPoint(now - 30 * (HISTORY - i), 12.5 + i % 7, i % 13 != 0) for i in range(HISTORY))
    targets = tuple(
        TargetSnapshot(
            name=f"service-{i:05d}",
            url=f"http://10.0.{i // 250}.{i % 250}:8080/health",
            state=states[i % len(states)],
            last_check=now - i % 30,
            last_latency_ms=None if i % 5 == 4 else 10.0 + i % 90,
            last_reason=None if i % 6 < 3 else "connection refused",
            consecutive_failures=i % 4,
            since=now - 3600,
            interval_seconds=30.0,
            uptime_percent=99.5,
            checks_ok_total=1000 + i,
            checks_failed_total=i % 17,
            history=history if include_history else None,
        )
        for i in range(TARGETS)
    )
    return MonitorSnapshot(
        host="load-host",
        version="1.0.0",
        python="3.11.2",
        taken_at=now,
        started_at=now - 86_400,
        healthy=True,
        status=STATUS_OK,
        problems=(),
        progressing=True,
        stall_after_seconds=12.0,
        last_progress_age_seconds=0.1,
        targets_up=5000,
        targets_failing=1667,
        targets_down=1667,
        targets_unknown=1666,
        outbox_depth=3,
        oldest_undelivered_age_seconds=4.0,
        checks_total=2_000_000,
        checks_missed_total=0,
        schedule_lag=LagSnapshot(0.001, 0.01, 0.05),
        targets=targets,
        channels=(ChannelSnapshot("log", True, "always on", now, None, None, 10, 0),),
    )


class BigView:
    """Two prebuilt snapshots; ``changed()`` gives each a new identity, as a state change does."""

    def __init__(self) -> None:
        self.snapshots = {flag: big_snapshot(flag) for flag in (False, True)}

    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        return self.snapshots[include_history]

    def changed(self) -> None:
        self.snapshots = {flag: dataclasses.replace(snap) for flag, snap in self.snapshots.items()}


def fetch(port: int, path: str, headers: dict[str, str]) -> tuple[dict[str, str], bytes]:
    """One GET from a plain socket client, so the client's parsing stays off the served loop."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, body[:200]
        return {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


SCRAPES = {
    "/metrics text": ("/metrics", {"Accept-Encoding": "identity"}),
    "/metrics gzip": ("/metrics", {"Accept-Encoding": "gzip"}),
    "/metrics openmetrics gzip": (
        "/metrics",
        {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"},
    ),
    "/api/status?history=0 gzip": ("/api/status?history=0", {"Accept-Encoding": "gzip"}),
    "/api/status (history) gzip": ("/api/status?history=1", {"Accept-Encoding": "gzip"}),
}


def body_text(headers: dict[str, str], body: bytes) -> str:
    return (gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body).decode()


def test_scrapes_at_10000_targets_are_complete_and_leave_the_loop_free() -> None:
    view = BigView()
    lags: dict[str, float] = {}
    texts: dict[str, str] = {}

    async def main() -> None:
        runner = await start_web(view, "127.0.0.1", 0)
        port = runner.addresses[0][1]
        loop = asyncio.get_running_loop()
        worst = 0.0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal worst
            while not done.is_set():
                before = loop.time()
                await asyncio.sleep(TICK)
                worst = max(worst, loop.time() - before - TICK)

        ticking = asyncio.create_task(ticker())
        try:
            for label, (path, headers) in SCRAPES.items():
                view.changed()  # every scrape builds anew: the worst case for the loop
                worst = 0.0
                answer_headers, body = await asyncio.to_thread(fetch, port, path, headers)
                lags[label] = worst
                texts[label] = body_text(answer_headers, body)
        finally:
            done.set()
            await ticking
            await runner.cleanup()

    asyncio.run(main())

    for label in ("/metrics text", "/metrics gzip", "/metrics openmetrics gzip"):
        up_lines = [line for line in texts[label].splitlines() if line.startswith("keepalive_target_up{")]
        assert len(up_lines) == TARGETS - TARGETS // 6 + (1 if TARGETS % 6 > 5 else 0)  # unknown: no sample
    assert texts["/metrics openmetrics gzip"].endswith("# EOF\n")
    slim = json.loads(texts["/api/status?history=0 gzip"])
    assert len(slim["targets"]) == TARGETS and "history" not in slim["targets"][0]
    full = json.loads(texts["/api/status (history) gzip"])
    assert len(full["targets"]) == TARGETS and len(full["targets"][-1]["history"]) == HISTORY

    started = time.perf_counter()
    generate_latest(build_registry(view.snapshot()))
    on_loop = time.perf_counter() - started
    print(
        f"\n{TARGETS} targets; one /metrics build takes {on_loop * 1000:.0f} ms (the loop's freeze when built on it)"
    )
    for label, lag in lags.items():
        print(
            f"  {label:32s} worst loop lag during the scrape {lag * 1000:6.1f} ms, {len(texts[label]):>10,} bytes"
        )
