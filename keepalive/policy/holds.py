"""The AlertPolicy of SPEC 13: what is held, and what a hold's end releases, decided against
what was NOTIFIED (never against what happened meanwhile).

Per target it remembers three things, persisted in ``MONITOR_STATE_DIR/holds.json`` so that a
restart in the middle of a hold keeps all of it:
- ``notified``: the outage (its ``since``) whose DOWN was handed to delivery;
- ``pending``: the last DOWN raised while held and never notified;
- ``expiring``: the last EXPIRING (certificate) alert raised while the target was silenced or
  in maintenance. A dependency does not hold it: a parent's outage says nothing about a
  child's certificate. When the quiet ends it is not sent as it was (its "expires in 13 d"
  may be stale, the certificate renewed or expired meanwhile): the engine forgets what it
  announced about that certificate and looks at it again at the next check, which raises a
  fresh EXPIRING if it still runs out.

The three rules then read straight off them:
- a hold ends (silence expired or removed, window closed, parent recovered) and the target is
  still down with its DOWN never notified: that one DOWN is queued then (repeats raised during
  the hold collapse into it: the last, with the most failed checks);
- down and back inside the hold: the RECOVERED finds a pending DOWN of the same outage that
  was never notified, and both are dropped: nothing is sent;
- a DOWN that was notified and then recovers: the RECOVERED goes at once, hold or not (a
  resolution is never held). A repeat DOWN of an outage already notified is held quietly and
  not re-sent when the hold ends: its outage was announced.

Everything here runs on the event loop; ``tick`` (once a second) releases what is due and
counts downtime inside maintenance or held by a dependency; ``save`` writes the file off the
loop. Holds never stop a check, and the state machine never hears of them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from keepalive.alerts import Alert, AlertKind
from keepalive.engine.statestore import reserve_aside, write_atomically
from keepalive.policy.dependencies import OUTAGE, dependents, held_by_parents
from keepalive.policy.globs import compile_globs
from keepalive.policy.maintenance import Calendar, Window
from keepalive.policy.silences import SilenceBook
from keepalive.state import Status, TargetState
from keepalive.targets import Target

HOLDS_FILE = "holds.json"
FILE_VERSION = 1
log = logging.getLogger("keepalive.monitor")


@dataclass(slots=True)
class Downtime:
    """Seconds a target spent failing or down, and how much of it was quiet on purpose."""

    total: float = 0.0
    maintenance: float = 0.0
    dependency: float = 0.0


@dataclass(frozen=True, slots=True)
class HoldView:
    """One target's hold as the snapshot shows it."""

    why: str | None  # silenced_by: None when nothing holds it
    until: float | None  # when the hold ends (silence, window); None: when a parent recovers
    pending: bool  # a DOWN is waiting for the hold to end
    downtime: Downtime


Report = Callable[..., None]


