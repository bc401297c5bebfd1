"""The running monitor: checks targets on the schedule, feeds the state machine, and answers
for the whole (snapshot, health, reload).

Its parts, each in its own module: ``Scheduler`` (when), ``TargetRuntime``/``reconcile`` (what,
and what a reload changes), ``Announcer`` (state-machine results to alerts, through one
``Reporter``), ``Persister`` (alerts to the outbox, states to disk) and the snapshot the web
endpoint renders. Web server and heartbeat are started by the composition root
(keepalive.engine.app), not here.

Threads: everything here runs on the event loop thread, except disk writes (moved to a worker
thread by the persister) and delivery, which the ``DeliveryWorker`` thread owns so that a slow
notifier never delays a check.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import platform
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from keepalive import __version__
from keepalive.config import Settings
from keepalive.engine.announcer import AlertPolicy, Announcer, Reporter
from keepalive.engine.persister import OutboxLike, Persister, StateStoreLike
from keepalive.engine.runtime import (
    Observed,
    Reconciled,
    TargetRuntime,
    reconcile,
    view_of,
    view_with_history,
)
from keepalive.engine.scheduler import AsyncioTimers, Scheduler, TimerLoop
from keepalive.engine.share import replica_snapshot
from keepalive.engine.snapshot import (
    STATUS_ALERT_PATH,
    STATUS_OK,
    STATUS_STALLED,
    ChannelSnapshot,
    LagSnapshot,
    MonitorSnapshot,
    to_health,
    to_status_json,
)
from keepalive.engine.statestore import StateStore
from keepalive.events import EventLog
from keepalive.expiry import CertWarnings
from keepalive.notifiers.base import Notifier
from keepalive.probe.checker import Checker, CheckResult
from keepalive.probe.detail import Detail
from keepalive.probe.push import PINGS_FILE, PushBoard
from keepalive.state import Policy, Status, TargetState, step
from keepalive.targets import Target, public_url

log = logging.getLogger("keepalive.monitor")

# A check that has not completed this long after it was due (beyond its own timeout) means the
# checking loop is not making progress: /health answers 503 "stalled" and the heartbeat stops.
STALL_GRACE = 10.0
# A failure on the alert path (outbox store, state save) lasting longer than this makes
# /health 503 and keepalive_up 0: long enough to ride out a lock or a slow fsync.
ALERT_PATH_GRACE = 30.0
LAG_SAMPLES = 20_000
# /api/status, /health and /metrics render one snapshot of every target; with thousands of
# targets building it is real work on the event loop, so a snapshot is reused for this long.
SNAPSHOT_MAX_AGE = 1.0


class CheckerLike(Protocol):
    async def check(self, target: Target) -> CheckResult: ...
    async def close(self) -> None: ...


class WorkerLike(Protocol):
    def start(self) -> None: ...
    def wake(self) -> None: ...
    def stop(self, timeout: float) -> None: ...
    def set_notifiers(self, notifiers: Sequence[Notifier]) -> None: ...
    def set_digest_after(self, digest_after: int) -> None: ...
    def channel_stats(self) -> dict[str, dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """Everything a reload changes, prepared off the loop (``Monitor.plan_reload``)."""

    settings: Settings
    targets: Reconciled
    notifiers: list[Notifier]


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


class Monitor:
    """Owns the targets and their checks: ``await start()``, then ``await stop()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        events: EventLog,
        outbox: OutboxLike,
        worker: WorkerLike,
        notifiers: Sequence[Notifier],
        notifier_factory: Callable[[Settings], Sequence[Notifier]],
        checker: CheckerLike | None = None,
        store: StateStoreLike | None = None,
        alert_policy: AlertPolicy | None = None,
        hostname: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        alert_path_grace: float = ALERT_PATH_GRACE,
        pushes: PushBoard | None = None,
    ) -> None:
        self.settings = settings
        self.events = events
        self.outbox = outbox
        self.worker = worker
        self.notifiers = list(notifiers)
        self._notifier_factory = notifier_factory
        # A redirect onto our own endpoint must not pass as a healthy target (issue 9).
        own = [(settings.http_host, settings.http_port)]
        # Push targets' pings (the /ping routes write it, the checker reads it; SPEC 14).
        self.pushes = pushes if pushes is not None else PushBoard(clock)
        self.pushes.on_ping = self._pinged
        self.checker: CheckerLike = (
            checker
            if checker is not None
            else Checker(own_endpoints=own, pushes=self.pushes, state_dir=settings.state_dir, clock=clock)
        )
        self.cert_warnings = CertWarnings(settings.state_dir)
        self.hostname = hostname or socket.gethostname()
        self.clock = clock  # wall time: shown and stored, never used to schedule
        self._monotonic = monotonic
        self.alert_path_grace = alert_path_grace
        self.reporter = Reporter(events, log)
        self.persister = Persister(
            store if store is not None else StateStore(settings.state_dir),
            outbox,
            self.reporter,
            records=self._records,
            routes=lambda: [(n.channel, r) for n in self.notifiers for r in n.recipients()],
            stored=worker.wake,
            wall=clock,
            monotonic=monotonic,
        )
        self.announcer = Announcer(self.reporter, self.hostname, self.persister.queue, alert_policy)
        self.runtimes: dict[str, TargetRuntime] = {}
        self.checks_total = 0
        self.started_at = clock()
        self._lags: deque[float] = deque(maxlen=LAG_SAMPLES)
        self._lag_max = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        # The loop's monotonic clock (or a test's): every schedule, lag and stall figure.
        self._timers: TimerLoop | None = None
        self._scheduler: Scheduler[TargetRuntime] | None = None
        self._sem: asyncio.Semaphore | None = None
        self._last_progress = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._snapshots: dict[bool, tuple[float, MonitorSnapshot]] = {}
        # Adds what the hold policy knows (SPEC 13: silenced_by, silences) to each snapshot.
        self.decorate: Callable[[MonitorSnapshot], MonitorSnapshot] | None = None
        # Each target's state-file record, rebuilt only for the targets checked since the last
        # save: building all 50,000 on every save held the loop ~300 ms.
        self._saved_records: dict[str, dict[str, Any]] = {}
        self._unsaved: dict[str, TargetRuntime] = {}
        # Called after each handled check with (runtime, status before it): the live page's
        # EventHub (keepalive.web.stream). It must cost O(1) and never raise.
        self.on_checked: Callable[[TargetRuntime, Status], None] | None = None
        # Bot commands refused (SPEC 16, keepalive.actions.wiring): a thread-safe counter read.
        self.commands_refused: Callable[[], int] = lambda: 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self, timers: TimerLoop | None = None) -> None:
        """Restore the saved states and start checking. ``timers``: the schedule's clock and
        timers, this loop's by default (a test passes a clock it moves by hand)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._timers = timers if timers is not None else AsyncioTimers(loop)
        self._scheduler = Scheduler(self._timers, self._begin)
        self._sem = asyncio.Semaphore(self.settings.max_concurrency)
        self._last_progress = self._timers.time()
        self._restore_state()
        self.pushes.set_targets(self.settings.targets)
        self.pushes.restore(self.settings.state_dir / PINGS_FILE)
        for problem in self.cert_warnings.load():
            self.reporter.report("state_file_discarded", "state file", logging.ERROR, reason=problem)
        # Built in full once, before checks start; later saves and snapshots rebuild only the
        # targets that changed (at 50,000 targets the full set is ~0.2 s of loop time each).
        self._records()
        for rt in self.runtimes.values():
            view_with_history(rt)  # and view_of(rt) with it
        self._scheduler.spread(list(self.runtimes.values()))
        self._tasks = [
            loop.create_task(self.persister.run(), name="persist"),
            loop.create_task(self.persister.watch_outbox(), name="outbox-figures"),
        ]
        settle_heap()

    def announce_started(self, web_address: str | None) -> None:
        self.reporter.report(
            "monitor_started",
            "monitor started",
            pid=os.getpid(),
            version=__version__,
            targets=len(self.runtimes),
            channels=[c.name for c in self.settings.channels() if c.enabled],
        )
        log.info("%s", self.settings.channel_summary())
        if web_address is not None:
            log.info("status page %s", web_address)

    async def stop(self) -> None:
        """Stop checking, store what is pending, save the state, close the checker."""
        if self._scheduler is not None:
            self._scheduler.clear()
        checks = [rt.task for rt in self.runtimes.values() if rt.task is not None]
        for rt in self.runtimes.values():
            rt.retire()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*checks, *self._tasks, return_exceptions=True)
        await self.persister.flush(force_state=True)
        try:
            await asyncio.to_thread(self.pushes.save, self.settings.state_dir / PINGS_FILE)
        except OSError as exc:  # a restart then measures push silences from its start
            log.error("saving push pings failed: %s", exc.strerror)
        await self.checker.close()

    # ------------------------------------------------------------------ targets

    def _restore_state(self) -> None:
        loaded = self.persister.store.load()
        for problem in loaded.problems:
            self.reporter.report("state_file_discarded", "state file", logging.ERROR, reason=problem)
        now = self.clock()
        for target in self.settings.targets:
            saved = loaded.targets.get(target.name)
            # Compared as shown: the file never holds a password, and a changed password alone
            # is still the same endpoint.
            same = saved is not None and public_url(saved.url) == target.public_url
            state = saved.state if saved is not None and same else TargetState()
            observed = Observed(state, now)
            self.runtimes[target.name] = TargetRuntime(target, policy_for(target, self.settings), observed)
        restored = [
            n for n, rt in self.runtimes.items() if rt.observed.state.status in (Status.FAILING, Status.DOWN)
        ]
        if restored:
            log.info("restored outage state targets=%s", ",".join(restored))

    def _records(self) -> dict[str, dict[str, Any]]:
        """Every target's record as of now (a copy: the save serialises it in a thread)."""
        records = self._saved_records
        if len(records) != len(self.runtimes):  # the first save
            self._unsaved = dict(self.runtimes)
        for name, rt in self._unsaved.items():
            records[name] = rt.record()
        self._unsaved = {}
        return dict(records)

    # ------------------------------------------------------------------ checks

    def _begin(self, rt: TargetRuntime) -> None:
        assert self._loop is not None
        rt.task = self._loop.create_task(self._run_check(rt))

    async def _run_check(self, rt: TargetRuntime) -> None:
        clock = self._timers
        assert clock is not None and self._sem is not None and self._scheduler is not None
        async with self._sem:
            if rt.retired:
                return
            started = clock.time()
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
        self._last_progress = clock.time()
        before = rt.observed.state.status
        try:
            self.handle_result(rt, result)
            if self.on_checked is not None:
                self.on_checked(rt, before)
        except Exception:  # a bug in handling one result must not end this target's checks
            log.exception("handling a check result failed target=%r", rt.target.name)
        self._scheduler.advance(rt)

    def handle_result(self, rt: TargetRuntime, result: CheckResult) -> None:
        """Record one result and advance the target's state machine."""
        self.checks_total += 1
        seen = rt.observed
        rt.observed_changed()
        self._unsaved[rt.target.name] = rt
        seen.last_check = result.at
        seen.last_ok = result.ok
        seen.last_latency_ms = result.latency_ms
        seen.history.add(result.at, result.ok, result.latency_ms)
        if result.detail is not None:
            seen.detail = result.detail
            if result.detail.cert_expires_at is not None:
                self._cert_seen(rt, result.detail, result.at)
        if result.ok:
            seen.checks_ok += 1
        else:
            seen.checks_failed += 1
            seen.last_reason = result.reason
        old = seen.state
        new, raised = step(old, result.ok, result.reason, result.at, rt.policy)
        if new is old or new == old:  # ``is``: a healthy target stays UP_STATE, the common case
            return
        seen.state = new
        if new.status != old.status:
            seen.status_since = result.at
        self.persister.dirty()
        self.announcer.changed(rt.target, rt.policy, old, new, result, raised)

    # ------------------------------------------------------------------ reload

    def reload(self, settings: Settings) -> ReloadPlan:
        """Apply new settings (SIGHUP) at once: ``plan_reload`` then ``apply_reload``."""
        plan = self.plan_reload(settings)
        self.apply_reload(plan)
        return plan

    def plan_reload(self, settings: Settings) -> ReloadPlan:
        """What ``settings`` change, prepared without changing anything. Safe to run in a worker
        thread while the loop checks: matching 50,000 targets is ~100 ms of Python and building
        the notifiers ~20 ms (TLS contexts); it reads only the runtimes' immutable configuration
        and object references. One reload at a time."""
        targets = reconcile(self.runtimes, settings.targets, lambda t: policy_for(t, settings), self.clock())
        return ReloadPlan(settings, targets, list(self._notifier_factory(settings)))

    def apply_reload(self, plan: ReloadPlan) -> None:
        """Make ``plan`` (from ``plan_reload``) current, on the loop: the work is proportional to
        what changed."""
        settings, targets = plan.settings, plan.targets
        assert self._loop is not None and self._scheduler is not None
        old = self.settings
        self.settings = settings
        unsaved, records = self._unsaved, self._saved_records
        for rt in targets.removed:
            rt.retire()
            unsaved.pop(rt.target.name, None)
            records.pop(rt.target.name, None)
        for replaced, successor in targets.changed:
            replaced.retire()
            name = successor.target.name
            if successor.observed is not replaced.observed:
                unsaved[name] = successor  # a new URL: a fresh record
            elif name in unsaved:
                unsaved[name] = successor  # same endpoint: its saved record still holds
        for rt in targets.added:
            unsaved[rt.target.name] = rt
        self.runtimes = targets.runtimes
        self._scheduler.spread(targets.to_schedule())
        self.notifiers = plan.notifiers
        self.worker.set_notifiers(self.notifiers)
        self.worker.set_digest_after(settings.digest_after)
        self.pushes.set_targets(settings.targets)
        if settings.max_concurrency != old.max_concurrency:
            # Checks in flight finish under the old bound; every new one takes the new one.
            self._sem = asyncio.Semaphore(settings.max_concurrency)
        for name, before, after in (
            ("MONITOR_STATE_DIR", old.state_dir, settings.state_dir),
            ("MONITOR_EVENTS_FILE", old.events_file, settings.events_file),
            (
                "MONITOR_HTTP_HOST/PORT/ALLOWED_HOSTS",
                (old.http_host, old.http_port, old.http_allowed_hosts),
                (settings.http_host, settings.http_port, settings.http_allowed_hosts),
            ),
        ):
            if before != after:
                log.warning("%s changed: takes effect after a restart", name)
        self.persister.dirty()
        self._snapshots.clear()
        self.reporter.report(
            "config_reloaded",
            "configuration reloaded",
            targets=len(self.runtimes),
            added=len(targets.added),
            changed=len(targets.changed),
            removed=len(targets.removed),
            channels=[c.name for c in settings.channels() if c.enabled],
        )

    # ------------------------------------------------------------------ kinds (SPEC 14)

    def _pinged(self, name: str, at: float, failure: str | None) -> None:
        """A push target pinged. A ping that changes the verdict (a /fail while passing, another
        /fail reason, a success while failing) counts as a check at once: a daily job's failure
        or recovery must not wait up to a day for the next scheduled check. A steady stream of
        the same verdict only refreshes "last ping" (a job pinging in a loop costs nothing more)."""
        rt = self.runtimes.get(name)
        if rt is None or rt.retired:
            return
        seen = rt.observed
        ok = failure is None
        if seen.last_ok is ok and (ok or seen.last_reason == failure):
            seen.detail = Detail(last_ping=at)
            rt.observed_changed()
            return
        before = seen.state.status
        try:
            self.handle_result(rt, CheckResult(ok, failure, None, at, Detail(last_ping=at)))
            if self.on_checked is not None:
                self.on_checked(rt, before)
        except Exception:  # the ping was recorded; a bug here must not fail the job's request
            log.exception("handling a ping failed target=%r", name)

    def _cert_seen(self, rt: TargetRuntime, detail: Detail, at: float) -> None:
        """An https target's certificate was looked at: raise EXPIRING when a threshold fell."""
        assert detail.cert_expires_at is not None and detail.cert_fingerprint is not None
        target = rt.target
        days, changed = self.cert_warnings.step(
            target.name, detail.cert_fingerprint, detail.cert_expires_at, at, target.cert_warn_days
        )
        if days is not None:
            self.announcer.expiring(target, days, detail.cert_expires_at, at)
        if changed:
            self._save_cert_warnings()

    def recheck_certificate(self, name: str) -> None:
        """Forget what was announced about ``name``'s certificate and look at it afresh at its
        next check: an EXPIRING held by a silence or a window is decided again, when the quiet
        ends, on the certificate as it is then (renewed meanwhile: nothing is sent)."""
        rt = self.runtimes.get(name)
        if rt is None:
            return
        if self.cert_warnings.forget(name):
            self._save_cert_warnings()
        if isinstance(self.checker, Checker):
            self.checker.certs.forget(rt.target)

    def _save_cert_warnings(self) -> None:
        if self._loop is None:
            return
        document = self.cert_warnings.document()

        def save() -> None:
            try:
                self.cert_warnings.save(document)
            except OSError as exc:  # at worst one EXPIRING more after a restart
                log.error("saving %s failed: %s", self.cert_warnings.path, exc.strerror)

        self._loop.run_in_executor(None, save)

    # ------------------------------------------------------------------ views

    def is_progressing(self) -> bool:
        return self._stalled_for() <= 0

    def _stalled_for(self) -> float:
        """How long past its deadline the most overdue check is (<= 0: none is overdue)."""
        if self._timers is None:
            return 0.0
        now = self._timers.time()
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

    @property
    def checks_missed(self) -> int:
        return self._scheduler.missed if self._scheduler is not None else 0

    def problem(self) -> str | None:
        """The first reason the monitor is unhealthy, or None (the heartbeat pings only then)."""
        problems = self.snapshot().problems
        return problems[0] if problems else None

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy?, the /health body)."""
        return to_health(self.snapshot())

    def status(self, include_history: bool = True) -> dict[str, Any]:
        """The /api/status document."""
        return to_status_json(self.snapshot(include_history), include_history)

    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        """The monitor as it is now, rebuilt at most once every SNAPSHOT_MAX_AGE seconds."""
        now = self._monotonic()
        # One with history holds all that one without it does, so it serves both: with a page
        # polling /api/status?history=1 and Prometheus scraping /metrics, the loop builds one
        # snapshot a second instead of two (10 ms each at 10,000 targets).
        for kind in (True,) if include_history else (False, True):
            cached = self._snapshots.get(kind)
            if cached is not None and now - cached[0] < SNAPSHOT_MAX_AGE:
                return cached[1]
        snap = self._build_snapshot(include_history)
        if self.decorate is not None:
            snap = self.decorate(snap)
        self._snapshots[include_history] = (now, snap)
        return snap

    def _build_snapshot(self, include_history: bool) -> MonitorSnapshot:
        build = view_with_history if include_history else view_of
        targets = tuple(build(rt) for rt in self.runtimes.values())
        counts = dict.fromkeys(Status, 0)
        for view in targets:
            counts[view.state] += 1
        stats = self.worker.channel_stats()
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
        problems = [] if progressing else ["the checking loop has stopped making progress"]
        alert_path = self.persister.problems(self.alert_path_grace)
        problems += alert_path
        status = STATUS_OK if progressing else STATUS_STALLED
        if progressing and alert_path:
            status = STATUS_ALERT_PATH
        lags = sorted(self._lags)
        loop_now = self._timers.time() if self._timers is not None else 0.0
        return MonitorSnapshot(
            host=self.hostname,
            version=__version__,
            python=platform.python_version(),
            taken_at=self.clock(),
            started_at=self.started_at,
            healthy=not problems,
            status=status,
            problems=tuple(problems),
            progressing=progressing,
            stall_after_seconds=self._stall_after(),
            last_progress_age_seconds=loop_now - self._last_progress,
            targets_up=counts[Status.UP],
            targets_failing=counts[Status.FAILING],
            targets_down=counts[Status.DOWN],
            targets_unknown=counts[Status.UNKNOWN],
            outbox_depth=self.persister.outbox_depth,
            oldest_undelivered_age_seconds=self.persister.oldest_undelivered_age(),
            checks_total=self.checks_total,
            checks_missed_total=self.checks_missed,
            schedule_lag=LagSnapshot(
                p50=percentile(lags, 0.50), p99=percentile(lags, 0.99), max=self._lag_max if lags else None
            ),
            targets=targets,
            channels=tuple(channels),
            replica=replica_snapshot(self.settings, len(targets)),
            push_unknown_total=self.pushes.unknown_total,
            telegram_commands_refused_total=self.commands_refused(),
        )
