"""The running monitor: schedules checks on one asyncio loop, feeds the state machine, hands
alerts to the durable outbox, persists state and answers the web endpoint's questions.

Threads: everything here runs on the event loop thread, except disk writes (outbox and state
file, moved to a worker thread with ``asyncio.to_thread``) and delivery, which the
``DeliveryWorker`` thread owns so that a slow notifier never delays a check.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import itertools
import logging
import math
import os
import platform
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aiohttp

from keepalive import __version__
from keepalive.alerts import Alert, AlertKind, alert_id
from keepalive.config import Settings
from keepalive.engine.history import History
from keepalive.engine.snapshot import (
    STATUS_OK,
    STATUS_STALLED,
    ChannelSnapshot,
    HistoryPoint,
    LagSnapshot,
    MonitorSnapshot,
    TargetSnapshot,
    to_health,
    to_status_json,
)
from keepalive.engine.statestore import StateStore
from keepalive.events import EventLog, iso
from keepalive.notifiers.base import Notifier
from keepalive.probe.checker import Checker, CheckResult
from keepalive.state import Policy, Raised, Status, TargetState, step
from keepalive.targets import Target

log = logging.getLogger("keepalive.monitor")

# A check that has not completed this long after it was due (beyond its own timeout) means the
# checking loop is not making progress: /health answers 503 "stalled" and the heartbeat stops.
STALL_GRACE = 10.0
# The first round of checks is spread at this many checks a second (and over at most one
# interval), so thousands of targets do not all fire in the same millisecond forever after.
STARTUP_RAMP_RATE = 200.0
# State-file writes are coalesced to at most one a second; alerts never wait for that.
STATE_SAVE_EVERY = 1.0
LAG_SAMPLES = 20_000
# Checks start on a shared grid of TICK seconds: those due within one tick start in one pass of
# the event loop, for at most TICK of added lag (see Monitor._on_tick).
TICK = 0.05
# A timer may fire a little before its time (uvloop rounds to milliseconds): what is due this
# close counts as due now, so a wake-up never finds nothing to do and re-arms for the same instant.
EARLY = 0.002
OUTBOX_FIGURES_EVERY = 1.0
# /api/status and /metrics build one document for every target; with thousands of targets that
# is real work on the event loop, so a document is reused for this long.
STATUS_CACHE_SECONDS = 1.0


class OutboxLike(Protocol):
    def put(self, alerts: Sequence[Alert], routes: Sequence[tuple[str, str]]) -> int: ...
    def depth(self) -> int: ...
    def oldest_pending_created(self) -> float | None: ...


class WorkerLike(Protocol):
    def start(self) -> None: ...
    def wake(self) -> None: ...
    def stop(self, timeout: float) -> None: ...
    def set_notifiers(self, notifiers: Sequence[Notifier]) -> None: ...
    def set_digest_after(self, digest_after: int) -> None: ...
    def channel_stats(self) -> dict[str, dict[str, Any]]: ...


def policy_for(target: Target, settings: Settings) -> Policy:
    return Policy(target.failure_threshold, target.success_threshold, settings.repeat_alerts)


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def settle_heap() -> None:
    """Put what is alive now (modules, targets, their runtimes and history rings) out of the
    cyclic garbage collector's reach, so its collections scan only what came later.

    Why: with 10,000 targets a full collection walked every long-lived object, 85-200 ms with
    the event loop stalled, every 1.5-2 s; after a freeze the pauses fell to a third and the
    schedule lag p99 halved (bench/gc_probe.py). Called after start-up and after a reload.
    Frozen objects are still freed by reference counting when a reload drops them; only a
    reference cycle among them would outlive its target.
    """
    gc.collect()
    gc.freeze()


class TargetRuntime:
    """One target's configuration, state machine state and recent results."""

    __slots__ = (
        "checks_failed",
        "checks_ok",
        "history",
        "last_check",
        "last_latency_ms",
        "last_ok",
        "last_reason",
        "next_due",
        "policy",
        "retired",
        "running_since",
        "state",
        "status_since",
        "target",
        "task",
    )

    def __init__(self, target: Target, policy: Policy, state: TargetState, now: float) -> None:
        self.target = target
        self.policy = policy
        self.state = state
        self.history = History()
        self.last_check: float | None = None
        self.last_latency_ms: float | None = None
        self.last_reason: str | None = state.last_reason
        self.last_ok: bool | None = None
        self.checks_ok = 0
        self.checks_failed = 0
        self.next_due = 0.0  # loop time of the next planned check
        self.running_since: float | None = None  # loop time the current check started
        self.status_since = state.since if state.since is not None else now
        self.task: asyncio.Task[None] | None = None  # the check in flight, if any
        self.retired = False  # removed or replaced by a reload: no further checks

    def retire(self) -> None:
        """No further checks for this runtime (removed, replaced or shutting down); a check in
        flight is cancelled."""
        self.retired = True
        if self.task is not None:
            self.task.cancel()

    def record(self) -> dict[str, Any]:
        return {
            "url": self.target.url,
            **self.state.to_dict(),
            "consecutive_failures": self.consecutive_failures,
            "last_check": self.last_check,
            "last_latency_ms": self.last_latency_ms,
        }

    @property
    def consecutive_failures(self) -> int:
        return self.state.outage_failures if self.state.status in (Status.FAILING, Status.DOWN) else 0


