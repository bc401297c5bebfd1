"""The composition root: builds the running monitor from settings and runs it until stopped.

Built in this order, each part handed what it needs: state-directory lock -> events ->
outbox -> notifiers -> delivery worker -> checker -> monitor; then, running: web endpoint ->
checks -> delivery -> heartbeat. Stopped in reverse. ``cli.serve()`` and in-process tests
both use it; the parts are passed in through ``MonitorApp.build``'s keywords, never patched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from keepalive.actions.wiring import KeepAlive
from keepalive.apitoken import ensure_token
from keepalive.config import Settings, load_settings
from keepalive.delivery.outbox import DeliveryWorker, Outbox
from keepalive.engine.announcer import AlertPolicy
from keepalive.engine.monitor import CheckerLike, Monitor
from keepalive.engine.reader import read_settings
from keepalive.engine.runtime import view_with_history
from keepalive.engine.share import own_share
from keepalive.engine.snapshot import TargetSnapshot
from keepalive.engine.statelock import StateDirLock
from keepalive.errors import ConfigError
from keepalive.events import EventLog
from keepalive.logfile import reopen_log_files
from keepalive.notifiers.alertmanager import LeaseRenewer
from keepalive.notifiers.base import Notifier
from keepalive.notifiers.factory import build_notifiers
from keepalive.policy.runner import Quiet
from keepalive.web.api import ApiAuth, SilenceRoutes, WriteApi

if TYPE_CHECKING:
    from keepalive.web.stream import EventHub

log = logging.getLogger("keepalive.monitor")

# Alerts raised within this many seconds of each other leave together (as one digest when more
# than DIGEST_AFTER wait): a switch failing takes many targets down within one check round.
GROUP_WAIT = 0.5
# The worker may be inside a send; a stop does not wait out its whole timeout. Anything not yet
# recorded as sent stays pending in the outbox and is retried after a restart.
WORKER_STOP_WAIT = 1.5
# How long a worker thread (reload, the web's renders) may keep the GIL when the loop wants it:
# 1 ms instead of Python's 5. bench.stress at 10,000 targets with scrapes and SIGHUPs: schedule
# lag p99 0.255 -> 0.085 s.
SWITCH_INTERVAL = 0.001


class MonitorApp:
    """Everything a running monitor is made of, and its start, reload and stop."""

    def __init__(
        self,
        settings: Settings,
        *,
        lock: StateDirLock,
        events: EventLog,
        outbox: Outbox,
        worker: DeliveryWorker,
        monitor: Monitor,
        load: Callable[[], Settings],
    ) -> None:
        self.settings = settings
        self.lock = lock
        self.events = events
        self.outbox = outbox
        self.worker = worker
        self.monitor = monitor
        self._load = load
        self._reloading = asyncio.Lock()
        self.web_address: str | None = None
        self.api_token = ""  # SPEC 12; set by build()
        self.quiet: Quiet | None = None  # SPEC 13: the silence book and the hold policy
        self.hub: EventHub | None = None  # the page's event stream, while the web endpoint runs
        self.keep: KeepAlive | None = None  # SPEC 15, 16: remediation and Telegram commands

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        load: Callable[[], Settings] = load_settings,
        notifier_factory: Callable[[Settings], Sequence[Notifier]] = build_notifiers,
        checker: CheckerLike | None = None,
        alert_policy: AlertPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> MonitorApp:
        """Build every part. Raises ConfigError (one line naming the setting) when the state
        directory is taken by another monitor or unusable, or the events file cannot be written."""
        # Only this replica's share of the targets file is checked (SPEC 17), now and on reload.
        settings = own_share(settings)
        membership = settings.fanout.membership
        if membership.enabled:
            log.info(
                "replica share name=%s replicas=%s copies=%d checks=%d of=%s",
                membership.name,
                ",".join(membership.replicas),
                membership.effective_copies,
                len(settings.targets),
                settings.fanout.total_targets,
            )
        read_settings = load

        def load_share() -> Settings:
            return own_share(read_settings())

        load = load_share
        lock = StateDirLock(settings.state_dir)
        lock.acquire()
        try:
            try:
                events = EventLog(
                    settings.events_file, max_bytes=settings.log_max_bytes, backups=settings.log_backups
                )
            except OSError as exc:
                raise ConfigError(
                    f"MONITOR_EVENTS_FILE={str(settings.events_file)!r} cannot be written: {exc.strerror}"
                ) from None
            try:
                outbox = Outbox(settings.state_dir, group_wait=GROUP_WAIT)
            except (OSError, sqlite3.Error) as exc:
                events.close()
                reason = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise ConfigError(
                    f"MONITOR_STATE_DIR={str(settings.state_dir)!r} cannot be used: {reason}"
                ) from None
            try:
                # SPEC 12: generated into the state dir at the first start (0600), then reused.
                api_token = ensure_token(settings.state_dir, settings.quiet.api_token)
            except ConfigError:
                outbox.close()
                events.close()
                raise
        except BaseException:
            lock.release()
            raise
        notifiers = notifier_factory(settings)
        worker = DeliveryWorker(outbox, notifiers, events, settings.digest_after)
        monitor = Monitor(
            settings,
            events=events,
            outbox=outbox,
            worker=worker,
            notifiers=notifiers,
            notifier_factory=notifier_factory,
            checker=checker,
            alert_policy=alert_policy,
            clock=clock,
        )
        app = cls(
            settings, lock=lock, events=events, outbox=outbox, worker=worker, monitor=monitor, load=load
        )
        app.api_token = api_token
        if alert_policy is None:
            # Silences, maintenance windows and dependencies (SPEC 13) decide what is held.
            app.quiet = Quiet(monitor)
            monitor.announcer.policy = app.quiet.holds
            monitor.decorate = app.quiet.decorate
        # After the hold policy: held DOWNs are not remediated, /silence uses its book.
        app.keep = KeepAlive(monitor)
        return app

    async def run(self, stop: asyncio.Event, on_started: Callable[[], None] | None = None) -> None:
        """Run until ``stop`` is set, then stop every part. A web address that cannot be bound
        raises ConfigError before any check starts."""
        from keepalive.web.app import start_web  # the web layer imports the engine, not back

        settings = self.settings
        runner = None
        heartbeat: asyncio.Task[None] | None = None
        checking = delivering = False
        renewer: LeaseRenewer | None = None
        quiet_task: asyncio.Task[None] | None = None
        try:
            if settings.http_port:
                from keepalive.web.stream import EventHub

                self.hub = EventHub(self.monitor)
                self.monitor.on_checked = self.hub.checked
                runner = await start_web(
                    self.monitor,
                    settings.http_host,
                    settings.http_port,
                    hub=self.hub,
                    lookup=self._target_with_history,
                    pushes=self.monitor.pushes,
                    writes=self._writes(),
                    extra_host_names=settings.http_allowed_hosts,
                    alerts=self.outbox.recent_for,
                )
                self.web_address = _first_address(runner.addresses)
            await self.monitor.start()
            checking = True
            self.worker.start()
            delivering = True
            renewer = LeaseRenewer(lambda: self.monitor.notifiers)
            renewer.start()
            heartbeat = self._start_heartbeat(stop)
            if self.keep is not None:
                self.keep.start()
            if self.quiet is not None:
                quiet_task = asyncio.get_running_loop().create_task(self.quiet.run(stop), name="holds")
            self.monitor.announce_started(self.web_address)
            if on_started is not None:
                on_started()
            await stop.wait()
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
            if runner is not None:
                await runner.cleanup()
            if quiet_task is not None:
                quiet_task.cancel()
                await asyncio.gather(quiet_task, return_exceptions=True)
            if self.keep is not None and checking:
                # A remediation still running gets half the stop grace, then its process group
                # is killed: stop_monitor.sh sends SIGKILL after STOP_GRACE_SECONDS.
                await self.keep.stop(max(1.0, settings.stop_grace / 2))
            if checking:
                await self.monitor.stop()
            if self.quiet is not None and checking:
                await self.quiet.save(force=True)  # what was held and notified survives a restart
            if renewer is not None:
                renewer.stop()
            if delivering:
                await asyncio.to_thread(self.worker.stop, WORKER_STOP_WAIT)
            depth: int | None = None
            try:
                depth = await asyncio.to_thread(self.outbox.depth)
            except Exception as exc:  # a broken outbox must not hide how the stop went
                log.error("reading the outbox depth at stop failed: %s", exc)
            self.outbox.close()
            if checking:
                self.monitor.reporter.report(
                    "monitor_stopped", "monitor stopped", pid=os.getpid(), outbox_depth=depth
                )

    async def reload(self) -> None:
        """SIGHUP: reopen the log and events files (logrotate), read the settings in a child
        process (keepalive.engine.reader), and apply them on the loop in O(targets). Never
        raises: a bad file keeps the running configuration."""
        async with self._reloading:
            self.events.reopen()
            reopen_log_files()
            started = time.monotonic()
            try:
                new = await read_settings(self._load)
            except Exception as exc:  # ConfigError, or anything unforeseen: never fatal here
                error = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
                self.monitor.reporter.report(
                    "config_reload_failed",
                    "reload rejected, keeping the running configuration",
                    logging.ERROR,
                    error=error,
                )
                return
            # Matching 50,000 targets (~100 ms) and building the notifiers (~20 ms) are also off
            # the loop (which gets the GIL back within SWITCH_INTERVAL; cli.serve sets it).
            plan = await asyncio.to_thread(self.monitor.plan_reload, new)
            read = time.monotonic() - started
            applied = time.monotonic()
            self.monitor.apply_reload(plan)
            self.settings = new
            if self.quiet is not None:
                self.quiet.configure()  # windows and depends_on as the file now says
            if self.hub is not None:
                self.hub.reset("configuration reloaded", self.monitor.runtimes.keys())
            log.info(
                "reload timing off_loop_seconds=%.3f on_loop_seconds=%.3f",
                read,
                time.monotonic() - applied,
            )

    def _target_with_history(self, name: str) -> TargetSnapshot | None:
        rt = self.monitor.runtimes.get(name)
        return None if rt is None else view_with_history(rt)

    def _writes(self) -> WriteApi:
        """The token rules and the write routes (SPEC 12, 13)."""
        routes: list[Callable[..., None]] = []
        if self.quiet is not None:
            silences = SilenceRoutes(
                self.quiet.book, self.monitor.reporter.report, self.monitor.runtimes.keys
            )
            routes.append(silences.add_to)
        if self.keep is not None:
            routes.extend(self.keep.routes())  # POST /api/targets/<name>/remediate (SPEC 15)
        return WriteApi(ApiAuth(self.api_token, self.settings.quiet.http_auth), routes)

    def close(self) -> None:
        self.events.close()
        self.lock.release()

    def _start_heartbeat(self, stop: asyncio.Event) -> asyncio.Task[None] | None:
        url = self.settings.heartbeat_url
        if not url:
            return None
        from keepalive.heartbeat import run_heartbeat

        async def beat() -> None:
            async with aiohttp.ClientSession(trust_env=False) as session:
                await run_heartbeat(url, session, self.monitor.problem, stop)

        return asyncio.get_running_loop().create_task(beat(), name="heartbeat")


def _first_address(addresses: list[Any]) -> str | None:
    for address in addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = address[0], address[1]
            return f"http://[{host}]:{port}/" if ":" in str(host) else f"http://{host}:{port}/"
    return None
