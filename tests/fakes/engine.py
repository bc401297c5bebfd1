"""The outside world of an in-process Monitor, passed in through its constructor: a checker
that answers from a script, an outbox and a state store in memory (each able to fail), an
idle delivery worker, and a loop clock moved by hand."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from keepalive.alerts import Alert
from keepalive.config import Settings, load_settings
from keepalive.engine.monitor import Monitor
from keepalive.engine.statestore import Loaded, StateStore
from keepalive.events import EventLog
from keepalive.notifiers.base import Notifier
from keepalive.notifiers.log import LogNotifier
from keepalive.probe.checker import CheckResult
from keepalive.targets import Target
from tests.fakes.clock import ManualTimers


class ScriptedChecker:
    """Answers each target's checks from ``verdicts[name]`` (True: pass, a string: the failure
    reason), repeating the last one; the wall time of a result comes from ``wall``."""

    def __init__(self, wall: Callable[[], float]) -> None:
        self.verdicts: dict[str, bool | str] = {}
        self.checked: list[str] = []
        self.seen_urls: list[str] = []
        self._wall = wall
        self.closed = False

    async def check(self, target: Target) -> CheckResult:
        self.checked.append(target.name)
        self.seen_urls.append(target.url)
        verdict = self.verdicts.get(target.name, True)
        if verdict is True:
            return CheckResult(True, None, 5.0, self._wall())
        return CheckResult(False, str(verdict), None, self._wall())

    async def close(self) -> None:
        self.closed = True


class MemoryOutbox:
    """Keeps alerts in a list; ``broken`` makes put() fail like a full disk."""

    def __init__(self) -> None:
        self.stored: list[Alert] = []
        self.broken = threading.Event()

    def put(self, alerts: Sequence[Alert], routes: Sequence[tuple[str, str]]) -> int:
        if self.broken.is_set():
            raise OSError(28, "No space left on device")
        self.stored.extend(alerts)
        return len(alerts)

    def depth(self) -> int:
        return 0

    def oldest_pending_created(self) -> float | None:
        return None

    def health(self) -> tuple[bool, str | None]:
        return (False, "outbox: No space left on device") if self.broken.is_set() else (True, None)


class FlakyStore(StateStore):
    """The real state store, whose save() fails while ``broken`` is set."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.broken = threading.Event()
        self.saves = 0
        # Called (in the save's thread) right after each state file write: a test looks at what
        # else was on disk at that moment.
        self.watch: Callable[[], None] | None = None

    def load(self) -> Loaded:
        return super().load()

    def save(self, records: dict[str, dict[str, Any]]) -> None:
        if self.broken.is_set():
            raise OSError(30, "Read-only file system")
        super().save(records)
        self.saves += 1
        if self.watch is not None:
            self.watch()


class IdleWorker:
    def start(self) -> None: ...
    def wake(self) -> None: ...
    def stop(self, timeout: float) -> None: ...
    def set_notifiers(self, notifiers: Sequence[Notifier]) -> None: ...
    def set_digest_after(self, digest_after: int) -> None: ...
    def channel_stats(self) -> dict[str, dict[str, Any]]:
        return {}


class WallClock:
    """Wall time that a test can set back or forward."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def targets_settings(tmp_path: Path, targets: str, **env: str) -> Settings:
    """Settings with a targets file holding ``targets`` (TOML) and state under tmp_path."""
    path = tmp_path / "targets.toml"
    path.write_text(targets)
    return load_settings(
        {
            "MONITOR_ENV_FILE": "",
            "MONITOR_TARGETS_FILE": str(path),
            "MONITOR_HTTP_PORT": "0",
            "MONITOR_STATE_DIR": str(tmp_path / "state"),
            "MONITOR_EVENTS_FILE": str(tmp_path / "events.jsonl"),
            **env,
        },
        root=tmp_path,
    )


def toml_targets(*entries: dict[str, Any]) -> str:
    return "".join(
        "[[targets]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items()) for entry in entries
    )


class Engine:
    """A Monitor with everything outside it faked, driven by ``step(seconds)``."""

    def __init__(self, settings: Settings, *, alert_path_grace: float = 30.0, outbox: Any = None) -> None:
        self.wall = WallClock()
        self.monotonic = WallClock(5000.0)
        self.timers = ManualTimers(1000.0)
        self.checker = ScriptedChecker(self.wall)
        self.outbox = MemoryOutbox() if outbox is None else outbox
        self.store = FlakyStore(settings.state_dir)
        self.events = EventLog(None)
        self.monitor = Monitor(
            settings,
            events=self.events,
            outbox=self.outbox,
            worker=IdleWorker(),
            notifiers=[LogNotifier()],
            notifier_factory=lambda s: [LogNotifier()],
            checker=self.checker,
            store=self.store,
            hostname="test-host",
            clock=self.wall,
            monotonic=self.monotonic,
            alert_path_grace=alert_path_grace,
        )

    async def start(self) -> None:
        await self.monitor.start(self.timers)

    async def step(self, seconds: float) -> None:
        """Move the loop clock and the wall clock on by ``seconds`` and let the checks that came
        due run to completion (the scripted checker never blocks)."""
        self.wall.now += seconds
        self.monotonic.now += seconds
        self.timers.advance(seconds)
        await self.settle()

    async def settle(self) -> None:
        """Run the loop until no check is in flight."""
        for _ in range(1000):
            if not any(rt.task is not None for rt in self.monitor.runtimes.values()):
                return
            await asyncio.sleep(0)
        raise AssertionError("checks still in flight after 1000 loop passes")

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        """Wait (on the real loop: disk work runs in threads) until ``condition()`` holds."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)

    def events_named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events.recent if e["event"] == name]


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))
