"""SPEC 13 wired into a running monitor: the silence book, the hold policy, the once-a-second
tick that releases what is due, and what the snapshot shows of it.

The composition root (keepalive.engine.app) builds one ``Quiet`` after the monitor, installs it
as the announcer's policy, runs ``run`` beside the checks and calls ``configure`` on reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace

from keepalive.engine.monitor import Monitor
from keepalive.engine.snapshot import MonitorSnapshot, SilenceSnapshot
from keepalive.events import iso
from keepalive.policy.holds import Holds
from keepalive.policy.silences import Silence, SilenceBook
from keepalive.state import TargetState

# Holds end on the second: a silence expiring or a window closing is released within this.
TICK = 1.0
log = logging.getLogger("keepalive.monitor")


class Quiet:
    def __init__(self, monitor: Monitor) -> None:
        settings = monitor.settings
        self.monitor = monitor
        self.book = SilenceBook(
            settings.state_dir, max_silence=settings.quiet.max_silence, clock=monitor.clock
        )
        self.holds = Holds(
            self.book,
            settings.state_dir,
            state_of=self._state_of,
            checked_at=self._checked_at,
            recheck_cert=monitor.recheck_certificate,
            queue=monitor.persister.queue,
            report=monitor.reporter.report,
            clock=monitor.clock,
        )
        for problem in (*self.book.problems, *self.holds.problems):
            monitor.reporter.report(
                "quiet_state_discarded", "silences or holds file", logging.ERROR, reason=problem
            )
        self._silences: dict[str, Silence] = {}
        self._windows: dict[str, float] = {}
        # The holds file is written before every state save: a held DOWN reaches the disk
        # before the state that says it was announced.
        monitor.persister.before_state = self._holds_first
        self.configure()

    def _state_of(self, name: str) -> TargetState | None:
        rt = self.monitor.runtimes.get(name)
        return None if rt is None else rt.observed.state

    def _checked_at(self, name: str) -> float | None:
        rt = self.monitor.runtimes.get(name)
        return None if rt is None else rt.observed.last_check

    def configure(self) -> None:
        """(Re)read targets and windows from the monitor's current settings."""
        settings = self.monitor.settings
        self.book.max_silence = settings.quiet.max_silence
        self.holds.configure(settings.targets, settings.maintenance)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick once a second until ``stop``: release, count downtime, save when changed."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK)
            now = loop.time()
            try:
                self._watch()
                self.holds.tick()
                states = ((name, rt.observed.state) for name, rt in self.monitor.runtimes.items())
                self.holds.count_downtime(states, now - last)
            except Exception:  # a bug here must not end the releases
                log.exception("hold tick failed")
            last = now
            await self.save()

    def _watch(self) -> None:
        """One event when a silence expires and when a window opens or closes: the log says
        when the quiet began and ended, even though nothing was sent."""
        now = self.monitor.clock()
        report = self.monitor.reporter.report
        active = {s.id: s for s in self.book.active(now)}
        for gone in self._silences.keys() - active.keys():
            silence = self._silences[gone]
            if silence.ends_at <= now:  # removed early: the API reported silence_removed
                report("silence_expired", "silence expired", **silence.event_fields())
        self._silences = active
        opened = dict(self.holds.calendar.open_now(now))
        for name in opened.keys() - self._windows.keys():
            report("maintenance_started", "maintenance window open", window=name, until=iso(opened[name]))
        for name in self._windows.keys() - opened.keys():
            report("maintenance_ended", "maintenance window closed", window=name)
        self._windows = opened

    def _holds_first(self) -> Callable[[], None] | None:
        """The persister's ``before_state``: the holds file's write when it changed or a write
        of it is still under way (that one may land after the state otherwise)."""
        holds = self.holds
        if not holds.dirty() and not holds.unwritten():
            return None
        data = holds.document()

        def write() -> None:
            try:
                holds.save(data)
            except OSError:
                holds.mark_dirty()
                raise

        return write

    async def save(self, force: bool = False) -> None:
        """Write the holds file when it changed (``force``: at a stop, whatever a cut-short
        save left behind). Never while the outbox lacks an alert a tick released: a file that
        no longer holds that DOWN, on disk before the outbox has it, would lose it to a kill -9;
        the persister writes the file right after storing it."""
        if self.monitor.persister.unstored:
            return
        if force or self.holds.dirty():
            data = self.holds.document()
            try:
                await asyncio.to_thread(self.holds.save, data)
            except OSError as exc:
                self.holds.mark_dirty()
                log.error("holds file cannot be written: %s", exc)

    def decorate(self, snap: MonitorSnapshot) -> MonitorSnapshot:
        """The snapshot with every held target's why/until and downtime figures."""
        holds = self.holds
        targets = list(snap.targets)
        held = in_maintenance = 0
        views = holds.views((t.name, self._state_of(t.name)) for t in targets)
        for index, target in enumerate(targets):
            view = views.get(target.name)
            if view is None:
                continue
            if view.why is not None:
                held += 1
                if view.why.startswith("maintenance "):
                    in_maintenance += 1
            targets[index] = replace(
                target,
                silenced_by=view.why,
                held_until=view.until,
                held_alert=view.pending,
                downtime_seconds=view.downtime.total,
                downtime_in_maintenance_seconds=view.downtime.maintenance,
                downtime_held_by_dependency_seconds=view.downtime.dependency,
            )
        silences = tuple(
            SilenceSnapshot(s.id, s.targets, s.starts_at, s.ends_at, s.comment, s.created_by)
            for s in self.book.all()
        )
        return replace(
            snap,
            targets=tuple(targets),
            targets_held=held,
            targets_in_maintenance=in_maintenance,
            silences=silences,
            maintenance_open=tuple(holds.calendar.open_now().items()),
        )