class Monitor:
    """Owns the targets and their checks. Construct, then ``await run(stop_event)``."""

    def __init__(
        self,
        settings: Settings,
        *,
        events: EventLog,
        outbox: OutboxLike,
        worker: WorkerLike,
        notifiers: Sequence[Notifier],
        notifier_factory: Callable[[Settings], Sequence[Notifier]],
        checker: Checker | None = None,
        hostname: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.events = events
        self.outbox = outbox
        self.worker = worker
        self.notifiers = list(notifiers)
        self._notifier_factory = notifier_factory
        self.checker = checker if checker is not None else Checker()
        self.hostname = hostname or socket.gethostname()
        self.clock = clock
        self.store = StateStore(settings.state_dir)
        self.runtimes: dict[str, TargetRuntime] = {}
        self.checks_total = 0
        self.checks_missed = 0
        self.started_at = clock()
        self._lags: deque[float] = deque(maxlen=LAG_SAMPLES)
        self._lag_max = 0.0
        self._pending: list[Alert] = []
        self._state_dirty = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None
        self._last_progress = 0.0
        self._last_save = 0.0
        # The schedule: (due loop time, tie-breaker, target) for every target not being checked.
        self._due: list[tuple[float, int, TargetRuntime]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        # Kept beside the timer: uvloop's TimerHandle.when() is rounded to milliseconds.
        self._timer_when = math.inf
        # Outbox figures are read by a background task: SQLite (and its lock, held by a
        # delivery thread during an fsync) stays off the event loop.
        self._outbox_depth = 0
        self._outbox_oldest: float | None = None
        self._status_cache: dict[bool, tuple[float, MonitorSnapshot]] = {}

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event, on_started: Callable[[], None] | None = None) -> None:
        """Check every target until ``stop`` is set; then save state and outbox and return."""
        from keepalive.web.app import start_web  # the web layer imports nothing from here at load time

        loop = asyncio.get_running_loop()
        self._loop = loop
        self._sem = asyncio.Semaphore(self.settings.max_concurrency)
        self._last_progress = loop.time()
        self._restore_state()
        runner = None
        if self.settings.http_port:
            runner = await start_web(self, self.settings.http_host, self.settings.http_port)
        self.worker.start()
        self._schedule(list(self.runtimes.values()))
        flusher = loop.create_task(self._flush_loop(), name="flush")
        watcher = loop.create_task(self._watch_outbox(), name="outbox-figures")
        heartbeat = self._start_heartbeat(stop)
        settle_heap()
        self.events.emit(
            "monitor_started",
            pid=os.getpid(),
            version=__version__,
            targets=len(self.runtimes),
            channels=[c.name for c in self.settings.channels() if c.enabled],
        )
        log.info(
            "monitor started pid=%s targets=%d %s",
            os.getpid(),
            len(self.runtimes),
            self.settings.channel_summary(),
        )
        if runner is not None:
            log.info("status page http://%s:%s/", self.settings.http_host, self.settings.http_port)
        if on_started is not None:
            on_started()
        try:
            await stop.wait()
        finally:
            watcher.cancel()
            await self._shutdown(flusher, heartbeat, runner)

    async def _shutdown(
        self, flusher: asyncio.Task[None], heartbeat: asyncio.Task[None] | None, runner: Any
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_when = None, math.inf
        self._due.clear()
        tasks = [rt.task for rt in self.runtimes.values() if rt.task is not None]
        for rt in self.runtimes.values():
            rt.retire()
        flusher.cancel()
        await asyncio.gather(*tasks, flusher, return_exceptions=True)
        if heartbeat is not None:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        await self._flush(force_state=True)
        await self.checker.close()
        if runner is not None:
            await runner.cleanup()
        # The worker may be inside a send; do not wait out its whole timeout. Anything not yet
        # recorded as sent stays pending in the outbox and is retried after a restart.
        await asyncio.to_thread(self.worker.stop, 1.5)
        self.events.emit("monitor_stopped", pid=os.getpid(), outbox_depth=self.outbox.depth())
        log.info("monitor stopped pid=%s", os.getpid())

    def _start_heartbeat(self, stop: asyncio.Event) -> asyncio.Task[None] | None:
        url = self.settings.heartbeat_url
        if not url:
            return None
        from keepalive.heartbeat import run_heartbeat

        async def beat() -> None:
            async with aiohttp.ClientSession(trust_env=False) as session:
                await run_heartbeat(url, session, self.is_progressing, stop)

        assert self._loop is not None
        return self._loop.create_task(beat(), name="heartbeat")

    # ------------------------------------------------------------------ targets

    def _restore_state(self) -> None:
        saved, warning = self.store.load()
        if warning:
            log.error("%s", warning)
            self.events.emit("state_file_discarded", reason=warning)
        now = self.clock()
        for target in self.settings.targets:
            record = saved.get(target.name)
            state = TargetState()
            if record and record.get("url") == target.url:
                try:
                    state = TargetState.from_dict(record)
                except (ValueError, TypeError) as exc:
                    log.error("state of target=%r unreadable (%s); starting fresh", target.name, exc)
            self.runtimes[target.name] = TargetRuntime(target, policy_for(target, self.settings), state, now)
        restored = [n for n, rt in self.runtimes.items() if rt.state.status in (Status.FAILING, Status.DOWN)]
        if restored:
            log.info("restored outage state targets=%s", ",".join(restored))

    def _schedule(self, runtimes: list[TargetRuntime]) -> None:
        assert self._loop is not None
        now = self._loop.time()
        count = len(runtimes)
        for index, rt in enumerate(runtimes):
            ramp = min(rt.target.interval, count / STARTUP_RAMP_RATE)
            rt.next_due = now + ramp * index / max(count, 1)
            self._plan(rt)

    # One timer for all targets, not one sleeping task per target: a heap of due times and a
    # callback that starts whatever is due, on a shared TICK grid. Measured in
    # bench/client_cost.py, batching the starts halves the CPU of a check, and thousands of idle
    # tasks (each with its coroutine frame and timer) are not kept in memory.

    def _plan(self, rt: TargetRuntime) -> None:
        heapq.heappush(self._due, (rt.next_due, next(self._order), rt))
        self._arm(rt.next_due)

    def _arm(self, due: float) -> None:
        when = max(due, math.ceil(due / TICK) * TICK)
        if when >= self._timer_when:
            return  # an earlier wake-up is already set; it re-arms for the rest
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_tick)
        self._timer_when = when

    def _on_tick(self) -> None:
        assert self._loop is not None
        self._timer, self._timer_when = None, math.inf
        due = self._due
        try:
            now = self._loop.time() + EARLY
            while due and due[0][0] <= now:
                rt = heapq.heappop(due)[2]
                if not rt.retired:
                    rt.task = self._loop.create_task(self._run_check(rt))
        finally:
            # Even after an unexpected error the schedule goes on (and a stuck one would show
            # as "stalled" on /health, since every check would be overdue).
            if due:
                self._arm(due[0][0])

    async def _run_check(self, rt: TargetRuntime) -> None:
        loop = self._loop
        assert loop is not None and self._sem is not None
        async with self._sem:
            if rt.retired:
                return
            started = loop.time()
            rt.running_since = started
            try:
                result = await self.checker.check(rt.target)
            finally:
                rt.running_since = None
        rt.task = None
        if rt.retired:
            return
        lag = started - rt.next_due
        self._lags.append(lag)
        if lag > self._lag_max:
            self._lag_max = lag
        self._last_progress = loop.time()
        try:
            self.handle_result(rt, result)
        except Exception:  # a bug in handling one result must not end this target's checks
            log.exception("handling a check result failed target=%r", rt.target.name)
        interval = rt.target.interval
        rt.next_due += interval
        behind = loop.time() - rt.next_due
        if behind >= interval:
            # Fell more than a whole interval behind: skip the slots that are gone instead of
            # firing them back to back, and count them.
            missed = int(behind // interval)
            self.checks_missed += missed
            rt.next_due += missed * interval
        self._plan(rt)

    def handle_result(self, rt: TargetRuntime, result: CheckResult) -> None:
        """Record one result and advance the target's state machine."""
        self.checks_total += 1
        rt.last_check = result.at
        rt.last_ok = result.ok
        rt.last_latency_ms = result.latency_ms
        rt.history.add(result.at, result.ok, result.latency_ms)
        if result.ok:
            rt.checks_ok += 1
        else:
            rt.checks_failed += 1
            rt.last_reason = result.reason
        old = rt.state
        new, raised = step(old, result.ok, result.reason, result.at, rt.policy)
        if new == old:
            return
        rt.state = new
        self._state_dirty = True
        self._wake.set()
        name, url = rt.target.name, rt.target.url
        if not result.ok:
            self.events.emit(
                "target_failed",
                target=name,
                url=url,
                reason=result.reason,
                consecutive_failures=new.outage_failures,
                threshold=rt.policy.failure_threshold,
            )
            log.info(
                "check failed target=%r reason=%r consecutive=%d threshold=%d",
                name,
                result.reason,
                new.outage_failures,
                rt.policy.failure_threshold,
            )
        if new.status != old.status:
            rt.status_since = result.at
            if old.status != Status.UNKNOWN or new.status != Status.UP:
                self.events.emit(
                    "target_state_changed", target=name, url=url, **{"from": old.status, "to": new.status}
                )
        if raised is not None:
            self._raise(rt, raised, result.at)

    def _raise(self, rt: TargetRuntime, raised: Raised, at: float) -> None:
        target = rt.target
        alert = Alert(
            id=alert_id(target.name, raised.since, raised.kind, raised.sequence),
            kind=raised.kind,
            target=target.name,
            url=target.url,
            reason=raised.reason,
            since=raised.since,
            at=at,
            failed_checks=raised.failed_checks,
            downtime=raised.downtime,
            host=self.hostname,
        )
        if raised.kind is AlertKind.DOWN:
            self.events.emit(
                "target_down",
                target=target.name,
                url=target.url,
                reason=raised.reason,
                since=iso(raised.since),
                failed_checks=raised.failed_checks,
                repeat=raised.sequence,
                alert_id=alert.id,
            )
            log.warning(
                "ALERT DOWN target=%r url=%s reason=%r since=%s failed_checks=%d",
                target.name,
                target.url,
                raised.reason,
                iso(raised.since),
                raised.failed_checks,
            )
        else:
            self.events.emit(
                "target_recovered",
                target=target.name,
                url=target.url,
                downtime_seconds=round(raised.downtime or 0, 3),
                since=iso(raised.since),
                failed_checks=raised.failed_checks,
                alert_id=alert.id,
            )
            log.warning(
                "ALERT RECOVERED target=%r url=%s downtime=%.1fs failed_checks=%d",
                target.name,
                target.url,
                raised.downtime or 0.0,
                raised.failed_checks,
            )
        self._pending.append(alert)
        self._wake.set()

    # ------------------------------------------------------------------ persistence

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending:
                await self._flush_alerts()
                # An alert changes what a restart must know (announced or not): save at once,
                # not on the coalescing schedule below.
                await self._save_state()
            if self._state_dirty:
                wait = self._last_save + STATE_SAVE_EVERY - loop.time()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        # New alerts cut the wait short; the state save then follows them.
                        await asyncio.wait_for(self._wake.wait(), wait)
                        continue
                await self._save_state()

    async def _flush(self, force_state: bool) -> None:
        if self._pending:
            await self._flush_alerts()
        if self._state_dirty or force_state:
            await self._save_state()

    async def _flush_alerts(self) -> None:
        alerts, self._pending = self._pending, []
        routes = [(n.channel, r) for n in self.notifiers for r in n.recipients()]
        try:
            await asyncio.to_thread(self.outbox.put, alerts, routes)
        except Exception as exc:
            # Keep them and try again on the next flush; nothing is dropped.
            log.error("storing %d alert(s) in the outbox failed: %s", len(alerts), exc)
            self._pending[:0] = alerts
            await asyncio.sleep(1.0)
            self._wake.set()
            return
        for alert in alerts:
            self.events.emit(
                "alert_queued",
                alert_id=alert.id,
                kind=alert.kind,
                target=alert.target,
                recipients=[f"{c}:{r}" for c, r in routes],
            )
        self.worker.wake()

    async def _save_state(self) -> None:
        assert self._loop is not None
        if self._pending:
            # These alerts' states say "announced" but the outbox does not hold them yet: the
            # state file must never run ahead of the outbox, or a crash would lose them.
            self._state_dirty = True
            return
        self._state_dirty = False
        self._last_save = self._loop.time()
        records = {name: rt.record() for name, rt in self.runtimes.items()}
        try:
            await asyncio.to_thread(self.store.save, records)
        except OSError as exc:
            self._state_dirty = True
            log.error("saving state to %s failed: %s", self.store.path, exc)

    # ------------------------------------------------------------------ reload

    def reload(self, settings: Settings) -> None:
        """Apply new settings (SIGHUP): targets added, removed or changed; channels rebuilt."""
        assert self._loop is not None
        old = self.settings
        self.settings = settings
        added: list[TargetRuntime] = []
        removed = [name for name in self.runtimes if name not in {t.name for t in settings.targets}]
        for name in removed:
            self.runtimes.pop(name).retire()
        changed = 0
        for target in settings.targets:
            rt = self.runtimes.get(target.name)
            policy = policy_for(target, settings)
            if rt is not None and rt.target == target and rt.policy == policy:
                continue
            state = rt.state if rt is not None and rt.target.url == target.url else TargetState()
            if rt is not None:
                changed += 1
                rt.retire()
            new = TargetRuntime(target, policy, state, self.clock())
            if rt is not None and rt.target.url == target.url:
                new.history, new.checks_ok, new.checks_failed = rt.history, rt.checks_ok, rt.checks_failed
                new.last_check, new.last_latency_ms, new.last_ok = (
                    rt.last_check,
                    rt.last_latency_ms,
                    rt.last_ok,
                )
            self.runtimes[target.name] = new
            added.append(new)
        self._schedule(added)
        self.notifiers = list(self._notifier_factory(settings))
        self.worker.set_notifiers(self.notifiers)
        self.worker.set_digest_after(settings.digest_after)
        if settings.max_concurrency != old.max_concurrency:
            # Checks in flight finish under the old bound; every new one takes the new one.
            self._sem = asyncio.Semaphore(settings.max_concurrency)
        for name, before, after in (
            ("MONITOR_STATE_DIR", old.state_dir, settings.state_dir),
            ("MONITOR_EVENTS_FILE", old.events_file, settings.events_file),
            (
                "MONITOR_HTTP_HOST/PORT",
                (old.http_host, old.http_port),
                (settings.http_host, settings.http_port),
            ),
        ):
            if before != after:
                log.warning("%s changed: takes effect after a restart", name)
        self._state_dirty = True
        self._wake.set()
        settle_heap()
        self.events.emit(
            "config_reloaded",
            targets=len(self.runtimes),
            added=len(added) - changed,
            changed=changed,
            removed=len(removed),
            channels=[c.name for c in settings.channels() if c.enabled],
        )
        log.info(
            "configuration reloaded targets=%d added=%d changed=%d removed=%d %s",
            len(self.runtimes),
            len(added) - changed,
            changed,
            len(removed),
            settings.channel_summary(),
        )

    # ------------------------------------------------------------------ views

    def is_progressing(self) -> bool:
        return self._stalled_for() <= 0

    def _stalled_for(self) -> float:
        """How long past its deadline the most overdue check is (<= 0: none is overdue)."""
        if self._loop is None:
            return 0.0
        now = self._loop.time()
        worst = -math.inf
        for rt in self.runtimes.values():
            deadline = rt.target.timeout + STALL_GRACE
            if rt.running_since is not None:
                worst = max(worst, now - rt.running_since - deadline)
            else:
                worst = max(worst, now - rt.next_due - deadline)
        return worst if worst != -math.inf else 0.0

    def _stall_after(self) -> float:
        return STALL_GRACE + max((rt.target.timeout for rt in self.runtimes.values()), default=0.0)

    def _counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for rt in self.runtimes.values():
            counts[rt.state.status.value] += 1
        return counts

    async def _watch_outbox(self) -> None:
        def read() -> tuple[int, float | None]:
            return self.outbox.depth(), self.outbox.oldest_pending_created()

        while True:
            try:
                self._outbox_depth, self._outbox_oldest = await asyncio.to_thread(read)
            except Exception as exc:
                log.error("reading the outbox figures failed: %s", exc)
            await asyncio.sleep(OUTBOX_FIGURES_EVERY)

    def _outbox_figures(self) -> tuple[int, float | None]:
        oldest = self._outbox_oldest
        return self._outbox_depth, None if oldest is None else round(max(0.0, self.clock() - oldest), 3)

    def health(self) -> tuple[bool, dict[str, Any]]:
        return to_health(self.snapshot())

    def status(self, include_history: bool = True) -> dict[str, Any]:
        return to_status_json(self.snapshot(include_history), include_history)

    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        """The monitor as it is now, rebuilt at most once every STATUS_CACHE_SECONDS."""
        now = time.monotonic()
        cached = self._status_cache.get(include_history)
        if cached is not None and now - cached[0] < STATUS_CACHE_SECONDS:
            return cached[1]
        snap = self._build_snapshot(include_history)
        self._status_cache[include_history] = (now, snap)
        return snap

    def _build_snapshot(self, include_history: bool) -> MonitorSnapshot:
        counts = self._counts()
        depth, oldest = self._outbox_figures()
        lags = sorted(self._lags)
        stats = self.worker.channel_stats()
        targets = []
        for rt in self.runtimes.values():
            status = rt.state.status
            since = rt.state.since if status in (Status.FAILING, Status.DOWN) else rt.status_since
            targets.append(
                TargetSnapshot(
                    name=rt.target.name,
                    url=rt.target.public_url,
                    state=status,
                    last_check=rt.last_check,
                    last_latency_ms=rt.last_latency_ms,
                    last_reason=rt.last_reason
                    if status != Status.UP
                    else (None if rt.last_ok else rt.last_reason),
                    consecutive_failures=rt.consecutive_failures,
                    since=since if status != Status.UNKNOWN else None,
                    interval_seconds=rt.target.interval,
                    uptime_percent=rt.history.uptime_percent(),
                    checks_ok_total=rt.checks_ok,
                    checks_failed_total=rt.checks_failed,
                    history=tuple(HistoryPoint(*p) for p in rt.history.points()) if include_history else None,
                )
            )
        channels = []
        for channel in self.settings.channels():
            stat = stats.get(channel.name, {})
            channels.append(
                ChannelSnapshot(
                    name=channel.name,
                    enabled=channel.enabled,
                    why=channel.why,
                    last_success=stat.get("last_success"),
                    last_error=stat.get("last_error"),
                    last_error_at=stat.get("last_error_at"),
                    sent_total=int(stat.get("sent_total", 0)),
                    failed_total=int(stat.get("failed_total", 0)),
                )
            )
        progressing = self.is_progressing()
        loop_now = self._loop.time() if self._loop is not None else 0.0
        return MonitorSnapshot(
            host=self.hostname,
            version=__version__,
            python=platform.python_version(),
            taken_at=self.clock(),
            started_at=self.started_at,
            healthy=progressing,
            status=STATUS_OK if progressing else STATUS_STALLED,
            problems=() if progressing else ("the checking loop has stopped making progress",),
            progressing=progressing,
            stall_after_seconds=self._stall_after(),
            last_progress_age_seconds=loop_now - self._last_progress,
            targets_up=counts["up"],
            targets_failing=counts["failing"],
            targets_down=counts["down"],
            targets_unknown=counts["unknown"],
            outbox_depth=depth,
            oldest_undelivered_age_seconds=oldest,
            checks_total=self.checks_total,
            checks_missed_total=self.checks_missed,
            schedule_lag=LagSnapshot(
                p50=percentile(lags, 0.50), p99=percentile(lags, 0.99), max=self._lag_max if lags else None
            ),
            targets=tuple(targets),
            channels=tuple(channels),
        )