class Holds:
    """Silences + maintenance windows + dependencies, as one AlertPolicy."""

    def __init__(
        self,
        silences: SilenceBook,
        state_dir: Path,
        *,
        state_of: Callable[[str], TargetState | None],
        queue: Callable[[Alert], None],
        report: Report,
        checked_at: Callable[[str], float | None] | None = None,
        recheck_cert: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.silences = silences
        self.path = state_dir / HOLDS_FILE
        self._state_of = state_of
        self._checked_at = checked_at
        self._recheck_cert = recheck_cert
        self._queue = queue
        self._report = report
        self.clock = clock
        self.calendar = Calendar((), clock)
        self.parents: dict[str, tuple[str, ...]] = {}
        self.children: dict[str, tuple[str, ...]] = {}
        self.notified: dict[str, float] = {}
        self.pending: dict[str, Alert] = {}
        self.expiring: dict[str, Alert] = {}
        self.downtime: dict[str, Downtime] = {}
        self._last_tick: float | None = None
        self._dirty = False
        self._generation = 0
        self._written = 0
        self._write_lock = threading.Lock()
        self.problems: list[str] = []
        self._load()

    # ------------------------------------------------------------------ configuration

    def configure(self, targets: Iterable[Target], windows: tuple[Window, ...]) -> None:
        """Take the targets and windows of a (re)load; forget targets that are gone."""
        targets = tuple(targets)
        names = {target.name for target in targets}
        parents: dict[str, tuple[str, ...]] = {}
        elsewhere: list[str] = []
        for target in targets:
            wanted = getattr(target, "depends_on", ())
            if not wanted:
                continue
            if all(parent in names for parent in wanted):
                parents[target.name] = tuple(wanted)
            else:
                # A parent another replica checks (SPEC 17) never speaks here: holding on it
                # would hold this target's DOWN for ever. It pages on its own instead.
                elsewhere.append(target.name)
        if elsewhere:
            log.warning(
                "depends_on not applied: a parent is checked by another replica targets=%s",
                ",".join(elsewhere[:20])
                + (f" and {len(elsewhere) - 20} more" if len(elsewhere) > 20 else ""),
            )
        self.parents = parents
        self.children = dependents(parents)
        self.calendar = Calendar(windows, self.clock)
        for book in (self.notified, self.pending, self.expiring, self.downtime):
            for name in [n for n in book if n not in names]:
                del book[name]
                self._dirty = True

    # ------------------------------------------------------------------ deciding

    def _status(self, name: str) -> Status | None:
        state = self._state_of(name)
        return None if state is None else state.status

    def why_held(
        self, name: str, now: float | None = None, since: float | None = None
    ) -> tuple[str, float | None] | None:
        """Why ``name``'s notifications are held now and until when, or None. ``since``: the
        start of the outage in question (by default the target's current one)."""
        moment = self.clock() if now is None else now
        quiet = self._quiet(name, moment)
        if quiet is not None:
            return quiet
        wanted = self.parents.get(name)
        if wanted:
            if since is None:
                state = self._state_of(name)
                since = state.since if state is not None else None
            why = held_by_parents(wanted, self._status, self._checked_at, since)
            if why is not None:
                return why, None
        return None

    def _quiet(self, name: str, now: float) -> tuple[str, float] | None:
        """Why ``name`` is silenced or in maintenance now, and until when (a dependency aside:
        it holds DOWNs only), or None."""
        silence = self.silences.covering(name, now)
        if silence is not None:
            return silence.why(), silence.ends_at
        window = self.calendar.open_for(name, now)
        return None if window is None else (window[0].why(), window[1])

    def hold(self, alert: Alert, target: Target) -> str | None:
        """AlertPolicy: why ``alert`` is held, or None to notify it now."""
        name = alert.target
        if alert.kind is AlertKind.RECOVERED:
            held = self.pending.pop(name, None)
            announced = self.notified.pop(name, None)
            self._dirty = True
            if announced is None and held is not None and held.since == alert.since:
                return "down and back inside the hold: its DOWN was never notified"
            return None  # a resolution is never held
        if alert.kind is AlertKind.EXPIRING:
            quiet = self._quiet(name, self.clock())
            if quiet is None:
                return None
            # A lower threshold raised later replaces the earlier one: the most urgent.
            self.expiring[name] = alert
            self._dirty = True
            return quiet[0]
        if alert.kind is not AlertKind.DOWN:
            return None
        why = self.why_held(name, since=alert.since)
        if why is None:
            self.pending.pop(name, None)
            self.notified[name] = alert.since
            self._dirty = True
            return None
        if self.notified.get(name) == alert.since:
            return f"{why[0]} (a repeat: this outage was notified)"
        self.pending[name] = alert
        self._dirty = True
        return why[0]

    def annotate(self, alert: Alert, target: Target) -> Alert:
        """A parent's DOWN names the dependents failing with it."""
        if alert.kind is not AlertKind.DOWN or alert.target not in self.children:
            return alert
        failing = [c for c in self.children[alert.target] if self._status(c) in OUTAGE]
        if not failing:
            return alert
        shown = ", ".join(failing[:20]) + (f" and {len(failing) - 20} more" if len(failing) > 20 else "")
        return replace(alert, reason=f"{alert.reason}; dependents failing too: {shown}")

    def is_held(self, name: str) -> bool:
        """True while ``name``'s DOWN is held (remediation waits: SPEC 15)."""
        return name in self.pending or self.why_held(name) is not None

    # ------------------------------------------------------------------ releasing

    def tick(self) -> list[Alert]:
        """Release the DOWNs whose hold has ended (and have the certificates of held EXPIRINGs
        looked at again). Once a second, on the loop; the work is proportional to the targets
        held, not to all targets."""
        now = self.clock()
        released: list[Alert] = []
        for name, alert in list(self.pending.items()):
            if self.why_held(name, now, alert.since) is not None:
                continue
            del self.pending[name]
            self._dirty = True
            state = self._state_of(name)
            if state is None or state.status is not Status.DOWN or state.since != alert.since:
                # Its outage is over (or its state was lost): nothing is owed. Said once, so a
                # DOWN that is never sent is never a mystery.
                self._report(
                    "held_alert_dropped",
                    "held alert dropped",
                    target=name,
                    alert_id=alert.id,
                    why="the target is not in that outage any more"
                    if state is not None
                    else "the target is gone",
                    status=None if state is None else state.status.value,
                )
                continue
            alert = replace(alert, at=now)
            self.notified[name] = alert.since
            self._release(alert)
            released.append(alert)
        for name, alert in list(self.expiring.items()):
            if self._quiet(name, now) is not None:
                continue
            del self.expiring[name]
            self._dirty = True
            self._report(
                "held_alert_dropped",
                "held alert dropped",
                target=name,
                alert_id=alert.id,
                why="the quiet ended: the certificate is looked at again, and an EXPIRING follows "
                "if it still runs out",
            )
            if self._recheck_cert is not None:
                self._recheck_cert(name)
        self._last_tick = now
        return released

    def _release(self, alert: Alert) -> None:
        self._report(
            "alert_released",
            "held alert released",
            target=alert.target,
            alert_id=alert.id,
            kind=alert.kind,
            failed_checks=alert.failed_checks,
        )
        self._queue(alert)

    def count_downtime(self, states: Iterable[tuple[str, TargetState]], elapsed: float) -> None:
        """Add ``elapsed`` seconds to each failing target's downtime, and to its share inside
        maintenance or held by a dependency."""
        now = self.clock()
        for name, state in states:
            if state.status not in OUTAGE:
                continue
            book = self.downtime.get(name)
            if book is None:
                book = self.downtime[name] = Downtime()
            book.total += elapsed
            if self.calendar.open_for(name, now) is not None:
                book.maintenance += elapsed
            elif name in self.parents and held_by_parents(self.parents[name], self._status) is not None:
                book.dependency += elapsed
            self._dirty = True

    def view(self, name: str, state: TargetState | None) -> HoldView | None:
        """What the snapshot shows of ``name``'s hold, or None when there is nothing to show."""
        why = self.why_held(name)
        # A dependency is only worth showing when the dependent itself is failing.
        if why is not None and why[1] is None and (state is None or state.status not in OUTAGE):
            why = None
        downtime = self.downtime.get(name)
        pending = name in self.pending
        if why is None and downtime is None and not pending:
            return None
        return HoldView(
            why=why[0] if why else None,
            until=why[1] if why else None,
            pending=pending,
            downtime=downtime or Downtime(),
        )

    def views(self, targets: Iterable[tuple[str, TargetState | None]]) -> dict[str, HoldView]:
        """``view`` for many targets at once, for the snapshot: the silences and windows in force
        are gathered once and matched as one regular expression each, so a target nothing
        holds costs two regex calls and three lookups (10,000 targets, 5 silences: ~40 ms one
        by one, a few ms here)."""
        now = self.clock()
        silences = self.silences.active(now)
        windows = [w for w, _ in self.calendar.open_windows(now)]
        any_silence = self.silences.union if silences else None
        by_end = sorted(silences, key=lambda s: s.ends_at, reverse=True)
        texts: dict[str, str] = {}
        every = any(w.targets is None for w in windows)
        any_window = None if every else _union([g for w in windows for g in (w.targets or ())])
        found: dict[str, HoldView] = {}
        for name, state in targets:
            why: tuple[str, float | None] | None = None
            if any_silence is not None and any_silence.fullmatch(name):
                # The one ending last holds it longest; each silence's text is built once.
                silence = next((s for s in by_end if s.covers(name)), None)
                if silence is not None:
                    if silence.id not in texts:
                        texts[silence.id] = silence.why()
                    why = (texts[silence.id], silence.ends_at)
            if why is None and (every or (any_window is not None and any_window.fullmatch(name))):
                window = self.calendar.open_for(name, now)
                if window is not None:
                    why = (window[0].why(), window[1])
            if why is None and name in self.parents and state is not None and state.status in OUTAGE:
                reason = held_by_parents(self.parents[name], self._status, self._checked_at, state.since)
                if reason is not None:
                    why = (reason, None)
            downtime = self.downtime.get(name)
            pending = name in self.pending
            if why is None and downtime is None and not pending:
                continue
            found[name] = HoldView(
                why=why[0] if why else None,
                until=why[1] if why else None,
                pending=pending,
                downtime=downtime or Downtime(),
            )
        return found

    # ------------------------------------------------------------------ persistence

    def dirty(self) -> bool:
        return self._dirty

    def unwritten(self) -> bool:
        """A document was built that is not on disk yet (a save in its thread, or failed)."""
        return self._written < self._generation

    def mark_dirty(self) -> None:
        """A save failed: the next tick tries again."""
        self._dirty = True

    def document(self) -> tuple[int, bytes]:
        """What ``save`` writes, numbered; built on the loop (a consistent copy), written off it."""
        self._dirty = False
        self._generation += 1
        return self._generation, json.dumps(
            {
                "version": FILE_VERSION,
                "notified": self.notified,
                "pending": {name: asdict(alert) for name, alert in self.pending.items()},
                "expiring": {name: asdict(alert) for name, alert in self.expiring.items()},
                "downtime": {
                    name: [d.total, d.maintenance, d.dependency] for name, d in self.downtime.items()
                },
            },
            separators=(",", ":"),
        ).encode()

    def save(self, document: tuple[int, bytes]) -> None:
        """Write a ``document()`` unless a newer one is already on disk: a save cut short by a
        stop may still be running in its thread when the final save starts."""
        generation, data = document
        with self._write_lock:
            if generation <= self._written:
                return
            write_atomically(self.path, data)
            self._written = generation

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self.problems.append(f"{self.path} cannot be read: {exc.strerror}")
            return
        try:
            document: dict[str, Any] = json.loads(raw)
            for name, since in document.get("notified", {}).items():
                self.notified[str(name)] = float(since)
            for book, key in ((self.pending, "pending"), (self.expiring, "expiring")):
                for name, record in document.get(key, {}).items():  # "expiring" since 1.0.x
                    record["kind"] = AlertKind(record["kind"])
                    book[str(name)] = Alert(**record)
            for name, figures in document.get("downtime", {}).items():
                total, maintenance, dependency = (float(x) for x in figures)
                self.downtime[str(name)] = Downtime(total, maintenance, dependency)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self.notified.clear()
            self.pending.clear()
            self.expiring.clear()
            self.downtime.clear()
            # Set aside, as the state and silence files are: the next save would overwrite it,
            # and it is the only record of the DOWNs that were held.
            try:
                aside = reserve_aside(self.path, "corrupt")
                self.path.replace(aside)
                kept = f"; set aside as {aside.name}"
            except OSError:
                kept = ""
            self.problems.append(
                f"{self.path} is unreadable ({type(exc).__name__}): held alerts before this start "
                f"are lost{kept}"
            )


def _union(globs: list[str]) -> re.Pattern[str] | None:
    return compile_globs(globs) if globs else None
