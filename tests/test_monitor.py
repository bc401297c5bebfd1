"""The Monitor in-process, with the outside world passed in: an outbox that can fail, a worker
that only records, and a real loopback target."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keepalive.alerts import Alert
from keepalive.config import Settings, load_settings
from keepalive.engine.monitor import Monitor
from keepalive.events import EventLog
from keepalive.notifiers.base import Notifier
from keepalive.notifiers.log import LogNotifier
from tests.fakes.targets import TargetServer
from tests.monitor_proc import wait_until


class BrokenDisk:
    """An outbox whose put() fails until ``heal`` is set."""

    def __init__(self) -> None:
        self.heal = threading.Event()
        self.stored: list[Alert] = []
        self.failures = 0

    def put(self, alerts: Sequence[Alert], routes: Sequence[tuple[str, str]]) -> int:
        if not self.heal.is_set():
            self.failures += 1
            raise OSError(28, "No space left on device")
        self.stored.extend(alerts)
        return len(alerts)

    def depth(self) -> int:
        return 0

    def oldest_pending_created(self) -> float | None:
        return None

    def health(self) -> tuple[bool, str | None]:
        return (True, None) if self.heal.is_set() else (False, "No space left on device")


class IdleWorker:
    def start(self) -> None: ...
    def wake(self) -> None: ...
    def stop(self, timeout: float) -> None: ...
    def set_notifiers(self, notifiers: Sequence[Notifier]) -> None: ...
    def set_digest_after(self, digest_after: int) -> None: ...
    def channel_stats(self) -> dict[str, dict[str, Any]]:
        return {}


def settings_for(tmp_path: Path, url: str) -> Settings:
    return load_settings(
        {
            "MONITOR_ENV_FILE": "",
            "HEALTH_CHECK_URL": url,
            "CHECK_INTERVAL_SECONDS": "0.1",
            "FAILURE_THRESHOLD": "1",
            "REPEAT_ALERTS": "false",
            "MONITOR_HTTP_PORT": "0",
            "MONITOR_STATE_DIR": str(tmp_path / "state"),
        },
        root=tmp_path,
    )


def saved_state(tmp_path: Path) -> dict[str, Any]:
    try:
        targets: dict[str, Any] = json.loads((tmp_path / "state" / "state.json").read_text())["targets"]
    except FileNotFoundError:
        return {}
    return targets


def test_the_state_file_never_says_announced_before_the_outbox_holds_the_alert(tmp_path: Path) -> None:
    disk = BrokenDisk()
    with TargetServer() as server:
        server.set_mode("api", "http500")
        settings = settings_for(tmp_path, server.url("api"))
        monitor = Monitor(
            settings,
            events=EventLog(None),
            outbox=disk,
            worker=IdleWorker(),
            notifiers=[LogNotifier()],
            notifier_factory=lambda s: [LogNotifier()],
        )
        observed: list[int] = []

        async def run() -> None:
            await monitor.start()
            # While the outbox refuses the alert, the saved state must not claim it was raised.
            while disk.failures < 2:
                await asyncio.sleep(0.05)
                observed.extend(t.get("alerts_raised", 0) for t in saved_state(tmp_path).values())
            disk.heal.set()
            while not disk.stored:
                await asyncio.sleep(0.05)
            await monitor.stop()

        asyncio.run(asyncio.wait_for(run(), 60))
    assert all(value == 0 for value in observed), observed
    assert [a.kind.value for a in disk.stored] == ["DOWN"]
    (record,) = wait_until(lambda: list(saved_state(tmp_path).values()), what="state saved")
    assert record["alerts_raised"] == 1
    assert record["status"] == "down"
